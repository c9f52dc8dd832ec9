"""`tuneval export`: a run as one directory that others load as it is, with a model card.

What goes out is what `transformers` (or, with `--adapter-only`, `peft`) loads with no tuneval
installed: safetensors weights (sharded past `max_shard_size`, with the index json),
config.json, generation_config.json, the tokenizer, and README.md, a model card with the Hub's
front matter and what a reader needs to trust the numbers: base model, method and settings,
data, the recipe itself, the scores with 95% bootstrap intervals, and the library versions
the run was trained on.

- An adapter run is merged into its base (serve/merge.py's path: fp32 merge, one cast).
- A full fine-tuning run (full weights at RUN's root) is re-saved at the dtype asked.
- BitFit and freeze results (trained tensors of the base, no PEFT config) merge too: they are
  the base with some tensors replaced. They have no adapter PEFT could load alone, so
  `--adapter-only` refuses them; bottleneck adapters add layers transformers does not know,
  so they export neither way.

GGUF (`--format gguf`, serve/gguf.py): the same merged checkpoint is written to a scratch directory
and converted by llama.cpp's own `convert_hf_to_gguf.py` at each `--outtype` (model-Q8_0.gguf, ...),
with the tokenizer and chat template inside; with `--adapter-only` a LoRA adapter becomes a GGUF LoRA
(`convert_lora_to_gguf.py`) beside its base as GGUF. The directory also gets the tokenizer files (so
`tuneval eval --model local-completions --model-args tokenizer=OUT` sends the same token ids), an
Ollama `Modelfile` and the card with the llama.cpp and Ollama commands.

A run trained under a named chat template (data.chat_template) exports with it: the tokenizer saved here
carries the run's chat_template.jinja, which transformers, vLLM and llama.cpp's converter (into the GGUF's
`tokenizer.chat_template`) all read.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tuneval.errors import TunevalError, first_line
from tuneval.io import atomic_dir
from tuneval.results import EvalDir
from tuneval.runs import CHAT_TEMPLATE_FILE, EVAL, MARKER, METRICS, PEFT_CONFIG, TENSORS_FILE, RunDir
from tuneval.serve.adapters import AdapterDir, check_adapter_dir
from tuneval.serve.merge import base_model_of, check_mergeable, check_out, merged_model

CARD = "README.md"
FORMATS = ("safetensors", "gguf")
GGUF_OUTTYPES = {"bfloat16": "bf16", "float16": "f16", "float32": "f32"}  # the card's --outtype for a dtype
BOOTSTRAP_ITERS = 1000
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class Source:
    """What is being exported: a full model, a PEFT adapter, or trained tensors of the base."""

    kind: str  # "full" | "peft" | "tensors"
    run: Path  # as given: a run directory, or an old run's adapter/
    result: Path  # where the result's files are (the run's root; an old run's model/ or adapter/), resolved
    base: str | None  # the base model (None: a full run whose recipe is gone)
    method: str
    recipe_run: RunDir  # the run the result came from (config.yaml, metrics.json, eval/)
    vetted: AdapterDir | None = None  # kind "peft"


def _source(run: Path, adapter_only: bool) -> Source:
    """Classify `run` and refuse what cannot be exported the way asked, before anything loads."""
    from tuneval.methods.common import read_marker

    if not run.is_dir():
        raise TunevalError(f"{run}: no such directory")
    rd = RunDir(run)
    method = str((rd.config() or {}).get("method") or "")
    if rd.has_model:
        if adapter_only:
            raise TunevalError(f"{run}: a full fine-tuning run has no adapter; export it without --adapter-only")
        return Source("full", run, rd.result_dir.resolve(), rd.base_model(), method or "full", rd)
    adapter = RunDir.adapter_files(run).resolve()
    if not rd.config_file.is_file() and RunDir.of(run) != rd:  # an old run's adapter/ given: the run is above
        rd = RunDir.of(run)
        method = str((rd.config() or {}).get("method") or "")
    marker = read_marker(adapter) or {}
    method = method or str(marker.get("method") or "")
    if marker and not (adapter / PEFT_CONFIG).is_file():
        if adapter_only:
            raise TunevalError(f"{run}: a '{method}' result holds trained tensors of the base, not a PEFT adapter, so "
                               "PEFT cannot load it alone; export the merged model (without --adapter-only)")
        base = rd.base_model()
        if not base:
            raise TunevalError(f"{run}: cannot tell which base model the result belongs to (no config.yaml with 'model')")
        return Source("tensors", run, adapter, base, method, rd)
    vetted = check_adapter_dir(run)
    if not adapter_only:
        check_mergeable(vetted, run, instead=f"Export the adapter alone instead (tuneval export {run} --adapter-only)")
    return Source("peft", run, vetted.path, base_model_of(run, vetted), method or vetted.peft_type.lower(), rd, vetted)


def _model_args(model_args, dtype: str | None):
    """ModelArgs with `dtype` (the --dtype of export) over model_args.dtype."""
    from tuneval.model_args import DTYPE_NAMES, ModelArgs

    args = model_args or ModelArgs()
    if dtype is None:
        return args
    if dtype not in DTYPE_NAMES:
        raise TunevalError(f"--dtype: expected one of {', '.join(DTYPE_NAMES)}, got {dtype!r}")
    return dataclasses.replace(args, dtype=dtype)


def _check_shard_size(max_shard_size: int | str) -> None:
    from transformers.utils.hub import convert_file_size_to_int

    try:
        size = convert_file_size_to_int(max_shard_size)
    except (ValueError, TypeError, AttributeError):
        size = 0
    if size <= 0:
        raise TunevalError(f"--max-shard-size: expected a whole number and a unit (e.g. 2GB, 500MB, 1GiB), "
                           f"got {max_shard_size!r}")


def hub_id(base: str | None) -> str | None:
    """The Hub id of the base where there is one: an embedded model's original repo, or `base` itself."""
    from tuneval.models.catalogue import EMBEDDED

    if not base:
        return None
    if base in EMBEDDED:  # its note starts with the repo the GGUF was made from
        base = EMBEDDED[base].note.split(",")[0].strip()
    elif Path(base).expanduser().exists():
        return None
    return base if HUB_ID.match(base) else None


