"""Evaluation generation: tuneval's batched generation vs one prompt at a time, same prompts, same outputs.

* one at a time: `model.generate` per prompt, as a notebook loop does it (greedy, KV cache,
  stops at EOS; no padding at all).
* tuneval: `tuneval.evaluate.generation.generate`, what `tuneval eval` runs: prompts sorted by
  length, batches of --batch-size; for a causal model each prompt prefilled alone, the batch
  decoded together with attention per row, rows leaving the batch at EOS.

Both greedy with the same GenerationConfig, on the first --prompts DialogSum validation
examples formatted exactly as `tuneval eval` formats them (the task's evaluation template, the
chat template), on one model at --precision (auto: bf16 where the CPU has it natively). Printed:
generated tokens/s of each (tokens up to and including EOS, prefill time included), the ratio,
and how many outputs are identical token for token; rows that differ are counted and shown,
not hidden (a padded batched prefill under bf16 rounds differently from a prompt alone, which
is why tuneval prefills each prompt alone: src/tuneval/evaluate/generation.py).

Measured run (~5-10 min on 2 CPU cores):
    .venv/bin/python bench/generate_throughput.py --data-dir ../shared/data
Smoke test:
    .venv/bin/python bench/generate_throughput.py --data-dir ../shared/data --prompts 4 --max-new-tokens 8 \\
        --out runs/bench-generate-throughput-smoke
Writes OUT/generate_throughput.json and .md; the last line is `speedup: <ratio>x`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any


def prompts_for(loaded, a: argparse.Namespace) -> list[list[int]]:
    from tuneval.data.collate import PromptFormatter
    from tuneval.tasks import get_task, load_rows

    task = get_task("dialogsum")
    rows = load_rows(task, "validation", a.data_dir)[: a.prompts]
    fmt = PromptFormatter(loaded.tokenizer, loaded.arch, chat_template=True, max_seq_len=a.max_seq_len)
    budget = fmt.generation_budget(a.max_new_tokens)
    return [fmt.fit_prompt(task.templates, task.templates.eval_index, row, budget, task.input_fields)[1] for row in rows]


def one_at_a_time(model, tokenizer, prompts, max_new_tokens: int) -> tuple[list[list[int]], float]:
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tuneval.evaluate.generation import _until_eos, greedy_config

    config = greedy_config(model, tokenizer, max_new_tokens)
    outputs = []
    start = time.perf_counter()
    with torch.inference_mode(), Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                          TimeElapsedColumn(), transient=True) as progress:
        bar = progress.add_task("one at a time", total=len(prompts))
        for p in prompts:
            ids = torch.tensor([p])
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
            outputs.append(_until_eos(out[0, ids.shape[1]:].tolist(), config.eos_token_id, tokenizer.pad_token_id, "causal"))
            progress.advance(bar)
    return outputs, time.perf_counter() - start


def padded_generate(model, tokenizer, prompts, a: argparse.Namespace) -> tuple[list[list[int]], float]:
    """Plain batched `model.generate`: length-sorted, left-padded batches (tuneval's path before 2026-12-02,
    and still its path for models `_greedy_causal` does not take)."""
    import torch

    from tuneval.evaluate.generation import _padded_generate, greedy_config

    config = greedy_config(model, tokenizer, a.max_new_tokens)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    outputs: list[list[int]] = [[] for _ in prompts]
    start = time.perf_counter()
    with torch.inference_mode():
        for b in range(0, len(order), a.batch_size):
            idx = order[b:b + a.batch_size]
            for row, i in zip(_padded_generate(model, [prompts[i] for i in idx], config, "causal",
                                               tokenizer.pad_token_id, model.device), idx):
                outputs[i] = row
    return outputs, time.perf_counter() - start


def batched(model, tokenizer, prompts, a: argparse.Namespace) -> tuple[list[list[int]], float]:
    """tuneval's generation (what `tuneval eval` runs), as token ids cut after EOS."""
    from tuneval.evaluate.generation import generate_ids

    start = time.perf_counter()
    outputs = generate_ids(model, tokenizer, prompts, "causal", batch_size=a.batch_size,
                           max_new_tokens=a.max_new_tokens, description="tuneval batched")
    return outputs, time.perf_counter() - start


