"""`--overwrite` deletes only tuneval runs, and only once model and data have loaded; a failed run leaves nothing."""

import json
import os
from pathlib import Path

import pytest
import yaml
from transformers import TrainerCallback

from tuneval.cli import main
from tuneval.config import recipe_from_dict
from tuneval.runs import RUN_MARKER, RunDir
from tuneval.train.trainer import train


def raw_recipe(model_dir, data_dir, out, **train):
    return {"model": str(model_dir), "task": "dialogsum", "method": "lora", "seed": 7, "output_dir": str(out),
            "data": {"data_dir": str(data_dir), "train_examples": 8, "max_seq_len": 256},
            "train": {"max_steps": 1, "per_device_train_batch_size": 4, "save_steps": 2, **train}}


def write_recipe(path, raw):
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def cli(argv, capsys):
    """Exit code and stderr lines of `tuneval ARGV`."""
    with pytest.raises(SystemExit) as done:
        main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return done.value.code or 0, err


def one_line_error(code, err, *needles):
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0], err
    for needle in needles:
        assert needle in err[0], err[0]


def snapshot(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def old_run(out, raw):
    """A finished run from before the .tuneval-run marker: recognised by its config.yaml alone."""
    (out / "adapter").mkdir(parents=True)
    (out / "config.yaml").write_text(yaml.safe_dump(raw))
    (out / "adapter" / "adapter_model.safetensors").write_bytes(b"the good weights")
    (out / "metrics.json").write_text('{"train_loss": 1.5}')
    (out / "notes-from-the-old-run.txt").write_text("old")
    return snapshot(out)


def test_overwrite_refuses_a_folder_that_is_not_a_run(tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    # The model path is wrong too: the run directory is checked first, before anything slow.
    recipe = write_recipe(tmp_path / "r.yaml", raw_recipe(tmp_path / "no-such-model", tiny_data_dir, out))
    code, err = cli(["train", recipe, "--overwrite"], capsys)
    one_line_error(code, err, str(out), "not a tuneval run", "will not delete it")
    assert (out / "notes.txt").read_text() == "keep me" and sorted(os.listdir(out)) == ["notes.txt"]


@pytest.mark.parametrize("case", ["is a file", "under a file", "not writable"])
def test_unusable_output_dir_is_one_line_before_loading(tiny_data_dir, tmp_path, capsys, monkeypatch, case):
    (tmp_path / "f").write_text("a file")
    out = {"is a file": tmp_path / "f", "under a file": tmp_path / "f" / "run",
           "not writable": tmp_path / "locked" / "sub" / "run"}[case]
    if case == "not writable":
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        if os.geteuid() == 0:  # root writes anywhere: stand in for the user the mode bits stop
            real = os.access
            monkeypatch.setattr(os, "access", lambda p, m, **kw: not m & os.W_OK if Path(p) == locked
                                else real(p, m, **kw))
    recipe = write_recipe(tmp_path / "r.yaml", raw_recipe(tmp_path / "no-such-model", tiny_data_dir, out))
    for flags in ([], ["--overwrite"]):
        code, err = cli(["train", recipe, *flags], capsys)
        one_line_error(code, err, str(out), {"is a file": "is a file, not a directory",
                                             "under a file": f"{tmp_path / 'f'} is a file",
                                             "not writable": "permission denied"}[case])
    assert (tmp_path / "f").read_text() == "a file"


@pytest.mark.parametrize("bad", ["model", "data"])
def test_overwrite_with_bad_input_keeps_the_previous_run(tiny_llama_dir, tiny_data_dir, tmp_path, capsys, bad):
    out = tmp_path / "run"
    good = raw_recipe(tiny_llama_dir, tiny_data_dir, out)
    before = old_run(out, good)
    typo = {**good, "model": str(tmp_path / "tiny-lama")} if bad == "model" else \
        {**good, "data": {**good["data"], "data_dir": str(tmp_path / "dta")}}
    code, err = cli(["train", write_recipe(tmp_path / "r.yaml", typo), "--overwrite"], capsys)
    one_line_error(code, err, "tiny-lama" if bad == "model" else "dta")
    assert snapshot(out) == before


def test_overwrite_replaces_a_run_once_the_inputs_load(tiny_llama_dir, tiny_data_dir, tmp_path):
    out = tmp_path / "run"
    raw = raw_recipe(tiny_llama_dir, tiny_data_dir, out)
    old_run(out, raw)
    assert RunDir(out).is_run() and not RunDir(tmp_path).is_run()
    train(recipe_from_dict(raw, "test"), overwrite=True)
    assert not (out / "notes-from-the-old-run.txt").exists() and (out / RUN_MARKER).is_file()
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 1
    assert (out / "adapter_model.safetensors").is_file() and not (out / "adapter").exists()  # the result at the root


def test_failed_run_leaves_nothing_and_the_same_command_works_after_the_fix(tiny_llama_dir, tiny_data_dir,
                                                                           tmp_path, capsys):
    out = tmp_path / "runs" / "new" / "run"
    recipe = write_recipe(tmp_path / "r.yaml", raw_recipe(tiny_llama_dir, tiny_data_dir, out))
    train_file = tiny_data_dir / "dialogsum" / "train.jsonl"
    good = train_file.read_text()
    train_file.write_text(good + "{not json\n")
    code, err = cli(["train", recipe], capsys)
    one_line_error(code, err, "train.jsonl:33:", "not valid JSON")
    assert not (tmp_path / "runs").exists()
    train_file.write_text(good)
    code, err = cli(["train", recipe], capsys)
    assert code == 0, err
    assert (out / "config.yaml").is_file() and (out / RUN_MARKER).is_file() and (out / "adapter_config.json").is_file()


class Interrupt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        raise KeyboardInterrupt("ctrl-c before the first checkpoint")


def test_run_interrupted_before_its_first_checkpoint_leaves_nothing(tiny_llama_dir, tiny_data_dir, tmp_path):
    r = recipe_from_dict(raw_recipe(tiny_llama_dir, tiny_data_dir, tmp_path / "runs" / "run", max_steps=3), "test")
    with pytest.raises(KeyboardInterrupt):
        train(r, callbacks=[Interrupt()])
    assert not (tmp_path / "runs").exists()
    (tmp_path / "empty").mkdir()  # a directory that was there before stays, empty as it was
    r = recipe_from_dict(raw_recipe(tiny_llama_dir, tiny_data_dir, tmp_path / "empty", max_steps=3), "test")
    with pytest.raises(KeyboardInterrupt):
        train(r, callbacks=[Interrupt()])
    assert list((tmp_path / "empty").iterdir()) == []
