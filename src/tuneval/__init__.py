"""tuneval: instruction fine-tune and evaluate language models.

`from tuneval import train, evaluate, load` is the Python API (api.py): the same arguments and
the same saved files as the commands. Imported on first use, so `import tuneval` stays cheap.
"""

__version__ = "0.1.0"
__all__ = ["train", "evaluate", "load"]


def __getattr__(name: str):
    if name in __all__:
        from tuneval import api

        return getattr(api, name)
    raise AttributeError(f"module 'tuneval' has no attribute {name!r}")
