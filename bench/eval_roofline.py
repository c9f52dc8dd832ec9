"""The bound this machine allows for evaluation, beside what tuneval reaches, per phase (issue 34, item 1).

Three phases of `tuneval eval` on the embedded model, each measured on this machine and set
against its roofline:

* prefill: each DialogSum prompt run alone through the model (what tuneval's generation does
  before decoding); work = its matmul FLOPs (every linear layer per prompt token, attention's
  QK^T and AV over the causal triangle, the LM head at the last position only);
* decode: the batch of those prompts decoded greedily together (`_decode`, the demo's 64 new
  tokens, rows leaving at EOS); per step, work = FLOPs of the live rows and bytes = every
  weight once plus each live row's keys and values, and the step's bound is the larger of
  FLOPs / peak and bytes / bandwidth;
* scoring: BoolQ's log-likelihood requests through `run_task` (lm-eval's multiple-choice
  scoring); work = FLOPs of the real (unpadded) tokens of each forward plus the LM head at the
  positions kept.

Peak: the best fp32 (or native bf16) matmul rate of `train_throughput.matmul_peak` (a square and
the model's own shapes); bandwidth: the best of 5 sums over a 512 MiB tensor. Work is counted
from the model's config and the shapes of each forward (a forward pre-hook), never assumed.
"share of bound" = bound seconds / measured seconds: 100% would be the hardware's limit.

    TUNEVAL_ALLOCATOR=auto .venv/bin/python bench/eval_roofline.py --data-dir ../shared/data \\
        [--prompts 64] [--batch-size 64] [--score-examples 100] [--out bench/results]

Writes OUT/eval_roofline.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))


def bandwidth(gib: float = 0.5, repeats: int = 5) -> float:
    """Read bandwidth in GB/s: the best of `repeats` sums over a `gib` GiB fp32 tensor."""
    import torch

    x = torch.ones(int(gib * 2**30) // 4)
    x.sum()
    best = min(_timed(x.sum) for _ in range(repeats))
    return x.numel() * 4 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Shape:
    """The model's sizes that decide the work of a token: from its config and its linear layers."""

    def __init__(self, model):
        import torch

        c = model.config
        head = model.get_output_embeddings()
        self.linear = sum(m.weight.numel() for m in model.modules()
                          if isinstance(m, torch.nn.Linear) and m is not head)  # per token, each x2 FLOPs
        self.head = head.weight.numel()
        self.layers, self.heads = c.num_hidden_layers, c.num_attention_heads
        self.head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        self.kv_heads = getattr(c, "num_key_value_heads", None) or self.heads
        self.bytes = next(model.parameters()).element_size()
        self.weight_bytes = (self.linear + self.head) * self.bytes

    def prefill_flops(self, n: int, keep: int = 1) -> float:
        """n tokens alone: linears, causal attention (QK^T and AV over n(n+1)/2 pairs), LM head on `keep`."""
        attention = 2 * 2 * self.layers * self.heads * self.head_dim * n * (n + 1) / 2
        return 2 * self.linear * n + attention + 2 * self.head * keep

    def decode_step(self, rows: int, context: int) -> tuple[float, float]:
        """FLOPs and bytes of one decoding step: `rows` tokens, each over `context` keys."""
        flops = rows * (2 * (self.linear + self.head) + 2 * 2 * self.layers * self.heads * self.head_dim * context)
        kv = rows * context * 2 * self.layers * self.kv_heads * self.head_dim * self.bytes
        return flops, self.weight_bytes + kv


def prefill_and_decode(model, tok, prompts: list[list[int]], batch: int, new: int, shape: Shape,
                       peak: float, bw: float) -> list[dict[str, Any]]:
    """Both generation phases on `prompts`, timed apart, each beside its bound."""
    import torch

    from tuneval.evaluate import generation as g

    config = g.greedy_config(model, tok, new)
    eos = torch.tensor(config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id])
    steps: list[tuple[int, int]] = []
    hook = model.register_forward_pre_hook(
        lambda m, args, kw: steps.append((kw["input_ids"].shape[0], kw["attention_mask"].shape[1]))
        if kw.get("past_key_values") is not None else None, with_kwargs=True)
    prefill_s = decode_s = 0.0
    with torch.inference_mode():
        order = sorted(prompts, key=len, reverse=True)
        for start in range(0, len(order), batch):
            part = order[start:start + batch]
            lengths = [len(p) for p in part]
            t = time.perf_counter()
            firsts, cache = g.prefill(model, part, new, "cpu")
            prefill_s += time.perf_counter() - t
            t = time.perf_counter()
            g.decode_batch(model, firsts, cache, torch.tensor(lengths), config, eos)
            decode_s += time.perf_counter() - t
    hook.remove()
    flops = sum(shape.prefill_flops(len(p)) for p in prompts)
    prefill = _row("prefill (each prompt alone)", f"{len(prompts)} prompts, {sum(map(len, prompts))} tokens",
                   prefill_s, flops, 0.0, peak, bw)
    work = [shape.decode_step(rows, context) for rows, context in steps]
    bound = sum(max(f / peak, b / bw) for f, b in work)
    decode = _row(f"decode (batch {batch})", f"{len(steps)} steps, {sum(r for r, _ in steps)} tokens", decode_s,
                  sum(f for f, _ in work), sum(b for _, b in work), peak, bw, bound)
    return [prefill, decode]