def run(a: argparse.Namespace) -> dict[str, Any]:
    import transformers

    from tuneval.runs import machine
    from tuneval.models import load_model

    transformers.utils.logging.set_verbosity_error()
    loaded = load_model(a.model, precision=a.precision)
    model, tok = loaded.model.eval(), loaded.tokenizer
    prompts = prompts_for(loaded, a)
    from tuneval.evaluate.generation import generate_ids

    generate_ids(model, tok, prompts[:1], "causal", batch_size=1, max_new_tokens=2)  # warm-up, untimed
    fast, fast_s = batched(model, tok, prompts, a)
    padded, padded_s = padded_generate(model, tok, prompts, a)
    slow, slow_s = one_at_a_time(model, tok, prompts, a.max_new_tokens)
    same = [i for i in range(len(prompts)) if fast[i] == slow[i]]
    differ = []
    for i in range(len(prompts)):
        if fast[i] != slow[i]:
            at = next((k for k, (x, y) in enumerate(zip(fast[i], slow[i])) if x != y), min(len(fast[i]), len(slow[i])))
            differ.append({"index": i, "first_difference_at_token": at,
                           "batched": tok.decode(fast[i], skip_special_tokens=True),
                           "one_at_a_time": tok.decode(slow[i], skip_special_tokens=True)})
    fast_tokens, slow_tokens, padded_tokens = sum(map(len, fast)), sum(map(len, slow)), sum(map(len, padded))
    rows = [
        {"path": "one at a time (model.generate per prompt)", "tokens": slow_tokens, "seconds": slow_s,
         "tokens_per_second": slow_tokens / slow_s, "identical": len(prompts)},
        {"path": f"batched model.generate (batch {a.batch_size}, length-sorted, left-padded)", "tokens": padded_tokens,
         "seconds": padded_s, "tokens_per_second": padded_tokens / padded_s,
         "identical": sum(x == y for x, y in zip(padded, slow))},
        {"path": f"tuneval (batch {a.batch_size}, length-sorted)", "tokens": fast_tokens, "seconds": fast_s,
         "tokens_per_second": fast_tokens / fast_s, "identical": len(same)},
    ]
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    return {"machine": machine(), "args": vars(a), "dtype": dtype, "prompts": len(prompts),
            "prompt_tokens": sum(map(len, prompts)), "rows": rows, "identical": len(same), "differences": differ,
            "speedup": rows[2]["tokens_per_second"] / rows[0]["tokens_per_second"]}


def report(r: dict[str, Any]) -> str:
    a = r["args"]
    lines = ["| path | generated tokens | seconds | generated tok/s | outputs identical to one at a time |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {x['path']} | {x['tokens']} | {x['seconds']:.1f} | {x['tokens_per_second']:.1f} | "
              f"{x.get('identical', '-')}/{r['prompts']} |" for x in r["rows"]]
    md = (f"# Evaluation generation: batched vs one at a time\n\nMachine: {r['machine']}. Model `{a['model']}` at "
          f"{r.get('dtype', 'float32')} (precision {a.get('precision', 'fp32')}), every path, "
          f"first {r['prompts']} DialogSum validation prompts ({r['prompt_tokens']} prompt tokens), greedy, "
          f"at most {a['max_new_tokens']} new tokens, KV cache, stop at EOS; tokens counted up to EOS, prefill "
          f"included in the time.\n\n" + "\n".join(lines) +
          f"\n\nSpeedup (tuneval over one at a time): **{r['speedup']:.2f}x**. tuneval's outputs identical token for token: "
          f"{r['identical']}/{r['prompts']}.\n")
    for d in r["differences"][:5]:
        md += (f"\n- prompt {d['index']}: differs from token {d['first_difference_at_token']}\n"
               f"  - batched: {d['batched']!r}\n  - one at a time: {d['one_at_a_time']!r}\n")
    return md


def main() -> None:
    from tuneval import allocator

    allocator.maybe_reexec()  # every path (and worker process) on the allocator `tuneval` itself runs with
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--data-dir", default=None, help="Local data directory (else $TUNEVAL_DATA_DIR).")
    p.add_argument("--prompts", type=int, default=100)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16, help="tuneval's batch (tuneval eval --batch-size).")
    p.add_argument("--max-seq-len", type=int, default=1024)
    p.add_argument("--precision", default="auto", help="auto (bf16 where native) | bf16 | fp32: the one model both paths run.")
    p.add_argument("--out", default="runs/bench-generate-throughput")
    a = p.parse_args()
    from tuneval.io import atomic_write_json, atomic_write_text

    result = run(a)
    md = report(result)
    out = Path(a.out)
    atomic_write_json(out / "generate_throughput.json", result)
    atomic_write_text(out / "generate_throughput.md", md)
    print(md)
    print(f"saved: {out / 'generate_throughput.md'}, generate_throughput.json")
    print(f"speedup: {result['speedup']:.2f}x")


if __name__ == "__main__":
    main()
