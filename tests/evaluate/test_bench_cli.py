"""`tuneval eval --tasks/--suite` and `tuneval forgetting` end to end on a tiny model and tiny data."""

import json
import random
from pathlib import Path

import numpy as np
import pytest

from tuneval.cli import main
from tuneval.evaluate.loglik import loglikelihoods
from tuneval.models import load_model

WORDS = "hello how are you fine thanks the meeting is at noon can we move it to monday".split()


@pytest.fixture
def bench_data_dir(tiny_data_dir) -> Path:
    """tiny_data_dir (DialogSum) plus COPA and SST-2 laid out as in ../shared/data."""
    rng = random.Random(3)
    sent = lambda n: " ".join(rng.choice(WORDS) for _ in range(n))  # noqa: E731
    copa = tiny_data_dir / "superglue" / "copa"
    copa.mkdir(parents=True)
    with open(copa / "val.jsonl", "w") as f:
        for i in range(6):
            f.write(json.dumps({"premise": sent(6).capitalize() + ".", "choice1": sent(4).capitalize() + ".",
                                "choice2": sent(3).capitalize() + ".", "question": ["cause", "effect"][i % 2],
                                "label": i % 2, "idx": i}) + "\n")
    sst = tiny_data_dir / "glue" / "sst2"
    sst.mkdir(parents=True)
    (sst / "dev.tsv").write_text("sentence\tlabel\n" + "".join(f"{sent(5)} \t{i % 2}\n" for i in range(5)))
    (sst / "train.txt").write_text("".join(f"{i % 2} train {sent(4)}\n" for i in range(8)))
    return tiny_data_dir


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_eval_tasks_writes_results_and_summary(tiny_llama_dir, bench_data_dir, tmp_path, capsys):
    out = tmp_path / "ev"
    code, stdout, err = run(["eval", "--model", str(tiny_llama_dir), "--tasks", "copa,sst2", "--limit", "4",
                             "--data-dir", str(bench_data_dir), "--out", str(out), "--bootstrap-iters", "50"], capsys)
    assert code == 0, err
    copa = json.loads((out / "copa" / "results.json").read_text())
    assert copa["num_examples"] == 4 and copa["split_size"] == 6 and copa["num_fewshot"] == 0
    assert [ex["id"] for ex in copa["examples"]] == [0, 1, 2, 3]  # limit = the first N, every time
    assert copa["examples"][0]["source"].endswith("copa/val.jsonl:1")
    data = [json.loads(line) for line in (bench_data_dir / "superglue" / "copa" / "val.jsonl").read_text().splitlines()]
    for ex, doc in zip(copa["examples"], data):
        assert ex["gold"] == doc["label"] and ex["pred"] == int(np.argmax(ex["loglik"]))
        assert ex["prompt"].startswith(doc["premise"][:-1])
        assert ex["choices"][0] == " " + doc["choice1"][0].lower() + doc["choice1"][1:]
    assert copa["metrics"]["acc"] == pytest.approx(np.mean([ex["acc"] for ex in copa["examples"]]))
    assert set(copa["metrics"]) == {"acc", "acc_norm", "ece", "balanced_acc"}
    assert copa["bootstrap"]["acc"]["ci_low"] <= copa["metrics"]["acc"] <= copa["bootstrap"]["acc"]["ci_high"]
    # the saved log-likelihoods are what the scorer gives for the saved prompt and choice
    loaded = load_model(str(tiny_llama_dir))
    ex = copa["examples"][1]
    (ll, _), = loglikelihoods(loaded.model, loaded.tokenizer, "causal", [(ex["prompt"], " " + ex["choices"][1])])[0]
    assert ll == pytest.approx(ex["loglik"][1], abs=1e-4)
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["tasks"]) == ["copa", "sst2"] and summary["tasks"]["sst2"]["n"] == 4
    assert "| copa | 4 | 0 | acc |" in (out / "summary.md").read_text()
    assert "copa" in stdout and "acc=" in stdout


