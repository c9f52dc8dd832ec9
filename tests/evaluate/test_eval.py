"""Evaluation writes everything needed to recompute its numbers."""

import json

import pytest

from tuneval.cli import main
from tuneval.metrics.text import summarization_metrics


def test_eval_saves_predictions_and_recomputable_metrics(tiny_model_dir, tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "ev"
    with pytest.raises(SystemExit) as e:
        main(["eval", "--task", "dialogsum", "--model", str(tiny_model_dir), "--data-dir", str(tiny_data_dir), "--limit", "4",
              "--max-new-tokens", "8", "--batch-size", "3", "--out", str(out)])
    assert e.value.code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["num_examples"] == 4 and results["prompt"]["template"] == 4
    assert [ex["id"] for ex in results["examples"]] == ["validation_0", "validation_1", "validation_2", "validation_3"]
    assert all(ex["prompt"] and ex["input"] and ex["references"] for ex in results["examples"])
    assert all(ex["source"].endswith(f"validation.jsonl:{i + 1}") for i, ex in enumerate(results["examples"]))
    metrics, _ = summarization_metrics([ex["prediction"] for ex in results["examples"]],
                                       [ex["references"] for ex in results["examples"]])
    assert metrics == results["metrics"]
    report = (out / "report.md").read_text()
    assert "rougeLsum" in report and results["examples"][0]["references"][0] in report
    assert results["input_field"] == "dialogue" and "**Dialogue**" in report
    assert "bleu=" in capsys.readouterr().out


def test_batched_generation_matches_one_at_a_time(tiny_llama_dir):
    from tuneval.evaluate.generation import generate
    from tuneval.models import load_model

    loaded = load_model(str(tiny_llama_dir))
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16]]
    batched, _ = generate(loaded.model, loaded.tokenizer, prompts, "causal", batch_size=3, max_new_tokens=6)
    single = [generate(loaded.model, loaded.tokenizer, [p], "causal", batch_size=1, max_new_tokens=6)[0][0] for p in prompts]
    assert batched == single
