"""Many adapters over one base: an adapter bank with mixed-adapter batches, merging, and a server.

    from tuneval.serve import AdapterBank, Row
    bank = AdapterBank(load_model("smollm2-135m-instruct"))
    bank.load("sum", "runs/dialogsum-lora")
    bank.generate([Row(ids, "sum"), Row(ids, None)])  # one call, one adapter per row

Submodules import lazily: the server's web stack loads only when the server runs.
"""

from __future__ import annotations

__all__ = ["AdapterBank", "Output", "Row", "merge_run"]


def __getattr__(name: str):
    if name in ("AdapterBank", "Output", "Row"):
        from tuneval.serve import bank

        return getattr(bank, name)
    if name == "merge_run":
        from tuneval.serve.merge import merge_run

        return merge_run
    raise AttributeError(name)
