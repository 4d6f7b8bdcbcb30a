"""The import graph as drawn from the code: layers only import downward, and no module circle exists.

Every import counts, a function's own included (it is a dependency all the same), except those under
`if TYPE_CHECKING:` (annotations only). Modules are named as Python sees them (services/ is kloset.services).
"""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"kloset": ROOT / "kloset", "kloset.services": ROOT / "services", "kloset.workers": ROOT / "workers"}
# layer -> the layers it must never import. The core knows no transport, no command line, no benchmark.
FORBIDDEN = {
    "kloset.core": ("kloset.services", "kloset.workers", "kloset.cli", "kloset.bench", "kloset.program"),
    "kloset.services": ("kloset.cli", "kloset.bench", "kloset.program", "kloset.workers"),
    "kloset.workers": ("kloset.cli", "kloset.bench", "kloset.program", "kloset.services"),
    "kloset.client": ("kloset.cli", "kloset.bench", "kloset.program", "kloset.workers"),
    "kloset.bench": ("kloset.cli",),
    "kloset.program": ("kloset.cli", "kloset.bench"),
}


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[0] == "v1":  # generated protobuf code
                continue
            name = ".".join((package, *parts)).removesuffix(".__init__")
            if package == "kloset" and parts[0] in ("services", "workers"):
                continue
            found[name] = path
    return found


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node.test)
               for n in ast.walk(node)}  # fmt: skip
    targets = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:
                base = ".".join([*name.split(".")[:-node.level], node.module])
            targets |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return {_owner(t, known) for t in targets if _owner(t, known)} - {name}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _owner(target: str, known: set[str]) -> str | None:
    """The kloset module an import names (`from kloset.core import request_context` names the module)."""
    while target:
        if target in known:
            return target
        target = target.rpartition(".")[0]
    return None


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: {t for t in imports_of(path, name, known) if path.name != "__init__.py" or t != name}
            for name, path in found.items()}  # fmt: skip


def _in(module: str, layer: str) -> bool:
    return module == layer or module.startswith(layer + ".")


def test_layers_only_import_downward():
    edges = graph()
    upward = sorted(f"{source} -> {target}" for source, targets in edges.items() for target in targets
                    for layer, banned in FORBIDDEN.items() if _in(source, layer)
                    for bad in banned if _in(target, bad))  # fmt: skip
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_module_imports_itself_round_a_circle():
    edges = graph()
    circles, state = [], {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges.get(module, ())):
            if state.get(target) == "open":
                circles.append(" -> ".join([*trail[trail.index(target):], module, target]) if target in trail
                               else f"{module} -> {target}")  # fmt: skip
            elif target not in state:
                visit(target, [*trail, module])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_the_graph_sees_the_tree():
    """The walk finds the modules and the edges everyone knows are there, so a pass means something."""
    edges = graph()
    assert "kloset.core.index.search" in edges["kloset.services.search.servicer"]
    assert "kloset.core.config" in edges["kloset.program"]
    assert len(edges) > 60


def test_a_circle_is_found(monkeypatch):
    """The circle check on a made-up graph with one: a -> b -> c -> a."""
    made_up = {"kloset.a": {"kloset.b"}, "kloset.b": {"kloset.c"}, "kloset.c": {"kloset.a"}, "kloset.d": set()}
    monkeypatch.setattr(sys.modules[__name__], "graph", lambda: made_up)
    try:
        test_no_module_imports_itself_round_a_circle()
    except AssertionError as exc:
        assert "kloset.a -> kloset.b -> kloset.c -> kloset.a" in str(exc)
    else:
        raise AssertionError("the circle a -> b -> c -> a was not found")
