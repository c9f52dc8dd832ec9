"""Evaluation generation: tuneval's batched generation vs one prompt at a time, same prompts, same outputs.

* one at a time: `model.generate` per prompt, as a notebook loop does it (greedy, KV cache,
  stops at EOS; no padding at all).
* tuneval now: `tuneval.evaluate.generation.generate`, what `tuneval eval` runs: prompts sorted
  by length, batches of --batch-size (repeatable); for a causal model each prompt prefilled
  alone, the batch decoded together with attention per row, rows leaving the batch at EOS.
* tuneval at --baseline (default 3b4dfa1, the commit issue 34 measures against): that commit's
  generation.py, loaded from git, at --baseline-batch-size (16, the demo's batch then).
* with --padded: plain batched `model.generate` on left-padded batches.
* with --llama-server PATH: llama.cpp on the same weights (the model's directory converted to GGUF
  at --gguf-outtype, f32 by default: fp32's closest), `llama-server -t/-tb THREADS -np N` for each
  --parallel N, sent the same prompt token ids N at a time on /completion (temperature 0: greedy,
  n_predict --max-new-tokens, no prompt cache, stop at EOS); its rows count outputs identical to
  one at a time (EOS dropped on both sides, as llama.cpp returns none).

All greedy with the same GenerationConfig, on the first --prompts DialogSum validation
examples formatted exactly as `tuneval eval` formats them (the task's evaluation template, the
chat template), on one model at --precision (auto: bf16 where the CPU has it natively). Printed:
seconds per example and generated tokens/s of each (tokens up to and including EOS, prefill
time included), and how many outputs are identical token for token to one at a time; rows
that differ are counted and shown, not hidden.

Measured run (issue 34: 200 prompts, the demo's 64 new tokens; ~25 min on 2 AVX2 cores):
    TUNEVAL_ALLOCATOR=auto .venv/bin/python bench/generate_throughput.py --data-dir ../shared/data \
        --prompts 200 --batch-size 16 --batch-size 64
llama.cpp beside tuneval (issue 34 item 2; bench/build_llama_cpp.sh builds llama-server):
    TUNEVAL_ALLOCATOR=auto .venv/bin/python bench/generate_throughput.py --data-dir ../shared/data \
        --prompts 200 --baseline '' --no-one-at-a-time --llama-server PATH --parallel 16 --parallel 64
Smoke test:
    .venv/bin/python bench/generate_throughput.py --data-dir ../shared/data --prompts 4 --max-new-tokens 8 \
        --batch-size 2 --out runs/bench-generate-throughput-smoke
Writes OUT/generate_throughput.json and .md; the last line is `speedup: <ratio>x` (over the baseline).
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
        for b in range(0, len(order), a.batch_size[-1]):
            idx = order[b:b + a.batch_size[-1]]
            for row, i in zip(_padded_generate(model, [prompts[i] for i in idx], config, "causal",
                                               tokenizer.pad_token_id, model.device), idx):
                outputs[i] = row
    return outputs, time.perf_counter() - start


def batched(model, tokenizer, prompts, a: argparse.Namespace, batch_size: int, module=None) -> tuple[list[list[int]], float]:
    """tuneval's generation (what `tuneval eval` runs), or `module`'s (an older commit's), as token ids cut after EOS."""
    if module is None:
        from tuneval.evaluate import generation as module

    start = time.perf_counter()
    outputs = module.generate_ids(model, tokenizer, prompts, "causal", batch_size=batch_size,
                                  max_new_tokens=a.max_new_tokens, description=f"batch {batch_size}")
    return outputs, time.perf_counter() - start


def baseline_module(rev: str):
    """`src/tuneval/evaluate/generation.py` as it was at commit `rev`, imported under its own name."""
    import importlib.util
    import subprocess
    import tempfile

    text = subprocess.run(["git", "-C", str(Path(__file__).resolve().parents[1]), "show",
                           f"{rev}:src/tuneval/evaluate/generation.py"], capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / f"generation_{rev}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"generation_{rev}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(path: str, outputs, seconds: float, reference, eos: set[int] | None = None) -> dict[str, Any]:
    """One table row; with `eos`, outputs are compared with their EOS dropped (llama.cpp returns none)."""
    tokens = sum(map(len, outputs))
    cut = (lambda row: row[:-1] if row and row[-1] in eos else row) if eos else (lambda row: row)
    return {"path": path, "tokens": tokens, "seconds": seconds, "tokens_per_second": tokens / seconds,
            "seconds_per_example": seconds / len(outputs),
            "identical": sum(cut(x) == cut(y) for x, y in zip(outputs, reference)) if reference else None}


def llama_cpp_rows(loaded, prompts, a: argparse.Namespace, reference, eos: set[int]) -> list[dict[str, Any]]:
    """llama.cpp's llama-server on the same weights (GGUF at --gguf-outtype), one row per --parallel N."""
    import tempfile

    from gguf_llama_cpp import LlamaServer  # this directory's llama-server wrapper

    from tuneval.serve import gguf

    slot = max(map(len, prompts)) + a.max_new_tokens + 8
    rows = []
    with tempfile.TemporaryDirectory(prefix="gen-llama-") as tmp:
        model_file = gguf.convert_model(Path(loaded.path), Path(tmp) / gguf.file_name("model", a.gguf_outtype),
                                        a.gguf_outtype, gguf.converter_dir())
        for n in a.parallel:
            with LlamaServer(a.llama_server, model_file, a.threads, Path(tmp) / f"server-np{n}.log", parallel=n,
                             context=n * slot) as server:
                server_generate(server.url, prompts[:1], 2, 1)  # warm-up, untimed
                start = time.perf_counter()
                outputs = server_generate(server.url, prompts, a.max_new_tokens, n)
                seconds = time.perf_counter() - start
            rows.append(_row(f"llama.cpp llama-server {a.gguf_outtype.upper()} (-np {n}, {n} requests in flight)",
                             outputs, seconds, reference, eos))
    return rows


def server_generate(url: str, prompts, max_new_tokens: int, in_flight: int) -> list[list[int]]:
    """Greedy completions of token-id prompts from llama-server's /completion, `in_flight` at a time."""
    import json
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    def one(p: list[int]) -> list[int]:
        body = {"prompt": p, "n_predict": max_new_tokens, "temperature": 0.0, "cache_prompt": False,
                "return_tokens": True}
        req = urllib.request.Request(f"{url}/completion", json.dumps(body).encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=3600) as r:
            return json.loads(r.read())["tokens"]

    with ThreadPoolExecutor(in_flight) as pool:
        return list(pool.map(one, prompts))


def run(a: argparse.Namespace) -> dict[str, Any]:
    import transformers

    from tuneval.evaluate.generation import generate_ids
    from tuneval.models import load_model
    from tuneval.runs import machine

    transformers.utils.logging.set_verbosity_error()
    loaded = load_model(a.model, precision=a.precision)
    model, tok = loaded.model.eval(), loaded.tokenizer
    prompts = prompts_for(loaded, a)
    generate_ids(model, tok, prompts[:1], "causal", batch_size=1, max_new_tokens=2)  # warm-up, untimed
    slow, slow_s = one_at_a_time(model, tok, prompts, a.max_new_tokens) if a.one_at_a_time else (None, None)
    rows = [_row("one at a time (model.generate per prompt)", slow, slow_s, slow)] if slow else []
    outputs = {}
    if a.baseline:
        old = baseline_module(a.baseline)
        out, secs = batched(model, tok, prompts, a, a.baseline_batch_size, old)
        rows.append(_row(f"tuneval at {a.baseline} (batch {a.baseline_batch_size})", out, secs, slow))
        outputs["baseline"] = out
    if a.padded:
        out, secs = padded_generate(model, tok, prompts, a)
        rows.append(_row(f"batched model.generate (batch {a.batch_size[-1]}, length-sorted, left-padded)", out, secs, slow))
    for size in a.batch_size:
        out, secs = batched(model, tok, prompts, a, size)
        rows.append(_row(f"tuneval now (batch {size})", out, secs, slow))
        outputs[size] = out
    if not slow:  # the reference is then the last batch's outputs: count the earlier batches against it
        for row, size in zip(rows[-len(a.batch_size):], a.batch_size):
            row["identical"] = sum(x == y for x, y in zip(outputs[size], outputs[a.batch_size[-1]]))
    if a.llama_server:
        from tuneval.evaluate.generation import greedy_config

        eos = greedy_config(model, tok, 1).eos_token_id
        rows += llama_cpp_rows(loaded, prompts, a, slow or outputs[a.batch_size[-1]],
                               set(eos if isinstance(eos, list) else [eos]))
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    result = {"machine": machine(), "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()}, "dtype": dtype, "prompts": len(prompts),
              "prompt_tokens": sum(map(len, prompts)), "rows": rows,
              "differences": _differences(tok, outputs[a.batch_size[-1]], slow) if slow else []}
    if a.baseline:
        best = min(r["seconds"] for r in rows if r["path"].startswith("tuneval now"))
        result["speedup_over_baseline"] = rows[1 if slow else 0]["seconds"] / best
        result["same_as_baseline"] = {str(k): sum(x == y for x, y in zip(v, outputs["baseline"]))
                                      for k, v in outputs.items() if k != "baseline"}
    return result


def _differences(tok, fast, slow) -> list[dict[str, Any]]:
    differ = []
    for i, (x, y) in enumerate(zip(fast, slow)):
        if x != y:
            at = next((k for k, (u, v) in enumerate(zip(x, y)) if u != v), min(len(x), len(y)))
            differ.append({"index": i, "first_difference_at_token": at,
                           "batched": tok.decode(x, skip_special_tokens=True),
                           "one_at_a_time": tok.decode(y, skip_special_tokens=True)})
    return differ


def report(r: dict[str, Any]) -> str:
    a = r["args"]
    ref = "one at a time" if r["args"]["one_at_a_time"] else f"tuneval now (batch {a['batch_size'][-1]})"
    lines = [f"| path | generated tokens | seconds | s per example | generated tok/s | outputs identical to {ref} |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {x['path']} | {x['tokens']} | {x['seconds']:.1f} | {x['seconds_per_example']:.3f} | "
              f"{x['tokens_per_second']:.1f} | "
              f"{'-' if x['identical'] is None else str(x['identical']) + '/' + str(r['prompts'])} |" for x in r["rows"]]
    md = (f"# Evaluation generation: batched vs one at a time\n\nMachine: {r['machine']}. Model `{a['model']}` at "
          f"{r.get('dtype', 'float32')} (precision {a.get('precision', 'fp32')}), every path, "
          f"first {r['prompts']} DialogSum validation prompts ({r['prompt_tokens']} prompt tokens), greedy, "
          f"at most {a['max_new_tokens']} new tokens, KV cache, stop at EOS; tokens counted up to EOS, prefill "
          f"included in the time.\n\n" + "\n".join(lines) + "\n")
    if "speedup_over_baseline" in r:
        md += (f"\nSpeedup of tuneval now (its fastest batch) over tuneval at {a['baseline']}: "
               f"**{r['speedup_over_baseline']:.2f}x**; outputs identical to {a['baseline']}'s: "
               + ", ".join(f"batch {k}: {v}/{r['prompts']}" for k, v in r["same_as_baseline"].items()) + ".\n")
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
    p.add_argument("--batch-size", type=int, action="append", help="tuneval's batch (tuneval eval --batch-size); "
                   "repeat for several rows (default: 64, the demo's)")
    p.add_argument("--baseline", default="3b4dfa1", help="A commit whose generation.py is timed too ('' for none).")
    p.add_argument("--baseline-batch-size", type=int, default=16, help="The baseline's batch (the demo's at 3b4dfa1).")
    p.add_argument("--padded", action="store_true", help="Also time plain batched model.generate.")
    p.add_argument("--no-one-at-a-time", dest="one_at_a_time", action="store_false",
                   help="Skip the reference loop (then no identity counts).")
    p.add_argument("--max-seq-len", type=int, default=1024)
    p.add_argument("--precision", default="auto", help="auto (bf16 where native) | bf16 | fp32: the one model both paths run.")
    p.add_argument("--llama-server", type=Path, help="llama.cpp's llama-server binary: also time llama.cpp.")
    p.add_argument("--parallel", type=int, action="append", help="llama-server -np (slots, requests in flight); "
                   "repeat for several rows (default: 1 and 16)")
    p.add_argument("--gguf-outtype", default="f32", help="The GGUF llama.cpp runs (f32 matches fp32's numbers).")
    p.add_argument("--threads", type=int, default=None, help="llama-server -t/-tb (default: torch's threads).")
    p.add_argument("--out", default="runs/bench-generate-throughput")
    a = p.parse_args()
    from tuneval.io import atomic_write_json, atomic_write_text

    a.batch_size = a.batch_size or [64]
    a.parallel = a.parallel or [1, 16]
    if a.threads is None:
        import torch

        a.threads = torch.get_num_threads()
    result = run(a)
    md = report(result)
    out = Path(a.out)
    atomic_write_json(out / "generate_throughput.json", result)
    atomic_write_text(out / "generate_throughput.md", md)
    print(md)
    print(f"saved: {out / 'generate_throughput.md'}, generate_throughput.json")
    if "speedup_over_baseline" in result:
        print(f"speedup: {result['speedup_over_baseline']:.2f}x")


if __name__ == "__main__":
    main()
