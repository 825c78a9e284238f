"""The import rules of docs/architecture.md, read from the code.

Every module of zoo/, hardware/ (`zoo_hardware`) and tasks/ (`zoo_tasks`) is parsed with
`ast`, imports inside functions included (an `if TYPE_CHECKING:` block is not an import
at run time), so the rules hold for the code as written, not for what one run happened
to load. Parsing only: no JAX, well under a second.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"zoo": "zoo", "zoo_hardware": "hardware", "zoo_tasks": "tasks"}  # import name -> folder

# zoo's layers, lowest first: a unit imports only units of lower layers (docs/architecture.md).
LAYERS = (
    ("zoo", "zoo.errors"),  # the package itself imports nothing: its exports are lazy
    ("zoo.paths", "zoo.config"),
    ("zoo_hardware", "zoo.io", "zoo.batching"),  # devices and numbers; weight files and
    # digests; fixed-shape prediction batches
    ("zoo.task",),
    ("zoo.registry", "zoo.data", "zoo.models"),
    ("zoo.harness", "zoo.hub", "zoo.predictions"),  # side by side: none imports another
    ("zoo.restore",),
    ("zoo.predictor",),  # zoo.load: a restored model (or an export) as typed predictions
    ("zoo.compress", "zoo.testing", "zoo.export", "zoo.serve"),  # zoo.serve: HTTP serving
    ("zoo.cli",),
)
# A task plugin may import zoo's libraries and the restore entry point, never what runs it.
TASKS_MAY_NOT = ("zoo.harness", "zoo.compress", "zoo.testing", "zoo.serve", "zoo.cli")


def modules(root: Path) -> dict[str, Path]:
    """Module name -> file, for every .py file of the three packages under `root`."""
    found = {}
    for package, folder in FOLDERS.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root / folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


class _Imports(ast.NodeVisitor):
    """Absolute names of everything a module imports, at any depth."""

    def __init__(self, module: str, is_package: bool):
        self.package = module if is_package else module.rpartition(".")[0]
        self.names: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if getattr(test, "id", getattr(test, "attr", None)) == "TYPE_CHECKING":
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.names.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            parent = self.package.rsplit(".", node.level - 1)[0] if node.level > 1 else self.package
            base = f"{parent}.{base}" if base else parent
        # `from pkg import mod` imports the module; `from mod import name`, the module
        self.names.update(f"{base}.{alias.name}" for alias in node.names)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the three packages it imports."""
    found = modules(root)
    lazy = _lazy_exports(found["zoo"])
    graph = {}
    for name, path in found.items():
        visitor = _Imports(name, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(), str(path)))
        graph[name] = {target for n in visitor.names
                       if (target := _known(lazy.get(n, n), found)) and target != name}
    return graph


def _lazy_exports(init: Path) -> dict[str, str]:
    """`zoo.NAME` -> the module `zoo/__init__.py` imports it from on first use."""
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_EXPORTS":
            return {f"zoo.{k}": v for k, v in ast.literal_eval(node.value).items()}
    return {}


def _known(name: str, found: dict[str, Path]) -> str | None:
    """The longest module of `found` that `name` is or lies inside (None: a third-party name)."""
    while name:
        if name in found:
            return name
        name = name.rpartition(".")[0]
    return None


def unit(module: str) -> str:
    """The unit a layer rule speaks of: a zoo sub-package or top-level module, a task, hardware."""
    parts = module.split(".")
    if parts[0] == "zoo_hardware":
        return "zoo_hardware"
    return ".".join(parts[:2])


def _layer(name: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if name in layer)


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import that breaks a layer rule, as 'importer -> imported: rule'."""
    found = []
    for importer, targets in graph.items():
        for target in sorted(targets):
            a, b = unit(importer), unit(target)
            if a == b:
                continue
            if b.startswith("zoo_tasks"):
                rule = ("a task imports no other task" if a.startswith("zoo_tasks")
                        else "zoo finds tasks through the registry, never by import")
            elif a.startswith("zoo_tasks"):
                rule = (f"a task never imports {b}" if b in TASKS_MAY_NOT else None)
            elif _layer(b) >= _layer(a):
                rule = f"{a} may import only layers below it, and {b} is not"
            else:
                rule = None
            if rule:
                found.append(f"{importer} -> {target}: {rule}")
    return sorted(found)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles among modules (each once, as a path back to its start)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    found, path = [], []

    def visit(node: str) -> None:
        state[node], _ = 1, path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                found.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target)
        state[node], _ = 2, path.pop()

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_every_unit_has_a_layer():
    units = {unit(m) for m in modules(ROOT) if not m.startswith("zoo_tasks")}
    assert units <= {name for layer in LAYERS for name in layer}, \
        "add the new package to LAYERS here and to docs/architecture.md"


def test_imports_follow_the_layers():
    assert violations(import_graph(ROOT)) == []


def test_no_import_cycles():
    assert cycles(import_graph(ROOT)) == []


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_checker_catches_forbidden_imports_and_cycles(tmp_path):
    """A generated tree with one import of each forbidden kind, several inside functions."""
    _write(tmp_path, {
        "zoo/__init__.py": "_EXPORTS = {'fit': 'zoo.harness.trainer'}\n",
        "zoo/errors.py": "", "tasks/__init__.py": "",
        "hardware/__init__.py": "from zoo import errors\n",
        "hardware/placement.py": "def mesh():\n    from zoo.harness import trainer\n",
        "zoo/harness/__init__.py": "", "zoo/harness/trainer.py": "import zoo.hub.cache\n",
        "zoo/hub/__init__.py": "", "zoo/hub/cache.py": "from . import index\n",
        "zoo/hub/index.py": "from .cache import CACHE\n",
        "zoo/cli/__init__.py": "from zoo.harness import trainer\n",
        "tasks/gan/__init__.py": textwrap.dedent("""
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from zoo.cli import main
            def judge():
                from zoo_tasks.classification import data
                from zoo.harness.trainer import fit
        """),
        "tasks/ocr/__init__.py": "from zoo import fit, __version__\n",
        "tasks/classification/__init__.py": "", "tasks/classification/data.py": "",
    })
    graph = import_graph(tmp_path)
    assert violations(graph) == [
        "zoo.harness.trainer -> zoo.hub.cache: zoo.harness may import only layers below it, "
        "and zoo.hub is not",
        "zoo_hardware.placement -> zoo.harness.trainer: zoo_hardware may import only layers "
        "below it, and zoo.harness is not",
        "zoo_tasks.gan -> zoo.harness.trainer: a task never imports zoo.harness",
        "zoo_tasks.gan -> zoo_tasks.classification.data: a task imports no other task",
        "zoo_tasks.ocr -> zoo.harness.trainer: a task never imports zoo.harness",
    ]
    assert cycles(graph) == [["zoo.hub.cache", "zoo.hub.index", "zoo.hub.cache"]]