# ---- writing the weights -----------------------------------------------------------------------

def _load_merged(source: Source, args):
    """(model to save, loaded record): the base with the result folded in, or the full model, in fp32."""
    from tuneval.models import load_model

    fp32 = dataclasses.replace(args, dtype="float32")
    if source.kind == "full":
        loaded = load_model(str(source.result), precision="fp32", args=fp32)
        return loaded.model, loaded
    if source.kind == "peft":
        return merged_model(source.run, source.vetted, source.base, args)
    from tuneval.methods.loading import load_adapter
    from tuneval.models.templates import use_saved_template

    loaded = load_model(source.base, precision="fp32", args=fp32)
    use_saved_template(loaded.tokenizer, source.result)
    keys = set(loaded.model.state_dict())
    net = load_adapter(loaded, source.result)
    if set(net.state_dict()) != keys:
        raise TunevalError(f"{source.run}: a '{source.method}' result adds layers the base model does not have, "
                           "which transformers cannot load from a plain checkpoint; it cannot be exported")
    return net, loaded


def _write_model(source: Source, tmp: Path, args, precision: str, max_shard_size: int | str) -> dict[str, Any]:
    from tuneval.console import progress

    with progress(f"exporting {source.result}", 3) as shown:  # load + merge, cast, save: lines when nobody watches
        model, loaded = _load_merged(source, args)
        shown.advance()
        dtype = args.torch_dtype(precision)
        model = model.to(dtype)
        shown.advance()
        model.save_pretrained(tmp, max_shard_size=max_shard_size)  # safetensors; an index json once sharded
        loaded.tokenizer.save_pretrained(tmp)
        if not (tmp / "generation_config.json").is_file():
            model.generation_config.save_pretrained(tmp)
        shown.advance()
    return {"arch": loaded.arch, "dtype": str(dtype).removeprefix("torch."),
            "params": sum(p.numel() for p in model.parameters())}


