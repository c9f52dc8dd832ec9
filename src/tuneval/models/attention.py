"""Run a model under another attention implementation for a while, and give it back as it was.

Evaluation swaps sdpa for one of tuneval's own registered kernels in two places: packed
log-likelihood rows (`sdpa_varlen`, data/varlen_attention.py) and batched decoding (`sdpa_rows`,
evaluate/generation.py). Both only apply over plain sdpa, and both must hand the model back on
sdpa even when scoring fails part way, since the caller goes on using it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def swapped_attention(model, register: Callable[[], str], over: str = "sdpa") -> Iterator[bool]:
    """While inside: the model attends with the implementation `register()` registers and names, if it
    attends with `over` now (else it is left as it is). Yields whether it was swapped."""
    before = getattr(model.config, "_attn_implementation", None)
    swap = before == over
    if swap:
        model.set_attn_implementation(register())
    try:
        yield swap
    finally:
        if swap:
            model.set_attn_implementation(before)
