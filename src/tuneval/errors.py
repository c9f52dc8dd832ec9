"""One exception type for everything a user can get wrong.

The CLI prints a TunevalError as a single line and exits non-zero; anything else is a
bug and keeps its traceback. Messages name what and where (file, line, field).
"""


class TunevalError(Exception):
    """A problem with the user's input (model, task, data, recipe), not with tuneval."""
