"""Serving benchmark: one base + many adapters, batched, against the naive way.

Starts `tuneval serve` on loopback (a real process, one per scenario, one at a time) and
drives it with concurrent HTTP clients, bounded by a request count and a time limit:

  base only                    --model M, every request names the base
  one merged adapter           `tuneval merge` output served as a plain model
  4 adapters, mixed batches    --adapter a1..a4, requests round-robin over them, batched
  naive: swap per request      same 4 adapters, --max-batch-size 1, one client: each request
                               switches the active adapter and runs alone

Reports requests/s, generated tokens/s, p50/p95 latency and the mean batch size the server
formed. Greedy decoding (temperature 0). Any failed request fails the benchmark.

The adapters are random-initialised LoRA adapters (r=16 on q/v, B ~ N(0, 0.02)), not trained
ones: serving cost does not depend on what the weights learned, and this keeps the
benchmark a few minutes long. Usage:

    python bench/serve.py [--requests 24] [--concurrency 8] [--max-tokens 32] [--time-limit 90]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

PROMPTS = [
    "Summarize: #Person1#: Can we move the meeting to Monday? #Person2#: Sure, at noon works for me.",
    "Write one sentence about why the sky is blue.",
    "Summarize: #Person1#: I'd like to book a table for two tonight. #Person2#: We have seven o'clock free.",
    "List three things to bring to a picnic.",
    "Translate to French: Good morning, how are you?",
    "Summarize: #Person1#: Did you finish the report? #Person2#: Almost, I will send it this afternoon.",
    "Give a short tip for learning to cook.",
    "What is the capital of Italy? Answer in one sentence.",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> str:
    import torch

    from tuneval.demo import machine as cpu_or_gpu

    return f"{cpu_or_gpu()}, {os.cpu_count()} logical cores, torch {torch.__version__}"


def make_adapters(model: str, work: Path, n: int = 4) -> list[Path]:
    import torch
    from peft import LoraConfig, get_peft_model

    from tuneval.models import load_model

    loaded = load_model(model)
    base = loaded.model
    out = []
    for i in range(n):
        torch.manual_seed(100 + i)
        net = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"]))
        with torch.no_grad():
            for name, p in net.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.02)
        path = work / f"a{i + 1}"
        net.save_pretrained(path)
        base = net.unload()  # take the LoRA layers out again; the next adapter starts from the plain base
        out.append(path)
    return out


class Server:
    def __init__(self, args: list[str], log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "tuneval.cli", "serve", "--host", "127.0.0.1",
                                      "--port", str(self.port), "--log-level", "warning", *args],
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited; see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.5)
        raise RuntimeError(f"server not up after {timeout} s; see {self.log.name}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def drive(url: str, models: list[str], requests: int, concurrency: int, max_tokens: int, time_limit: float) -> dict:
    """`concurrency` clients send up to `requests` requests in all, none started after `time_limit` s."""
    lock = threading.Lock()
    state = {"next": 0}
    latencies: list[float] = []
    tokens: list[int] = []
    failures: list[str] = []
    before = httpx.get(f"{url}/stats", timeout=10).json()
    start = time.perf_counter()

    def client() -> None:
        with httpx.Client(timeout=300) as http:
            while True:
                with lock:
                    i = state["next"]
                    if i >= requests or time.perf_counter() - start > time_limit:
                        return
                    state["next"] += 1
                body = {"model": models[i % len(models)], "prompt": PROMPTS[i % len(PROMPTS)],
                        "max_tokens": max_tokens, "temperature": 0}
                t0 = time.perf_counter()
                try:
                    r = http.post(f"{url}/v1/completions", json=body)
                    ok = r.status_code == 200
                    detail = r.text[:200]
                except httpx.HTTPError as e:
                    ok, detail = False, repr(e)
                dt = time.perf_counter() - t0
                with lock:
                    if ok:
                        latencies.append(dt)
                        tokens.append(r.json()["usage"]["completion_tokens"])
                    else:
                        failures.append(detail)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    after = httpx.get(f"{url}/stats", timeout=10).json()
    batches = after["batches"] - before["batches"]
    q = statistics.quantiles(latencies, n=20, method="inclusive") if len(latencies) >= 2 else latencies * 19
    return {
        "requests": len(latencies), "failures": len(failures), "failure_samples": failures[:3],
        "concurrency": concurrency, "seconds": wall,
        "req_per_s": len(latencies) / wall, "tok_per_s": sum(tokens) / wall, "tokens": sum(tokens),
        "p50_ms": 1000 * statistics.median(latencies) if latencies else 0.0,
        "p95_ms": 1000 * q[18] if latencies else 0.0,
        "mean_batch": (after["rows"] - before["rows"]) / batches if batches else 0.0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--requests", type=int, default=24, help="per scenario")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--time-limit", type=float, default=90, help="seconds per scenario; no request starts after it")
    ap.add_argument("--out", type=Path, default=None, help="where results.json/.md go (default: a temp dir)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: no orphaned servers

    from tuneval.serve.merge import merge_run

    work = Path(tempfile.mkdtemp(prefix="tuneval-bench-serve-"))
    out = args.out or work
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    adapters = make_adapters(args.model, work)
    merged = work / "merged"
    merge_run(adapters[0], merged, model=args.model)
    print(f"made 4 random-initialised LoRA adapters and merged a1 in {time.perf_counter() - t0:.0f} s", flush=True)

    specs = [f"--adapter=a{i + 1}={p}" for i, p in enumerate(adapters)]
    names = [f"a{i + 1}" for i in range(len(adapters))]
    scenarios = [
        ("base only", ["--model", args.model], [args.model], args.concurrency),
        ("one merged adapter", ["--model", str(merged)], [str(merged)], args.concurrency),
        ("4 adapters, mixed batches", ["--model", args.model, *specs], names, args.concurrency),
        ("naive: swap adapter per request, one at a time", ["--model", args.model, *specs, "--max-batch-size", "1"],
         names, 1),
    ]
    results = []
    for label, server_args, models, concurrency in scenarios:
        server = Server(server_args, work / f"server-{len(results)}.log")
        try:
            server.wait()
            drive(server.url, models[:1], 1, 1, 4, 60)  # warm-up, not counted
            r = drive(server.url, models, args.requests, concurrency, args.max_tokens, args.time_limit)
        finally:
            server.stop()
        r["scenario"] = label
        results.append(r)
        print(f"{label}: {r['requests']} ok, {r['failures']} failed, {r['req_per_s']:.2f} req/s", flush=True)

    table = [
        f"Machine: {machine()}. Model: {args.model} (float32). Greedy, max_tokens={args.max_tokens}, "
        f"{args.requests} requests per scenario (time limit {args.time_limit:.0f} s), {len(PROMPTS)} prompts in turn. "
        "Adapters: random-initialised LoRA r=16 on q_proj/v_proj (not trained).",
        "",
        "| scenario | clients | requests | failed | req/s | gen tok/s | p50 latency | p95 latency | mean batch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        table.append(f"| {r['scenario']} | {r['concurrency']} | {r['requests']} | {r['failures']} | {r['req_per_s']:.2f} | "
                     f"{r['tok_per_s']:.1f} | {r['p50_ms']:.0f} ms | {r['p95_ms']:.0f} ms | {r['mean_batch']:.1f} |")
    text = "\n".join(table)
    print("\n" + text)
    (out / "results.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps({"machine": machine(), "args": vars(args) | {"out": str(out)},
                                                  "results": results}, indent=2) + "\n")
    print(f"\nresults: {out / 'results.md'}")
    failed = sum(r["failures"] for r in results)
    if failed:
        print(f"{failed} requests failed, e.g. {[r['failure_samples'] for r in results if r['failures']][0]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
