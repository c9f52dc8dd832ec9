"""methods/loading.py: a trained result back over its base, loaded the way it was trained."""


def test_a_runs_model_args_fill_in_what_the_flags_leave_at_default(tmp_path):
    """eval / merge / export of a run load its base as training did (its recipe's model_args);
    a flag given on the command line still wins."""
    from tuneval.methods.loading import run_model_args
    from tuneval.model_args import ModelArgs
    from tuneval.runs import RunDir

    run = RunDir(tmp_path / "run")
    run.adapter_dir.mkdir(parents=True)
    run.config_file.write_text("model: m\nmodel_args: {dtype: bfloat16, attn_implementation: eager}\n")
    for where in (run.path, run.adapter_dir):
        assert run_model_args(where, None) == ModelArgs(dtype="bfloat16", attn_implementation="eager")
        assert run_model_args(where, ModelArgs()) == ModelArgs(dtype="bfloat16", attn_implementation="eager")
        assert run_model_args(where, ModelArgs(dtype="float32")) == ModelArgs(dtype="float32", attn_implementation="eager")
    plain = tmp_path / "peft-adapter"
    plain.mkdir()
    assert run_model_args(plain, ModelArgs(revision="v1")) == ModelArgs(revision="v1")
    assert run_model_args(None, None) is None