def scoring(model, tok, arch: str, n: int, batch: int, data_dir: str, shape: Shape, peak: float,
            bw: float) -> dict[str, Any]:
    """BoolQ's first `n` examples through `run_task`, every forward's real tokens counted."""
    import torch

    from tuneval.evaluate.harness import run_task
    from tuneval.tasks import get_task

    seen: list[list[tuple[int, int]]] = []
    hook = model.register_forward_pre_hook(lambda m, args, kw: seen.append(_real_rows(kw)), with_kwargs=True)
    t = time.perf_counter()
    with torch.inference_mode():
        run_task(model, tok, arch, get_task("boolq"), limit=n, data_dir=data_dir, batch_size=batch, shard=False)
    seconds = time.perf_counter() - t
    hook.remove()
    flops = sum(shape.prefill_flops(length, keep) for rows in seen for length, keep in rows)
    tokens = sum(length for rows in seen for length, _ in rows)
    return _row(f"scoring (BoolQ log-likelihood, batch {batch})", f"{n} examples, {tokens} tokens", seconds,
                flops, 0.0, peak, bw)


def _real_rows(kw: dict) -> list[tuple[int, int]]:
    """A scoring forward's (real length, LM-head positions) per row: a left-padded batch's from its mask (each
    row keeps `logits_to_keep`), a packed forward's from its position ids, restarting per row (the kept
    positions, counted once)."""
    import torch

    keep = kw.get("logits_to_keep", 0)
    keep = len(keep) if isinstance(keep, torch.Tensor) else keep
    if kw.get("attention_mask") is not None:
        return [(n, keep) for n in kw["attention_mask"].sum(-1).tolist()]
    starts = (kw["position_ids"][0] == 0).nonzero().squeeze(-1).tolist() + [kw["position_ids"].shape[1]]
    return [(b - a, keep if k == 0 else 0) for k, (a, b) in enumerate(zip(starts, starts[1:]))]


def _row(phase: str, work: str, seconds: float, flops: float, nbytes: float, peak: float, bw: float,
         bound: float | None = None) -> dict[str, Any]:
    bound = max(flops / peak, nbytes / bw) if bound is None else bound
    limit = "memory" if nbytes / bw > flops / peak else "compute"
    return {"phase": phase, "work": work, "seconds": seconds, "gflop": flops / 1e9, "gbytes": nbytes / 1e9,
            "bound_seconds": bound, "share_of_bound": bound / seconds, "gflops": flops / seconds / 1e9,
            "limited_by": limit}


def markdown(r: dict[str, Any]) -> str:
    lines = [f"# Evaluation against this machine's roofline\n\nMachine: {r['machine']}; precision {r['precision']}; "
             f"matmul peak {r['peak_gflops']:.1f} GFLOP/s (best shape {r['peak_shape']}); read bandwidth "
             f"{r['bandwidth_gbs']:.1f} GB/s. Model `{r['model']}`, DialogSum validation prompts as `tuneval eval` "
             f"builds them, greedy, at most {r['max_new_tokens']} new tokens.\n",
             "| phase | work | measured s | bound s | share of bound | GFLOP/s reached | bound set by |",
             "|---|---|---:|---:|---:|---:|---|"]
    for x in r["phases"]:
        lines.append(f"| {x['phase']} | {x['work']} | {x['seconds']:.1f} | {x['bound_seconds']:.1f} | "
                     f"{100 * x['share_of_bound']:.0f}% | {x['gflops']:.1f} | {x['limited_by']} |")
    total = sum(x["seconds"] for x in r["phases"][:2])
    lines.append(f"\nGeneration: {total / r['prompts']:.3f} s per example measured, "
                 f"{sum(x['bound_seconds'] for x in r['phases'][:2]) / r['prompts']:.3f} s at the bound.")
    return "\n".join(lines) + "\n"


def main() -> None:
    from tuneval import allocator

    allocator.maybe_reexec()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--max-seq-len", type=int, default=1024)
    p.add_argument("--score-examples", type=int, default=100)
    p.add_argument("--precision", default="auto")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    a = p.parse_args()
    import peaks
    import transformers
    from generate_throughput import prompts_for
    from train_throughput import matmul_peak

    from tuneval.io import atomic_write_json, atomic_write_text
    from tuneval.models import load_model
    from tuneval.runs import machine

    transformers.utils.logging.set_verbosity_error()
    loaded = load_model(a.model, precision=a.precision)
    model, tok = loaded.model.eval(), loaded.tokenizer
    precision = "bf16" if next(model.parameters()).element_size() == 2 else "fp32"
    measured = matmul_peak(precisions=peaks.this_host().precisions)
    peak = measured[precision] * 1e9
    bw = bandwidth() * 1e9
    shape = Shape(model)
    prompts = prompts_for(loaded, a)
    phases = prefill_and_decode(model, tok, prompts, a.batch_size, a.max_new_tokens, shape, peak, bw)
    phases.append(scoring(model, tok, loaded.arch, a.score_examples, a.batch_size, a.data_dir, shape, peak, bw))
    result = {"machine": machine(), "precision": precision, "peak_gflops": peak / 1e9,
              "peak_shape": measured[f"{precision}_shape"], "bandwidth_gbs": bw / 1e9, "model": a.model,
              "prompts": len(prompts), "max_new_tokens": a.max_new_tokens, "args": vars(a) | {"out": str(a.out)},
              "phases": phases}
    md = markdown(result)
    a.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(a.out / "eval_roofline.json", result)
    atomic_write_text(a.out / "eval_roofline.md", md)
    print(md)


if __name__ == "__main__":
    main()
