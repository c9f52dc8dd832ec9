"""FLAN-style template sets: several phrasings of one instruction.

Training draws a phrasing per example (seeded; data/mixtures.draw_templates) so the model
learns the task, not one wording; evaluation uses one fixed phrasing, recorded with the results.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from tuneval.errors import TunevalError


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@dataclass(frozen=True)
class TemplateSet:
    task: str
    prompts: tuple[str, ...]  # each with {field} placeholders
    target: str  # e.g. "{summary}"
    eval_index: int = 0

    def validate(self, fields: set[str], source: str) -> None:
        if not self.prompts:
            raise TunevalError(f"{source}: 'templates' is empty")
        for i, text in enumerate((*self.prompts, self.target)):
            missing = placeholders(text) - fields
            what = "target" if i == len(self.prompts) else f"templates[{i}]"
            if missing:
                raise TunevalError(f"{source}: {what} uses unknown field(s) {sorted(missing)} (fields: {sorted(fields)})")
        if not 0 <= self.eval_index < len(self.prompts):
            raise TunevalError(f"{source}: eval_template {self.eval_index} is out of range 0..{len(self.prompts) - 1}")

    def render(self, row: dict, index: int) -> tuple[str, str]:
        """(prompt, target) for one row with template `index`."""
        return self.prompts[index].format_map(row), self.target.format_map(row)