def _write_adapter(source: Source, tmp: Path, args) -> dict[str, Any]:
    """The PEFT adapter as PEFT saves it, its base named as the Hub knows it, plus the base's tokenizer.

    The adapter keeps its saved dtype (PEFT trains and keeps adapters in fp32) unless a dtype is named."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer, GenerationConfig

    from tuneval.models import load_config
    from tuneval.models.templates import use_saved_template

    config = dict(source.vetted.config)
    config["base_model_name_or_path"] = hub_id(source.base) or config.get("base_model_name_or_path") or source.base
    tensors = load_file(str(source.result / TENSORS_FILE))
    if args.dtype != "auto":
        want = getattr(torch, args.dtype)
        tensors = {k: v.to(want) if v.is_floating_point() else v for k, v in tensors.items()}
    save_file(tensors, str(tmp / TENSORS_FILE), metadata={"format": "pt"})
    (tmp / PEFT_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    if (source.result / MARKER).is_file():  # lets `tuneval eval --adapter` rebuild it as its method does (QLoRA)
        (tmp / MARKER).write_bytes((source.result / MARKER).read_bytes())
    base_config, arch, path, extra = load_config(source.base, args)
    tokenizer = AutoTokenizer.from_pretrained(path, **extra)
    use_saved_template(tokenizer, source.result)  # the chat template the run trained with, where it saved one
    tokenizer.save_pretrained(tmp)
    try:
        generation = GenerationConfig.from_pretrained(path, **extra)
    except OSError:  # the base has no generation_config.json: transformers derives one from config.json
        generation = GenerationConfig.from_model_config(base_config)
    generation.save_pretrained(tmp)
    dtypes = sorted({str(v.dtype).removeprefix("torch.") for v in tensors.values()})
    return {"arch": arch, "dtype": ",".join(dtypes), "params": sum(v.numel() for v in tensors.values())}


def _tokenizer_files(directory: Path) -> list[Path]:
    """A saved tokenizer's files in `directory` (not the weights or config.json)."""
    return [f for f in directory.iterdir()
            if f.is_file() and ("tokenizer" in f.name or f.name in (CHAT_TEMPLATE_FILE, "special_tokens_map.json"))]


def _keep_tokenizer(scratch: Path, tmp: Path) -> None:
    """The tokenizer files beside the GGUF, so clients can tokenize as the model does."""
    for f in _tokenizer_files(scratch):
        shutil.copy2(f, tmp / f.name)


def _base_dir(base: str, args) -> Path:
    """The base model as a local Hugging Face directory, which convert_lora_to_gguf.py reads."""
    from tuneval.models import load_config

    _, _, path, extra = load_config(base, args)
    if extra.get("gguf_file") or not Path(path).is_dir():
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(str(path), local_files_only=True, revision=extra.get("revision")))
        except Exception as e:  # not in the hub cache, or only as a GGUF: one line
            raise TunevalError(f"base model '{base}' is not a local Hugging Face directory, which llama.cpp's "
                               f"LoRA converter needs ({first_line(e)})") from None
    return Path(path)


def _write_gguf(source: Source, tmp: Path, args, outtypes: list[str], converter: Path) -> dict[str, Any]:
    """model-<TYPE>.gguf per outtype from the merged fp32 checkpoint, written first to a scratch directory."""
    from tuneval.console import progress
    from tuneval.serve import gguf

    scratch = _scratch(source, tmp)
    written = _write_model(source, scratch, dataclasses.replace(args, dtype="float32"), "fp32", "100GB")
    files = []
    with progress("converting to GGUF", len(outtypes)) as shown:
        for t in outtypes:
            files.append(gguf.convert_model(scratch, tmp / gguf.file_name("model", t), t, converter).name)
            shown.advance()
    _keep_tokenizer(scratch, tmp)
    shutil.rmtree(scratch.parent)
    (tmp / "Modelfile").write_text(gguf.modelfile(_pick(files)), encoding="utf-8")
    return {**written, "dtype": ",".join(t.upper() for t in outtypes), "gguf": files}


