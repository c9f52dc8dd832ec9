"""lm-evaluation-harness 0.4.13 itself, run in the test on the tiny Llama: its CLI (`lm-eval run ...
--output_path DIR --log_samples`, in this process) over two tiny local tasks, and tuneval scoring
the same two tasks as tuneval task files, for the lm-eval format tests to compare and read.

Built once per session (`outputs`): lm-eval on the base tiny Llama and on a differently seeded
one, tuneval on the base one (written in lm-eval's layout and as a tuneval suite).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROWS = [{"idx": 10 + i, "premise": f"the meeting is at noon {w}", "choice1": "sure", "choice2": "hello report",
         "label": i % 2, "answer": "fine thanks"} for i, w in enumerate("abcdef")]
# One task file per tool: the same prompt, choices, target and metrics (tuneval's keys are lm-eval's).
MC = {"output_type": "multiple_choice", "doc_to_text": "{{premise}}?", "doc_to_choice": "{{[choice1, choice2]}}",
      "doc_to_target": "label", "metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}]}
GEN = {"output_type": "generate_until", "doc_to_text": "{{premise}}:", "doc_to_target": "answer",
       "generation_kwargs": {"until": ["\n"], "max_gen_toks": 5}, "metric_list": [{"metric": "exact_match"}]}
TASKS = {"tiny_mc": MC, "tiny_gen": GEN}


@dataclass
class Outputs:
    root: Path
    data: Path
    tasks_dir: Path  # tuneval's task files
    base: Path  # lm-eval's --output_path on the base model
    other: Path  # ... on the differently seeded model
    model: Path
    other_model: Path


def _write_tasks(root: Path) -> tuple[Path, Path]:
    (root / "data").mkdir(parents=True)
    (root / "data" / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    lm, tv = root / "lm_tasks", root / "tv_tasks"
    lm.mkdir()
    tv.mkdir()
    for name, spec in TASKS.items():
        gen = {"generation_kwargs": {**spec["generation_kwargs"], "do_sample": False}} if "generation_kwargs" in spec else {}
        (lm / f"{name}.yaml").write_text(yaml.safe_dump({
            "task": name, "dataset_path": "json", "test_split": "test",
            "dataset_kwargs": {"data_files": {"test": str(root / "data" / "rows.jsonl")}}, **spec, **gen}))
        (tv / f"{name}.yaml").write_text(yaml.safe_dump({
            "task": name, "data_files": {"test": "rows.jsonl"}, "test_split": "test", "chat_template": False, **spec}))
    return lm, tv


def _seeded_model(src: Path, dest: Path, seed: int) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    from tests.conftest import tiny_llama_config

    tok = AutoTokenizer.from_pretrained(src)
    torch.manual_seed(seed)
    LlamaForCausalLM(tiny_llama_config(tok)).save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


def run_lm_eval_cli(model: Path, tasks_dir: Path, out: Path) -> Path:
    """lm-eval's own command line, in this process: what `lm-eval run ...` writes."""
    from lm_eval.__main__ import cli_evaluate

    argv = sys.argv
    sys.argv = ["lm-eval", "run", "--model", "hf", "--model_args", f"pretrained={model},dtype=float32",
                "--tasks", *TASKS, "--include_path", str(tasks_dir), "--output_path", str(out), "--log_samples",
                "--batch_size", "4", "--device", "cpu"]
    try:
        cli_evaluate()
    finally:
        sys.argv = argv
    return out


_CACHE: dict[str, Outputs] = {}


def outputs(tmp_path_factory, tiny_llama_dir: Path) -> Outputs:
    """Both lm-eval runs, once per session."""
    pytest.importorskip("lm_eval", reason="lm-eval is in the bench extra")
    if "o" not in _CACHE:
        root = tmp_path_factory.mktemp("lm-eval-runs")
        lm_tasks, tv_tasks = _write_tasks(root)
        other = _seeded_model(tiny_llama_dir, root / "other-model", seed=1)
        _CACHE["o"] = Outputs(root, root / "data", tv_tasks, run_lm_eval_cli(tiny_llama_dir, lm_tasks, root / "lm-base"),
                              run_lm_eval_cli(other, lm_tasks, root / "lm-other"), tiny_llama_dir, other)
    return _CACHE["o"]
