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

`--load-test` runs the abuse check instead: one server (API key on, from the environment),
`--clients` concurrent clients (default 50) sending `--requests` normal completions in all,
one oversized chunked request (`--oversize-mb`, no Content-Length) in the middle of it, and
a /health poll every 0.1 s throughout. It prints the failed normal requests (target 0), the
worst /health latency (target < 1 s) and the oversized request's status (target 413).

The adapters are random-initialised LoRA adapters (r=16 on q/v, B ~ N(0, 0.02)), not trained
ones: serving cost does not depend on what the weights learned, and this keeps the
benchmark a few minutes long. Usage:

    python bench/serve.py [--requests 24] [--concurrency 8] [--max-tokens 32] [--time-limit 90]
    python bench/serve.py --load-test [--clients 50] [--requests 100] [--max-tokens 16] [--oversize-mb 20]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import select
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

    from tuneval.runs import machine as cpu_or_gpu

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
    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"  # loopback only
        self.log = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "tuneval.cli", "serve", "--host", "127.0.0.1",
                                      "--port", str(self.port), "--log-level", "warning", *args],
                                     stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})

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


def drive(url: str, models: list[str], requests: int, concurrency: int, max_tokens: int, time_limit: float,
          headers: dict[str, str] | None = None) -> dict:
    """`concurrency` clients send up to `requests` requests in all, none started after `time_limit` s."""
    lock = threading.Lock()
    state = {"next": 0}
    latencies: list[float] = []
    tokens: list[int] = []
    failures: list[str] = []
    before = httpx.get(f"{url}/stats", timeout=10, headers=headers).json()
    start = time.perf_counter()

    def client() -> None:
        with httpx.Client(timeout=300, headers=headers) as http:
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
    after = httpx.get(f"{url}/stats", timeout=10, headers=headers).json()
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


