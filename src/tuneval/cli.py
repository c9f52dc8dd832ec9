"""The `tuneval` command line. Commands are thin: each parses, then calls the library."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from tuneval.errors import TunevalError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Instruction fine-tune and evaluate language models.")
console = Console()
err = Console(stderr=True)


def _quiet_libraries() -> None:
    import warnings

    import transformers

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*generation flags are not valid.*")
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


@app.command()
def train(
    recipe: Path = typer.Argument(..., help="Recipe YAML (a run's config.yaml works too)."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe key: section.key=value."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Local data directory (else $TUNEVAL_DATA_DIR, else the hub)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory."),
):
    """Fine-tune a model as a recipe says; write a run directory."""
    from tuneval.config import load_recipe
    from tuneval.train.trainer import train as run_train

    _quiet_libraries()
    overrides = list(set_) + ([f"data.data_dir={data_dir}"] if data_dir else [])
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
    task: str = typer.Option("dialogsum", "--task"),
    split: str = typer.Option("validation", "--split"),
    limit: Optional[int] = typer.Option(50, "--limit", help="First N examples of the split."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where results.json and report.md go."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir"),
    template: Optional[int] = typer.Option(None, "--template", help="Template index (default: the task's eval template)."),
    batch_size: int = typer.Option(16, "--batch-size"),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens"),
    chat_template: bool = typer.Option(True, "--chat-template/--no-chat-template"),
):
    """Generate on a task and score ROUGE-1/2/L/Lsum and corpus BLEU."""
    from tuneval.data.tasks import load_task
    from tuneval.evaluate.run import evaluate_generation
    from tuneval.models import load_adapter, load_model

    _quiet_libraries()
    spec = load_task(task)
    loaded = load_model(model)
    net = load_adapter(loaded, adapter) if adapter else loaded.model
    label = f"{model}+{adapter.name}" if adapter else model
    out = out or Path("runs") / "eval" / f"{Path(label).name}-{task}"
    results = evaluate_generation(
        net, loaded.tokenizer, loaded.arch, spec, split=split, limit=limit, data_dir=data_dir, template=template,
        batch_size=batch_size, max_new_tokens=max_new_tokens, chat_template=chat_template, label=label,
        meta={"model": model, "adapter": str(adapter) if adapter else None}, out_dir=out,
    )
    m = results["metrics"]
    console.print(" ".join(f"{k}={m[k]:.4f}" for k in ("rouge1", "rouge2", "rougeL", "rougeLsum")) + f" bleu={m['bleu']:.2f}")
    console.print(f"[dim]{m['bleu_signature']}[/dim]")
    console.print(f"results: {out / 'results.json'}  report: {out / 'report.md'}")


@app.command()
def params(
    model: str = typer.Argument(..., help="Embedded name, local directory or hub id."),
    method: str = typer.Option("lora", "--method"),
    set_: list[str] = typer.Option([], "--set", help="Method option: key=value (e.g. r=8)."),
):
    """Trainable vs total parameters for a method, without training."""
    from tuneval.config import build_dataclass, apply_overrides
    from tuneval.methods import count_parameters, format_parameters, get_method
    from tuneval.models import load_model

    _quiet_libraries()
    spec = get_method(method)
    raw = apply_overrides({}, [s if "." not in s.split("=")[0] else s.split(".", 1)[1] for s in set_])
    settings = build_dataclass(spec.settings, raw, "--set", f"{method}.")
    loaded = load_model(model)
    net = spec.apply(loaded.model, settings, loaded.arch)
    console.print(format_parameters(*count_parameters(net)))


@app.command()
def demo(
    train_examples: int = typer.Option(None, "--train-examples", help="Training examples per method."),
    eval_examples: int = typer.Option(None, "--eval-examples", help="Validation examples scored per model."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir"),
    out: Path = typer.Option(Path("runs/demo"), "--out"),
    model: str = typer.Option("smollm2-135m-instruct", "--model"),
):
    """The main job: base vs full vs LoRA on DialogSum, one comparison table."""
    from tuneval.demo import DEFAULT_EVAL_EXAMPLES, DEFAULT_TRAIN_EXAMPLES, run_demo

    _quiet_libraries()
    run_demo(model=model, data_dir=data_dir, out=out,
             train_examples=train_examples or DEFAULT_TRAIN_EXAMPLES,
             eval_examples=eval_examples or DEFAULT_EVAL_EXAMPLES, console=console)


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, prog_name="tuneval")
    except TunevalError as e:
        err.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
