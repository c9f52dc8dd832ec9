"""The README and the docs site do not drift from the code.

- every `tuneval ...` command in a shell code block of README.md and docs/**/*.md parses against
  the real command line (typer's click commands, `make_context`), without running it: an unknown
  command or option, a missing argument or a value of the wrong type fails here;
- every `tuneval ...` written inline in the prose (`like this`) names a real command and only
  options that command has (inline spans are often a fragment, so they are not parsed whole);
- every Python code block compiles, and every `from tuneval import X` names something tuneval
  exports (`tuneval.__all__`);
- `mkdocs build --strict` builds the site (broken links, nav and the generated reference included).

How a command line is read: `\\` continues a line; `#` starts a comment; a pipe or redirection ends
the command; `[` and `]` around optional parts are dropped, so the optional parts are checked too;
environment assignments and launchers before `tuneval` / `-m tuneval.cli` are skipped. No line is
skipped, so a command in the docs is written out whole (no `PATH...` placeholders).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import tuneval

ROOT = Path(__file__).resolve().parents[1]
SHELL = {"bash", "sh", "shell", "console", ""}
ENDS = {"|", "||", "&&", ";", ">", ">>", "2>", "<", "&"}
MAX_README_LINES = 200


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def code_blocks(path: Path):
    """(language, text) of every fenced code block."""
    lang, lines = None, []
    for line in path.read_text(encoding="utf-8").splitlines():
        fence = line.strip().startswith("```")
        if lang is None and fence:
            lang, lines = line.strip()[3:].split(" ")[0].lower(), []
        elif lang is not None and line.strip() == "```":
            yield lang, "\n".join(lines) + "\n"
            lang = None
        elif lang is not None:
            lines.append(line)


def shell_lines(text: str) -> list[str]:
    """Logical lines: backslash continuations joined, `$ ` prompts dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip().removeprefix("$ ") for line in joined.splitlines() if line.strip()]