def post_chunked(port: int, path: str, total: int, headers: dict[str, str], model: str) -> tuple[int | None, int]:
    """POST ~`total` bytes of JSON, chunked (no Content-Length), over a raw loopback socket.

    Stops sending as soon as the server answers; returns (status or None, bytes sent). A raw
    socket because HTTP clients send the whole body before they read the answer.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: application/json",
            "Transfer-Encoding: chunked", *(f"{k}: {v}" for k, v in headers.items())]
    filler, sent = b"hello " * 10_000, 0
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            opening = b'{"model": %s, "prompt": "' % json.dumps(model).encode()  # a served model: tokenised if read
            for part in [opening] + [filler] * (total // len(filler)) + [b'"}']:
                if select.select([sock], [], [], 0)[0]:
                    break  # the server answered already
                sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
                sent += len(part)
            else:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed: read the answer
        reply = b""
        try:
            while b"\r\n" not in reply:
                more = sock.recv(65536)
                if not more:
                    break
                reply += more
        except (ConnectionResetError, socket.timeout):
            pass
        return (int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else None), sent
    finally:
        sock.close()


def load_test(args, work: Path, out: Path) -> int:
    """50 clients + one oversized chunked body + a /health poll; see the module docstring."""
    key = secrets.token_urlsafe(24)  # through the environment: not visible in the process list
    auth = {"Authorization": f"Bearer {key}"}
    server = Server(["--model", args.model], work / "server-load.log", env={"TUNEVAL_API_KEY": key})
    health: list[float] = []  # seconds per poll; a failed poll (30 s timeout) counts its time and in `dead`
    dead: list[str] = []
    oversize: dict = {}
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    status = http.get(f"{server.url}/health").status_code
                    if status != 200:
                        dead.append(str(status))
                except httpx.HTTPError as e:
                    dead.append(repr(e))
                health.append(time.perf_counter() - t0)
                stop.wait(0.1)

    def oversized() -> None:
        time.sleep(2)  # in the middle of the load
        t0 = time.perf_counter()
        status, sent = post_chunked(server.port, "/v1/completions", int(args.oversize_mb * 1e6), auth, args.model)
        oversize.update(status=status, sent_mb=sent / 1e6, seconds=time.perf_counter() - t0)

    try:
        server.wait()
        drive(server.url, [args.model], 2, 2, 4, 60, auth)  # warm-up, not counted
        side = [threading.Thread(target=poll), threading.Thread(target=oversized)]
        for t in side:
            t.start()
        r = drive(server.url, [args.model], args.requests, args.clients, args.max_tokens, args.time_limit, auth)
        side[1].join()
        stop.set()
        side[0].join()
        stats = httpx.get(f"{server.url}/stats", timeout=10, headers=auth).json()
    finally:
        stop.set()
        server.stop()
    worst = max(health) if health else 0.0
    result = {
        "machine": machine(), "model": args.model, "clients": args.clients, "requests": r["requests"],
        "failed": r["failures"], "failure_samples": r["failure_samples"], "seconds": r["seconds"],
        "req_per_s": r["req_per_s"], "p50_ms": r["p50_ms"], "p95_ms": r["p95_ms"], "mean_batch": r["mean_batch"],
        "health_polls": len(health), "health_failed": len(dead), "health_max_ms": 1000 * worst,
        "health_p50_ms": 1000 * statistics.median(health) if health else None,
        "oversize_mb": args.oversize_mb, "oversize_status": oversize.get("status"),
        "oversize_sent_mb": oversize.get("sent_mb"), "oversize_seconds": oversize.get("seconds"),
        "rejected_503": stats.get("rejected"), "max_tokens": args.max_tokens, "time_limit": args.time_limit,
    }
    lines = [
        f"Machine: {result['machine']}. Model: {args.model} (float32), greedy, max_tokens={args.max_tokens}; "
        "server on 127.0.0.1 with an API key, default --max-queue/--request-timeout.",
        "",
        f"- normal requests: {r['requests']} ok, **{r['failures']} failed** (target 0), {args.clients} concurrent "
        f"clients, {r['req_per_s']:.2f} req/s, p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, "
        f"mean batch {r['mean_batch']:.1f}",
        f"- /health during the run: **max {1000 * worst:.0f} ms** (target < 1000 ms), p50 "
        f"{result['health_p50_ms']:.0f} ms over {len(health)} polls, {len(dead)} polls failed (30 s client timeout)",
        f"- oversized request ({args.oversize_mb:g} MB, chunked, no Content-Length): **status "
        f"{oversize.get('status')}** after {1000 * oversize.get('seconds', 0):.0f} ms, "
        f"{oversize.get('sent_mb', 0):.1f} MB sent before the answer",
    ]
    text = "\n".join(lines)
    print("\n" + text)
    (out / "load_test.md").write_text(text + "\n")
    (out / "load_test.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nresults: {out / 'load_test.md'}")
    good = r["failures"] == 0 and not dead and worst < 1.0 and oversize.get("status") == 413
    return 0 if good else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--requests", type=int, default=None, help="per scenario (default 24; --load-test: 100 in all)")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=None, help="default 32 (--load-test: 16)")
    ap.add_argument("--time-limit", type=float, default=None,
                    help="seconds per scenario; no request starts after it (default 90; --load-test: 240)")
    ap.add_argument("--out", type=Path, default=None, help="where results.json/.md go (default: a temp dir)")
    ap.add_argument("--load-test", action="store_true", help="the abuse check instead of the scenarios")
    ap.add_argument("--clients", type=int, default=50, help="--load-test: concurrent clients")
    ap.add_argument("--oversize-mb", type=float, default=20, help="--load-test: the oversized chunked body")
    args = ap.parse_args()
    load = args.load_test
    args.requests = args.requests or (100 if load else 24)
    args.max_tokens = args.max_tokens or (16 if load else 32)
    args.time_limit = args.time_limit or (240 if load else 90)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: no orphaned servers

    from tuneval.serve.merge import merge_run

    work = Path(tempfile.mkdtemp(prefix="tuneval-bench-serve-"))
    out = args.out or work
    out.mkdir(parents=True, exist_ok=True)
    if load:
        return load_test(args, work, out)
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