def _write_gguf_lora(source: Source, tmp: Path, args, outtypes: list[str], converter: Path) -> dict[str, Any]:
    """adapter-<TYPE>.gguf (a GGUF LoRA) and base-<TYPE>.gguf per outtype, for llama.cpp's --lora."""
    from tuneval.console import progress
    from tuneval.serve import gguf

    if source.vetted is None or source.vetted.peft_type != "LORA":
        kind = source.vetted.peft_type if source.vetted is not None else source.method
        raise TunevalError(f"{source.run}: llama.cpp loads LoRA adapters only, not {kind}; export the merged "
                           "model as GGUF instead (without --adapter-only)")
    scratch = _scratch(source, tmp)
    written = _write_adapter(source, scratch, args)
    base = _base_with_template(source, _base_dir(source.base, args), scratch)
    adapters, bases = [], []
    with progress("converting to GGUF", 2 * len(outtypes)) as shown:
        for t in outtypes:
            adapters.append(gguf.convert_lora(scratch, base, tmp / gguf.file_name("adapter", t), t, converter).name)
            shown.advance()
            bases.append(gguf.convert_model(base, tmp / gguf.file_name("base", t), t, converter).name)
            shown.advance()
    _keep_tokenizer(scratch, tmp)
    shutil.rmtree(scratch.parent)
    (tmp / "Modelfile").write_text(gguf.modelfile(_pick(bases), _pick(adapters)), encoding="utf-8")
    return {**written, "dtype": ",".join(t.upper() for t in outtypes), "gguf": adapters + bases}


def _base_with_template(source: Source, base: Path, scratch: Path) -> Path:
    """The base as the converter reads it. Where the run saved a chat template of its own (a named one, say),
    the base's files are linked into a directory named as the base (the GGUF's general.name), with the
    tokenizer files the adapter export saved (the base's tokenizer, the run's template) over its own: so
    base-<TYPE>.gguf, which llama.cpp takes the template from, carries the template the run trained with."""
    from tuneval.models.templates import saved_template

    if saved_template(source.result) is None:
        return base
    linked = scratch.parent / ".base" / base.name  # beside the adapter's scratch, removed with it
    linked.mkdir(parents=True)
    for f in base.iterdir():
        if f.is_file():
            (linked / f.name).symlink_to(f.resolve())
    for f in _tokenizer_files(scratch):
        (linked / f.name).unlink(missing_ok=True)
        shutil.copy2(f, linked / f.name)
    return linked


def _scratch(source: Source, tmp: Path) -> Path:
    """The checkpoint the converter reads, removed before `out` appears; named after the run, since the
    converter takes the GGUF's general.name from the directory's name."""
    scratch = tmp / ".scratch" / source.recipe_run.path.resolve().name
    scratch.mkdir(parents=True)
    return scratch


def _pick(files: list[str]) -> str:
    """The file a Modelfile and the card's commands use: Q8_0 where written, else the first."""
    return next((f for f in files if "-Q8_0." in f), files[0])


def push(folder: Path, repo_id: str, private: bool) -> str:
    """Create the Hub repo (if new) and upload `folder`: the one place tuneval talks to the Hub."""
    from huggingface_hub import HfApi

    try:
        api = HfApi()
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                          commit_message="Upload model exported by tuneval")
    except Exception as e:  # no network, no token, no rights: one line, the export stays on disk
        raise TunevalError(f"--push-to-hub {repo_id}: upload failed ({first_line(e)}); the export is in {folder}") from None
    return str(url)


def _check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise TunevalError(f"--push-to-hub {repo_id!r}: not a Hub repo id ({first_line(e)})") from None


