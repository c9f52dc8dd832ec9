"""The code's shape: no function over MAX_LINES lines without a reason written beside it, and no
reason beside a function that is not long (a stale exemption reads as a warning that is not true).

A long function is allowed when it is clearer whole; say why in a `# long: ...` comment on
its `def` line or on the line just above it (above its decorators, if it has any). Nested
functions count on their own, and towards the function that holds them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tuneval

ROOT = Path(tuneval.__file__).parent
MAX_LINES = 60
REASON = "# long:"


def _long_functions(root: Path = ROOT) -> list[tuple[str, int, bool]]:
    """(where, lines, has a reason) for every function under `root` over MAX_LINES lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = node.end_lineno - start + 1
            if length > MAX_LINES:
                beside = [lines[node.lineno - 1]] + ([lines[start - 2]] if start >= 2 else [])
                where = f"{path.relative_to(root)}:{node.lineno} {node.name}"
                found.append((where, length, any(REASON in line for line in beside)))
    return found


def test_long_functions_say_why():
    unexplained = [f"{where} ({n} lines)" for where, n, reason in _long_functions() if not reason]
    assert unexplained == [], (f"functions over {MAX_LINES} lines: split them, or write the reason in a "
                               f"'{REASON} ...' comment on the def line or just above it")


def test_the_rule_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES + 1))
    (tmp_path / "long.py").write_text(f"def too_long():\n{body}\n\n\n{REASON} a reason\ndef explained():\n{body}\n")
    found = [(where, reason) for where, _, reason in _long_functions(tmp_path)]
    assert found == [("long.py:1 too_long", False), (f"long.py:{MAX_LINES + 6} explained", True)]


def _reasons(root: Path = ROOT) -> set[str]:
    """'path:line' of the def each `# long:` comment stands beside (on its line or the line above its decorators)."""
    found = set()
    for path in sorted(root.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                beside = [lines[node.lineno - 1]] + ([lines[start - 2]] if start >= 2 else [])
                if any(REASON in line for line in beside):
                    found.add(f"{path.relative_to(root)}:{node.lineno} {node.name}")
    return found


def test_no_stale_reason():
    """Every `# long:` stands beside a function that is over the limit."""
    long = {where for where, _, _ in _long_functions()}
    assert _reasons() - long == set()


def test_the_rule_sees_a_stale_reason(tmp_path):
    (tmp_path / "short.py").write_text(f"{REASON} no longer true\ndef short():\n    return 1\n")
    assert _reasons(tmp_path) == {"short.py:2 short"}