def test_fewshot_examples_come_from_the_training_split_with_a_fixed_seed(tiny_llama_dir, bench_data_dir, tmp_path, capsys):
    prompts = []
    for name in ("a", "b"):
        code, _, err = run(["eval", "--model", str(tiny_llama_dir), "--tasks", "sst2", "--num-fewshot", "2",
                            "--limit", str(3 if name == "a" else 5), "--data-dir", str(bench_data_dir),
                            "--out", str(tmp_path / name), "--bootstrap-iters", "10"], capsys)
        assert code == 0, err
        prompts.append([ex["prompt"] for ex in json.loads((tmp_path / name / "sst2" / "results.json").read_text())["examples"]])
    assert prompts[0] == prompts[1][:3]  # same shots for the same example, whatever the limit
    first = prompts[0][0]
    assert first.count("train ") == 2 and first.count("\nAnswer: ") == 2 and first.endswith("\nAnswer:")


def test_legacy_eval_task_still_works(tiny_llama_dir, tiny_data_dir, tmp_path, capsys):
    code, stdout, err = run(["eval", "--task", "dialogsum", "--model", str(tiny_llama_dir), "--data-dir", str(tiny_data_dir), "--limit", "2",
                             "--max-new-tokens", "4", "--out", str(tmp_path / "legacy")], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "legacy" / "results.json").read_text())["num_examples"] == 2 and "bleu=" in stdout


def test_generate_task_through_the_harness(tiny_llama_dir, bench_data_dir, tmp_path, capsys):
    code, _, err = run(["eval", "--model", str(tiny_llama_dir), "--tasks", "dialogsum", "--limit", "2",
                        "--data-dir", str(bench_data_dir), "--out", str(tmp_path / "g"), "--bootstrap-iters", "10"], capsys)
    assert code == 0, err
    r = json.loads((tmp_path / "g" / "dialogsum" / "results.json").read_text())
    assert {"rouge1", "rougeLsum", "bleu"} <= set(r["metrics"]) and r["signatures"]["bleu"].startswith("nrefs:1")
    assert r["examples"][0]["prompt"].startswith("<|im_start|>user\nSummarize the following conversation.")
    assert r["chat_template"] is True and r["prompt"]["family"] == "template"


def test_task_and_tasks_are_one_computation(tiny_llama_dir, bench_data_dir, tmp_path, capsys):
    """`--task X` and `--tasks X` run the one harness: for a task whose evaluation prompt is its FLAN
    template (dialogsum), the same examples, prompts, predictions and numbers in the same shape."""
    common = ["eval", "--model", str(tiny_llama_dir), "--limit", "3", "--data-dir", str(bench_data_dir),
              "--bootstrap-iters", "20"]
    assert run([*common, "--task", "dialogsum", "--out", str(tmp_path / "one")], capsys)[0] == 0
    assert run([*common, "--tasks", "dialogsum", "--out", str(tmp_path / "many")], capsys)[0] == 0
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    many = json.loads((tmp_path / "many" / "dialogsum" / "results.json").read_text())
    volatile = {"created", "stats", "generation", "adapter", "suite", "limit"}
    assert set(one) == set(many)
    assert {k: v for k, v in one.items() if k not in volatile} == {k: v for k, v in many.items() if k not in volatile}
    assert one["metrics"] == many["metrics"] and one["bootstrap"] == many["bootstrap"]
    # A FLAN phrasing on a multiple-choice task: --tasks --template N generates with it, like --task.
    assert run([*common, "--tasks", "sst2", "--template", "2", "--out", str(tmp_path / "t2")], capsys)[0] == 0
    assert run([*common, "--task", "sst2", "--template", "2", "--out", str(tmp_path / "t1")], capsys)[0] == 0
    a = json.loads((tmp_path / "t2" / "sst2" / "results.json").read_text())
    b = json.loads((tmp_path / "t1" / "results.json").read_text())
    assert a["prompt"] == b["prompt"] and a["prompt"]["template"] == 2 and a["metrics"] == b["metrics"]
    assert a["output_type"] == "generate_until" and {"rouge1", "bleu", "exact_match"} <= set(a["metrics"])


