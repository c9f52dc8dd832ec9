"""The `tuneval` command line. Commands are thin: each parses, then calls the library."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from tuneval.cli_options import (_Interrupted, app, attn_implementation_option, check_out_dir, console, dtype_option,
                                 err, join_launcher, model_args_from, model_args_overrides, precision_option,
                                 quiet_libraries, revision_option, trust_remote_code_option)
from tuneval import allocator
from tuneval.errors import TunevalError


def _check_eval_options(bench: bool, *, task, split, template, max_new_tokens, num_fewshot, tasks_dir, limit,
                        batch_size, data=None, format_=None) -> None:
    """`eval` has two modes; an option of the other mode would be silently ignored, so it is refused.

    --tasks/--suite score each task on its own evaluation split with its default prompt family;
    --task generates with a FLAN template on a split of choice (both run evaluate/harness.run_task)."""
    from tuneval.config import EvalConfig
    from tuneval.typed import check_option

    generation_only = {"--task": task, "--split": split, "--max-new-tokens": max_new_tokens}
    bench_only = {"--num-fewshot": num_fewshot}
    for flag, value in (generation_only if bench else bench_only).items():
        if value is not None:
            raise TunevalError(f"{flag} applies to --task (generation scored with ROUGE/BLEU), not to --tasks/--suite, "
                               "whose tasks set their own split and lengths" if bench else
                               f"{flag} applies to --tasks/--suite (benchmark tasks), not to --task")
    if data is not None and (bench or task or template is not None):
        raise TunevalError("--data is scored on its own: not with --task, --tasks, --suite or --template")
    if format_ is not None and data is None:
        raise TunevalError("--format describes --data")
    for flag, value, key in (("--limit", limit, "limit"), ("--batch-size", batch_size, "batch_size"),
                             ("--max-new-tokens", max_new_tokens, "max_new_tokens"), ("--template", template, "template")):
        check_option(flag, value, EvalConfig, key)


@app.command()
def train(
    recipe: Optional[Path] = typer.Argument(None, help="Recipe YAML (a run's config.yaml works too); optional with --data."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe key: section.key=value."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Local data directory (else $TUNEVAL_DATA_DIR, else the hub)."),
    data: Optional[str] = typer.Option(None, "--data", help="Your own data: a jsonl/json/csv/tsv/parquet file or a directory (= data.path)."),
    format_: Optional[str] = typer.Option(None, "--format", help="Its format: alpaca, messages, sharegpt, prompt_completion, text, columns (default: recognised)."),
    validation_share: Optional[float] = typer.Option(None, "--validation-share", help="Share held out for validation (default 0.1)."),
    tasks_dir: Optional[str] = typer.Option(None, "--tasks-dir", help="Your task YAML files (a directory or one file) = data.tasks_dir."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory."),
    precision: Optional[str] = precision_option(None),
    dtype: Optional[str] = dtype_option(),
    revision: Optional[str] = revision_option(),
    trust_remote_code: bool = trust_remote_code_option(),
    attn_implementation: Optional[str] = attn_implementation_option(),
):
    """Fine-tune a model as a recipe says; write a run directory (model flags override model_args.*)."""
    from tuneval.config import load_recipe
    from tuneval.train.trainer import train as run_train

    quiet_libraries()
    if recipe is None and data is None:
        raise TunevalError("give a recipe, or your data with --data PATH [--format F]")
    flags = {"data.data_dir": data_dir, "data.path": data, "data.format": format_,
             "data.validation_share": validation_share, "data.tasks_dir": tasks_dir, "precision": precision}
    overrides = list(set_) + [f"{k}={v}" for k, v in flags.items() if v is not None] + model_args_overrides(
        dtype, revision, trust_remote_code, attn_implementation)
    r = load_recipe(recipe, overrides)
    metrics, _, _ = run_train(r, resume=resume, overwrite=overwrite)
    console.print(
        f"[bold]{r.method}[/bold] done: loss {metrics['train_loss']:.4f}, {metrics['train_tokens_per_second']:.0f} tok/s, "
        f"{metrics['train_seconds']:.0f} s, peak {metrics['peak_memory_mb']:.0f} MB, checkpoint "
        f"{metrics['checkpoint_mb']:.1f} MB -> {metrics['checkpoint_dir']}"
    )


@app.command("eval")
def eval_(
    model: str = typer.Option("smollm2-135m-instruct", "--model", help="Embedded name, local directory or hub id."),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="PEFT adapter directory (or a run directory)."),
    task: Optional[str] = typer.Option(None, "--task", help="A task generated with its FLAN template and scored with ROUGE/BLEU (default dialogsum)."),
    split: Optional[str] = typer.Option(None, "--split", help="Split of --task (default validation)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="First N examples of the split (default 50 with --task; "
                                        "with --tasks/--suite: the suite's per-task limit, else all)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where results.json and report.md go."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir"),
    template: Optional[int] = typer.Option(None, "--template", help="FLAN template index to generate with (--task default: "
                                           "the task's eval template; --tasks default: each task's own prompt)."),
    batch_size: int = typer.Option(16, "--batch-size"),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", help="Generation length for --task (default 64)."),
    chat_template: bool = typer.Option(True, "--chat-template/--no-chat-template"),
    tasks: Optional[str] = typer.Option(None, "--tasks", help="Benchmark tasks or groups, comma-separated (e.g. copa,sst2,mmlu)."),
    suite: Optional[str] = typer.Option(None, "--suite", help="A benchmark suite: glue, superglue, mmlu, forgetting."),
    num_fewshot: Optional[int] = typer.Option(None, "--num-fewshot", help="Few-shot examples per prompt (default: the task's)."),
    tasks_dir: Optional[Path] = typer.Option(None, "--tasks-dir", help="Your task/suite YAML files (a directory or one file)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Your own data file or directory, every row scored against its reference."),
    format_: Optional[str] = typer.Option(None, "--format", help="Its format (alpaca, messages, sharegpt, prompt_completion, columns; default: recognised)."),
    seed: int = typer.Option(1234, "--seed", help="Few-shot sampling and bootstrap seed."),
    bootstrap_iters: int = typer.Option(1000, "--bootstrap-iters", help="Bootstrap resamples for the 95% intervals."),
    merge: bool = typer.Option(False, "--merge/--no-merge", help="Fold a LoRA-family adapter into the base (in fp32) "
                               "before scoring: generation at the base's speed; recorded as `merged`."),
    precision: str = precision_option(),
    dtype: Optional[str] = dtype_option(),
    revision: Optional[str] = revision_option(),
    trust_remote_code: bool = trust_remote_code_option(),
    attn_implementation: Optional[str] = attn_implementation_option(),
):
    """Score a model on benchmark tasks (--tasks/--suite), or generate on one --task and score ROUGE/BLEU."""
    margs = model_args_from(dtype, revision, trust_remote_code, attn_implementation)
    _check_eval_options(bool(tasks or suite), task=task, split=split, template=template, max_new_tokens=max_new_tokens,
                        num_fewshot=num_fewshot, tasks_dir=tasks_dir, limit=limit, batch_size=batch_size,
                        data=data, format_=format_)
    main_process = join_launcher()
    if tasks or suite:
        quiet_libraries()
        _benchmarks(model, adapter, tasks=tasks, suite=suite, limit=limit, num_fewshot=num_fewshot, tasks_dir=tasks_dir,
                    data_dir=data_dir, out=out, batch_size=batch_size, seed=seed, bootstrap_iters=bootstrap_iters,
                    chat_template=chat_template, precision=precision, model_args=margs, template=template, merge=merge)
        return
    from tuneval.api import default_eval_out, evaluate  # defaults: dialogsum, validation, limit 50, 64 new tokens
    from tuneval.metrics.text import HEADLINE, fmt

    out = out or default_eval_out(model, adapter, task=task or (Path(data).stem if data else None))
    check_out_dir(out)  # results are written after the whole generation: a bad --out must fail now
    quiet_libraries()
    results = evaluate(model, adapter, task=task, split=split, limit=limit, out=out, data_dir=data_dir, data=data,
                       format=format_, template=template, batch_size=batch_size, max_new_tokens=max_new_tokens,
                       tasks_dir=tasks_dir,
                       chat_template=chat_template, seed=seed, bootstrap_iters=bootstrap_iters, precision=precision,
                       model_args=margs, merge=merge)
    if not main_process:
        return
    m = results["metrics"]
    console.print(" ".join(f"{k}={fmt(k, m[k])}" for k in HEADLINE))
    console.print(f"[dim]{results['signatures'].get('bleu', '')}[/dim]")
    console.print(f"results: {out / 'results.json'}  report: {out / 'report.md'}")


def _method_settings(method: str, set_: list[str]):
    """(method spec, its settings) from `--set key=value` options (`params`, `memory`); `lora.r=8` means `r=8`."""
    from tuneval.config import apply_overrides
    from tuneval.methods import get_method
    from tuneval.typed import build_dataclass

    spec = get_method(method)
    raw = apply_overrides({}, [s if "." not in s.split("=")[0] else s.split(".", 1)[1] for s in set_])
    return spec, build_dataclass(spec.settings, raw, "--set", f"{method}.")


@app.command()
def params(
    model: str = typer.Argument(..., help="Embedded name, local directory or hub id."),
    method: str = typer.Option("lora", "--method"),
    set_: list[str] = typer.Option([], "--set", help="Method option: key=value (e.g. r=8)."),
):
    """Trainable vs total parameters for a method, without training."""
    from tuneval.methods import count_parameters, format_parameters
    from tuneval.models import load_model

    quiet_libraries()
    spec, settings = _method_settings(method, set_)
    loaded = load_model(model, device="cpu")  # counting needs no GPU
    net = spec.apply(loaded.model, settings, loaded.arch)
    console.print(format_parameters(*count_parameters(net)))


@app.command()
def demo(
    minutes: float = typer.Option(20.0, "--minutes", help="Time budget: the demo times this machine, then plans how "
                                  "many training and evaluation examples fit (the counts given below are kept)."),
    train_examples: Optional[int] = typer.Option(None, "--train-examples", help="Training examples per method, the "
                                                 "same for full and LoRA (default: planned from --minutes)."),
    eval_examples: Optional[int] = typer.Option(None, "--eval-examples", help="Validation examples scored per model, "
                                                "rows 0..N-1 (default: planned, 200 where the budget allows)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir"),
    out: Path = typer.Option(Path("runs/demo"), "--out"),
    model: str = typer.Option("smollm2-135m-instruct", "--model"),
    precision: str = precision_option(),
):
    """The main job: base vs full vs LoRA on DialogSum, one comparison table, in --minutes."""
    from tuneval.config import DataConfig, EvalConfig
    from tuneval.jobs.budget import check_minutes
    from tuneval.typed import check_option

    # checked here, before jobs.demo's imports (torch, transformers: seconds to minutes): the demo loads and
    # times the model before it builds the first recipe
    check_minutes(minutes)
    check_option("--train-examples", train_examples, DataConfig, "train_examples")
    check_option("--eval-examples", eval_examples, EvalConfig, "limit")
    check_out_dir(out)
    from tuneval.jobs.demo import run_demo
    quiet_libraries()
    main_process = join_launcher()
    run_demo(model=model, data_dir=data_dir, out=out, precision=precision, minutes=minutes,
             train_examples=train_examples, eval_examples=eval_examples, console=console)
    if main_process:
        _html_report([out], out / "report.html", title=f"tuneval demo: {model}")


@app.command()
def memory(
    model: str = typer.Argument(..., help="Embedded name, local directory or hub id (only its config is read)."),
    method: str = typer.Option("lora", "--method"),
    set_: list[str] = typer.Option([], "--set", help="Method option: key=value (e.g. r=8)."),
    batch_size: int = typer.Option(8, "--batch-size"),
    seq_len: int = typer.Option(256, "--seq-len", help="Tokens per example (the encoder input for seq2seq)."),
    target_len: Optional[int] = typer.Option(None, "--target-len", help="Seq2seq target tokens (default min(seq-len, 128))."),
    gradient_checkpointing: bool = typer.Option(False, "--gradient-checkpointing"),
    bf16: bool = typer.Option(False, "--bf16", help="Activations under bf16 autocast."),
    as_json: bool = typer.Option(False, "--json", help="Print the estimate as JSON."),
):
    """Estimate training memory (weights, gradients, optimizer, activations) for a model and method."""
    import json

    from tuneval.methods.memory import estimate_memory, format_bytes

    quiet_libraries()
    _, settings = _method_settings(method, set_)
    e = estimate_memory(model, method, settings, batch_size=batch_size, seq_len=seq_len, target_len=target_len,
                        gradient_checkpointing=gradient_checkpointing, bf16=bf16)
    if as_json:
        console.print_json(json.dumps(e.to_dict()))
        return
    from rich.table import Table

    table = Table(title=f"training memory: {model}, {method}", title_justify="left")
    for col in ("component", "size", "what"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for name, nbytes, note in e.components():
        table.add_row(name, format_bytes(nbytes), note)
    table.add_row("[bold]total[/bold]", f"[bold]{format_bytes(e.tensors)}[/bold]",
                  f"{e.bytes_per_parameter:.1f} bytes/param before activations")
    table.add_row("+ runtime", format_bytes(e.runtime), "Python/torch/libraries (this process's RSS; CPU only)")
    table.add_row("total on CPU", format_bytes(e.with_runtime), "compare with a run's peak_memory_mb (process RSS)")
    console.print(table)
    for note in e.notes:
        console.print(f"[yellow]note:[/yellow] {note}")


@app.command()
def inspect(
    run: Path = typer.Argument(..., help="A prompt_tuning run directory."),
    model: Optional[str] = typer.Option(None, "--model", help="Base model (default: the run's)."),
    top_k: int = typer.Option(5, "--top-k", help="Nearest vocabulary tokens per virtual token."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """Per virtual token of a soft prompt, its nearest vocabulary tokens by cosine similarity."""
    import json

    from tuneval.methods.soft_prompts import nearest_tokens

    quiet_libraries()
    info = nearest_tokens(run, model=model, top_k=top_k)
    if as_json:
        console.print_json(json.dumps(info))
        return
    from rich.table import Table

    table = Table(title=f"soft prompt of {info['run']} ({info['num_virtual_tokens']} virtual tokens; "
                        f"mean vocabulary embedding norm {info['vocab_mean_norm']:.3f})", title_justify="left")
    table.add_column("#", justify="right")
    if any(t["part"] for t in info["tokens"]):
        table.add_column("part")
    if info["init_text"]:
        table.add_column("init")
    table.add_column("norm", justify="right")
    table.add_column(f"nearest tokens (cosine), top {top_k}")
    for t in info["tokens"]:
        cells = [str(t["index"])] + ([t["part"]] if t["part"] else []) + ([t["init_token"]] if info["init_text"] else [])
        near = "  ".join(f"{n['token']} ({n['cosine']:.2f})" for n in t["nearest"])
        table.add_row(*cells, f"{t['norm']:.3f}", near)
    console.print(table)


@app.command()
def sweep(
    recipe: Path = typer.Argument(..., help="Recipe YAML to sweep."),
    grid: list[str] = typer.Option(..., "--grid", help="key=v1,v2,... (repeat for a product grid), e.g. lora.r=1,2,4,8."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe key for every point."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir"),
    out: Optional[Path] = typer.Option(None, "--out", help="Sweep directory (default runs/sweep-RECIPE)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Retrain points that finished before."),
    precision: Optional[str] = precision_option(None),
):
    """Train every point of a grid; write one table (Markdown, CSV) and a plot of scores against the first key."""
    from tuneval.jobs.sweep import run_sweep

    quiet_libraries()
    overrides = list(set_) + ([f"data.data_dir={data_dir}"] if data_dir else []) + (
        [f"precision={precision}"] if precision else [])
    result = run_sweep(recipe, grid, overrides, out=out, overwrite=overwrite, console=console)
    console.print(result["markdown"])
    console.print(f"saved: {result['out'] / 'sweep.md'}, sweep.csv, sweep.json, sweep.png")


def _print_task(r: dict) -> None:
    from tuneval.metrics.text import fmt

    m = r["primary_metric"]
    ci = r["bootstrap"].get(m, {})
    others = " ".join(f"{k}={fmt(k, v)}" for k, v in r["metrics"].items() if k != m and not k.endswith(("_precision", "_recall")))
    console.print(f"[bold]{r['task']}[/bold] ({r['num_examples']} ex, {r['num_fewshot']}-shot, {r['stats']['seconds']:.0f} s): "
                  f"{m}={fmt(m, r['metrics'][m])} [{fmt(m, ci.get('ci_low'))}, {fmt(m, ci.get('ci_high'))}] [dim]{others}[/dim]",
                  highlight=False)


def _benchmarks(model, adapter, *, tasks, suite, out, **kw) -> None:
    from rich.markdown import Markdown

    from tuneval.api import default_eval_out, evaluate
    from tuneval.evaluate.summary import summary_markdown

    out = out or default_eval_out(model, adapter, tasks=tasks, suite=suite)
    check_out_dir(out)
    main_process = join_launcher()
    summary = evaluate(model, adapter, tasks=tasks, suite=suite, out=out,
                       on_task=_print_task if main_process else None, **kw)
    if not main_process:
        return
    console.print(Markdown(summary_markdown(summary)))
    console.print(f"saved: {out / 'summary.md'}, {out / 'summary.json'}, {out}/<task>/results.json")


@app.command()
def forgetting(
    model: str = typer.Option("smollm2-135m-instruct", "--model", help="Base model: embedded name, directory or hub id."),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="The fine-tuned adapter (or run directory) to check."),
    suite: str = typer.Option("forgetting", "--suite", help="Suite to score before and after."),
    tasks: Optional[str] = typer.Option(None, "--tasks", help="Tasks instead of a suite, comma-separated."),
    limit: Optional[int] = typer.Option(None, "--limit", help="First N examples per task (default: the suite's)."),
    num_fewshot: Optional[int] = typer.Option(None, "--num-fewshot"),
    before: Optional[Path] = typer.Option(None, "--before", help="Compare two earlier `tuneval eval` output directories..."),
    after: Optional[Path] = typer.Option(None, "--after", help="...instead of running the model."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where forgetting.{md,json,png} (and before/, after/) go."),
    tasks_dir: Optional[Path] = typer.Option(None, "--tasks-dir"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir"),
    batch_size: int = typer.Option(16, "--batch-size"),
    seed: int = typer.Option(1234, "--seed"),
    bootstrap_iters: int = typer.Option(1000, "--bootstrap-iters"),
    chat_template: bool = typer.Option(True, "--chat-template/--no-chat-template", help="For generate tasks."),
    precision: str = precision_option(),
    dtype: Optional[str] = dtype_option(),
    revision: Optional[str] = revision_option(),
    trust_remote_code: bool = trust_remote_code_option(),
    attn_implementation: Optional[str] = attn_implementation_option(),
):
    """Before/after fine-tuning on a task suite: per-task delta and a paired-bootstrap verdict (improved/unchanged/forgot)."""
    from rich.markdown import Markdown

    from tuneval.config import EvalConfig
    from tuneval.evaluate.forgetting import forgetting_markdown
    from tuneval.jobs.forgetting import compare_dirs, run_forgetting
    from tuneval.typed import check_option

    quiet_libraries()
    if (before is None) != (after is None):
        raise TunevalError("give both --before and --after (two `tuneval eval` output directories)")
    if before is not None:
        if adapter is not None:
            raise TunevalError("--adapter runs the model; --before/--after compare saved results: give one or the other")
        out = out or after.parent / f"forgetting-{before.name}-vs-{after.name}"
        result = compare_dirs(before, after, out=out, iters=bootstrap_iters, seed=seed)
    else:
        if adapter is None:
            raise TunevalError("give --adapter RUN (the fine-tuned result to check) or --before DIR --after DIR")
        out = out or Path("runs") / "forgetting" / adapter.resolve().name
        check_option("--batch-size", batch_size, EvalConfig, "batch_size")
        check_out_dir(out)
        main_process = join_launcher()
        result = run_forgetting(model, adapter, tasks=tasks, suite=suite, limit=limit, num_fewshot=num_fewshot,
                                tasks_dir=tasks_dir, data_dir=data_dir, out=out, batch_size=batch_size, seed=seed,
                                bootstrap_iters=bootstrap_iters, chat_template=chat_template,
                                on_task=_print_task if main_process else None, precision=precision,
                                model_args=model_args_from(dtype, revision, trust_remote_code, attn_implementation))
        if not main_process:
            return
    console.print(Markdown(forgetting_markdown(result, result["before_label"], result["after_label"])))
    console.print(f"saved: {out / 'forgetting.md'}, {out / 'forgetting.json'}, {out / 'forgetting.png'}")
    _html_report([out], out / "report.html", title=f"Forgetting: {result['after_label']}", seed=seed)


@app.command()
def report(
    paths: list[Path] = typer.Argument(..., help="Run, evaluation, demo, sweep or forgetting directories (any mix)."),
    out: Path = typer.Option(Path("report.html"), "--out", help="The HTML file to write."),
    title: str = typer.Option("tuneval report", "--title"),
    bootstrap_iters: int = typer.Option(1000, "--bootstrap-iters", help="Resamples for the 95% intervals (0: none)."),
    seed: int = typer.Option(1234, "--seed", help="Bootstrap seed."),
):
    """One self-contained HTML page (no network needed) over saved results: tables, charts, curves, samples."""
    if bootstrap_iters < 0:
        raise TunevalError(f"--bootstrap-iters must be 0 or more, got {bootstrap_iters}")
    if out.is_dir():
        raise TunevalError(f"--out {out}: is a directory; give the HTML file to write (e.g. {out / 'report.html'})")
    check_out_dir(out.parent)
    _html_report(paths, out, iters=bootstrap_iters, seed=seed, title=title)


def _html_report(paths: list[Path], out: Path, **kw) -> Path:
    """`report`, and `demo` and `forgetting` after their Markdown: the page, then its path."""
    from tuneval.report import write_report

    path = write_report(paths, out, **kw)
    console.print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return path


from tuneval import cli_serve  # noqa: E402,F401  (merge, export, serve, chat: registered after the commands above)


def main(argv: list[str] | None = None) -> None:
    from tuneval.console import stop_line, stop_on_sigterm

    try:
        if argv is None:  # the `tuneval` command itself, not a test calling main([...])
            allocator.maybe_reexec()
            stop_on_sigterm()  # issue 35: SIGTERM takes Ctrl-C's path (one line, nothing half-written)
        app(args=argv, prog_name="tuneval")
    except TunevalError as e:
        err.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (KeyboardInterrupt, _Interrupted):  # the first while typer parses, the second from a command
        line, code = stop_line()
        err.print(line)
        sys.exit(code)


if __name__ == "__main__":
    main()
