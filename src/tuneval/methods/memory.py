"""How much memory training needs, for any model size and method, before you try it.

The rule of thumb is that full fine-tuning with AdamW needs ~16 bytes per parameter (fp32
weights 4 + gradients 4 + two Adam moments 8; ~18-20 with mixed-precision copies) plus
activations. Parameter-efficient methods keep the weights but cut gradients and optimizer
states to the trainable parameters, and often cut activations too: autograd only keeps a
frozen linear layer's weight, not its input, and nothing below the lowest trained parameter.

This estimate builds the model with fake tensors (shapes without memory, so a 70B model
costs nothing), applies the method exactly as training does, and runs one training forward
pass of the given batch through it, adding up every tensor autograd saves for the backward
pass. Components:
  weights       every parameter at its dtype (QLoRA: quantized linears at 4 bits + scales)
  gradients     trainable parameters, fp32
  optimizer     AdamW: two fp32 moments per trainable parameter
  activations   saved for backward (gradient checkpointing: block inputs + one block's worth)
  transient     gradients of the logits at the start of backward (two logits-sized tensors)
The runtime (Python, torch, libraries) is reported apart: the process RSS measured here.
Batches are taken as padded (an explicit attention mask), as training batches usually are;
allocator fragmentation and the data held in memory are not counted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from tuneval.errors import TunevalError

MB = 2**20


@dataclass
class MemoryEstimate:
    model: str
    method: str
    arch: str
    batch_size: int
    seq_len: int
    target_len: int | None
    trainable: int
    total: int
    weights: int
    gradients: int
    optimizer: int
    activations: int
    transient: int
    runtime: int
    gradient_checkpointing: bool
    bf16: bool
    quantized: bool
    notes: list[str] = field(default_factory=list)

    @property
    def tensors(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations + self.transient

    @property
    def with_runtime(self) -> int:
        return self.tensors + self.runtime

    @property
    def bytes_per_parameter(self) -> float:
        """Weights + gradients + optimizer states per model parameter (the rule-of-thumb number)."""
        return (self.weights + self.gradients + self.optimizer) / self.total

    def components(self) -> list[tuple[str, int, str]]:
        t, n = self.trainable, self.total
        act = f"batch {self.batch_size} x {self.seq_len} tokens" + (
            f" (+{self.target_len} target)" if self.target_len else "") + (
            ", gradient checkpointing" if self.gradient_checkpointing else "") + (", bf16 autocast" if self.bf16 else "")
        return [
            ("weights", self.weights, f"{n:,d} params" + (", linear layers in 4-bit NF4" if self.quantized else "")),
            ("gradients", self.gradients, f"{t:,d} trainable x 4 B"),
            ("optimizer (AdamW)", self.optimizer, f"{t:,d} trainable x 8 B"),
            ("activations", self.activations, act),
            ("backward transient", self.transient, "logits gradients"),
        ]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(tensors=self.tensors, with_runtime=self.with_runtime, bytes_per_parameter=self.bytes_per_parameter)
        return d


def _blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks: children of ModuleLists named layers/block/h, outermost only (T5 nests one)."""
    names = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and name.rsplit(".", 1)[-1] in ("layers", "layer", "block", "blocks", "h"):
            names += [f"{name}.{i}" for i in range(len(module))]
    outer = [n for n in names if not any(n.startswith(o + ".") for o in names)]
    return [model.get_submodule(n) for n in outer]


def saved_activations(model: torch.nn.Module, inputs: dict[str, torch.Tensor], bf16: bool = False) -> dict[str, Any]:
    """Bytes autograd saves for backward in one forward pass, in total, per block, and at block inputs.

    Works on real tensors and on fake ones alike; parameters (saved by every matmul) are not counted.
    """
    params = {p.untyped_storage()._cdata for p in model.parameters()}
    seen: dict[int, int] = {}
    where: dict[int, Any] = {}
    blocks = _blocks(model)
    current: list[Any] = [None]
    boundary: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        key = storage._cdata
        if key not in params and key not in seen:
            seen[key] = storage.nbytes()
            where[key] = current[0]
        return t

    def pre(i):
        def hook(module, args, kwargs):
            current[0] = i
            h = args[0] if args and isinstance(args[0], torch.Tensor) else kwargs.get("hidden_states")
            if isinstance(h, torch.Tensor):
                boundary[i] = h.numel() * h.element_size()
        return hook

    def post(module, args, output):
        current[0] = None

    handles = [b.register_forward_pre_hook(pre(i), with_kwargs=True) for i, b in enumerate(blocks)]
    handles += [b.register_forward_hook(post) for b in blocks]
    try:
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else torch.autocast("cpu", enabled=False)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), ctx:
            out = model(**inputs)
    finally:
        for h in handles:
            h.remove()
    per_block = [0] * len(blocks)
    outside = 0
    for key, nbytes in seen.items():
        if where[key] is None:
            outside += nbytes
        else:
            per_block[where[key]] += nbytes
    logits = out.logits
    return {"total": sum(seen.values()), "outside": outside, "per_block": per_block,
            "boundary": [boundary.get(i, 0) for i in range(len(blocks))],
            "logits": logits.numel() * logits.element_size(), "loss": out.loss}


def _to_fake_cpu(model: torch.nn.Module) -> None:
    """Swap every meta parameter and buffer for an empty CPU tensor (fake under FakeTensorMode), ties kept."""
    memo: dict[int, torch.Tensor] = {}
    for module in model.modules():
        for registry in (module._parameters, module._buffers):
            for key, t in registry.items():
                if t is None:
                    continue
                if id(t) not in memo:
                    new = torch.empty(t.shape, dtype=t.dtype, device="cpu")
                    memo[id(t)] = torch.nn.Parameter(new, requires_grad=t.requires_grad) if isinstance(
                        t, torch.nn.Parameter) else new
                registry[key] = memo[id(t)]


