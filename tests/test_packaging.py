"""The project's packaging: dependencies declared once in pyproject.toml (requirements.txt, which Colab's
setup cell reads, lists the same), the version written once, and imports that run one way."""

import ast
from pathlib import Path

import tomllib

import labkit

ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_requirements_txt_lists_what_pyproject_declares():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert _requirements() == project["dependencies"]
    assert "version" not in project and project["dynamic"] == ["version"]  # the one version: labkit.core
    assert not any("==" in r and r.startswith("torch") for r in _requirements()), "never pin torch (Colab)"


def test_version_is_labkits():
    assert labkit.__version__ == labkit.core.__version__


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_labkit_never_imports_the_course_tools():
    offenders = {
        str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m.split(".")[0] == "course")
        for p in (ROOT / "labkit").rglob("*.py")
    }
    assert not {p: m for p, m in offenders.items() if m}


def test_no_notebook_imports_the_course_tools():
    import nbformat

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        assert "import course" not in source and "from course" not in source, path.name


# labkit's floors, bottom up: a module imports only from its own floor or below (see DESIGN.md).
FLOORS = [
    {"core", "util"},
    {"progress", "metrics", "data", "models"},
    {"train", "interpret", "plots"},
    {"widgets", "check", "colab", "recipes"},
    {"params"},
    {"zoo"},
    {"lab"},
]


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """labkit's modules and the labkit modules each imports (also inside functions); a name taken from a
    package's `__init__` counts as an import of the module that defines it."""
    files = {_module(p): p for p in (ROOT / "labkit").rglob("*.py")}
    trees = {name: ast.parse(path.read_text()) for name, path in files.items()}

    def imports(name: str) -> list[tuple[str, str | None]]:
        """(module, imported name or None) for each import statement of module `name`."""
        package = name if files[name].name == "__init__.py" else name.rpartition(".")[0]
        found: list[tuple[str, str | None]] = []
        for node in ast.walk(trees[name]):
            if isinstance(node, ast.Import):
                found += [(a.name, None) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                found += [(base, a.asname or a.name) for a in node.names]
        return found

    faces = {n for n, p in files.items() if p.name == "__init__.py"}
    hands_on = {face: {bound: module for module, bound in imports(face) if bound} for face in faces}
    graph: dict[str, set[str]] = {}
    for name in files:
        targets = set()
        for module, bound in imports(name):
            if bound and f"{module}.{bound}" in files:
                targets.add(f"{module}.{bound}")  # from labkit.data import shapes: the submodule
            elif bound and module in faces and bound in hands_on[module]:
                targets.add(hands_on[module][bound])  # a name the package's face hands on
            else:
                targets.add(module)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def _floor(module: str) -> int:
    part = module.split(".")[1] if "." in module else "__init__"
    return next((i for i, floor in enumerate(FLOORS) if part in floor), len(FLOORS))


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_labkit_has_no_import_cycle_and_imports_run_down_its_floors():
    graph = import_graph()
    assert not _cycles(graph)
    upward = sorted(f"{a} -> {b}" for a, deps in graph.items() for b in deps if _floor(b) > _floor(a))
    assert len(upward) <= 3, upward


def test_a_grading_worker_imports_neither_rfc3987_syntax_nor_torchvision_before_a_test_needs_them():
    """Each submission's worker (python -m course.grading.worker) reads notebooks with nbformat, and runs
    checks that import labkit.interpret: the grammars rfc3987-syntax builds for jsonschema would cost it
    1.2 s (course/__init__.py), torchvision 1.3 s (labkit.interpret imports it where it blurs)."""
    import subprocess
    import sys

    code = (
        "import sys, course.grading.worker, labkit.check, labkit.interpret; "
        "print(sorted(m for m in ('rfc3987_syntax', 'lark', 'torchvision') if sys.modules.get(m)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
