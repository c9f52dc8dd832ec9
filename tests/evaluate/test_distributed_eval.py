"""Evaluation under torchrun: 2 CPU processes (gloo) write what 1 process writes, predictions included.

Each rank generates or scores a strided share of the examples and the per-example results are
gathered back in order (tuneval/evaluate/distributed.py). Greedy outputs do not depend on which
examples share a batch, so the predictions are identical; log-likelihoods are float32 sums over
different batches and paddings, so they agree to 1e-5 and every pick and metric is the same.
5 examples over 2 ranks: the shares are uneven (3 and 2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tests.evaluate.test_bench_cli import bench_data_dir, run  # noqa: F401  (bench_data_dir is a fixture)

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="compares CPU gloo processes with one CPU process")

# fp32 by name: the subprocesses do not see conftest's "no native bf16" patch
COMMON = ["--precision", "fp32", "--batch-size", "2"]


def torchrun(argv: list[str]) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "tuneval.cli", *argv]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def read(path):
    return json.loads(path.read_text())


def close(a, b, tol=1e-6) -> bool:
    """Equal, numbers within tol, through nested dicts and lists."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, (int, float)):
        return abs(a - b) <= tol
    return a == b


def same_examples(one: list[dict], two: list[dict]) -> None:
    assert len(one) == len(two)
    for a, b in zip(one, two):
        assert close(a, b, 1e-5), (a, b)  # every prediction, pick and text equal; float scores within 1e-5


def test_generation_eval_over_two_processes_matches_one(tiny_llama_dir, tiny_data_dir, tmp_path, capsys):
    argv = ["eval", "--task", "dialogsum", "--model", str(tiny_llama_dir), "--data-dir", str(tiny_data_dir), "--limit", "5",
            "--max-new-tokens", "8", *COMMON]
    code, _, err = run([*argv, "--out", str(tmp_path / "one")], capsys)
    assert code == 0, err
    stdout = torchrun([*argv, "--out", str(tmp_path / "two")])
    assert stdout.count("bleu=") == 1  # rank 0 alone prints
    one, two = read(tmp_path / "one" / "results.json"), read(tmp_path / "two" / "results.json")
    same_examples(one["examples"], two["examples"])
    assert [ex["id"] for ex in two["examples"]] == [f"validation_{i}" for i in range(5)]
    assert two["metrics"] == one["metrics"] and two["num_examples"] == 5
    assert two["generation"]["new_tokens"] == one["generation"]["new_tokens"]
    assert (one["generation"]["processes"], two["generation"]["processes"]) == (1, 2)
    assert (tmp_path / "two" / "report.md").read_text() == (tmp_path / "one" / "report.md").read_text()


def test_benchmarks_and_forgetting_over_two_processes_match_one(tiny_llama_dir, bench_data_dir, tmp_path,  # noqa: F811
                                                                 capsys):
    """`tuneval forgetting` runs `eval --tasks`' path twice (base, then base+adapter): multiple-choice
    (copa, sst2) and a generate task through the harness (dialogsum), then the paired comparison."""
    from peft import LoraConfig, get_peft_model

    from tuneval.models import load_model

    loaded = load_model(str(tiny_llama_dir), precision="fp32")
    torch.manual_seed(0)
    net = get_peft_model(loaded.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    net.save_pretrained(tmp_path / "adapter")
    argv = ["forgetting", "--model", str(tiny_llama_dir), "--adapter", str(tmp_path / "adapter"),
            "--tasks", "copa,sst2,dialogsum", "--limit", "5", "--data-dir", str(bench_data_dir),
            "--bootstrap-iters", "50", *COMMON]
    code, _, err = run([*argv, "--out", str(tmp_path / "one")], capsys)
    assert code == 0, err
    torchrun([*argv, "--out", str(tmp_path / "two")])
    for side in ("before", "after"):
        for task in ("copa", "sst2", "dialogsum"):
            one = read(tmp_path / "one" / side / task / "results.json")
            two = read(tmp_path / "two" / side / task / "results.json")
            same_examples(one["examples"], two["examples"])
            assert close(one["metrics"], two["metrics"]), (side, task)
            assert close(one["bootstrap"], two["bootstrap"]), (side, task)
            assert two["num_examples"] == 5 and two["stats"]["processes"] == 2  # really shared out
        s1, s2 = read(tmp_path / "one" / side / "summary.json"), read(tmp_path / "two" / side / "summary.json")
        assert close({t: r["value"] for t, r in s1["tasks"].items()}, {t: r["value"] for t, r in s2["tasks"].items()})
    f1, f2 = read(tmp_path / "one" / "forgetting.json"), read(tmp_path / "two" / "forgetting.json")
    assert f2["tasks"].keys() == f1["tasks"].keys() == {"copa", "sst2", "dialogsum"}
    for task, r in f1["tasks"].items():
        assert close(r, f2["tasks"][task]), task