def export_run(run: str | Path, out: str | Path, *, dtype: str | None = None, max_shard_size: int | str = "2GB",
               adapter_only: bool = False, push_to_hub: str | None = None, private: bool = False,
               overwrite: bool = False, precision: str = "auto", model_args=None, format: str = "safetensors",
               outtypes: list[str] | None = None, llama_cpp: str | Path | None = None) -> dict[str, Any]:
    """Export a run to `out` (see the module docstring); `push_to_hub`: then upload it to that Hub repo.

    safetensors: the weights in `dtype` (else model_args.dtype, else the precision policy's dtype);
    `--adapter-only` keeps the adapter's own dtype unless one is named. gguf: one file per `outtypes`
    (default f16), converted by llama.cpp's scripts found at `llama_cpp` (serve/gguf.py). Everything is
    checked before the model loads, and `out` appears whole or not at all."""
    from tuneval.precision import resolve_precision
    from tuneval.serve import gguf

    if format not in FORMATS:
        raise TunevalError(f"--format: expected one of {', '.join(FORMATS)}, got {format!r}")
    precision = resolve_precision(precision)
    from tuneval.methods.loading import run_model_args

    args = _model_args(run_model_args(run, model_args), dtype)  # the run's own model_args under the flags given
    _check_shard_size(max_shard_size)
    if push_to_hub is not None:
        _check_repo_id(push_to_hub)
    converter = None
    if format == "gguf":
        outtypes, converter = gguf.check_outtypes(outtypes or ["f16"]), gguf.converter_dir(llama_cpp)
    run, out = Path(run), Path(out)
    source = _source(run, adapter_only)
    check_out(out, overwrite, source.result)
    info = _info(source, run, out, adapter_only, precision, format)
    with atomic_dir(out) as tmp:
        info.update(_write(source, tmp, args, precision, max_shard_size, adapter_only, outtypes, converter))
        (tmp / CARD).write_text(model_card(source, info, out), encoding="utf-8")
    info["files"] = sorted(p.name for p in out.iterdir())
    if push_to_hub is not None:
        info["url"] = push(out, push_to_hub, private)
    return info


def _info(source: Source, run: Path, out: Path, adapter_only: bool, precision: str, format: str) -> dict[str, Any]:
    from importlib import metadata

    return {"run": str(run), "out": str(out), "kind": "adapter" if adapter_only else
            ("full" if source.kind == "full" else "merged"), "method": source.method, "base": source.base,
            "precision": precision, "format": format, "tuneval": metadata.version("tuneval")}


def _write(source: Source, tmp: Path, args, precision: str, max_shard_size, adapter_only: bool,
           outtypes: list[str] | None, converter: Path | None) -> dict[str, Any]:
    if converter is not None:
        write = _write_gguf_lora if adapter_only else _write_gguf
        return write(source, tmp, args, outtypes, converter)
    if adapter_only:
        return _write_adapter(source, tmp, args)
    return _write_model(source, tmp, args, precision, max_shard_size)


# ---- the model card ----------------------------------------------------------------------------

def _front_matter(source: Source, info: dict[str, Any]) -> str:
    meta: dict[str, Any] = {}
    if hub_id(source.base):
        meta["base_model"] = hub_id(source.base)
    if info.get("format") == "gguf":
        meta["tags"] = ["tuneval", source.method, "gguf", "llama.cpp"]
    else:
        meta["library_name"] = "peft" if info["kind"] == "adapter" else "transformers"
        meta["tags"] = ["tuneval", source.method]
    meta["pipeline_tag"] = "text2text-generation" if info["arch"] == "seq2seq" else "text-generation"
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def _settings(source: Source, recipe: dict[str, Any]) -> dict[str, Any]:
    """The method's options: the recipe's section for it, else the marker's, else PEFT's config."""
    from tuneval.methods.common import read_marker

    if isinstance(recipe.get(source.method), dict):
        return recipe[source.method]
    marker = read_marker(source.result) if source.kind != "full" else None
    if marker and marker.get("settings"):
        return marker["settings"]
    if source.vetted is not None:
        keep = ("peft_type", "r", "lora_alpha", "lora_dropout", "target_modules", "num_virtual_tokens", "use_dora")
        return {k: v for k, v in source.vetted.config.items() if k in keep and v is not None}
    return {}


def _yaml_block(data: Any) -> list[str]:
    return ["```yaml", yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip(), "```"]


