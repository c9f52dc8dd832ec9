"""Options several commands share: how a model's weights are loaded (model_args.py).

`eval`, `forgetting`, `serve` and `merge` build a ModelArgs from them (`model_args_from`);
`train` turns them into overrides of the recipe's `model_args.*` (`model_args_overrides`).
"""

from __future__ import annotations

import json
from typing import Optional

import typer

from tuneval.errors import TunevalError


def dtype_option():
    return typer.Option(None, "--dtype", help="Weights' dtype: auto (the precision policy's; training: fp32 master "
                                              "weights), bfloat16, float16 (inference only) or float32.")


def revision_option():
    return typer.Option(None, "--revision", help="Hub branch, tag or commit of the model.")


def trust_remote_code_option():
    return typer.Option(False, "--trust-remote-code", help="Run the model repository's own code (off by default).")


def attn_implementation_option():
    return typer.Option(None, "--attn-implementation", help="eager, sdpa, flash_attention_2, ... (default: the model's).")


def model_args_from(dtype: Optional[str], revision: Optional[str], trust_remote_code: bool,
                    attn_implementation: Optional[str]):
    """A checked ModelArgs from the flags; a bad value is one line naming its flag."""
    from tuneval.model_args import ModelArgs
    from tuneval.typed import value_problems

    args = ModelArgs(dtype=dtype or "auto", revision=revision, trust_remote_code=trust_remote_code,
                     attn_implementation=attn_implementation)
    for key, problem in value_problems(args):
        raise TunevalError(f"--{key.replace('_', '-')} {problem}")
    return args


def model_args_overrides(dtype: Optional[str], revision: Optional[str], trust_remote_code: bool,
                         attn_implementation: Optional[str]) -> list[str]:
    """`--set model_args.KEY=VALUE` for each flag given (values JSON-quoted, so a revision stays a string)."""
    given = {"dtype": dtype, "revision": revision, "trust_remote_code": trust_remote_code or None,
             "attn_implementation": attn_implementation}
    return [f"model_args.{k}={json.dumps(v)}" for k, v in given.items() if v is not None]
