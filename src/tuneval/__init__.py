"""tuneval: instruction fine-tune and evaluate language models.

`from tuneval import finetune, simple_evaluate, load` is the Python API (api.py), one function per
command (`finetune` is `tuneval train`, `simple_evaluate` is `tuneval eval`, ...): the same
arguments and the same saved files as the commands. Imported on first use, so `import tuneval`
stays cheap.
"""

__version__ = "0.1.0"
__all__ = ["finetune", "simple_evaluate", "load", "count_parameters", "estimate_memory", "soft_prompt_tokens",
           "demo", "sweep", "forgetting", "compare_forgetting", "scorecard", "html_report", "merge", "export",
           "start_server", "chat", "eval_out_dir", "list_tasks", "ModelArgs"]


def __getattr__(name: str):
    if name in __all__:
        from tuneval import api

        return getattr(api, name)
    raise AttributeError(f"module 'tuneval' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