def _describe(source: Source, info: dict[str, Any], recipe: dict[str, Any]) -> list[str]:
    from tuneval.models.catalogue import EMBEDDED

    what = {"adapter": f"the {getattr(source.vetted, 'peft_type', '')} adapter alone (load it over the base with PEFT)",
            "full": "a full fine-tune of the base", "merged": "the base with the trained result merged in"}[info["kind"]]
    lines = [f"Exported by tuneval {info['tuneval']} from the run `{source.recipe_run.path.name}`: {what}; "
             + (f"GGUF files {', '.join(info.get('gguf', []))} for llama.cpp and Ollama." if info.get("format") == "gguf"
              else f"weights in {info['dtype']} safetensors."), "", "## Base model", ""]
    base = source.base or "(not recorded)"
    lines.append(f"`{base}`" + (f" (Hub: [{hub_id(base)}](https://huggingface.co/{hub_id(base)}))"
                                 if hub_id(base) and hub_id(base) != base else ""))
    if base in EMBEDDED:
        lines += ["", f"tuneval's embedded copy: {EMBEDDED[base].note}; trained on those weights."]
    lines += ["", "## Method", "", f"`{source.method}`" + (" (full fine-tuning: every weight trained)"
                                                          if source.kind == "full" else "")]
    settings = _settings(source, recipe)
    if settings:
        lines += ["", *_yaml_block(settings)]
    return lines


