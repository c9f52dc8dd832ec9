"""The `tuneval` command line: a thin typer layer over the Python API (api.py).

Each command turns its flags into the arguments of one api.py function (`train` -> finetune,
`eval` -> simple_evaluate, ...), calls it, and prints what it returns; nothing else. The
commands are plain functions, here (training, evaluation, the jobs) and in cli_serve.py (using a
result: merge, export, serve, chat), registered on the app by the one list COMMANDS below.
Printing helpers that pull in heavy libraries (ROUGE/BLEU formatting, summaries, rich's Markdown:
0.5 s of markdown-it alone) are imported inside the command that prints with them, so
`tuneval --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from tuneval import allocator, api, cli_serve
from tuneval.cli_options import (_Interrupted, app, attn_implementation_option, bare_flags, chat_template_from,
                                 chat_template_option, console, dtype_option, err, model_args_option, model_args_from,
                                 no_chat_template_option, precision_option, quiet_libraries, revision_option,
                                 trust_remote_code_option)
from tuneval.console import stop_line, stop_on_sigterm
from tuneval.errors import TunevalError
from tuneval.results import EvalDir, ForgettingDir, SuiteDir, SweepDir


def train(
    recipe: Optional[Path] = typer.Argument(None, help="Recipe YAML (a run's config.yaml works too); optional with --data."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe key: section.key=value."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Local data directory (else $TUNEVAL_DATA_DIR, else the hub)."),
    data: Optional[str] = typer.Option(None, "--data", help="Your own data: a jsonl/json/csv/tsv/parquet/txt file or a "
                                       "directory (= data.path); with --dataset-info, a dataset's name."),
    format_: Optional[str] = typer.Option(None, "--format", help="Its format: alpaca, messages, sharegpt, prompt_completion, text, columns (default: recognised)."),
    sample_by: Optional[str] = typer.Option(None, "--sample-by", help="A .txt file in format text: one document per "
                                            "paragraph (blank-line separated; default), line, or the whole document."),
    dataset_info: Optional[Path] = typer.Option(None, "--dataset-info", help="A LLaMA-Factory dataset_info.json: "
                                                "--data names one of its datasets (= data.dataset_info)."),
    validation_share: Optional[float] = typer.Option(None, "--validation-share", help="Share held out for validation (default 0.1)."),
    chat_template: Optional[str] = chat_template_option(),
    no_chat_template: bool = no_chat_template_option(),
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
    margs = model_args_from(dtype, revision, trust_remote_code, attn_implementation)
    quiet_libraries()
    metrics = api.finetune(recipe, set=set_, data=data, format=format_, validation_share=validation_share,
                           tasks_dir=tasks_dir, data_dir=data_dir, precision=precision, model_args=margs,
                           resume=resume, overwrite=overwrite, sample_by=sample_by, dataset_info=dataset_info,
                           chat_template=chat_template_from(chat_template, no_chat_template, default=None))
    console.print(
        f"[bold]{metrics['method']}[/bold] done: loss {metrics['train_loss']:.4f}, "
        f"{metrics['train_tokens_per_second']:.0f} tok/s, {metrics['train_seconds']:.0f} s, peak "
        f"{metrics['peak_memory_mb']:.0f} MB, checkpoint {metrics['checkpoint_mb']:.1f} MB -> {metrics['checkpoint_dir']}"
    )
    if "data" in (metrics.get("data") or {}):  # your own data: what the run read, kept and dropped
        from tuneval.console import data_line

        console.print(data_line(metrics["data"]["data"]), highlight=False, markup=False, soft_wrap=True)


def eval_(
    model: str = typer.Option(api.DEFAULT_MODEL, "--model", help="Embedded name, local directory or hub id."),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="PEFT adapter directory (or a run directory)."),
    task: Optional[str] = typer.Option(None, "--task", help="A task generated with its FLAN template and scored with ROUGE/BLEU (e.g. dialogsum)."),
    split: Optional[str] = typer.Option(None, "--split", help="Split of --task (default validation)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="First N examples of the split (default 50 with --task; "
                                        "with --tasks/--suite: the suite's per-task limit, else all)."),
    out: Optional[Path] = typer.Option(None, "--out", help=f"Where {EvalDir.RESULTS} and {EvalDir.REPORT} go."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir"),
    template: Optional[int] = typer.Option(None, "--template", help="FLAN template index to generate with (--task default: "
                                           "the task's eval template; --tasks default: each task's own prompt)."),
    batch_size: int = typer.Option(16, "--batch-size"),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", help="Generation length for --task (default 64)."),
    chat_template: Optional[str] = chat_template_option(),
    no_chat_template: bool = no_chat_template_option(),
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
    endpoint_args: Optional[str] = model_args_option(),
    lm_eval_format: bool = typer.Option(False, "--lm-eval-format", help="Also write lm-eval 0.4's --output_path "
                                        "--log_samples layout in --out (its results and samples files, per model)."),
):
    """Score a model, loaded here or served elsewhere (--model local-completions --model-args base_url=URL,model=NAME),
    on benchmark tasks (--tasks/--suite), one --task generated and scored with ROUGE/BLEU, or --data."""
    quiet_libraries()
    results = api.simple_evaluate(
        model, adapter, task=task, tasks=tasks, suite=suite, data=data, format=format_, split=split, limit=limit,
        out=out, data_dir=data_dir, template=template, batch_size=batch_size, max_new_tokens=max_new_tokens,
        chat_template=chat_template_from(chat_template, no_chat_template), num_fewshot=num_fewshot, tasks_dir=tasks_dir,
        seed=seed, bootstrap_iters=bootstrap_iters, precision=precision, merge=merge, on_task=_print_task,
        lm_eval_format=lm_eval_format,
        model_args=model_args_from(dtype, revision, trust_remote_code, attn_implementation, endpoint_args))
    if results is not None:  # None: not rank 0 of a launcher, which prints
        _print_eval(results, out or api.eval_out_dir(model, adapter, task=task, tasks=tasks, suite=suite, data=data,
                                                    model_args=endpoint_args), bench=bool(tasks or suite))


def _print_eval(results: dict, out: Path, bench: bool) -> None:
    """What `tuneval eval` prints when it is done: the table (benchmarks) or the headline metrics, and the files."""
    if bench:
        from rich.markdown import Markdown

        from tuneval.evaluate.summary import summary_markdown

        console.print(Markdown(summary_markdown(results)))
        s = SuiteDir(out)
        console.print(f"saved: {s.summary_md_file}, {s.summary_file}, {out}/<task>/{EvalDir.RESULTS}")
        return
    from tuneval.metrics.text import HEADLINE, fmt

    m = results["metrics"]
    tools = [k for k in m if k.startswith("tool_call_")]  # data with tools: the calls' scores too
    console.print(" ".join(f"{k}={fmt(k, m[k])}" for k in (*HEADLINE, *tools)))
    console.print(f"[dim]{results['signatures'].get('bleu', '')}[/dim]")
    ev = EvalDir(out)
    console.print(f"results: {ev.results_file}  report: {ev.report_file}")


def _print_task(r: dict) -> None:
    """One benchmark task's line as it finishes (eval --tasks/--suite, forgetting)."""
    from tuneval.metrics.text import fmt

    m = r["primary_metric"]
    ci = r["bootstrap"].get(m, {})
    others = " ".join(f"{k}={fmt(k, v)}" for k, v in r["metrics"].items() if k != m and not k.endswith(("_precision", "_recall")))
    console.print(f"[bold]{r['task']}[/bold] ({r['num_examples']} ex, {r['num_fewshot']}-shot, {r['stats']['seconds']:.0f} s): "
                  f"{m}={fmt(m, r['metrics'][m])} [{fmt(m, ci.get('ci_low'))}, {fmt(m, ci.get('ci_high'))}] [dim]{others}[/dim]",
                  highlight=False)


