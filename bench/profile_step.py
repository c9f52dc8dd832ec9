"""Where a training step's time goes: torch profiler over real `tuneval train` steps.

Runs a recipe through `tuneval.train.trainer.train` (the same Trainer, collator, packing,
precision and allocator a user gets), lets --warmup steps pass, profiles the next --steps, and
prints each kind of work's share of the CPU time (self time per op, so nothing is counted
twice): matmuls, attention, dtype casts (autocast's bf16 copies of the fp32 weights and
activations), the optimizer, and everything else, with the top ops beside. It answers "why is
model FLOP/s not nearer the matmul peak": the matmul share times the matmul rate it reached.

    .venv/bin/python bench/profile_step.py --data-dir ../shared/data            # ~3 min on 2 cores
    .venv/bin/python bench/profile_step.py --data-dir ../shared/data --set method=full
    # -> runs/bench-profile-step/profile.{json,md}
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import TrainerCallback

ROOT = Path(__file__).resolve().parents[1]
# op name -> kind, by prefix (self CPU time; the backward ops carry their own names)
KINDS = [("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_weight_int")),
         ("attention", ("aten::_scaled_dot_product", "aten::_flash_attention", "aten::_efficient_attention")),
         ("dtype casts", ("aten::copy_", "aten::_to_copy", "aten::to")),
         ("optimizer", ("Optimizer.", "aten::_foreach", "aten::_fused_adam")),
         ("cross-entropy", ("aten::_log_softmax", "aten::nll_loss", "aten::log_softmax"))]


def kind_of(name: str) -> str:
    for kind, prefixes in KINDS:
        if name.startswith(prefixes):
            return kind
    return "other"


class Profile(TrainerCallback):
    """Profiles the steps after `warmup` (the first steps compile kernels and grow the allocator's pools)."""

    def __init__(self, warmup: int, steps: int):
        self.warmup, self.steps, self.prof, self.tokens = warmup, steps, None, 0

    def on_step_begin(self, args, state, control, **kw):
        if state.global_step == self.warmup and self.prof is None:
            self.prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self.prof.__enter__()
            self.tokens_at = state.num_input_tokens_seen

    def on_step_end(self, args, state, control, **kw):
        if self.prof is not None and state.global_step == self.warmup + self.steps:
            self.prof.__exit__(None, None, None)
            self.tokens = state.num_input_tokens_seen - self.tokens_at
            control.should_training_stop = True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--recipe", default="recipes/dialogsum_lora.yaml")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--set", action="append", default=[], help="Extra recipe settings (KEY=VALUE).")
    p.add_argument("--out", default="runs/bench-profile-step")
    a = p.parse_args()
    from tuneval import allocator

    allocator.maybe_reexec()
    from tuneval.config import load_recipe
    from tuneval.io import atomic_write_json, atomic_write_text
    from tuneval.runs import machine
    from tuneval.train.trainer import train

    out = Path(a.out)
    steps = a.warmup + a.steps
    recipe = load_recipe(ROOT / a.recipe, [f"output_dir={out / 'run'}", f"data.data_dir={a.data_dir}",
                                            "eval.after_training=false", f"data.train_examples={8 * (steps + 2)}",
                                            *a.set])
    prof = Profile(a.warmup, a.steps)
    metrics, model, _ = train(recipe, overwrite=True, callbacks=[prof])
    if prof.prof is None or not prof.tokens:
        raise SystemExit("the profiled steps did not run: give fewer --warmup steps")
    events = prof.prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e6
    kinds: dict[str, float] = {}
    for e in events:
        kinds[kind_of(e.key)] = kinds.get(kind_of(e.key), 0.0) + e.self_cpu_time_total / 1e6
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    params = sum(p.numel() for p in model.parameters())
    flops = (6 if trainable == params else 4) * params * prof.tokens
    mm_rate = flops / kinds.get("matmul", float("nan")) / 1e9
    # an op's CPU time is the time its calling thread spent in it, its intra-op threads working
    # alongside: so these shares are shares of the step's wall time, and the rate is a wall-clock one
    threads = torch.get_num_threads()
    lines = ["| kind of work | CPU s | share |", "|---|---:|---:|"]
    lines += [f"| {k} | {v:.2f} | {v / total:.1%} |" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])]
    ops = ["| op | calls | self CPU s | share |", "|---|---:|---:|---:|"]
    ops += [f"| `{e.key}` | {e.count} | {e.self_cpu_time_total / 1e6:.2f} | {e.self_cpu_time_total / 1e6 / total:.1%} |"
            for e in top]
    md = (f"# Where a training step's time goes\n\nMachine: {machine()}. `{a.recipe}` ({recipe.method}), "
          f"settings {a.set or 'none'}, precision {metrics['precision']}, packing {metrics.get('packing')}; steps "
          f"{a.warmup + 1}-{steps} profiled ({prof.tokens} real tokens), torch on {threads} threads. Self CPU time "
          f"per op (the calling thread's time in it), summed over the profiled steps ({total:.1f} s).\n\n" + "\n".join(lines) + "\n\nTop ops:\n\n"
          + "\n".join(ops) + f"\n\nModel FLOPs in these steps ({6 if trainable == params else 4} x {params:,} x "
          f"{prof.tokens} tokens) over the matmuls' own time: **{mm_rate:.0f} GFLOP/s**, the rate the matmuls ran at "
          f"(compare the bench's measured matmul peak).\n")
    atomic_write_json(out / "profile.json", {"machine": machine(), "args": vars(a), "kinds_cpu_s": kinds,
                                             "total_cpu_s": total, "tokens": prof.tokens, "flops": flops,
                                             "matmul_gflops": mm_rate, "threads": threads,
                                             "top": [{"op": e.key, "calls": e.count,
                                                      "self_cpu_s": e.self_cpu_time_total / 1e6} for e in top]})
    atomic_write_text(out / "profile.md", md)
    print(md)


if __name__ == "__main__":
    main()
