"""GPU training throughput: LoRA and full fine-tuning of a randomly initialised 1B-class Llama.

No hub on the GPU machine and the embedded model is too small to say anything about a GPU,
so this uses a TinyLlama-1.1B-shaped config with random weights and random tokens: the
speed, memory and FLOP utilisation of a step do not depend on the weights' values.

Prints, per method: tokens/s, peak memory, and model FLOPs utilisation (MFU) against the
measured bf16 matmul peak of this GPU, the precision it computes in (bf16 autocast): on a host
without native bf16 (a CPU smoke run without AVX512-BF16/AMX, a GPU without bf16) the MFU cell
reads "n/a (no native bf16)" and the emulated rate is not measured (bench/peaks.py).
FLOPs per token: 6 x params for full fine-tuning, 4 x params for LoRA (no weight grads
for the frozen base), the usual approximation that ignores attention's quadratic term.

    python bench/gpu_bench.py [--seq-len 2048 --batch-size 8 --steps 10] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from peaks import cell, share, this_host


def matmul_peak(device: str, dtype: torch.dtype, n: int = 8192, reps: int = 10) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def build(tiny: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    if tiny:  # a CPU smoke test of the script itself
        cfg = LlamaConfig(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2)
    else:  # TinyLlama-1.1B's shape
        cfg = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                          num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=4096,
                          tie_word_embeddings=False)
    cfg._attn_implementation = "sdpa"
    return cfg, LlamaForCausalLM


def run(method: str, args, device: str) -> dict:
    import peft

    torch.manual_seed(0)
    cfg, cls = build(args.tiny)
    with torch.device(device):
        model = cls(cfg)
    if method == "lora":
        model = model.to(torch.bfloat16)  # frozen base in bf16; PEFT keeps adapter weights in fp32
        # tuneval's LoRA defaults (r=32, alpha=32, query/value projections); no dropout for a clean timing
        model = peft.get_peft_model(model, peft.LoraConfig(task_type=peft.TaskType.CAUSAL_LM, r=32, lora_alpha=32,
                                                            lora_dropout=0.0, target_modules=["q_proj", "v_proj"]))
        n_flops = 4
    else:
        n_flops = 6  # fp32 master weights, bf16 autocast compute (mixed precision)
    if args.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if method == "lora":
            model.enable_input_require_grads()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=device == "cuda")
    model.train()
    B, T = args.batch_size, args.seq_len
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    losses = []
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            sync(device)
            t0 = time.perf_counter()
        ids = torch.randint(0, cfg.vocab_size, (B, T), device=device)
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    sync(device)
    seconds = time.perf_counter() - t0
    tokens = B * T * args.steps
    base_params = total if method == "full" else total - trainable
    flops = n_flops * base_params * tokens
    out = {
        "method": method, "trainable_params": trainable, "all_params": total, "batch": B, "seq_len": T,
        "steps": args.steps, "tokens_per_s": tokens / seconds, "achieved_tflops": flops / seconds / 1e12,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
        "final_loss": losses[-1], "gradient_checkpointing": args.checkpointing,
    }
    del model, opt
    if device == "cuda":
        torch.cuda.empty_cache()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--checkpointing", action="store_true")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    host = this_host()
    peak = matmul_peak(device, torch.bfloat16, n=8192 if device == "cuda" else 512) if host.native_bf16 else None
    print(f"device: {name} ({host.describe()}); torch {torch.__version__}; precision bf16 autocast; measured bf16 "
          f"matmul peak (its roofline) " + (f"{peak / 1e12:.1f} TFLOP/s" if peak else "n/a (no native bf16)"))
    rows = [run(m, args, device) for m in ("lora", "full")]
    print(f"\n| method | trainable params | batch x seq | tokens/s | peak memory GiB | TFLOP/s | MFU (vs measured bf16 peak) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        mem = f"{r['peak_memory_gib']:.1f}" if r["peak_memory_gib"] is not None else "n/a"
        print(f"| {r['method']} | {r['trainable_params']:,d} / {r['all_params']:,d} | {r['batch']}x{r['seq_len']} | "
              f"{r['tokens_per_s']:,.0f} | {mem} | {r['achieved_tflops']:.1f} | "
              f"{cell(share(r['achieved_tflops'] * 1e12, 'bf16', {'bf16': peak}, host), '{:.1%}')} |")  # FLOP/s over FLOP/s
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"device": name, "torch": torch.__version__, "host": host.describe(),
                       "bf16_peak_tflops": peak and peak / 1e12, "runs": rows}, f, indent=2)


if __name__ == "__main__":
    main()
