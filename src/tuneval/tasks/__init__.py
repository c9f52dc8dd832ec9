"""The one task model: a YAML per dataset, below training and evaluation alike.

task.py: what a task is (rows, splits, labels, the FLAN template set, the scoring prompt);
registry.py: the built-in YAML files plus a user's `--tasks-dir` (include, task_list, groups,
suites); rows.py: a split's rows from local files or the hub; prompts.py: both prompt families;
mixtures.py: several tasks in one training set. Adding a task is adding a YAML file.
"""

from tuneval.tasks.registry import Registry, Suite, available_tasks, get_task, load_registry, plan
from tuneval.tasks.rows import DATA_DIR_ENV, load_rows, resolve_data_dir
from tuneval.tasks.task import Task

__all__ = ["DATA_DIR_ENV", "Registry", "Suite", "Task", "available_tasks", "get_task", "load_registry", "load_rows",
           "plan", "resolve_data_dir"]
