"""What the commands share: the typer app, its consoles, quiet third-party output, and the
options several take. How a model's weights are loaded (--precision, and --dtype, --revision,
--trust-remote-code, --attn-implementation) is one typed ModelArgs (model_args.py), built from
the flags by `model_args_from` and handed to the api.py function as it is, training included.
The commands themselves are in cli.py (training, evaluation, the jobs) and cli_serve.py (using a
result: merge, export, serve, chat), registered by cli.COMMANDS.
"""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console

from tuneval.errors import TunevalError
from tuneval.model_args import ModelArgs
from tuneval.typed import value_problems


class _Interrupted(BaseException):
    """Ctrl-C on its way to main(): typer turns a KeyboardInterrupt into a silent exit 130."""


class _Group(typer.core.TyperGroup):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted() from None


app = typer.Typer(cls=_Group, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Instruction fine-tune and evaluate language models.")
console = Console()
err = Console(stderr=True)
PRECISION_HELP = "auto (bf16 where the hardware computes it natively, else fp32), bf16 or fp32."


def precision_option(default: Optional[str] = "auto"):
    return typer.Option(default, "--precision", help=PRECISION_HELP + (" Default: the recipe's." if default is None else ""))


VERBOSE = False  # --verbose: third-party warnings and logs stay visible


def quiet_libraries() -> None:
    """Normal output is tuneval's own: no third-party warnings, logs or load bars (see --verbose).

    Called again by each command after its imports, since transformers resets its verbosity
    when first imported.
    """
    if VERBOSE:
        return
    import logging
    import warnings

    warnings.simplefilter("ignore")  # library deprecations and "proceed at your own risk" notes
    # bitsandbytes logs a WARNING at import on bf16 CPUs when its optional hub kernel package is missing.
    for name in ("bitsandbytes", "accelerate", "peft", "torch.distributed"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


@app.callback()
def _options(verbose: bool = typer.Option(False, "--verbose", "-v", help="Show third-party warnings and logs.")):
    """Instruction fine-tune and evaluate language models."""
    global VERBOSE
    VERBOSE = verbose
    quiet_libraries()


def dtype_option():
    return typer.Option(None, "--dtype", help="Weights' dtype: auto (the precision policy's; training: fp32 master "
                                              "weights), bfloat16, float16 (inference only) or float32.")


def revision_option():
    return typer.Option(None, "--revision", help="Hub branch, tag or commit of the model.")


def trust_remote_code_option():
    return typer.Option(False, "--trust-remote-code", help="Run the model repository's own code (off by default).")


def attn_implementation_option():
    return typer.Option(None, "--attn-implementation", help="eager, sdpa, flash_attention_2, ... (default: the model's).")


def model_args_option():
    return typer.Option(None, "--model-args", help="An endpoint model's settings, lm-eval style: base_url=URL,model=NAME"
                        "[,tokenizer=T,num_concurrent=N,max_retries=N,timeout=S,max_length=N] (with --model "
                        "local-completions, local-chat-completions, openai-completions or openai-chat-completions).")


def model_args_from(dtype: Optional[str], revision: Optional[str], trust_remote_code: bool,
                    attn_implementation: Optional[str], endpoint: Optional[str] = None):
    """A checked ModelArgs from the flags; a bad value is one line naming its flag. `endpoint` (the
    --model-args text of an endpoint model) is handed on as it is: the API parses and checks it."""
    if endpoint is not None:
        given = [f for f, v in (("--dtype", dtype), ("--revision", revision), ("--trust-remote-code", trust_remote_code),
                                ("--attn-implementation", attn_implementation)) if v]
        if given:
            raise TunevalError(f"{given[0]} loads a local model; --model-args describes an endpoint model")
        return endpoint
    args = ModelArgs(dtype=dtype or "auto", revision=revision, trust_remote_code=trust_remote_code,
                     attn_implementation=attn_implementation)
    for key, problem in value_problems(args):
        raise TunevalError(f"--{key.replace('_', '-')} {problem}")
    return args


def chat_template_option():
    return typer.Option(None, "--chat-template", metavar="NAME|FILE.jinja",
                        help="Render conversations with this chat template: a name (chatml, llama3, llama2, mistral, "
                             "zephyr, gemma, qwen2.5) or a .jinja file; saved with a trained run (default: the model's own, "
                             "or the run's).")


def no_chat_template_option():
    return typer.Option(False, "--no-chat-template", help="No chat template: plain 'User: ... Assistant:' text.")


def chat_template_from(name: Optional[str], off: bool, default: bool | None = True) -> bool | str | None:
    """--chat-template NAME|FILE and --no-chat-template as one value: False, the name or path, else `default`."""
    if off and name is not None:
        raise TunevalError("give --chat-template NAME or --no-chat-template, not both")
    if off:
        return False
    if name is not None and name.strip().lower() in ("true", "false"):
        return name.strip().lower() == "true"
    return name if name is not None else default


def bare_flags(argv: list[str]) -> list[str]:
    """A bare `--chat-template` (its old boolean form, which is the default) is dropped, so it keeps working now
    that the option takes a name: it may stand last or before another option, not before a value."""
    return [a for i, a in enumerate(argv)
            if not (a == "--chat-template" and (i + 1 == len(argv) or argv[i + 1].startswith("-")))]
