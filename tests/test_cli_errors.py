"""Every bad input: one clear line naming what and where, exit 2, no traceback, nothing half-written."""

import json

import pytest

from tuneval.cli import main


def run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def assert_clean_error(code, err, *needles):
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def bad_data(tiny_data_dir, text):
    (tiny_data_dir / "dialogsum" / "validation.jsonl").write_text(text)
    return str(tiny_data_dir)


def test_unknown_model(capsys, tiny_data_dir):
    code, _, err = run(["eval", "--task", "dialogsum", "--model", "./no/such/model", "--data-dir", str(tiny_data_dir)], capsys)
    assert_clean_error(code, err, "model './no/such/model'", "no such model directory")


def test_unknown_hub_model_offline(capsys, tiny_data_dir):
    code, _, err = run(["params", "nobody-has-this/model-xyz"], capsys)
    assert_clean_error(code, err, "unknown model 'nobody-has-this/model-xyz'", "smollm2-135m-instruct")


def test_unknown_task(capsys, tiny_llama_dir):
    code, _, err = run(["eval", "--model", str(tiny_llama_dir), "--task", "dialogsumm"], capsys)
    assert_clean_error(code, err, "unknown task 'dialogsumm'", "dialogsum")


def test_missing_data_dir(capsys, tiny_llama_dir, tmp_path):
    code, _, err = run(["eval", "--task", "dialogsum", "--model", str(tiny_llama_dir), "--data-dir", str(tmp_path / "nope")], capsys)
    assert_clean_error(code, err, f"data directory '{tmp_path / 'nope'}'", "does not exist")


def test_malformed_jsonl_line_keeps_earlier_results(capsys, tiny_llama_dir, tiny_data_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text('{"earlier": true}')
    good = json.dumps({"fname": "a", "dialogue": "x", "summary": "y"})
    data = bad_data(tiny_data_dir, good + "\n" + good + "\n{not json\n")
    code, _, err = run(["eval", "--task", "dialogsum", "--model", str(tiny_llama_dir), "--data-dir", data, "--out", str(out)], capsys)
    assert_clean_error(code, err, "validation.jsonl:3:", "not valid JSON")
    assert json.loads((out / "results.json").read_text()) == {"earlier": True}
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]


def test_missing_field(capsys, tiny_llama_dir, tiny_data_dir):
    data = bad_data(tiny_data_dir, json.dumps({"fname": "a", "dialogue": "x", "summary": "y"}) + "\n"
                    + json.dumps({"fname": "b", "dialogue": "x"}) + "\n")
    code, _, err = run(["eval", "--task", "dialogsum", "--model", str(tiny_llama_dir), "--data-dir", data], capsys)
    assert_clean_error(code, err, "validation.jsonl:2:", "missing field 'summary'")


def test_empty_split(capsys, tiny_llama_dir, tiny_data_dir):
    data = bad_data(tiny_data_dir, "\n")
    code, _, err = run(["eval", "--task", "dialogsum", "--model", str(tiny_llama_dir), "--data-dir", data], capsys)
    assert_clean_error(code, err, "validation.jsonl", "split 'validation'", "has no examples")


def test_unknown_recipe_key_writes_nothing(capsys, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"output_dir: {tmp_path / 'run'}\nlora:\n  rank: 8\n")
    code, _, err = run(["train", str(recipe)], capsys)
    assert_clean_error(code, err, f"{recipe}: unknown key 'lora.rank'")
    assert not (tmp_path / "run").exists()


def test_adapter_given_as_model(capsys, tmp_path):
    (tmp_path / "ad").mkdir()
    (tmp_path / "ad" / "adapter_config.json").write_text("{}")
    code, _, err = run(["params", str(tmp_path / "ad")], capsys)
    assert_clean_error(code, err, "is a PEFT adapter, not a model", "--adapter")


