"""Your own data as a task: `--data PATH --format F` (or a recipe's `data.path`/`data.dataset`).

The data becomes a task like any other (tasks/task.py, `format` set), so training, mixtures, the
evaluation during training and `tuneval eval` take it through the same code as a built-in task:
conversations trained on every assistant turn, evaluated by generating the last one and scoring
it with ROUGE/BLEU against the data's own reference.
"""

from __future__ import annotations

from pathlib import Path

from tuneval.data.formats import FORMATS
from tuneval.errors import TunevalError
from tuneval.tasks.task import AUTO, Task

DEFAULT_VALIDATION_SHARE = 0.1


def data_task(*, path: str | None = None, dataset: str | None = None, format: str | None = None,
              columns: dict[str, str] | None = None, validation_share: float | None = None, seed: int = 0,
              name: str | None = None, scored_whole: bool = False, where: str = "data",
              sample_by: str = "paragraph", dataset_info: str | None = None) -> Task:
    """A task over a file, a directory or a hub dataset id. For training its `train` split is the
    data less a seeded `validation_share` (default 0.1), held out as `validation`; with
    `scored_whole` (`tuneval eval --data`) every row is scored, as the `test` split. `sample_by`:
    how a .txt file in format text splits into documents. With `dataset_info` (a LLaMA-Factory
    dataset_info.json), `path` is the name of one of its datasets, whose entry says file, format
    and columns (data/dataset_info.py)."""
    if bool(path) == bool(dataset):
        raise TunevalError(f"{where}: give a data path or a hub dataset id (one of them)")
    if format is not None and format not in FORMATS:
        raise TunevalError(f"{where}: format must be one of {', '.join(FORMATS)}, got {format!r}")
    split = "test" if scored_whole else "train"
    task = Task(name="", source=where, output_type="generate_until", format=format or AUTO,
                column_map=columns, metrics=[{"metric": "rouge"}, {"metric": "bleu"}], max_gen_toks=128,
                split_seed=seed, training_split=None if scored_whole else "train", sample_by=sample_by,
                validation_split=None if scored_whole else "validation", test_split=split if scored_whole else None)
    if not scored_whole:
        task.validation_share = validation_share if validation_share is not None else DEFAULT_VALIDATION_SHARE
    if dataset_info:
        return _registered(task, str(path), dataset_info, name, split)
    if path:
        file = Path(path).expanduser()
        if not file.exists():
            raise TunevalError(f"{where}: '{file}' does not exist")
        file = file.resolve()
        task.name = name or file.stem
        task.data_root, task.data_files, task.source = str(file.parent), {split: file.name}, str(file)
    else:
        task.name = name or str(dataset).rstrip("/").split("/")[-1]
        task.dataset_path, task.source = dataset, f"hub:{dataset}"
    return task


def _registered(task: Task, name: str, info: str, run_name: str | None, split: str) -> Task:
    """`task` over the dataset `name` of a LLaMA-Factory dataset_info.json, as its entry describes it."""
    from tuneval.data.dataset_info import read_entry

    entry = read_entry(info, name)
    task.format, task.column_map, task.turn_tags = entry.format, entry.columns, entry.turn_tags
    task.sample_by = entry.sample_by or task.sample_by
    task.name = run_name or name
    task.data_root, task.data_files, task.source = str(entry.path.parent), {split: entry.path.name}, str(entry.path)
    task.metadata["dataset_info"] = f"{entry.info.resolve()}: {name}"
    return task