def _quantized_bytes(numel: int, double_quant: bool) -> int:
    """NF4: half a byte a value, plus one scale per 64 values (8-bit + fp32 per 256 scales if double-quantized)."""
    blocks = -(-numel // 64)
    scales = blocks + 4 * -(-blocks // 256) if double_quant else 4 * blocks
    return numel // 2 + scales


def _weight_bytes(model: torch.nn.Module, base: torch.nn.Module, quantized: bool, double_quant: bool) -> int:
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    if not quantized:
        return total
    output = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    keep = set(getattr(base, "_keep_in_fp32_modules", None) or []) | {"lm_head"}
    for name, module in model.named_modules():
        if (type(module) is torch.nn.Linear and not module.weight.requires_grad and module is not output
                and not any(k in name.split(".") for k in keep)):
            n = module.weight.numel()
            total += _quantized_bytes(n, double_quant) - n * module.weight.element_size()
    return total


def _shape_method(spec, settings: Any, quantized: bool, gradient_checkpointing: bool) -> tuple[Any, Any, bool]:
    """(apply, settings to apply, gradient checkpointing) for building the model on the meta device."""
    apply, settings_for_apply = spec.apply, settings
    if quantized:  # LoRA over the same base; the 4-bit weights are counted by _weight_bytes
        from tuneval.methods.lora import apply as lora_apply
        from tuneval.methods.qlora import lora_part

        apply, settings_for_apply = lora_apply, lora_part(settings)
        gradient_checkpointing = gradient_checkpointing or settings.use_gradient_checkpointing
    if hasattr(settings_for_apply, "prompt_tuning_init"):  # no tokenizer needed: shapes are all that count
        settings_for_apply = dataclasses.replace(settings_for_apply, prompt_tuning_init="RANDOM")
    return apply, settings_for_apply, gradient_checkpointing


def _activation_bytes(saved: dict[str, Any], gradient_checkpointing: bool, notes: list[str]) -> int:
    """Activations kept for backward: with checkpointing, the block boundaries plus one block's own."""
    if gradient_checkpointing and saved["per_block"]:
        return saved["outside"] + sum(saved["boundary"]) + max(saved["per_block"])
    if gradient_checkpointing:
        notes.append("no transformer blocks found: gradient checkpointing not modelled")
    return saved["total"]


def estimate_memory(model_name: str, method: str, settings: Any = None, *, batch_size: int = 8, seq_len: int = 256,
                    target_len: int | None = None, gradient_checkpointing: bool = False,
                    bf16: bool = False, runtime: int | None = None) -> MemoryEstimate:
    """Estimate training memory for `method` on `model_name` (any size: no weights are loaded).

    `runtime`: bytes the process needs before any model is loaded; default: this process's RSS now
    (right for a fresh process such as the CLI's; a process that has trained a model should pass the
    RSS it measured before loading).
    """
    import psutil
    from torch._subclasses.fake_tensor import FakeTensorMode
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    from tuneval.methods.registry import count_parameters, get_method
    from tuneval.models import load_config

    if batch_size < 1 or seq_len < 1:
        raise TunevalError(f"memory: batch size and sequence length must be at least 1 (got {batch_size}, {seq_len})")
    spec = get_method(method)
    settings = settings if settings is not None else spec.settings()
    config, arch, _, _ = load_config(model_name)
    notes: list[str] = []
    quantized = method == "qlora"
    double_quant = bool(getattr(settings, "bnb_4bit_use_double_quant", True))
    apply, settings_for_apply, gradient_checkpointing = _shape_method(spec, settings, quantized, gradient_checkpointing)
    target_len = (target_len or min(seq_len, 128)) if arch == "seq2seq" else None
    runtime = psutil.Process().memory_info().rss if runtime is None else runtime
    auto = AutoModelForSeq2SeqLM if arch == "seq2seq" else AutoModelForCausalLM
    with torch.device("meta"):  # shapes only; methods apply here as they would on a real model
        base = auto.from_config(config)
        base.config.use_cache = False
        net = apply(base, settings_for_apply, arch)
    net.train()
    trainable, total = count_parameters(net)
    trainable_bytes = sum(p.numel() * p.element_size() for p in net.parameters() if p.requires_grad)
    weights = _weight_bytes(net, base, quantized, double_quant)
    with FakeTensorMode(allow_non_fake_inputs=True):
        # CPU fake tensors, so attention dispatches to the kernels training uses (meta would pick the math path)
        _to_fake_cpu(net)
        ids = torch.zeros((batch_size, seq_len), dtype=torch.long)
        labels = torch.zeros((batch_size, target_len), dtype=torch.long) if arch == "seq2seq" else ids
        # No mask passed; fake tensors can't be inspected, so attention gets an explicit causal mask, exactly
        # what a padded training batch gets (checked against real tensors in tests/methods/test_memory.py).
        saved = saved_activations(net, {"input_ids": ids, "labels": labels}, bf16=bf16)
    activations = _activation_bytes(saved, gradient_checkpointing, notes)
    return MemoryEstimate(
        model=model_name, method=method, arch=arch, batch_size=batch_size, seq_len=seq_len, target_len=target_len,
        trainable=trainable, total=total, weights=weights, gradients=trainable_bytes, optimizer=2 * trainable_bytes,
        activations=activations, transient=2 * saved["logits"], runtime=runtime,
        gradient_checkpointing=gradient_checkpointing, bf16=bf16, quantized=quantized, notes=notes,
    )


def format_bytes(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / MB:.1f} MiB"