def test_params_prints_peft_format(capsys, tiny_llama_dir):
    code, out, _ = run(["params", str(tiny_llama_dir), "--method", "lora", "--set", "r=4"], capsys)
    assert code == 0
    # tiny llama: 2 layers x (q: 4*32 + 32*4, v: 4*32 + 16*4) = 2 * 448
    assert "trainable params: 896 || all params:" in out and "|| trainable%:" in out


# -- values a user can get wrong: one line, exit 2, before anything slow ------------------------

def recipe_file(tmp_path, tiny_llama_dir, tiny_data_dir, **sections):
    import yaml

    raw = {"model": str(tiny_llama_dir), "output_dir": str(tmp_path / "run"),
           "data": {"data_dir": str(tiny_data_dir), "train_examples": 4, "max_seq_len": 192, **sections.pop("data", {})},
           "train": {"max_steps": 1, "per_device_train_batch_size": 2, **sections.pop("train", {})}, **sections}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("sections,needle", [
    ({"train": {"max_steps": -5, "num_train_epochs": -1}}, "'train.max_steps' must be -1"),
    ({"data": {"train_examples": -5}}, "'data.train_examples' must be at least 1"),
    ({"data": {"train_examples": 0}}, "'data.train_examples' must be at least 1"),
    ({"data": {"max_seq_len": -1}}, "'data.max_seq_len' must be at least 8"),
    ({"train": {"per_device_train_batch_size": -2}}, "'train.per_device_train_batch_size' must be at least 1"),
    ({"train": {"learning_rate": -1.0}}, "'train.learning_rate' must be > 0, got -1.0"),
])
def test_nonsense_recipe_values_fail_before_training(capsys, tmp_path, tiny_llama_dir, tiny_data_dir, sections, needle):
    recipe = recipe_file(tmp_path, tiny_llama_dir, tiny_data_dir, **sections)
    code, _, err = run(["train", str(recipe)], capsys)
    assert_clean_error(code, err, f"{recipe}: {needle}")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "caf\u00e9".encode("latin-1")])
def test_binary_or_non_utf8_training_data(capsys, tmp_path, tiny_llama_dir, tiny_data_dir, data):
    train_file = tiny_data_dir / "dialogsum" / "train.jsonl"
    train_file.write_bytes(json.dumps({"fname": "a", "dialogue": "x", "summary": "y"}).encode() + b"\n" + data + b"\n")
    recipe = recipe_file(tmp_path, tiny_llama_dir, tiny_data_dir)
    code, _, err = run(["train", str(recipe)], capsys)
    assert_clean_error(code, err, f"{train_file}:2: not UTF-8 text")


def test_non_utf8_eval_data(capsys, tiny_llama_dir, tiny_data_dir):
    good = json.dumps({"fname": "a", "dialogue": "x", "summary": "y"}).encode()
    (tiny_data_dir / "dialogsum" / "validation.jsonl").write_bytes(good + b"\n" + good + b"\n\xff\xfe\x00binary\n")
    code, _, err = run(["eval", "--task", "dialogsum", "--model", str(tiny_llama_dir), "--data-dir", str(tiny_data_dir)], capsys)
    assert_clean_error(code, err, "validation.jsonl:3: not UTF-8 text")


def test_json_error_reads_once(capsys, tiny_llama_dir, tiny_data_dir):
    """json says 'Unterminated string starting at'; the message adds the column once, not 'at at column'."""
    data = bad_data(tiny_data_dir, '{"fname": "a", "dialogue": "x\n')
    code, _, err = run(["eval", "--task", "dialogsum", "--model", str(tiny_llama_dir), "--data-dir", data], capsys)
    assert_clean_error(code, err, "validation.jsonl:1: not valid JSON (Unterminated string starting at column 28)")


