"""The package's layout rules, read from the imports of every module.

Tiers: a foundation (``errors``, ``registry``, ``io``, ``core``, ``spectrum``), four studies
(``report``, ``optvis``, ``downsampling``, ``upsampling``) and the command line (``cli``).
The foundation imports no study; studies do not import each other; only the command line
imports the command line; matplotlib is imported only where figures are drawn; gradviz modules
are imported at the top of a module, never inside a function; there is no import cycle.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gradviz"
STUDIES = {"report", "optvis", "downsampling", "upsampling"}
FOUNDATION = {"errors", "registry", "io", "core", "spectrum"}
# Modules allowed to import matplotlib: the drawing half of each study, and the shared figure style.
DRAWING = {"gradviz.io.plotting", "gradviz.report.render", "gradviz.report.figures", "gradviz.optvis.render",
           "gradviz.optvis.sweep_render",
           "gradviz.downsampling.render", "gradviz.upsampling.render"}
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> list[tuple[str, bool]]:
    """``(imported module, at module level)`` for every import in ``path``; ``from a import b``
    counts as an import of ``a.b`` when that is a module, else of ``a``."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    # imports under `if TYPE_CHECKING:` or a module-level `try:` count as module-level too
    for node in tree.body:
        if isinstance(node, (ast.If, ast.Try)):
            top_level.update(id(n) for n in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if node.module.startswith("gradviz"):
                    found.append((sub if sub in MODULES else node.module, id(node) in top_level))
                else:  # `from matplotlib import pyplot` is an import of matplotlib.pyplot
                    found.append((sub, id(node) in top_level))
    return found


def tier(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "gradviz"


def gradviz_imports(name: str) -> set[str]:
    return {m for m, _ in imports(MODULES[name]) if m == "gradviz" or m.startswith("gradviz.")}


def test_the_package_is_found():
    assert {"gradviz.core.taps", "gradviz.spectrum.meter", "gradviz.report.measure", "gradviz.cli.app"} <= set(MODULES)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_tiers(name):
    own = tier(name)
    for target in gradviz_imports(name):
        other = tier(target)
        if own in FOUNDATION:
            assert other not in STUDIES | {"cli"}, f"{name} (foundation) imports {target}"
        if own in STUDIES:
            assert other not in (STUDIES - {own}) | {"cli"}, f"{name} (study {own}) imports {target}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_matplotlib_only_where_figures_are_drawn(name):
    uses = [m for m, _ in imports(MODULES[name]) if m.split(".")[0] in ("matplotlib", "pylab")]
    if name not in DRAWING:
        assert not uses, f"{name} imports {uses}"
    assert "matplotlib.use" not in MODULES[name].read_text(), f"{name} selects a matplotlib backend"
    assert "pyplot" not in {u.split(".")[-1] for u in uses}, f"{name} uses pyplot's global state"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_gradviz_modules_are_imported_at_the_top(name):
    inside = [m for m, top in imports(MODULES[name]) if not top and (m == "gradviz" or m.startswith("gradviz."))]
    assert not inside, f"{name} imports {inside} inside a function"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_are_absolute(name):
    relative = [node.lineno for node in ast.walk(ast.parse(MODULES[name].read_text()))
                if isinstance(node, ast.ImportFrom) and node.level > 0]
    assert not relative, f"{name} has relative imports at lines {relative}"


def _is_call(node, dotted: str) -> bool:
    return isinstance(node, ast.Call) and ast.unparse(node.func) == dotted


@pytest.mark.parametrize("name", sorted(MODULES))
def test_the_global_generator_is_seeded_only_inside_fork_rng(name):
    """A library call must not change torch's global random state: seeding it is allowed only
    inside ``with torch.random.fork_rng(...)``, which restores it."""
    tree = ast.parse(MODULES[name].read_text())
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.With) and any(_is_call(item.context_expr, "torch.random.fork_rng") for item in node.items):
            guarded.update(id(n) for n in ast.walk(node))
    bare = [node.lineno for node in ast.walk(tree)
            if (_is_call(node, "torch.manual_seed") or _is_call(node, "torch.random.manual_seed")) and id(node) not in guarded]
    assert not bare, f"{name} seeds torch's global generator outside fork_rng at lines {bare}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_short(name):
    n = len(MODULES[name].read_text().splitlines())
    assert n <= MAX_LINES, f"{name} has {n} lines"


def test_no_import_cycles():
    # An edge per import of a module, or of a name from a package's __init__.
    graph = {name: {t for t in gradviz_imports(name) if t in MODULES and t != name} for name in MODULES}
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_computing_does_not_import_matplotlib():
    compute = [m for m in MODULES if m not in DRAWING and tier(m) not in ("cli", "gradviz") and m != "gradviz.__main__"]
    code = ("import importlib, sys\n"
            f"for m in {compute!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