def params(
    model: str = typer.Argument(..., help="Embedded name, local directory or hub id."),
    method: str = typer.Option("lora", "--method"),
    set_: list[str] = typer.Option([], "--set", help="Method option: key=value (e.g. r=8)."),
):
    """Trainable vs total parameters for a method, without training."""
    quiet_libraries()
    counts = api.count_parameters(model, method, set=set_)
    from tuneval.methods import format_parameters  # PEFT's own line; methods/ loads torch, loaded by now

    console.print(format_parameters(*counts))


def demo(
    minutes: float = typer.Option(20.0, "--minutes", help="Time budget: the demo times this machine, then plans how "
                                  "many training and evaluation examples fit (the counts given below are kept)."),
    train_examples: Optional[int] = typer.Option(None, "--train-examples", help="Training examples per method, the "
                                                 "same for full and LoRA (default: planned from --minutes)."),
    eval_examples: Optional[int] = typer.Option(None, "--eval-examples", help="Validation examples scored per model, "
                                                "rows 0..N-1 (default: planned, 200 where the budget allows)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir"),
    out: Path = typer.Option(Path("runs/demo"), "--out"),
    model: str = typer.Option(api.DEFAULT_MODEL, "--model"),
    precision: str = precision_option(),
):
    """The main job: base vs full vs LoRA on DialogSum, one comparison table, in --minutes."""
    quiet_libraries()
    result = api.demo(minutes=minutes, train_examples=train_examples, eval_examples=eval_examples, data_dir=data_dir,
                      out=out, model=model, precision=precision, console=console)
    if result is not None:
        _print_html(result["html"])


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
    quiet_libraries()
    e = api.estimate_memory(model, method, set=set_, batch_size=batch_size, seq_len=seq_len, target_len=target_len,
                            gradient_checkpointing=gradient_checkpointing, bf16=bf16)
    if as_json:
        console.print_json(json.dumps(e.to_dict()))
        return
    from tuneval.methods.memory import format_bytes  # methods/ loads torch: not before a command needs it

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


