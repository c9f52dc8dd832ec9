"""The package's layering: every import between tuneval's parts points down, and no import circle.

Read from the source (ast), so it counts every `import`, at the top of a module and inside
functions alike: a lazy import is still an arrow. A part is a subpackage (data, methods, ...)
or a top-level module (config, cli, ...). A new part must be given a layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tuneval

ROOT = Path(tuneval.__file__).parent

# Lowest first. A part may import only from lower layers, except within WORKFLOWS, whose parts
# may use one another (training and serving: an adapter bank loads what training saved) as long as
# no circle of modules forms (test_no_import_circle).
LAYERS = [
    {"errors"},
    {"io", "typed", "precision", "console", "metrics", "allocator"},  # nothing from tuneval but errors
    {"runs", "model_args"},  # the run directory's layout (runs.py); how weights load (model_args.py, on typed)
    {"results"},  # every result directory's layout (results.py: eval, suite, forgetting, demo, sweep)
    {"models"},
    {"methods"},  # loads trained results over models (methods/loading.py)
    {"config"},  # the recipe: knows the methods' settings classes
    {"data"},  # row readers, user formats, tokenising and padding/packing
    {"tasks"},  # the one task model: YAML tasks, rows per split, both prompt families, mixtures
    {"evaluate"},  # scoring a model: below what trains (and evaluates as it goes) and what serves
    {"train", "serve"},
    {"report"},
    {"jobs"},  # the orchestrators (demo, sweep, forgetting) over everything below
    {"api"},  # the Python API, one function per command: what the commands call
    {"cli_options"},  # what the commands share: the app, quiet output, common flags (cli_options.py)
    {"cli_serve"},  # the commands that use a result: merge, export, serve, chat
    {"cli", "__init__"},  # the commands' registration; the package re-exports the api lazily
]
WORKFLOWS = {"train", "serve"}
LAYER = {part: i for i, parts in enumerate(LAYERS) for part in parts}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = ("tuneval", *path.relative_to(ROOT).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _part(module: str) -> str:
    bits = module.split(".")
    return bits[1] if len(bits) > 1 else "__init__"


def _imports(module: str, path: Path) -> list[tuple[str, int]]:
    """(imported tuneval module, line) for every import in the file, top-level or not; `from p import m`
    counts m when it is a module, and importing a module also runs its parent packages."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for name in names:
            while name.startswith("tuneval.") and name not in MODULES:  # an attribute, not a module
                name = name.rpartition(".")[0]
            while name.startswith("tuneval."):
                found.append((name, node.lineno))
                name = name.rpartition(".")[0]
    return found


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def test_every_part_has_a_layer():
    assert {_part(m) for m in MODULES} - set(LAYER) == set()


def test_imports_point_down():
    wrong = []
    for module, imports in GRAPH.items():
        a = _part(module)
        for target, line in imports:
            b = _part(target)
            if a != b and not (LAYER[b] < LAYER[a] or (a in WORKFLOWS and b in WORKFLOWS)):
                wrong.append(f"{MODULES[module].relative_to(ROOT)}:{line}: {a} imports {target} (layer {LAYER[b]} >= {LAYER[a]})")
    assert wrong == []


def test_no_import_circle():
    """No circle of modules that crosses parts (a package's __init__ importing its own modules,
    as the methods registry does, is not a circle between parts)."""
    edges = {m: sorted({t for t, _ in imports if t != m}) for m, imports in GRAPH.items()}
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len({_part(m) for m in component}) > 1:
                circles.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    assert circles == []


def test_the_layers_that_issue_13_names():
    """The arrows the redesign asked for, stated directly."""
    imports = {(_part(m), _part(t)) for m, targets in GRAPH.items() for t, _ in targets}
    for low in ("errors", "io", "typed", "precision"):
        assert {b for a, b in imports if a == low} <= {low, "errors"}, low
    assert {b for a, b in imports if a == "runs"} <= {"runs", "errors", "io", "allocator"}  # one run directory type, low down
    assert not {("models", "methods"), ("methods", "config"), ("config", "data")} & imports
    assert not {(a, b) for a, b in imports if a == "data" and b in ("train", "evaluate")}
    assert not {a for a, b in imports if b == "cli" and a != "cli"}


def test_evaluation_is_below_training_and_serving():
    """Training evaluates as it goes and serving scores nothing: evaluate/ imports neither."""
    imports = {(_part(m), _part(t)) for m, targets in GRAPH.items() for t, _ in targets}
    assert LAYER["evaluate"] < LAYER["train"] and LAYER["evaluate"] < LAYER["serve"]
    assert not {("evaluate", "train"), ("evaluate", "serve")} & imports


def test_the_commands_call_the_api():
    """The typer layer (cli*.py) reaches the library through api.py; the few other imports it has
    are printing and terminal helpers, listed here so a new one is a decision."""
    printing = {"tuneval.metrics.text", "tuneval.metrics", "tuneval.evaluate.summary", "tuneval.evaluate.forgetting",
                "tuneval.evaluate", "tuneval.methods", "tuneval.methods.memory", "tuneval.serve.chat", "tuneval.serve",
                "tuneval.results"}  # results.py: the saved files' names the commands print
    allowed = {"tuneval", "tuneval.api", "tuneval.cli_options", "tuneval.cli_serve", "tuneval.errors",
               "tuneval.allocator", "tuneval.model_args", "tuneval.typed", "tuneval.console", *printing}
    used = {t for m, targets in GRAPH.items() if _part(m).startswith("cli") for t, _ in targets}
    assert used - allowed == set()


def test_no_method_imports_its_package():
    """The registry is methods/registry.py: a method module imports it, never `tuneval.methods` itself
    (whose __init__ imports every method, so each one would import back up into its package)."""
    upward = []
    for module, path in MODULES.items():
        if not module.startswith("tuneval.methods.") or path.name == "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and not node.level else [])
            upward += [f"{path.relative_to(ROOT)}:{node.lineno}" for name in names if name == "tuneval.methods"]
    assert upward == []