def _data(recipe: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    data, ev = recipe.get("data") or {}, recipe.get("eval") or {}
    mixture = recipe.get("mixture") or {}
    tasks = [t.get("task") for t in mixture.get("tasks") or [] if isinstance(t, dict)] or [recipe.get("task")]
    lines = ["## Data", "", f"- task{'s' if len(tasks) > 1 else ''}: " + ", ".join(f"`{t}`" for t in tasks if t)
             + (f" (mixed: {mixture.get('strategy')})" if len(tasks) > 1 else "")]
    shown = metrics.get("train_examples", data.get("train_examples"))
    lines.append(f"- training examples: {shown if shown is not None else 'all'} of split "
                 f"`{data.get('train_split', 'train')}`")
    if ev:
        lines.append(f"- evaluation: split `{ev.get('split', 'validation')}`, "
                     + (f"first {ev['limit']} examples" if ev.get("limit") else "all examples"))
    return lines


def _training(metrics: dict[str, Any]) -> list[str]:
    keys = [("train_loss", "training loss"), ("global_step", "steps"), ("train_examples", "training examples"),
            ("trainable_params", "trainable parameters"), ("trainable_percent", "trainable %"),
            ("best_step", "best step"), ("best_metric", f"best {metrics.get('metric_for_best_model') or 'score'}"),
            ("train_seconds", "training seconds"), ("train_tokens_per_second", "tokens/s"),
            ("peak_memory_mb", "peak memory (MB)")]
    rows = [f"| {label} | {_value(metrics[k])} |" for k, label in keys if metrics.get(k) is not None]
    loss = (metrics.get("eval") or {}).get("loss")
    if loss is not None:
        rows.append(f"| validation loss (result) | {_value(loss)} |")
    return ["### Training", "", "| | |", "|---|---|", *rows] if rows else []


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def intervals(results: dict[str, Any], iters: int = BOOTSTRAP_ITERS) -> tuple[dict[str, dict[str, float]], int]:
    """({metric: {ci_low, ci_high, stderr}}, resamples): the 95% percentile bootstrap over the saved examples.

    The intervals results.json carries where it has them; else they are recomputed by the
    harness's own bootstrap for per-item metrics (ROUGE, acc, token F1, ...) and a multiple-choice
    task's corpus metrics. BLEU and chrF of generated text, corpus statistics that take minutes
    to re-tokenise on every resample, are then left to `tuneval report`, which bootstraps them
    from saved n-gram counts."""
    from tuneval.metrics.registry import GEN_METRICS, Scorer, bootstrap_ci

    saved = {k: v for k, v in (results.get("bootstrap") or {}).items() if isinstance(v, dict)}
    if saved:
        return saved, int(results["bootstrap"].get("iterations") or iters)
    examples = results.get("examples") or []
    kind = results.get("output_type") or "generate_until"  # generation results did not always say so
    specs = [s for s in results.get("metric_list") or []
             if kind == "multiple_choice" or getattr(GEN_METRICS.get(s["metric"]), "items", None) is not None]
    if not specs and kind == "generate_until" and all(isinstance(e, dict) and "rouge" in e for e in examples):
        specs = [{"metric": "rouge"}]  # a summarisation result: ROUGE saved per example
    if not examples or not specs or iters < 1:
        return {}, iters
    return bootstrap_ci(Scorer(kind, specs, examples), iters, _seed(results)), iters


def _seed(results: dict[str, Any]) -> int:
    """The results' own seed, else the harness's (and the report's) default."""
    from tuneval.evaluate.harness import DEFAULT_SEED

    return int(results.get("seed") or DEFAULT_SEED)


def _scores(results: dict[str, Any], where: str) -> list[str]:
    from tuneval.metrics.text import HEADLINE, fmt

    got = results.get("metrics") or {}
    shown = results.get("higher_is_better") or {}  # a task's own metrics, without their parts (precision, recall)
    names = [m for m in shown if m in got] or [m for m in HEADLINE if m in got] or [
        m for m, v in got.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    ci, iters = intervals(results)
    n = results.get("num_examples", len(results.get("examples") or []))
    lines = [f"### `{results.get('task', '?')}` ({results.get('split', '?')} split, {n} examples; `{where}`)", "",
             "| metric | value | 95% interval |", "|---|---|---|"]
    none = "- (corpus statistic: see `tuneval report`)" if ci else "-"
    for m in names:
        c = ci.get(m)
        span = f"[{fmt(m, c['ci_low'])}, {fmt(m, c['ci_high'])}]" if c else none
        lines.append(f"| {m} | {fmt(m, got[m])} | {span} |")
    if ci:
        lines += ["", f"95% percentile bootstrap over the examples ({iters} resamples, seed {_seed(results)})."]
    return lines + ["", "ROUGE F1 in [0, 1]; BLEU and chrF (sacrebleu, corpus) in [0, 100]."]


def _metrics_section(rd: RunDir, metrics: dict[str, Any]) -> list[str]:
    lines = ["## Metrics", ""]
    training = _training(metrics)
    lines += training + ([""] if training else [])
    found = sorted([EvalDir(rd.eval_dir).results_file] + list(rd.eval_dir.glob(f"*/{EvalDir.RESULTS}"))
                   if rd.eval_dir.is_dir() else [])
    for f in found:
        if not f.is_file():
            continue
        try:
            results = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise TunevalError(f"{f}: cannot read as JSON ({e})") from None
        lines += _scores(results, str(f.relative_to(rd.path))) + [""]
    if not training and len(lines) == 2:
        lines += [f"No {METRICS} or {EVAL}/{EvalDir.RESULTS} in the run: no scores to show.", ""]
    return lines


def _versions(metrics: dict[str, Any], tuneval_version: str) -> list[str]:
    versions = dict(metrics.get("versions") or {})
    rows = [f"| {k} | {v} |" for k, v in versions.items()]
    lines = ["## Machine and library versions", "",
             f"Recorded when the run trained ({METRICS}); exported with tuneval {tuneval_version}.", ""]
    if rows:
        lines += ["| | |", "|---|---|", *rows]
    else:
        lines.append("The run recorded no versions (trained before tuneval saved them).")
    labels = {"device": "device", "torch_threads": "torch threads", "precision": "precision", "dtype": "base weights"}
    extra = [f"{label}: {metrics[k]}" for k, label in labels.items() if metrics.get(k) is not None]
    if extra:
        lines += ["", "Trained with " + ", ".join(extra) + "."]
    return lines


def _usage(source: Source, info: dict[str, Any], out: Path) -> list[str]:
    seq2seq = info["arch"] == "seq2seq"
    if info["kind"] == "adapter":
        cls = "AutoPeftModelForSeq2SeqLM" if seq2seq else "AutoPeftModelForCausalLM"
        code = [f"from peft import {cls}", "from transformers import AutoTokenizer", "",
                f'model = {cls}.from_pretrained("{out.name}")  # loads the base named in {PEFT_CONFIG}',
                f'tokenizer = AutoTokenizer.from_pretrained("{out.name}")']
    else:
        cls = "AutoModelForSeq2SeqLM" if seq2seq else "AutoModelForCausalLM"
        code = [f"from transformers import {cls}, AutoTokenizer", "",
                f'model = {cls}.from_pretrained("{out.name}", dtype="auto")',
                f'tokenizer = AutoTokenizer.from_pretrained("{out.name}")']
    return ["## How to load", "", "```python", *code, "```"]


def _gguf(source: Source, info: dict[str, Any], out: Path) -> list[str]:
    """How to get a GGUF from this safetensors export: tuneval converts with llama.cpp's own script."""
    if info["kind"] == "adapter" and (source.vetted is None or source.vetted.peft_type != "LORA"):
        kind = source.vetted.peft_type if source.vetted is not None else source.method
        return ["## GGUF", "", f"llama.cpp loads LoRA adapters only: for this {kind} adapter, export the "
                "merged model with `--format gguf` (without --adapter-only)."]
    flag = " --adapter-only" if info["kind"] == "adapter" else ""
    outtype = GGUF_OUTTYPES.get(info["dtype"], "f16")
    return ["## GGUF", "", "For llama.cpp, Ollama or LM Studio, tuneval converts with llama.cpp's own "
            "`convert_hf_to_gguf.py` (installed once by `python -m tuneval.serve.gguf install`):", "", "```sh",
            f"tuneval export {source.run} --out {out.name}-gguf{flag} --format gguf --outtype {outtype}", "```"]


def _gguf_usage(source: Source, info: dict[str, Any], out: Path) -> list[str]:
    """How to run, chat with and evaluate the GGUF files: llama.cpp, Ollama, tuneval against llama-server."""
    files = info.get("gguf") or []
    if info["kind"] == "adapter":
        base = _pick([f for f in files if f.startswith("base-")])
        adapter = _pick([f for f in files if f.startswith("adapter-")])
        model, alias = f"-m {base} --lora {adapter}", Path(adapter).stem
    else:
        model, alias = f"-m {_pick(files)}", Path(_pick(files)).stem
    server = f"llama-server {model} --alias {alias} --port 8080"
    return ["## Run with llama.cpp", "", "The tokenizer and chat template are inside each file.", "", "```sh",
            f"llama-cli {model} -cnv      # chat in the terminal", f"{server}   # OpenAI-compatible server", "```",
            "", "## Run with Ollama", "", "```sh", f"cd {out.name} && ollama create my-model -f Modelfile",
            "ollama run my-model", "```", "", "## Evaluate it where it runs", "",
            "Against the llama-server above, with this directory's tokenizer so that the prompts are the same "
            "token ids a transformers evaluation sends:", "", "```sh",
            f"tuneval eval --task dialogsum --model local-completions --model-args "
            f"base_url=http://127.0.0.1:8080/v1,model={alias},tokenizer={out}", "```",
            "", f"Converted by llama.cpp's scripts from llama-cpp-python {_llama_cpp_version()}'s sdist; outtypes: "
            f"{info['dtype']}."]


def _llama_cpp_version() -> str:
    from tuneval.serve.gguf import LLAMA_CPP_PYTHON

    return LLAMA_CPP_PYTHON


def model_card(source: Source, info: dict[str, Any], out: Path) -> str:
    """README.md: the Hub's front matter, then what was trained, on what, how, and how well."""
    rd = source.recipe_run
    recipe = rd.config() or {}
    metrics = rd.metrics() if rd.metrics_file.is_file() else {}
    metrics = metrics if isinstance(metrics, dict) else {}
    parts = [_front_matter(source, info), f"# {out.name}", "", *_describe(source, info, recipe), "",
             *_data(recipe, metrics), "", "## Recipe", "",
             *(["`config.yaml` of the run, as it trained:", "", "```yaml",
                rd.config_file.read_text(encoding="utf-8").rstrip(), "```"] if rd.config_file.is_file()
               else ["The run has no config.yaml."]), "",
             *_metrics_section(rd, metrics), *_versions(metrics, info["tuneval"]), "",
             *(_gguf_usage(source, info, out) if info.get("format") == "gguf"
                else [*_usage(source, info, out), "", *_gguf(source, info, out)])]
    return "\n".join(parts).rstrip() + "\n"
