"""Imports run one way: apps -> data_prep -> common, under one import name, with no circles.

Every `.py` of the project is parsed with `ast` and every import in it is
counted, the ones inside functions included (an import moved into a function
still runs, it only runs later). The rules:

- `common` imports nothing from `apps`, `data_prep`, `benchmarks` or `notebooks`;
- `data_prep` may import `common`, but nothing from `apps`, `benchmarks` or `notebooks`;
- the import graph of `apps`, `common`, `data_prep`, `benchmarks` and
  `hybridvision` has no circle;
- nothing (tests included) imports a bare `common`, `apps` or `data_prep`:
  the folders install as `hybridvision.common`, `hybridvision.apps` and
  `hybridvision.data_prep`, and a bare name would pick up a user's own
  `common/` package instead.

Module names are the installed ones: `common/layers/film.py` is
`hybridvision.common.layers.film`.

An edge goes to the most specific module named: `from hybridvision.common.data import demo`
is an edge to `hybridvision.common.data.demo`, `from hybridvision.common.data.demo import data_root` one
to the package `hybridvision.common.data.demo` (its `__init__.py`). A package's own
`__init__.py` importing its submodules is an edge like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("apps", "common", "data_prep", "benchmarks", "hybridvision", "notebooks")
FORBIDDEN = {
    "common": ("apps", "data_prep", "benchmarks", "notebooks"),
    "data_prep": ("apps", "benchmarks", "notebooks"),
}
CIRCLE_FREE = ("apps", "common", "data_prep", "benchmarks", "hybridvision")
# Folders that install under the one import name (setup.py's package_dir mapping).
INSTALLED_UNDER_HYBRIDVISION = ("apps", "common", "data_prep")


def layer_of(module: str) -> str:
    """The folder a dotted module name lives in: `hybridvision.common.x` -> `common`, `benchmarks.y` -> `benchmarks`."""
    parts = module.split(".")
    if parts[0] == "hybridvision" and len(parts) > 1 and parts[1] in INSTALLED_UNDER_HYBRIDVISION:
        return parts[1]
    return parts[0]


def module_files(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """{dotted module name: file} of every `.py` under the given top-level folders."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if package in INSTALLED_UNDER_HYBRIDVISION:
                parts = ("hybridvision", *parts)
            modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """`(imported module, line)` for every import in the file, at any depth.

    Relative imports are resolved against the module's package; names are
    kept whether or not they are ours (the rules filter by top-level name).
    """
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub if sub in known else target, node.lineno))
    return found


def import_graph(root: Path, packages=PACKAGES) -> tuple[dict[str, Path], dict[str, list[tuple[str, int]]]]:
    modules = module_files(root, packages)
    known = set(modules)
    return modules, {name: imports_of(name, path, known) for name, path in modules.items()}


def wrong_way_imports(root: Path, forbidden=FORBIDDEN) -> list[str]:
    """One line `file:line: module imports target` per import that breaks a layering rule."""
    modules, graph = import_graph(root)
    problems = []
    for name, edges in graph.items():
        banned = forbidden.get(layer_of(name), ())
        for target, line in edges:
            if layer_of(target) in banned:
                where = modules[name].relative_to(root)
                problems.append(f"{where}:{line}: {name} imports {target}")
    return problems


def bare_imports(root: Path, folders=(*PACKAGES, "tests")) -> list[str]:
    """One line `file:line: imports name` per import of a bare `common`, `apps` or `data_prep` module."""
    problems = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            for target, line in imports_of(path.stem, path, set()):
                if target.split(".")[0] in INSTALLED_UNDER_HYBRIDVISION:
                    problems.append(f"{path.relative_to(root)}:{line}: imports {target}")
    return problems


def import_circles(root: Path, packages=CIRCLE_FREE) -> list[list[str]]:
    """The strongly connected groups of more than one module (or a module importing itself), each as a cycle."""
    modules, graph = import_graph(root, packages)
    edges = {name: sorted({t for t, _ in targets if t in modules}) for name, targets in graph.items()}
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def connect(node):  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in edges[node]:
                groups.append(_cycle_through(sorted(group), edges))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return groups