@pytest.mark.parametrize("argv, needles", [
    (["--tasks", "copaa"], ["unknown task 'copaa'", "copa"]),
    (["--suite", "nope"], ["unknown suite 'nope'", "forgetting"]),
    (["--tasks", "copa", "--limit", "0"], ["--limit must be at least 1"]),
])
def test_benchmark_errors_are_one_line(tiny_llama_dir, bench_data_dir, capsys, argv, needles):
    code, _, err = run(["eval", "--model", str(tiny_llama_dir), "--data-dir", str(bench_data_dir), *argv], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    for needle in needles:
        assert needle in err


def test_missing_local_file_names_the_path(tiny_llama_dir, tiny_data_dir, capsys):
    code, _, err = run(["eval", "--model", str(tiny_llama_dir), "--data-dir", str(tiny_data_dir), "--tasks", "rte"], capsys)
    assert code == 2 and f"{tiny_data_dir}/superglue/rte/val.jsonl: data file not found" in err


def test_forgetting_with_an_adapter(tiny_llama_dir, bench_data_dir, tmp_path, capsys):
    import torch
    from peft import LoraConfig, get_peft_model

    loaded = load_model(str(tiny_llama_dir))
    torch.manual_seed(0)
    net = get_peft_model(loaded.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    net.save_pretrained(tmp_path / "adapter")
    out = tmp_path / "forget"
    code, stdout, err = run(["forgetting", "--model", str(tiny_llama_dir), "--adapter", str(tmp_path / "adapter"),
                             "--tasks", "copa,sst2", "--limit", "4", "--data-dir", str(bench_data_dir), "--out", str(out),
                             "--bootstrap-iters", "50", "--dtype", "bfloat16", "--attn-implementation", "eager"], capsys)
    assert code == 0, err
    result = json.loads((out / "forgetting.json").read_text())
    assert set(result["tasks"]) == {"copa", "sst2"}
    for name, r in result["tasks"].items():
        before = json.loads((out / "before" / name / "results.json").read_text())
        after = json.loads((out / "after" / name / "results.json").read_text())
        assert r["before"] == before["metrics"]["acc"] and r["after"] == after["metrics"]["acc"]
        assert r["verdict"] in {"improved", "unchanged", "forgot"}
        assert (before["dtype"], after["attn_implementation"]) == ("bfloat16", "eager")  # model_args, recorded
    lls = [json.loads((out / s / "copa" / "results.json").read_text())["examples"][0]["loglik"] for s in ("before", "after")]
    assert lls[0] != lls[1]  # the adapter really changed the model
    assert (out / "forgetting.png").stat().st_size > 1000 and "| copa |" in (out / "forgetting.md").read_text()
    code, _, err = run(["forgetting", "--before", str(out / "before"), "--after", str(out / "after"),
                        "--out", str(tmp_path / "again"), "--bootstrap-iters", "50"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "again" / "forgetting.json").read_text())["tasks"] == result["tasks"]


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_benchmark_and_forgetting_results_record_precision(tiny_llama_dir, bench_data_dir, tmp_path, capsys, precision):
    """Log-likelihood scoring runs at the policy's dtype (bf16 emulated where not native) and says so."""
    code, _, err = run(["eval", "--model", str(tiny_llama_dir), "--tasks", "copa", "--limit", "4", "--precision",
                        precision, "--data-dir", str(bench_data_dir), "--out", str(tmp_path / "ev"),
                        "--bootstrap-iters", "20"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "ev" / "copa" / "results.json").read_text())["precision"] == precision
    assert json.loads((tmp_path / "ev" / "summary.json").read_text())["precision"] == precision
