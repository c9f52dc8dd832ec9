"""One exception type for everything a user can get wrong.

The CLI prints a TunevalError as a single line and exits non-zero; anything else is a
bug and keeps its traceback. Messages name what and where (file, line, field).
"""


class TunevalError(Exception):
    """A problem with the user's input (model, task, data, recipe), not with tuneval.

    Always one line: a message that quotes the input (a key, a value, a template) shows its line
    breaks as \\n, so a fuzzed `--set` or task key cannot spread the error over several lines."""

    def __str__(self) -> str:
        return super().__str__().replace("\r", "\\r").replace("\n", "\\n")


def first_line(e: BaseException, limit: int = 300) -> str:
    """A third-party exception as one short line for a TunevalError: its message's first line
    (at most `limit` characters), or the exception's type when the message is empty."""
    text = str(e).strip()
    return text.splitlines()[0][:limit] if text else type(e).__name__
