"""`tuneval sweep`: every grid point is an ordinary run; one table (Markdown, CSV) and a plot."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from tuneval.cli import main
from tuneval.jobs.sweep import grid_points, parse_grid


def write_recipe(path, model_dir, data_dir):
    path.write_text(yaml.safe_dump({
        "model": str(model_dir), "task": "dialogsum", "method": "lora", "seed": 3,
        "data": {"data_dir": str(data_dir), "train_examples": 8, "max_seq_len": 192},
        "train": {"max_steps": 2, "per_device_train_batch_size": 4, "learning_rate": 1e-2, "save_steps": 50},
        "eval": {"limit": 3, "batch_size": 3, "max_new_tokens": 4},
    }))
    return path


def test_grid_parsing():
    grid = parse_grid(["lora.r=1,2,4", "train.learning_rate=1e-3,2e-3"])
    assert grid == [("lora.r", [1, 2, 4]), ("train.learning_rate", [1e-3, 2e-3])]
    points = grid_points(grid)
    assert len(points) == 6 and points[0] == {"lora.r": 1, "train.learning_rate": 1e-3}


def test_sweep_writes_table_csv_plot_and_run_dirs(tiny_llama_dir, tiny_data_dir, tmp_path, capsys):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_llama_dir, tiny_data_dir)
    out = tmp_path / "sw"
    with pytest.raises(SystemExit) as e:
        main(["sweep", str(recipe), "--grid", "lora.r=1,2", "--out", str(out)])
    assert e.value.code == 0
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert [int(r["lora.r"]) for r in rows] == [1, 2]
    # tiny Llama, LoRA on q_proj (32->32) and v_proj (32->16) in 2 layers: r x 112 x 2
    assert [int(r["trainable_params"]) for r in rows] == [224, 448]
    for r in rows:
        assert float(r["val_loss"]) > 0 and 0 <= float(r["rouge1"]) <= 1 and float(r["bleu"]) >= 0
    for name in ("lora.r=1", "lora.r=2"):
        run = out / name
        assert yaml.safe_load((run / "config.yaml").read_text())["lora"]["r"] == int(name[-1])
        assert (run / "adapter_model.safetensors").is_file() and (run / "metrics.json").is_file()
        assert (run / "eval" / "results.json").is_file()
    md = (out / "sweep.md").read_text()
    assert "| lora.r | trainable params |" in md and "| 2 | 448 |" in md
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(json.loads((out / "sweep.json").read_text())["rows"]) == 2
    # a second run reuses finished points instead of training them again
    stamp = (out / "lora.r=1" / "score.json").stat().st_mtime_ns
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["sweep", str(recipe), "--grid", "lora.r=1,2", "--out", str(out)])
    assert "reusing" in capsys.readouterr().out
    assert (out / "lora.r=1" / "score.json").stat().st_mtime_ns == stamp


def test_bad_grid_key_fails_before_training(tiny_llama_dir, tiny_data_dir, tmp_path, capsys):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_llama_dir, tiny_data_dir)
    with pytest.raises(SystemExit) as e:
        main(["sweep", str(recipe), "--grid", "lora.rank=1,2", "--out", str(tmp_path / "sw")])
    assert e.value.code == 2
    assert "unknown key 'lora.rank'" in capsys.readouterr().err
    assert not (tmp_path / "sw").exists()
