"""The fine-tune exported as GGUF and run in llama.cpp, against the same fine-tune under transformers.

Steps, each timed (issue 33 items 2-4):
  1. `tuneval export RUN --format gguf --outtype T` for each T (llama.cpp's convert_hf_to_gguf.py)
  2. `tuneval eval --task dialogsum --adapter RUN` in process, fp32 (transformers), greedy, first N
  3. for each GGUF: llama.cpp's `llama-server -m model-T.gguf`, then
     `tuneval eval --task dialogsum --model local-completions --model-args base_url=...,tokenizer=EXPORT`
     (the same prompt token ids as step 2: the export keeps the tokenizer files)
Printed per row: ROUGE-1 with its 95% bootstrap interval, whether it lies inside transformers' interval,
the paired difference to transformers (95% paired bootstrap), how many predictions are identical to
transformers', and the wall time. The same threads for both (--threads).

llama-server comes from llama.cpp as vendored in the same llama-cpp-python sdist as the converter:
bench/build_llama_cpp.sh builds it (cmake; CPU only) and prints its path.

    python bench/gguf_llama_cpp.py --run runs/demo/lora --llama-server PATH [--n 50] [--outtypes f32 bf16 q8_0]
"""

from __future__ import annotations

import argparse
import datetime
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

BASE = "smollm2-135m-instruct"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """llama-server on a GGUF, greedy requests only; stopped on exit."""

    def __init__(self, binary: Path, gguf: Path, threads: int, log: Path, parallel: int = 1, context: int = 4096):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [str(binary), "-m", str(gguf), "--port", str(self.port), "-t", str(threads), "-tb", str(threads),
               "-c", str(context), "-np", str(parallel), "--no-webui", "--alias", gguf.stem]
        self.log = open(log, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    def __enter__(self) -> "LlamaServer":
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"llama-server exited ({self.proc.returncode}); see {self.log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        raise SystemExit("llama-server did not become healthy in 120 s")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def evaluate(label: str, model: str, adapter, n: int, data: str, out: Path, **kw) -> dict:
    from tuneval import simple_evaluate

    start = time.perf_counter()
    res = simple_evaluate(model, adapter, task="dialogsum", limit=n, data_dir=data, out=out, **kw)
    seconds = time.perf_counter() - start
    ci = res["bootstrap"]["rouge1"]
    print(f"{label}: ROUGE-1 {res['metrics']['rouge1']:.4f} [{ci['ci_low']:.4f}, {ci['ci_high']:.4f}] "
          f"in {seconds:.0f} s", flush=True)
    return {"label": label, "examples": res["examples"], "rouge1": res["metrics"]["rouge1"],
            "ci": [ci["ci_low"], ci["ci_high"]], "seconds": round(seconds, 1)}


def compare(row: dict, ref: dict) -> dict:
    from tuneval.metrics.registry import Scorer, paired_bootstrap

    spec = [{"metric": "rouge"}]
    paired = paired_bootstrap(Scorer("generate_until", spec, ref["examples"]),
                              Scorer("generate_until", spec, row["examples"]), "rouge1")
    same = sum(a["prediction"] == b["prediction"] for a, b in zip(row["examples"], ref["examples"]))
    inside = ref["ci"][0] <= row["rouge1"] <= ref["ci"][1]
    return {k: v for k, v in row.items() if k != "examples"} | {
        "identical": same, "n": len(ref["examples"]), "inside_ref_ci": inside,
        "delta": paired["delta"], "delta_ci": [paired["ci_low"], paired["ci_high"]]}


def export(run: Path, out: Path, outtypes: list[str]) -> float:
    from tuneval import api

    start = time.perf_counter()
    info = api.export(run, out, format="gguf", outtypes=outtypes)
    seconds = time.perf_counter() - start
    print(f"export {', '.join(info['gguf'])}: {seconds:.0f} s", flush=True)
    return seconds


def run_all(a: argparse.Namespace, tmp: Path) -> tuple[list[dict], dict]:
    import torch

    torch.set_num_threads(a.threads)
    gguf_dir = tmp / "gguf"
    export_s = export(a.run, gguf_dir, a.outtypes)
    ref = evaluate("transformers fp32", BASE, str(a.run), a.n, a.data_dir, tmp / "hf", precision="fp32")
    rows = [compare(ref, ref)]
    for t in a.outtypes:
        name = f"model-{t.upper()}.gguf"
        with LlamaServer(a.llama_server, gguf_dir / name, a.threads, tmp / f"server-{t}.log") as server:
            args = f"base_url={server.url}/v1,model={Path(name).stem},tokenizer={gguf_dir}"
            got = evaluate(f"llama.cpp {t.upper()}", "local-completions", None, a.n, a.data_dir, tmp / t,
                           model_args=args)
        rows.append(compare(got, ref))
    sizes = {t: (gguf_dir / f"model-{t.upper()}.gguf").stat().st_size for t in a.outtypes}
    return rows, {"export_seconds": round(export_s, 1), "sizes": sizes}


def markdown(rows: list[dict], extra: dict, a: argparse.Namespace, provenance: dict) -> str:
    lines = [f"> **Machine:** {provenance['machine']} · **date:** {provenance['date']} · **commit:** "
             f"{provenance['commit']}", "",
             f"The LoRA run `{a.run.name}` over `{BASE}`, merged and exported with `tuneval export --format gguf` "
             f"({extra['export_seconds']:.0f} s for {', '.join(t.upper() for t in a.outtypes)}), on DialogSum "
             f"validation (first {a.n}, FLAN template, chat template, greedy, 64 new tokens), {a.threads} threads "
             f"each. llama.cpp: llama-server from llama-cpp-python {provenance['llama_cpp_python']}'s vendored "
             "llama.cpp, one request at a time, prompts as the token ids transformers gets.", "",
             "| model | ROUGE-1 [95% CI] | inside transformers' CI | paired delta vs transformers [95% CI] | "
             "identical predictions | file MB | wall s |", "|---|---|---|---|---:|---:|---:|"]
    for r in rows:
        t = r["label"].split()[-1].lower()
        size = f"{extra['sizes'][t] / 1e6:.0f}" if t in extra["sizes"] else "-"
        lines.append(f"| {r['label']} | {r['rouge1']:.4f} [{r['ci'][0]:.4f}, {r['ci'][1]:.4f}] | "
                     f"{'yes' if r['inside_ref_ci'] else 'no'} | {r['delta']:+.4f} [{r['delta_ci'][0]:+.4f}, "
                     f"{r['delta_ci'][1]:+.4f}] | {r['identical']}/{r['n']} | {size} | {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, default=REPO / "runs" / "demo" / "lora")
    p.add_argument("--llama-server", type=Path, required=True)
    p.add_argument("--data-dir", default=os.environ.get("TUNEVAL_DATA_DIR", str(REPO.parent / "shared" / "data")))
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--outtypes", nargs="+", default=["f32", "bf16", "q8_0"])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    a = p.parse_args()
    from tuneval.io import atomic_write_json, atomic_write_text
    from tuneval.runs import machine
    from tuneval.serve.gguf import LLAMA_CPP_PYTHON

    with tempfile.TemporaryDirectory(prefix="gguf-bench-") as tmp:
        rows, extra = run_all(a, Path(tmp))
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    provenance = {"machine": machine(), "date": datetime.date.today().isoformat(),
                  "commit": commit, "llama_cpp_python": LLAMA_CPP_PYTHON}
    md = markdown(rows, extra, a, provenance)
    print(md)
    atomic_write_json(a.out / "gguf_llama_cpp.json", {"provenance": provenance, "rows": rows, **extra,
                                                       "n": a.n, "run": str(a.run)})
    atomic_write_text(a.out / "gguf_llama_cpp.md", md)


if __name__ == "__main__":
    main()
