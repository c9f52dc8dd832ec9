"""The demo's time budget, checked before anything heavy is imported (`tuneval demo --minutes 0` answers
at once; jobs/demo.py imports torch and transformers, which take seconds to minutes on a busy machine)."""

from __future__ import annotations

import math

from tuneval.errors import TunevalError


def check_minutes(minutes: float) -> float:
    """Checked before the model loads: the budget is the first thing the demo uses."""
    if not (math.isfinite(minutes) and minutes > 0):
        raise TunevalError(f"--minutes must be a number of minutes greater than 0, got {minutes:g}")
    return minutes