def _cycle_through(group: list[str], edges: dict[str, list[str]]) -> list[str]:
    """One import cycle inside a strongly connected group, from its first module back to it."""
    members, start = set(group), group[0]
    paths, queue = {start: [start]}, [start]
    while queue:
        node = queue.pop(0)
        for nxt in edges[node]:
            if nxt == start:
                return paths[node] + [start]
            if nxt in members and nxt not in paths:
                paths[nxt] = paths[node] + [nxt]
                queue.append(nxt)
    return group


def test_imports_run_the_right_way():
    problems = wrong_way_imports(ROOT)
    assert not problems, "imports against the layering (common <- data_prep <- apps):\n" + "\n".join(problems)


def test_no_bare_import_of_an_installed_folder():
    problems = bare_imports(ROOT)
    assert not problems, "imports that need the hybridvision. prefix:\n" + "\n".join(problems)


def test_no_import_circles():
    circles = import_circles(ROOT)
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


# ---- the checker itself: it must see what it is meant to see ------------------
def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in PACKAGES:
        (root / package).mkdir(exist_ok=True)
    return root


@pytest.mark.parametrize(
    "source",
    [
        "from hybridvision.apps.demo import train\n",
        "import hybridvision.data_prep.views\n",
        "def later():\n    from benchmarks import speed\n",
        "class K:\n    def m(self):\n        import notebooks.demo as nb\n",
    ],
)
def test_checker_finds_a_wrong_way_import_at_any_depth(tmp_path, source):
    root = _tree(tmp_path, {"common/__init__.py": "", "common/thing.py": source})
    problems = wrong_way_imports(root)
    assert len(problems) == 1 and problems[0].startswith("common/thing.py:")


def test_checker_lets_data_prep_use_common_but_not_apps(tmp_path):
    root = _tree(tmp_path, {
        "data_prep/__init__.py": "",
        "data_prep/ok.py": "from hybridvision.common.data import names\n",
        "data_prep/bad.py": "def f():\n    from hybridvision.apps.x import y\n",
    })
    assert wrong_way_imports(root) == ["data_prep/bad.py:2: hybridvision.data_prep.bad imports hybridvision.apps.x"]


@pytest.mark.parametrize("source", ["import common.layers\n", "def f():\n    from apps.x import y\n",
                                    "from data_prep import split\n"])
def test_checker_refuses_a_bare_import(tmp_path, source):
    root = _tree(tmp_path, {"tests/test_thing.py": source, "hybridvision/ok.py": "import hybridvision.common\n"})
    problems = bare_imports(root)
    assert len(problems) == 1 and problems[0].startswith("tests/test_thing.py:")


def test_checker_finds_a_circle_hidden_in_a_function(tmp_path):
    root = _tree(tmp_path, {
        "common/__init__.py": "",
        "common/plots.py": "def plot():\n    from hybridvision.common.history import read_history\n",
        "common/history.py": "from hybridvision.common.plots import plot\n",
        "common/tables.py": "import csv\n",
        "data_prep/__init__.py": "",
        "data_prep/a.py": "from . import b\n",  # relative imports count too
        "data_prep/b.py": "def f():\n    from hybridvision.data_prep.a import X\n",
    })
    assert sorted(import_circles(root)) == [
        ["hybridvision.common.history", "hybridvision.common.plots", "hybridvision.common.history"],
        ["hybridvision.data_prep.a", "hybridvision.data_prep.b", "hybridvision.data_prep.a"],
    ]


def test_checker_counts_from_package_import_submodule_as_the_submodule(tmp_path):
    root = _tree(tmp_path, {
        "common/__init__.py": "",
        "common/data/__init__.py": "",
        "common/data/demo/__init__.py": "from hybridvision.common.data.demo.store import generate\n",
        "common/data/demo/store.py": "from hybridvision.common.data.demo import faces\n",
        "common/data/demo/faces.py": "import numpy\n",
    })
    assert import_circles(root) == []
    root = _tree(tmp_path, {"common/data/demo/faces.py": "from hybridvision.common.data.demo import generate\n"})
    assert import_circles(root) == [
        ["hybridvision.common.data.demo", "hybridvision.common.data.demo.store", "hybridvision.common.data.demo.faces", "hybridvision.common.data.demo"]
    ]