def tuneval_args(line: str) -> list[str] | None:
    """The arguments after `tuneval` (or `-m tuneval.cli`) on a shell line; None if it runs no tuneval."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:
        return None
    for i, tok in enumerate(tokens):
        if tok == "tuneval" or tok.endswith("/bin/tuneval") or (tok == "tuneval.cli" and i and tokens[i - 1] == "-m"):
            args = []
            for t in tokens[i + 1:]:
                if t in ENDS or t.startswith((">", "2>")):
                    break
                args.append(t.replace("[", "").replace("]", ""))
            return [a for a in args if a]
    return None


def commands() -> list[tuple[str, list[str]]]:
    """(where, args) of every tuneval command shown in a shell block."""
    found = []
    for path in doc_files():
        for lang, text in code_blocks(path):
            if lang not in SHELL:
                continue
            for line in shell_lines(text):
                args = tuneval_args(line)
                if args is not None:
                    found.append((f"{path.relative_to(ROOT)}: {line}", args))
    return found


def parse(args: list[str]) -> None:
    """Parse a command line as `tuneval` would, without running the command."""
    import typer.main

    from tuneval import cli

    root = typer.main.get_command(cli.app)
    ctx = root.context_class(root, info_name="tuneval")
    global_flags = {o for p in root.params for o in (*p.opts, *p.secondary_opts)}
    while args and args[0] in global_flags:
        args = args[1:]
    assert args, "no command"
    cmd = root.get_command(ctx, args[0])
    assert cmd is not None, f"no command {args[0]!r} (known: {', '.join(root.list_commands(ctx))})"
    cmd.make_context(args[0], list(args[1:]), parent=ctx)


def test_the_readme_is_short():
    lines = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; the rest belongs in docs/"


def test_commands_are_found():
    found = commands()
    assert len(found) >= 40, found  # the parser below must see the docs' commands, not silently none
    assert {args[0] for _, args in found if args} >= {"train", "eval", "demo", "forgetting", "report", "serve"}


@pytest.mark.parametrize("where, args", commands(), ids=lambda v: v if isinstance(v, str) else None)
def test_every_command_shown_parses(where, args):
    try:
        parse(args)
    except Exception as e:  # click's (or typer's copy of click's) UsageError, BadParameter, ...
        pytest.fail(f"{where}\n  does not parse: {type(e).__name__}: {getattr(e, 'message', e)}")


def test_a_wrong_command_fails_to_parse():
    for args in (["train", "--no-such-flag"], ["eval", "--limit", "many"], ["no-such-command"]):
        with pytest.raises(Exception):
            parse(args)


def inline_commands() -> list[tuple[str, list[str]]]:
    """(where, args) of every `tuneval ...` inline code span outside code blocks."""
    found = []
    for path in doc_files():
        text = re.sub(r"^\s*```.*?^\s*```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
        for span in re.findall(r"`(tuneval [^`]+)`", " ".join(text.split())):
            found.append((f"{path.relative_to(ROOT)}: {span}", tuneval_args(span) or []))
    return found


def test_inline_commands_name_real_commands_and_options():
    import typer.main

    from tuneval import cli

    root = typer.main.get_command(cli.app)
    ctx = root.context_class(root, info_name="tuneval")
    found, wrong = inline_commands(), []
    assert len(found) >= 30, found
    for where, args in found:
        args = [a for a in args if a not in ("--verbose", "-v")]
        if not args or args[0].isupper():  # `tuneval --verbose COMMAND`: a placeholder, not a name
            continue
        cmd = root.get_command(ctx, args[0])
        if cmd is None:
            wrong.append(f"{where}: no command {args[0]!r}")
            continue
        options = {o for p in cmd.get_params(ctx) for o in (*p.opts, *p.secondary_opts)}
        wrong += [f"{where}: {args[0]} has no option {a.split('=')[0]}" for a in args[1:]
                  if a.startswith("--") and a.split("=")[0] not in options]
    assert wrong == []


def python_blocks():
    return [(f"{path.relative_to(ROOT)} block {i}", text) for path in doc_files()
            for i, (lang, text) in enumerate(code_blocks(path)) if lang in ("python", "py")]


@pytest.mark.parametrize("where, text", python_blocks(), ids=lambda v: v if " block " in str(v) else None)
def test_python_snippets_compile_and_import_what_tuneval_exports(where, text):
    tree = ast.parse(text, filename=where)
    compile(tree, where, "exec")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "tuneval":
            missing = [a.name for a in node.names if a.name not in tuneval.__all__]
            assert not missing, f"{where}: tuneval does not export {missing} (tuneval.__all__: {tuneval.__all__})"


def test_the_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra (make setup installs it)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "NO_MKDOCS_2_WARNING": "1"}
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(site)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    page = (site / "reference" / "commands" / "index.html").read_text(encoding="utf-8")
    for name in ("train", "eval", "demo", "serve", "chat"):
        assert f'id="{name}"' in page, f"the generated command reference has no section for {name}"
    assert "learning_rate" in (site / "reference" / "recipe" / "index.html").read_text(encoding="utf-8")


RESULTS = ROOT / "bench" / "results"


def test_result_files_named_in_the_docs_exist():
    """A result the docs cite is in bench/results (superseded ones are cited as 'in git history')."""
    missing = []
    for path in doc_files():
        for cited in re.findall(r"bench/results/[\w./-]*\w", path.read_text(encoding="utf-8")):
            if not (ROOT / cited).exists():
                missing.append(f"{path.relative_to(ROOT)}: {cited}")
    assert missing == []


def test_every_result_names_its_machine_date_and_commit():
    """bench/results holds the latest result of each bench; each file says where and when it was measured."""
    unnamed = []
    for path in sorted(RESULTS.rglob("*")):
        if path.suffix == ".md":
            head = path.read_text(encoding="utf-8")[:2000]
            ok = all(f"**{key}:**" in head for key in ("Machine", "date", "commit"))
        elif path.suffix == ".json":
            ok = set(json.loads(path.read_text(encoding="utf-8")).get("provenance", {})) >= {"machine", "date", "commit"}
        else:
            continue
        if not ok:
            unnamed.append(str(path.relative_to(ROOT)))
    assert unnamed == [], "each result names its machine, date and commit (Markdown: a header line; JSON: 'provenance')"
