"""BLEU's bootstrap interval two ways: recomputing corpus BLEU on every resample (what the harness
did before issue 17) against summing per-sentence n-gram counts taken once (what it does now, as
sacrebleu's own significance tests do). Prints both timings and whether the intervals are equal.

    .venv/bin/python bench/bleu_bootstrap.py --data-dir ../shared/data

Predictions: 200 DialogSum validation summaries scored against 200 others (real sentence
lengths and vocabulary; the score itself is meaningless).
"""

import argparse
import json
import time
from pathlib import Path

from tuneval.metrics.registry import Metric, Scorer, bootstrap_ci
from tuneval.metrics.text import corpus_bleu
from tuneval.runs import machine


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--iters", type=int, default=1000)
    a = ap.parse_args()
    lines = (Path(a.data_dir) / "dialogsum" / "validation.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines[: 2 * a.examples]]
    recs = [{"prediction": rows[i + a.examples]["summary"], "references": [rows[i]["summary"]]} for i in range(a.examples)]

    start = time.perf_counter()
    new = bootstrap_ci(Scorer("generate_until", [{"metric": "bleu"}], recs), a.iters, 1234)
    summed = time.perf_counter() - start

    old = Scorer("generate_until", [{"metric": "bleu"}], recs)  # the same scorer, BLEU recomputed per resample
    old.reg = {**old.reg, "bleu": Metric("bleu", ("bleu",), corpus=lambda r, _: {"bleu": corpus_bleu(
        [x["prediction"] for x in r], [x["references"] for x in r])["bleu"]})}
    start = time.perf_counter()
    before = bootstrap_ci(old, a.iters, 1234)
    recomputed = time.perf_counter() - start
    print(f"machine: {machine()}")
    print(f"{a.examples} DialogSum summaries, {a.iters} resamples: corpus BLEU per resample {recomputed:.2f} s, "
          f"summed counts {summed:.3f} s ({recomputed / summed:.0f}x); identical interval: {before == new} "
          f"[{new['bleu']['ci_low']:.4f}, {new['bleu']['ci_high']:.4f}]")


if __name__ == "__main__":
    main()