def inspect(
    run: Path = typer.Argument(..., help="A prompt_tuning run directory."),
    model: Optional[str] = typer.Option(None, "--model", help="Base model (default: the run's)."),
    top_k: int = typer.Option(5, "--top-k", help="Nearest vocabulary tokens per virtual token."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """Per virtual token of a soft prompt, its nearest vocabulary tokens by cosine similarity."""
    quiet_libraries()
    info = api.soft_prompt_tokens(run, model=model, top_k=top_k)
    if as_json:
        console.print_json(json.dumps(info))
        return
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
    quiet_libraries()
    result = api.sweep(recipe, grid, set=set_, data_dir=data_dir, out=out, overwrite=overwrite, precision=precision,
                       console=console)
    console.print(result["markdown"])
    s = SweepDir(result["out"])
    console.print(f"saved: {s.md_file}, {s.csv_file.name}, {s.json_file.name}, {s.png_file.name}")


def forgetting(
    model: str = typer.Option(api.DEFAULT_MODEL, "--model", help="Base model: embedded name, directory or hub id."),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="The fine-tuned adapter (or run directory) to check; with an endpoint --model, the name the server serves it under."),
    suite: str = typer.Option("forgetting", "--suite", help="Suite to score before and after."),
    tasks: Optional[str] = typer.Option(None, "--tasks", help="Tasks instead of a suite, comma-separated."),
    limit: Optional[int] = typer.Option(None, "--limit", help="First N examples per task (default: the suite's)."),
    num_fewshot: Optional[int] = typer.Option(None, "--num-fewshot"),
    before: Optional[Path] = typer.Option(None, "--before", help="Compare two earlier `tuneval eval` (or lm-eval "
                                          "--output_path) directories or results files..."),
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
    endpoint_args: Optional[str] = model_args_option(),
):
    """Before/after fine-tuning on a task suite: per-task delta and a paired-bootstrap verdict (improved/unchanged/forgot).

    With an endpoint --model, --adapter names the adapter the server serves beside --model-args' model."""
    if (before is None) != (after is None):
        raise TunevalError("give both --before and --after (two `tuneval eval` output directories)")
    if before is not None and adapter is not None:
        raise TunevalError("--adapter runs the model; --before/--after compare saved results: give one or the other")
    if before is None and adapter is None:
        raise TunevalError("give --adapter RUN (the fine-tuned result to check) or --before DIR --after DIR")
    margs = model_args_from(dtype, revision, trust_remote_code, attn_implementation, endpoint_args)
    quiet_libraries()
    if before is not None:
        result = api.compare_forgetting(before, after, out=out, bootstrap_iters=bootstrap_iters, seed=seed)
    else:
        result = api.forgetting(adapter, model=model, suite=suite, tasks=tasks, limit=limit, num_fewshot=num_fewshot,
                                out=out, tasks_dir=tasks_dir, data_dir=data_dir, batch_size=batch_size, seed=seed,
                                bootstrap_iters=bootstrap_iters, chat_template=chat_template, precision=precision,
                                model_args=margs, on_task=_print_task)
    if result is None:  # not rank 0 of a launcher
        return
    from rich.markdown import Markdown

    from tuneval.evaluate.forgetting import forgetting_markdown

    out = result["out"]
    console.print(Markdown(forgetting_markdown(result, result["before_label"], result["after_label"])))
    f = ForgettingDir(out)
    console.print(f"saved: {f.md_file}, {f.json_file}, {f.png_file}")
    _print_html(result["html"])


def scorecard(
    model: str = typer.Option(api.DEFAULT_MODEL, "--model", help="Model: embedded name, directory, hub id or endpoint kind."),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="A fine-tuned adapter (or run directory) over --model."),
    scenarios: Optional[str] = typer.Option(None, "--scenarios", help="Tasks or groups, comma-separated "
                                            "(default: boolq, three MMLU subjects, sst2, agnews, rte, dialogsum)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="First N examples per scenario."),
    perturbations: Optional[str] = typer.Option(None, "--perturbations", help="Comma-separated (default: all: "
                                                "typos, misspellings, lowercase, contraction, expansion, extra_space, "
                                                "mild_mix, gender, person_name, dialect)."),
    toxicity_model: Optional[str] = typer.Option(None, "--toxicity-model", help="Hub id or path of a text "
                                                 "classifier; without one toxicity is 'not measured'."),
    toxicity_label: Optional[str] = typer.Option(None, "--toxicity-label", help="The classifier's toxic label."),
    before: Optional[Path] = typer.Option(None, "--before", help="Compare two saved scorecards..."),
    after: Optional[Path] = typer.Option(None, "--after", help="...(paired intervals) instead of running a model."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where scorecard.{json,md} and the variants go."),
    tasks_dir: Optional[Path] = typer.Option(None, "--tasks-dir"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir"),
    batch_size: int = typer.Option(16, "--batch-size"),
    seed: int = typer.Option(1234, "--seed", help="Perturbation and bootstrap seed."),
    bootstrap_iters: int = typer.Option(1000, "--bootstrap-iters"),
    precision: str = precision_option(),
    endpoint_args: Optional[str] = model_args_option(),
):
    """HELM-style scorecard: accuracy, calibration, robustness, fairness, bias, toxicity, efficiency per scenario."""
    from rich.markdown import Markdown

    quiet_libraries()
    result = api.scorecard(model, adapter, scenarios=scenarios, limit=limit, out=out, before=before, after=after,
                           perturbations=perturbations, toxicity_model=toxicity_model, toxicity_label=toxicity_label,
                           tasks_dir=tasks_dir, data_dir=data_dir, batch_size=batch_size, seed=seed,
                           bootstrap_iters=bootstrap_iters, precision=precision,
                           model_args=model_args_from(None, None, False, None, endpoint_args),
                           on_scenario=lambda s: console.print(f"{s['task']}: {s['n']} examples scored"))
    console.print(Markdown(result["markdown"].read_text(encoding="utf-8")))
    console.print(f"saved: {result['markdown']}")
    if "html" in result:
        _print_html(result["html"])


def report(
    paths: list[Path] = typer.Argument(..., help="Run, evaluation, demo, sweep or forgetting directories (any mix)."),
    out: Path = typer.Option(Path("report.html"), "--out", help="The HTML file to write."),
    title: str = typer.Option("tuneval report", "--title"),
    bootstrap_iters: int = typer.Option(1000, "--bootstrap-iters", help="Resamples for the 95% intervals (0: none)."),
    seed: int = typer.Option(1234, "--seed", help="Bootstrap seed."),
):
    """One self-contained HTML page (no network needed) over saved results: tables, charts, curves, samples."""
    _print_html(api.html_report(paths, out, title=title, bootstrap_iters=bootstrap_iters, seed=seed))


def _print_html(path: Path) -> None:
    """`report`, and `demo` and `forgetting` after their Markdown: where the page is."""
    console.print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)")


# Every command, in the order `tuneval --help` lists them: (function, command name).
def tasks(
    pattern: Optional[str] = typer.Argument(None, help="Only names containing this, or matching this glob (bbh_zeroshot_*)."),
    tasks_dir: Optional[Path] = typer.Option(None, "--tasks-dir", help="Your task/suite YAML files (a directory or one file)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON list instead of the table."),
):
    """List the tasks, groups and suites tuneval knows, with output type, prompt families and metrics (lm_eval --tasks list)."""
    rows = api.list_tasks(pattern, tasks_dir=tasks_dir)
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    header = ("name", "kind", "output type", "families / tasks", "metrics")
    lines = [header] + [(r["name"], r["kind"], r.get("output_type", ""),
                         ", ".join(r["families"]) + (f", {r['num_fewshot']}-shot" if r.get("num_fewshot") else "")
                         if r["kind"] == "task" else f"{r['tasks']} tasks", " ".join(r.get("metrics", []))) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:  # plain text, never cut to the terminal's width (lm_eval --tasks list prints a table too)
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
    console.print(f"{sum(r['kind'] == 'task' for r in rows)} tasks, {sum(r['kind'] == 'group' for r in rows)} groups, "
                  f"{sum(r['kind'] == 'suite' for r in rows)} suites")


COMMANDS = [
    (train, "train"), (eval_, "eval"), (params, "params"), (demo, "demo"), (memory, "memory"),
    (inspect, "inspect"), (sweep, "sweep"), (forgetting, "forgetting"), (scorecard, "scorecard"),
    (report, "report"), (tasks, "tasks"),
    (cli_serve.merge, "merge"), (cli_serve.export, "export"), (cli_serve.serve, "serve"), (cli_serve.chat, "chat"),
]
for _command, _name in COMMANDS:
    app.command(_name)(_command)


def main(argv: list[str] | None = None) -> None:
    try:
        if argv is None:  # the `tuneval` command itself, not a test calling main([...])
            allocator.maybe_reexec()  # only when TUNEVAL_ALLOCATOR asks (allocator.py)
            stop_on_sigterm()  # SIGTERM takes Ctrl-C's path: one line, nothing half-written (console.py)
        app(args=bare_flags(sys.argv[1:] if argv is None else argv), prog_name="tuneval")
    except TunevalError as e:
        err.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (KeyboardInterrupt, _Interrupted):  # the first while typer parses, the second from a command
        line, code = stop_line()
        err.print(line)
        sys.exit(code)


if __name__ == "__main__":
    main()
