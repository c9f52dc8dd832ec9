"""The Python API: one function per command, and the commands are thin callers of these.

    from tuneval import finetune, simple_evaluate, load

Each function takes the arguments of its command (a flag `--max-new-tokens` is `max_new_tokens`)
and writes the same files, because the command (cli.py, cli_serve.py) parses flags, calls it and
prints what it returns:

  finetune            tuneval train      fine-tune as a recipe says; a run directory
  simple_evaluate     tuneval eval       score a model (and adapter) on tasks, a suite or your data
  load                (every command)    a model with a trained run or adapter over it
  count_parameters    tuneval params     trainable vs total parameters of a method
  estimate_memory     tuneval memory     training memory, without loading weights
  soft_prompt_tokens  tuneval inspect    a soft prompt's nearest vocabulary tokens
  demo                tuneval demo       base vs full vs LoRA on DialogSum in a time budget
  sweep               tuneval sweep      train every point of a grid, one table
  forgetting          tuneval forgetting --adapter    a suite before and after fine-tuning
  compare_forgetting  tuneval forgetting --before --after   the same over saved results
  html_report         tuneval report     one HTML page over saved results
  merge               tuneval merge      fold an adapter into its base
  export              tuneval export     safetensors + model card for others (and the Hub)
  start_server        tuneval serve      an OpenAI-compatible server, many adapters
  chat                tuneval chat       a chat session with a model (and adapter)

How a model's weights load travels as one typed object: `precision` (auto | bf16 | fp32,
precision.py) and `model_args`, a ModelArgs (dtype, revision, trust_remote_code,
attn_implementation; model_args.py). Where a run or recipe has its own model_args, the fields
`model_args` sets (those not at their defaults) are laid over them (model_args.overlay).

The internals are imported inside each function, so `import tuneval` and `tuneval --help` stay
fast. Evaluation under torchrun / accelerate launch shares its examples out over the processes:
`simple_evaluate`, `forgetting` and `demo` return None on every process but rank 0 (as
lm-eval's simple_evaluate does), which alone writes the results.

No name here is also the name of one of tuneval's packages or modules (`report`, `serve`, `train`,
`evaluate` are packages), so `from tuneval import NAME` always means the function.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from tuneval.errors import TunevalError
from tuneval.model_args import ModelArgs
from tuneval.results import EvalDir

__all__ = ["finetune", "simple_evaluate", "load", "count_parameters", "estimate_memory", "soft_prompt_tokens",
           "demo", "sweep", "forgetting", "compare_forgetting", "scorecard", "html_report", "merge", "export",
           "start_server", "chat", "eval_out_dir", "list_tasks", "ModelArgs"]

DEFAULT_MODEL = "smollm2-135m-instruct"
NOTHING_TO_EVALUATE = "nothing to evaluate: give --task NAME, --tasks A,B, --suite NAME or --data FILE"


def finetune(recipe: str | Path | Mapping[str, Any] | None = None, *, set: list[str] | None = None,  # noqa: A002
             data: str | Path | None = None, format: str | None = None,  # noqa: A002
             validation_share: float | None = None, tasks_dir: str | Path | None = None, data_dir: str | None = None,
             precision: str | None = None, model_args: ModelArgs | None = None, resume: bool = False,
             overwrite: bool = False, sample_by: str | None = None, dataset_info: str | Path | None = None,
             chat_template: bool | str | None = None) -> dict[str, Any]:
    """Fine-tune a model as a recipe says and write its run directory (`tuneval train`).

    `recipe`: a recipe YAML file (a run's config.yaml works too), a mapping of the same keys, or
    None (every default). `set`: overrides, `section.key=value`. `data`, `format`, `validation_share`,
    `tasks_dir`, `data_dir`: the recipe's `data.*` keys (your own data file or directory, its format,
    the share held out, your task YAMLs, a local data directory); `sample_by`: how a .txt file splits into
    documents (paragraph, line, document); `dataset_info`: a LLaMA-Factory dataset_info.json whose entry
    `data` names; `chat_template`: true/false, a template name or a .jinja file. `precision` and the fields
    `model_args` sets override the recipe's. `resume`: continue from the last checkpoint;
    `overwrite`: replace an existing run directory.

    Returns the run's metrics (what RUN/metrics.json holds) with `run_dir` and `method` added.
    """
    from tuneval.config import build_recipe
    from tuneval.train.trainer import train

    given = {"path": data, "format": format, "validation_share": validation_share, "data_dir": data_dir,
             "tasks_dir": tasks_dir, "sample_by": sample_by, "dataset_info": dataset_info, "chat_template": chat_template}
    if recipe is None and data is None:
        raise TunevalError("give a recipe, or your data with --data PATH [--format F]")
    r = build_recipe(recipe, set, data={k: str(v) if isinstance(v, Path) else v for k, v in given.items()},
                     precision=precision, model_args=model_args)
    metrics, _, _ = train(r, resume=resume, overwrite=overwrite)
    return {**metrics, "run_dir": str(r.run_dir), "method": r.method}


def simple_evaluate(model: str = DEFAULT_MODEL, adapter: str | Path | None = None, *, task: str | None = None,
                    tasks: str | list[str] | None = None, suite: str | None = None, data: str | Path | None = None,
                    format: str | None = None, columns: dict[str, str] | None = None,  # noqa: A002
                    split: str | None = None, limit: int | None = None, out: str | Path | None = None,
                    data_dir: str | None = None, template: int | None = None, batch_size: int = 16,
                    max_new_tokens: int | None = None, chat_template: bool | str = True, num_fewshot: int | None = None,
                    tasks_dir: str | Path | None = None, seed: int = 1234, bootstrap_iters: int = 1000,
                    precision: str = "auto", model_args: ModelArgs | str | Mapping[str, Any] | None = None,
                    merge: bool = False, lm_eval_format: bool = False,
                    on_task: Callable[[dict], None] | None = None) -> dict[str, Any] | None:
    """Score `model` (with `adapter`, a run or adapter directory, over it) (`tuneval eval`).

    `model` may also be a model served elsewhere behind an OpenAI-compatible API, as lm-eval names
    them: "local-completions", "local-chat-completions", "openai-completions" or
    "openai-chat-completions", with `model_args` its settings ("base_url=URL,model=NAME,..." or a
    mapping; models/endpoint.py lists the keys). For a local model `model_args` is a ModelArgs.

    Say what to score, one of:
      `tasks` / `suite`: benchmark tasks (e.g. "copa,sst2" or ["copa"]) or a suite (glue, superglue,
        mmlu, forgetting), each through its own prompt family on its evaluation split; returns
        summary.json's content (and OUT/<task>/results.json per task). `num_fewshot` overrides the tasks'.
      `task`: one task generated with its FLAN template (`template`: another index) on `split` and
        scored with ROUGE/BLEU; first `limit` examples (default 50); returns results.json's content.
      `data`: your own file or directory in `format` (`columns`: your column names), every row
        generated and scored against its last assistant turn. `chat_template`: false (plain text), a name
        (chatml, llama3, ...) or a .jinja file over the model's own.
    `out`: the directory written (default eval_out_dir(...)); `lm_eval_format`: also lm-eval 0.4's
    `--output_path OUT --log_samples` layout there (evaluate/lm_eval_format.py). `merge`: fold a LoRA-family adapter
    into the base first (faster generation). `on_task(result)`: called after each benchmark task. None on ranks > 0.
    """
    from tuneval.evaluate.distributed import init_from_env, is_main
    from tuneval.io import check_out_dir

    names = ",".join(tasks) if isinstance(tasks, list) else tasks
    _check_eval_options(task=task, tasks=names, suite=suite, data=data, format=format, split=split, limit=limit,
                        template=template, batch_size=batch_size, max_new_tokens=max_new_tokens,
                        num_fewshot=num_fewshot)
    out = Path(out or eval_out_dir(model, adapter, task=task, tasks=names, suite=suite, data=data,
                                   model_args=model_args))
    check_out_dir(out)  # results are written after the slow part: a bad --out must fail now
    init_from_env()
    main = is_main()
    if names or suite:
        from tuneval.evaluate.summary import evaluate_suite

        scored = evaluate_suite(model, adapter, tasks=names, suite=suite, limit=limit, num_fewshot=num_fewshot,
                                tasks_dir=tasks_dir, data_dir=data_dir, out=out, batch_size=batch_size, seed=seed,
                                bootstrap_iters=bootstrap_iters, chat_template=chat_template, precision=precision,
                                on_task=on_task if main else None, model_args=model_args, template=template,
                                merge=merge)
    else:
        scored = _evaluate_task(model, adapter, task=task, data=data, format=format, columns=columns, split=split,
                                limit=limit, out=out, data_dir=data_dir, template=template, batch_size=batch_size,
                                max_new_tokens=max_new_tokens, chat_template=chat_template, tasks_dir=tasks_dir,
                                seed=seed, bootstrap_iters=bootstrap_iters, precision=precision,
                                model_args=model_args, merge=merge)
    if main and lm_eval_format:
        _write_lm_eval(out, scored, model, adapter, model_args, tasks_dir=tasks_dir, data_dir=data_dir,
                       batch_size=batch_size, rows=data is None)
    return scored if main else None


def _write_lm_eval(out: Path, scored: dict, model: str, adapter, model_args, *, tasks_dir, data_dir,
                   batch_size: int, rows: bool = True) -> None:
    """lm-eval's layout beside tuneval's results (`scored`: a suite's summary or one task's results):
    lm-eval names the model by its adapter where there is one, and logs each scored row as `doc`
    (read again here, so its doc_hash is lm-eval's)."""
    from tuneval.evaluate.lm_eval_format import write_lm_eval
    from tuneval.models.endpoint import is_endpoint, parse_model_args
    from tuneval.results import SuiteDir
    from tuneval.tasks import get_task, load_rows

    results = [SuiteDir(out).task(t).read() for t in scored["tasks"]] if "examples" not in scored else [scored]
    if is_endpoint(model):
        args = parse_model_args(None if isinstance(model_args, ModelArgs) else model_args)
        name, source, given = args.model, model, {"base_url": args.base_url, "model": args.model}
    else:
        name, source = str(adapter or model), "hf"
        given = {"pretrained": model, **({"peft": str(adapter)} if adapter else {})}
    docs = {r["task"]: load_rows(get_task(r["task"], tasks_dir), r["split"], data_dir)[:r["num_examples"]]
            for r in results} if rows else None
    write_lm_eval(out, results, model_name=name, model_args=given, model_source=source, batch_size=batch_size,
                  limit=results[0].get("limit"), bootstrap_iters=results[0]["bootstrap"]["iterations"],
                  seed=results[0].get("seed"), docs=docs)


def _check_eval_options(*, task, tasks, suite, data, format, split, limit, template, batch_size,  # noqa: A002
                        max_new_tokens, num_fewshot) -> None:
    """What to score must be said; an option of another mode would be silently ignored, so it is refused.

    --tasks/--suite score each task on its own evaluation split with its default prompt family;
    --task generates with a FLAN template on a split of choice; --data scores your own rows."""
    from tuneval.config import EvalConfig
    from tuneval.typed import check_option

    bench = bool(tasks or suite)
    if not (bench or task or data is not None):
        raise TunevalError(NOTHING_TO_EVALUATE)
    generation_only = {"--task": task, "--split": split, "--max-new-tokens": max_new_tokens}
    for flag, value in (generation_only if bench else {"--num-fewshot": num_fewshot}).items():
        if value is not None:
            raise TunevalError(f"{flag} applies to --task (generation scored with ROUGE/BLEU), not to --tasks/--suite, "
                               "whose tasks set their own split and lengths" if bench else
                               f"{flag} applies to --tasks/--suite (benchmark tasks), not to --task")
    if data is not None and (bench or task or template is not None):
        raise TunevalError("--data is scored on its own: not with --task, --tasks, --suite or --template")
    if format is not None and data is None:
        raise TunevalError("--format describes --data")
    for flag, value, key in (("--limit", limit, "limit"), ("--batch-size", batch_size, "batch_size"),
                             ("--max-new-tokens", max_new_tokens, "max_new_tokens"), ("--template", template, "template")):
        check_option(flag, value, EvalConfig, key)


def _evaluate_task(model, adapter, *, task, data, format, columns, limit, template, tasks_dir, out,  # noqa: A002
                   precision, model_args, merge, **generation) -> dict[str, Any]:
    """One task (or your data) generated and scored with ROUGE/BLEU into OUT/results.json and report.md."""
    from tuneval.evaluate import remote
    from tuneval.evaluate.harness import run_task
    from tuneval.tasks import get_task

    if data is not None:  # your own data: every row, its last assistant turn the reference
        from tuneval.tasks.user_data import data_task

        spec = data_task(path=str(data), format=format, columns=columns, scored_whole=True, where="--data")
        index = None  # every row unless limit
    else:
        spec = get_task(task, tasks_dir)  # fails before the model loads
        index, limit = spec.template_index(template), 50 if limit is None else limit
    chat_template = generation.pop("chat_template")
    loaded, net = remote.open_model(model, adapter, precision=precision, model_args=model_args, merge=merge,
                                    requests_file=EvalDir(out).requests_file, chat_template=chat_template)
    return run_task(net, loaded.tokenizer, loaded.arch, spec, limit=limit, template=index,
                    chat_template=chat_template is not False,
                    label=remote.label(model, adapter, model_args),
                    meta={"model": model, "adapter": str(adapter) if adapter else None, "suite": None, **loaded.meta},
                    out_file=EvalDir(out).results_file, report=True, **generation)


def eval_out_dir(model: str, adapter: str | Path | None = None, *, task: str | None = None, tasks: str | None = None,
                 suite: str | None = None, data: str | Path | None = None, model_args: Any = None) -> Path:
    """Where `simple_evaluate` writes when no `out` is given: runs/eval/<model[+adapter]>-<task, data or suite>
    (an endpoint model: its served model's name)."""
    from tuneval.evaluate.remote import label

    if tasks or suite:
        name = suite or tasks.replace(",", "-")[:60]
        return Path("runs") / "eval" / f"{Path(label(str(Path(model).name), adapter, model_args)).name}-{name}"
    name = task or (Path(data).stem if data is not None else "dialogsum")
    return Path("runs") / "eval" / f"{Path(label(model, adapter, model_args)).name}-{name}"


def list_tasks(pattern: str | None = None, *, tasks_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Every task, group and suite tuneval knows (built-in plus `tasks_dir`), as `lm_eval --tasks list` lists
    them: name, kind, output type, prompt families, the metrics reported (`metric,filter` with a filter_list)."""
    from tuneval.tasks.registry import catalogue, load_registry

    return catalogue(load_registry(tasks_dir), pattern)


def load(model: str = DEFAULT_MODEL, adapter: str | Path | None = None, *, precision: str = "auto",
         model_args: ModelArgs | None = None, merge: bool = False):
    """(loaded base, model to run): `model` with a trained run or adapter over it, as every command loads it.

    `loaded.tokenizer` and `loaded.arch` come with it; `loaded.meta` is what results record about
    how it loaded. `merge`: a LoRA-family adapter folded into the base (faster generation)."""
    from tuneval.methods.loading import load_result

    return load_result(model, adapter, precision=precision, args=model_args, merge=merge)


def _method_settings(method: str, set: list[str] | None):  # noqa: A002
    """(method spec, its settings) from `key=value` strings; `lora.r=8` means `r=8`."""
    from tuneval.config import apply_overrides
    from tuneval.methods import get_method
    from tuneval.typed import build_dataclass

    spec = get_method(method)
    raw = apply_overrides({}, [s if "." not in s.split("=")[0] else s.split(".", 1)[1] for s in set or []])
    return spec, build_dataclass(spec.settings, raw, "--set", f"{method}.")


def count_parameters(model: str, method: str = "lora", *, set: list[str] | None = None) -> tuple[int, int]:  # noqa: A002
    """(trainable, total) parameters of `method` applied to `model`, counted as PEFT counts them,
    without training (`tuneval params`). `set`: the method's options, `key=value` (e.g. r=8)."""
    from tuneval.methods import count_parameters as count
    from tuneval.models import load_model

    spec, settings = _method_settings(method, set)
    loaded = load_model(model, device="cpu")  # counting needs no GPU
    return count(spec.apply(loaded.model, settings, loaded.arch))


def estimate_memory(model: str, method: str = "lora", *, set: list[str] | None = None,  # noqa: A002
                    batch_size: int = 8, seq_len: int = 256, target_len: int | None = None,
                    gradient_checkpointing: bool = False, bf16: bool = False):
    """Training memory of `method` on `model` (weights, gradients, optimizer, activations) from its
    config alone, no weights loaded (`tuneval memory`); a MemoryEstimate (`.to_dict()`, `.components()`).
    `set`: the method's options; `bf16`: activations under bf16 autocast."""
    from tuneval.methods.memory import estimate_memory as estimate

    _, settings = _method_settings(method, set)
    return estimate(model, method, settings, batch_size=batch_size, seq_len=seq_len, target_len=target_len,
                    gradient_checkpointing=gradient_checkpointing, bf16=bf16)


def soft_prompt_tokens(run: str | Path, *, model: str | None = None, top_k: int = 5) -> dict[str, Any]:
    """Per virtual token of a prompt_tuning run's soft prompt, its `top_k` nearest vocabulary tokens
    by cosine similarity (`tuneval inspect`). `model`: the base (default: the run's)."""
    from tuneval.methods.soft_prompts import nearest_tokens

    return nearest_tokens(run, model=model, top_k=top_k)


def demo(*, minutes: float = 20.0, train_examples: int | None = None, eval_examples: int | None = None,
         data_dir: str | None = None, out: str | Path = "runs/demo", model: str = DEFAULT_MODEL,
         precision: str = "auto", console=None) -> dict[str, Any] | None:
    """Base vs full fine-tuning vs LoRA on DialogSum, one comparison table, in `minutes` (`tuneval demo`).

    The demo times this machine, then plans how many training and evaluation examples fit
    (`train_examples` / `eval_examples` given are kept). Writes OUT/comparison.{md,json} and
    OUT/report.html; returns {"rows", "report" (the Markdown), "plan", "html" (the page's path)}.
    `console`: a rich Console for its progress (default: stdout)."""
    from tuneval.jobs.budget import check_minutes

    check_minutes(minutes)  # before the imports below (torch, transformers: seconds), so a bad budget fails at once
    from rich.console import Console

    from tuneval.config import DataConfig, EvalConfig
    from tuneval.evaluate.distributed import init_from_env, is_main
    from tuneval.io import check_out_dir
    from tuneval.jobs.demo import run_demo
    from tuneval.typed import check_option

    check_option("--train-examples", train_examples, DataConfig, "train_examples")
    check_option("--eval-examples", eval_examples, EvalConfig, "limit")
    out = Path(out)
    check_out_dir(out)
    init_from_env()
    result = run_demo(model=model, data_dir=data_dir, out=out, precision=precision, minutes=minutes,
                      train_examples=train_examples, eval_examples=eval_examples, console=console or Console())
    if not is_main():
        return None
    return {**result, "html": html_report([out], out / "report.html", title=f"tuneval demo: {model}")}


def sweep(recipe: str | Path, grid: list[str], *, set: list[str] | None = None,  # noqa: A002
          data_dir: str | None = None, out: str | Path | None = None, overwrite: bool = False,
          precision: str | None = None, console=None) -> dict[str, Any]:
    """Train every point of a grid over `recipe` and score it; one table (`tuneval sweep`).

    `grid`: "key=v1,v2,..." items, their product swept (e.g. ["lora.r=1,2,4,8"]); `set`: overrides
    for every point. Writes OUT/sweep.{md,csv,json,png} (default OUT: runs/sweep-RECIPE); points
    finished before are kept unless `overwrite`. Returns {"markdown", "out", ...}."""
    from tuneval.jobs.sweep import run_sweep
    from tuneval.precision import check_precision

    if precision is not None:
        check_precision(precision, "--precision")
    return run_sweep(recipe, grid, list(set or []), out=out, overwrite=overwrite, console=console,
                     data_dir=data_dir, precision=precision)


def forgetting(adapter: str | Path, *, model: str = DEFAULT_MODEL, suite: str = "forgetting",
               tasks: str | None = None, limit: int | None = None, num_fewshot: int | None = None,
               out: str | Path | None = None, tasks_dir: str | Path | None = None, data_dir: str | None = None,
               batch_size: int = 16, seed: int = 1234, bootstrap_iters: int = 1000, chat_template: bool = True,
               precision: str = "auto", model_args: ModelArgs | str | Mapping[str, Any] | None = None,
               on_task: Callable[[dict], None] | None = None) -> dict[str, Any] | None:
    """Score `model` on a suite (or `tasks`) before and after putting `adapter` over the same loaded
    weights; per task the delta and a paired-bootstrap verdict (improved / unchanged / forgot)
    (`tuneval forgetting --adapter`). With an endpoint `model` (see simple_evaluate) the server
    serves both: before is `model_args`' model, after the adapter it serves under the name `adapter`. Writes OUT/before/, OUT/after/, OUT/forgetting.{md,json,png}
    and OUT/report.html (default OUT: runs/forgetting/<adapter's name>); returns the comparison
    with `html` (the page's path). None on processes other than rank 0."""
    from tuneval.config import EvalConfig
    from tuneval.evaluate.distributed import init_from_env, is_main
    from tuneval.io import check_out_dir
    from tuneval.jobs.forgetting import run_forgetting, run_served_forgetting
    from tuneval.models.endpoint import is_endpoint
    from tuneval.typed import check_option

    out = Path(out) if out else Path("runs") / "forgetting" / Path(adapter).resolve().name
    check_option("--batch-size", batch_size, EvalConfig, "batch_size")
    check_out_dir(out)
    init_from_env()
    if is_endpoint(model):  # the base and the adapter served side by side: `adapter` is the served name
        result = run_served_forgetting(model, str(adapter), model_args=model_args, tasks=tasks, suite=suite, out=out,
                                       on_task=on_task, limit=limit, num_fewshot=num_fewshot, tasks_dir=tasks_dir,
                                       data_dir=data_dir, batch_size=batch_size, seed=seed,
                                       bootstrap_iters=bootstrap_iters, chat_template=chat_template)
    else:
        result = run_forgetting(model, adapter, tasks=tasks, suite=suite, limit=limit, num_fewshot=num_fewshot,
                                tasks_dir=tasks_dir, data_dir=data_dir, out=out, batch_size=batch_size, seed=seed,
                                bootstrap_iters=bootstrap_iters, chat_template=chat_template,
                                on_task=on_task if is_main() else None, precision=precision, model_args=model_args)
    if result is None:
        return None
    return {**result, "out": out, "html": html_report([out], out / "report.html", seed=seed,
                                                 title=f"Forgetting: {result['after_label']}")}


def compare_forgetting(before: str | Path, after: str | Path, *, out: str | Path | None = None,
                       bootstrap_iters: int = 1000, seed: int = 1234) -> dict[str, Any]:
    """`forgetting` over two saved `tuneval eval` output directories instead of running a model
    (`tuneval forgetting --before --after`). Default OUT: beside `after`, forgetting-BEFORE-vs-AFTER."""
    from tuneval.jobs.forgetting import compare_dirs

    before, after = Path(before), Path(after)
    out = Path(out) if out else after.parent / f"forgetting-{before.name}-vs-{after.name}"
    result = compare_dirs(before, after, out=out, iters=bootstrap_iters, seed=seed)
    return {**result, "out": out, "html": html_report([out], out / "report.html", seed=seed,
                                                 title=f"Forgetting: {result['after_label']}")}


def scorecard(model: str = DEFAULT_MODEL, adapter: str | Path | None = None, *, scenarios: str | list[str] | None = None,
              limit: int | None = None, out: str | Path | None = None, before: str | Path | None = None,
              after: str | Path | None = None, perturbations: str | list[str] | None = None,
              toxicity_model: str | None = None, toxicity_label: str | None = None, tasks_dir: str | Path | None = None,
              data_dir: str | None = None, batch_size: int = 16, seed: int = 1234, bootstrap_iters: int = 1000,
              precision: str = "auto", model_args: ModelArgs | str | Mapping[str, Any] | None = None,
              on_scenario: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """A HELM-style scorecard (`tuneval scorecard`): accuracy, calibration, robustness, fairness, bias,
    toxicity and efficiency per scenario, each mean with a 95% bootstrap interval; OUT/scorecard.{json,md},
    each variant's results under OUT/<scenario>/<variant>/, and OUT/report.html. With `before` and `after`
    (two scorecard directories) no model runs: after - before per cell with paired intervals
    (OUT/scorecard_compare.{json,md}). `toxicity_model`: a hub id or path of a text classifier; without
    one toxicity is "not measured". Default OUT: runs/scorecard/<model label> (compare: beside `after`)."""
    from tuneval.io import check_out_dir
    from tuneval.jobs.scorecard import compare_scorecards, run_scorecard

    if (before is None) != (after is None):
        raise TunevalError("give both --before and --after (two `tuneval scorecard` output directories)")
    if bootstrap_iters < 0:
        raise TunevalError(f"--bootstrap-iters must be 0 or more, got {bootstrap_iters}")
    if before is not None:
        out = Path(out) if out else Path(after).parent / f"scorecard-{Path(before).name}-vs-{Path(after).name}"
        check_out_dir(out)
        return compare_scorecards(before, after, out=out, bootstrap_iters=bootstrap_iters, seed=seed)
    out = Path(out) if out else Path("runs") / "scorecard" / Path(str(adapter or model)).name
    check_out_dir(out)
    card = run_scorecard(model, adapter, scenarios=scenarios, limit=limit, out=out, tasks_dir=tasks_dir,
                         data_dir=data_dir, batch_size=batch_size, seed=seed, bootstrap_iters=bootstrap_iters,
                         perturbations=perturbations, toxicity_model=toxicity_model, toxicity_label=toxicity_label,
                         precision=precision, model_args=model_args, on_scenario=on_scenario)
    return {**card, "html": html_report([out], out / "report.html", seed=seed, bootstrap_iters=0,
                                        title=f"Scorecard: {card['label']}")}


def html_report(paths: list[str | Path], out: str | Path = "report.html", *, title: str = "tuneval report",
           bootstrap_iters: int = 1000, seed: int = 1234) -> Path:
    """One self-contained HTML page (no network needed) over saved runs, evaluations, demos, sweeps
    and forgetting checks, any mix: tables, charts, curves, samples (`tuneval report`). Returns its path.
    `bootstrap_iters`: resamples for the 95% intervals (0: none)."""
    from tuneval.io import check_out_dir
    from tuneval.report import write_report

    out = Path(out)
    if bootstrap_iters < 0:
        raise TunevalError(f"--bootstrap-iters must be 0 or more, got {bootstrap_iters}")
    if out.is_dir():
        raise TunevalError(f"--out {out}: is a directory; give the HTML file to write (e.g. {out / 'report.html'})")
    check_out_dir(out.parent)
    return write_report(paths, out, iters=bootstrap_iters, seed=seed, title=title)


def merge(run: str | Path, out: str | Path, *, model: str | None = None, overwrite: bool = False,
          precision: str = "auto", model_args: ModelArgs | None = None) -> dict[str, Any]:
    """Fold a run's adapter into its base: a full model plain transformers loads (`tuneval merge`).
    `model`: the base (default: the run's recipe's). Returns what was written (out, base, params, dtype, ...)."""
    from tuneval.serve.merge import merge_run

    return merge_run(run, out, model=model, overwrite=overwrite, precision=precision, model_args=model_args)


def export(run: str | Path, out: str | Path, *, max_shard_size: str = "2GB", adapter_only: bool = False,
           push_to_hub: str | None = None, private: bool = False, overwrite: bool = False, precision: str = "auto",
           model_args: ModelArgs | None = None, format: str = "safetensors", outtypes: list[str] | None = None,
           llama_cpp: str | Path | None = None) -> dict[str, Any]:
    """A run for others: merged (or `adapter_only`) safetensors, tokenizer and a model card in `out`;
    `push_to_hub` "org/name" then uploads it (`private`: a private repo) (`tuneval export`).

    `format="gguf"`: llama.cpp GGUF files instead, one per `outtypes` (f32, f16, bf16, q8_0; default f16),
    converted by llama.cpp's scripts (`llama_cpp`: a llama.cpp checkout, else the installed copy), with
    an Ollama Modelfile; with `adapter_only` a LoRA becomes a GGUF LoRA beside its base as GGUF."""
    from tuneval.serve.export import export_run

    return export_run(run, out, max_shard_size=max_shard_size, adapter_only=adapter_only, push_to_hub=push_to_hub,
                      private=private, overwrite=overwrite, precision=precision, model_args=model_args,
                      format=format, outtypes=outtypes, llama_cpp=llama_cpp)


def start_server(model: str = DEFAULT_MODEL, adapters: list[str] | Mapping[str, str] = (), *,
          adapters_root: str | Path | None = None, host: str = "127.0.0.1", port: int = 8000,
          max_batch_size: int = 16, batch_window_ms: float = 5.0, max_prompt_tokens: int = 1024,
          max_tokens: int = 256, max_queue: int = 256, request_timeout: float = 300.0, api_key: str | None = None,
          log_level: str = "info", precision: str = "auto", model_args: ModelArgs | None = None,
          on_ready: Callable | None = None, on_notice: Callable[[str], None] | None = None) -> None:
    """An OpenAI-compatible server: one base `model`, many adapters, mixed-adapter batches (`tuneval serve`).

    `adapters`: "NAME=RUN" items or {name: run}, loaded at start; `adapters_root`: the directory
    POST /v1/adapters may load from (off if None). `api_key`: required as a Bearer token (needed
    off loopback). Runs until stopped; `on_ready(app, host, port)` once it listens, `on_notice(text)`
    for a warning worth showing (plain HTTP off loopback)."""
    from tuneval.serve.api import ServeSettings
    from tuneval.serve.server import check_options, is_loopback, parse_adapter_specs
    from tuneval.serve.server import serve as run_server

    named = dict(adapters) if isinstance(adapters, Mapping) else parse_adapter_specs(list(adapters))
    settings = ServeSettings(adapters_root=Path(adapters_root) if adapters_root else None,
                             max_batch_size=max_batch_size, batch_window_ms=batch_window_ms,
                             max_prompt_tokens=max_prompt_tokens, max_tokens=max_tokens, max_queue=max_queue,
                             request_timeout=request_timeout, api_key=api_key, precision=precision,
                             model_args=model_args)
    log_level = check_options(host, port, log_level, settings)  # before anything slow
    if not is_loopback(host) and on_notice is not None:
        on_notice(f"binding to {host}: plain HTTP, so the API key and prompts cross the network unencrypted; "
                  "put a TLS proxy in front")
    run_server(model, named, host=host, port=port, settings=settings, log_level=log_level, on_ready=on_ready)


def chat(model: str | None = None, adapter: str | Path | None = None, *, system: str | None = None,
         max_new_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0, precision: str = "auto",
         model_args: ModelArgs | None = None, on_notice: Callable[[str], None] | None = None):
    """A ChatSession with `model` (default: the adapter run's base, else smollm2-135m-instruct) and
    `adapter` over it, loaded as `simple_evaluate` loads it (`tuneval chat`): `session.reply(text,
    on_token=print)` answers and keeps the conversation, `session.reset()` starts over.
    `temperature` 0: greedy; above 0: sampled with `top_p`."""
    from tuneval.serve.chat import check_sampling, open_chat

    check_sampling(max_new_tokens, temperature, top_p)  # before anything slow
    return open_chat(model, adapter, precision=precision, model_args=model_args, system=system,
                     max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, on_notice=on_notice)