@pytest.mark.parametrize("argv,needle", [
    (["--task", "dialogsum", "--limit", "0"], "--limit must be at least 1, got 0"),
    (["--task", "dialogsum", "--limit", "-3"], "--limit must be at least 1, got -3"),
    (["--task", "dialogsum", "--batch-size", "-1"], "--batch-size must be at least 1, got -1"),
    (["--task", "dialogsum", "--max-new-tokens", "0"], "--max-new-tokens must be at least 1, got 0"),
    (["--task", "dialogsum", "--template", "-1"], "--template must be at least 0, got -1"),
    (["--tasks", "copa", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--tasks", "copa", "--split", "test"], "--split applies to --task"),
    (["--tasks", "copa", "--template", "2"], "--template: task 'copa'"),
    (["--suite", "glue", "--max-new-tokens", "8"], "--max-new-tokens applies to --task"),
    (["--task", "dialogsum", "--num-fewshot", "2"], "--num-fewshot applies to --tasks/--suite"),
    ([], "nothing to evaluate: give --task NAME, --tasks A,B, --suite NAME or --data FILE"),
    (["--limit", "3", "--adapter", "run"], "nothing to evaluate"),  # no default task is guessed
])
def test_eval_options_checked_before_the_model_loads(capsys, tmp_path, argv, needle):
    """The model does not exist: an option error first proves nothing slow ran before it."""
    code, _, err = run(["eval", "--model", str(tmp_path / "no-model"), *argv], capsys)
    assert_clean_error(code, err, needle)


@pytest.mark.parametrize("mode", [["--task", "dialogsum"], ["--tasks", "copa"]])
def test_eval_out_that_is_a_file_fails_before_the_model_loads(capsys, tmp_path, mode):
    out = tmp_path / "out.json"
    out.write_text("keep me")
    code, _, err = run(["eval", "--model", str(tmp_path / "no-model"), "--out", str(out), *mode], capsys)
    assert_clean_error(code, err, f"--out {out}: is a file, not a directory")
    assert out.read_text() == "keep me"
    code, _, err = run(["eval", "--model", str(tmp_path / "no-model"), "--out", str(out / "sub"), *mode], capsys)
    assert_clean_error(code, err, f"--out {out / 'sub'}: {out} is a file, not a directory")


@pytest.mark.parametrize("argv,needle", [
    (["--train-examples", "0"], "--train-examples must be at least 1, got 0"),
    (["--train-examples", "-5"], "--train-examples must be at least 1, got -5"),
    (["--eval-examples", "0"], "--eval-examples must be at least 1, got 0"),
])
def test_demo_budgets_checked(capsys, tmp_path, argv, needle):
    code, _, err = run(["demo", "--model", str(tmp_path / "no-model"), *argv], capsys)
    assert_clean_error(code, err, needle)


def test_sigint_prints_interrupted_and_exits_130(tmp_path, tiny_llama_dir, tiny_data_dir):
    """A real Ctrl-C in the middle of generation: typer turns KeyboardInterrupt into a silent exit 130."""
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    script = textwrap.dedent("""
        import faulthandler, signal, sys, time
        import tuneval.evaluate.harness as run

        faulthandler.register(signal.SIGUSR1)  # on a hang the test asks for every thread's stack

        def generate_forever(*args, **kwargs):  # a generation long enough to interrupt
            print("generating", flush=True)
            while True:
                time.sleep(0.05)

        run.generate = generate_forever
        from tuneval.cli import main
        main(sys.argv[1:])
    """)
    argv = ["eval", "--task", "dialogsum", "--model", str(tiny_llama_dir), "--data-dir", str(tiny_data_dir), "--out", str(tmp_path / "out")]
    proc = subprocess.Popen([sys.executable, "-c", script, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "generating", proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # say where it hangs, not only that it does
            proc.send_signal(signal.SIGUSR1)
            time.sleep(2)
            proc.kill()
            raise AssertionError("no exit 60 s after SIGINT; the child's threads:\n" + proc.communicate()[1]) from None
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1:] == ["interrupted"], err
    assert not (tmp_path / "out").exists()
