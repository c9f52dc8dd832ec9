"""Does a large report stay usable? 10 runs x 500 samples, opened in headless Chromium.

Writes a demo-shaped input of one untuned model plus 9 fine-tuned runs (each with a
training log of 200 steps and an evaluation every 20), every model scored on the same 500
examples, then `tuneval report` over it, then opens the page in headless Chromium several
times (a fresh navigation each) and reads the page's own navigation timing:
DOMContentLoaded (the script has parsed the samples and drawn the first page) and load.
The targets (issue 18): opens in under 2 s, file under 10 MB.

    .venv/bin/python bench/report_load.py                    # -> bench/results/report_load.{json,md}
    .venv/bin/python bench/report_load.py --runs 3 --samples 50 --out runs/report-load-smoke   # quick

The texts are synthetic (tests/report/synthetic.py) but sized like DialogSum: a dialogue of about
12 turns, a reference and one output per model per example.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))  # the synthetic results and the browser driver are test tooling (tests/report/)

from tuneval.runs import machine  # noqa: E402
from tuneval.io import atomic_write_json, atomic_write_text  # noqa: E402
from tuneval.report import write_report  # noqa: E402
from tests.report import synthetic  # noqa: E402
from tests.report.browser import Chromium, find_chromium  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="models in the report, the untuned one included")
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5, help="page loads measured (fresh navigation each)")
    ap.add_argument("--bootstrap-iters", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "report-load")
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "report_load")
    args = ap.parse_args()

    load_before = os.getloadavg()[0]
    exe = find_chromium()
    if exe is None:
        sys.exit("no Chromium found: apt-get install chromium")
    methods = tuple(["full", "lora"] + [f"peft{i}" for i in range(3, args.runs)])[: args.runs - 1]
    start = time.perf_counter()
    demo = synthetic.write_demo(args.out / "demo", examples=args.samples, methods=methods, steps=args.steps,
                                eval_every=max(args.steps // 10, 1), turns=12)
    made = time.perf_counter() - start
    start = time.perf_counter()
    page = write_report([demo], args.out / "report.html", iters=args.bootstrap_iters)
    built = time.perf_counter() - start
    size_mb = page.stat().st_size / 1e6

    loads = []
    with Chromium(exe) as b:
        version = b.call("Browser.getVersion", browser=True)["product"]
        for _ in range(args.repeats):
            b.open(page)
            timing = b.evaluate("(() => { const n = performance.getEntriesByType('navigation')[0];"
                                " const p = performance.getEntriesByName('first-contentful-paint')[0];"
                                " return [n.domContentLoadedEventEnd, n.loadEventEnd, p ? p.startTime : null]; })()")
            cards = b.evaluate("document.querySelectorAll('article.sample').length")
            loads.append({"dom_content_loaded_s": timing[0] / 1000, "load_s": timing[1] / 1000,
                          "first_contentful_paint_s": None if timing[2] is None else timing[2] / 1000,
                          "cards_drawn": cards})
        problems = b.problems()
        start = time.perf_counter()  # one filter over all 500 examples, as a person would set it
        b.evaluate("(() => { const i = document.querySelector('[data-role=min]'); i.value = '0.5';"
                   " i.dispatchEvent(new Event('input')); })()")
        filter_s = time.perf_counter() - start

    median = statistics.median(x["load_s"] for x in loads)
    result = {
        "machine": machine(), "chromium": version, "python": platform.python_version(),
        "input": {"models": args.runs, "samples": args.samples, "train_steps": args.steps, "runs_with_curves": args.runs - 1},
        "bootstrap_iters": args.bootstrap_iters, "make_inputs_s": round(made, 2), "write_report_s": round(built, 2),
        "file_mb": round(size_mb, 2), "loads": loads, "median_load_s": round(median, 3),
        "max_load_s": round(max(x["load_s"] for x in loads), 3), "filter_all_samples_s": round(filter_s, 3),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)], "problems": problems,
        "targets": {"load_s": 2.0, "file_mb": 10.0},
        "met": median < 2.0 and size_mb < 10.0,
    }
    atomic_write_json(args.results.with_suffix(".json"), result)
    fcp = lambda x: "-" if x["first_contentful_paint_s"] is None else f"{x['first_contentful_paint_s']:.3f}"  # noqa: E731
    rows = "\n".join(f"| {i + 1} | {x['dom_content_loaded_s']:.3f} | {x['load_s']:.3f} | {fcp(x)} | {x['cards_drawn']} |"
                     for i, x in enumerate(loads))
    md = (f"# Report load time: {args.runs} models x {args.samples} samples\n\n"
          f"Machine: {result['machine']}; {version} headless; Python {result['python']}. Input: a demo-shaped "
          f"directory, {args.runs} models each scored on the same {args.samples} synthetic DialogSum-sized examples, "
          f"{args.runs - 1} training logs of {args.steps} steps. `tuneval report` with {args.bootstrap_iters} bootstrap "
          f"resamples took {built:.1f} s to write it.\n\n"
          f"**File: {size_mb:.2f} MB** (target < 10 MB). **Median load: {median:.3f} s** over {args.repeats} fresh "
          f"navigations (target < 2 s), from navigation start to the end of the load event, read from the page's "
          f"own `performance` navigation entry; the first page of samples is drawn before DOMContentLoaded ends.\n\n"
          f"| load | DOMContentLoaded s | load s | first contentful paint s | sample cards drawn |\n"
          f"|---|---|---|---|---|\n{rows}\n\n"
          f"Filtering all {args.samples} examples by ROUGE (one input event, round trip included): "
          f"{filter_s:.3f} s. Console errors, exceptions, failed or outside requests: "
          f"{sum(len(v) for v in problems.values())}. Load average (1 min) before/after: "
          f"{result['load_average'][0]}/{result['load_average'][1]} on {os.cpu_count()} cores (above the core count: "
          "other jobs shared the CPU).\n")
    atomic_write_text(args.results.with_suffix(".md"), md)
    print(md)


if __name__ == "__main__":
    main()
