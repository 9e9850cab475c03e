"""Reads a submission's code, before any of it runs, for changes to the grading machinery.

Tampering (the submission earns no points, and the feedback says where):
* assigning to, deleting or `setattr` on anything reached from labkit, IPython, ipykernel, nbgrader,
  `builtins`, numpy or torch (`torch.backends.*` settings excepted), or from `get_ipython()`;
* rebinding the name `labkit`, or changing `sys.modules`, `sys.excepthook` / `displayhook`;
* installing trace or profile functions, or kernel event callbacks (`sys.settrace`,
  `sys.setprofile`, `events.register`, `set_custom_exc`).

Suspicious (noted for the instructor, no points lost): `exec`, `eval`, `compile`, `__import__`,
`importlib`, `ctypes`, programs and shell escapes (`subprocess`, `os.system`, `!cmd`), network
modules, frame inspection, and `open` of an absolute or parent path.

Obfuscated code (a string handed to `exec`) escapes a static reading; the sandbox and the checks'
own integrity test are the next layers (see `course.grading.sandbox` and `labkit.check`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

PROTECTED = (
    "labkit",
    "IPython",
    "ipykernel",
    "nbgrader",
    "builtins",
    "__builtins__",
    "numpy",
    "torch",
    "get_ipython()",
    "sys.modules",
    "sys.excepthook",
    "sys.displayhook",
    "sys.meta_path",
    "sys.path_hooks",
    "sys.settrace",
    "sys.setprofile",
    "globals()['labkit']",
)
ALLOWED = ("torch.backends.",)
HOOK_CALLS = {"settrace", "setprofile", "set_custom_exc", "register_post_execute"}
SUSPICIOUS_CALLS = {
    "exec",
    "eval",
    "compile",
    "__import__",
    "_getframe",
    "currentframe",
    "get_referrers",
    "system",
    "popen",
    "Popen",
    "run_cell",
    "getsource",
    "import_module",
    "reload",
}
SUSPICIOUS_MODULES = (
    "ctypes",
    "subprocess",
    "socket",
    "urllib",
    "requests",
    "http",
    "importlib",
    "pty",
    "multiprocessing",
    "gc",
    "inspect",
)


@dataclass
class Findings:
    tampering: list[str] = field(default_factory=list)
    suspicious: list[str] = field(default_factory=list)


def _strip_magics(source: str) -> tuple[str, list[int]]:
    """IPython magics and shell escapes are not Python: blank them, noting shell escapes' lines."""
    lines, shell = [], []
    for i, line in enumerate(source.splitlines(), start=1):
        stripped = line.lstrip()
        if stripped.startswith(("!", "%")):
            if stripped.startswith("!") or stripped.startswith(("%system", "%%bash", "%%sh", "%sx")):
                shell.append(i)
            lines.append("")
        else:
            lines.append(line)
    return "\n".join(lines), shell


class _Reader(ast.NodeVisitor):
    def __init__(self, aliases: dict[str, str], where: str, findings: Findings) -> None:
        self.aliases, self.where, self.findings = aliases, where, findings

    def _dotted(self, node: ast.AST) -> str | None:
        """`np.linalg.norm` -> "numpy.linalg.norm" (through import aliases); None if not a name chain."""
        parts = []
        while True:
            if isinstance(node, ast.Attribute):
                parts.append(node.attr)
                node = node.value
            elif isinstance(node, ast.Subscript):
                key = node.slice
                parts.append(f"[{key.value!r}]" if isinstance(key, ast.Constant) else "[...]")
                node = node.value
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.args:
                parts.append(f"{node.func.id}()")
                break
            elif isinstance(node, ast.Name):
                parts.append(self.aliases.get(node.id, node.id))
                break
            else:
                return None
        text = ""
        for part in reversed(parts):
            text += part if (not text or part.startswith("[")) else "." + part
        return text

    def _protected(self, dotted: str | None) -> bool:
        if not dotted or dotted.startswith(ALLOWED):
            return False
        return any(dotted == p or dotted.startswith((p + ".", p + "[")) for p in PROTECTED)

    def _tamper(self, node: ast.AST, what: str) -> None:
        self.findings.tampering.append(f"{self.where}, line {node.lineno}: {what}")

    def _suspect(self, node: ast.AST, what: str) -> None:
        self.findings.suspicious.append(f"{self.where}, line {node.lineno}: {what}")

    def _target(self, node: ast.AST, verb: str) -> None:
        if isinstance(node, (ast.Tuple, ast.List)):
            for element in node.elts:
                self._target(element, verb)
        elif isinstance(node, ast.Name):
            if node.id == "labkit":
                self._tamper(node, f"{verb} the name `labkit`")
        elif isinstance(node, (ast.Attribute, ast.Subscript)):
            dotted = self._dotted(node)
            if self._protected(dotted):
                self._tamper(node, f"{verb} `{dotted}`")

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._target(target, "assigns to")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._target(node.target, "changes")
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._target(node.target, "assigns to")
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._target(target, "deletes")
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        if node.name == "labkit":
            self._tamper(node, "defines a function named `labkit`")
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        if node.name == "labkit":
            self._tamper(node, "defines a class named `labkit`")
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname == "labkit" and alias.name != "labkit":
                self._tamper(node, f"imports {alias.name} as `labkit`")
            if alias.name.split(".")[0] in SUSPICIOUS_MODULES:
                self._suspect(node, f"imports {alias.name}")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if (alias.asname or alias.name) == "labkit" and (node.module or "") != "":
                self._tamper(node, f"imports {node.module}.{alias.name} as `labkit`")
        if (node.module or "").split(".")[0] in SUSPICIOUS_MODULES:
            self._suspect(node, f"imports from {node.module}")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = (
            func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        )
        if name in ("setattr", "delattr") and node.args:
            dotted = self._dotted(node.args[0])
            if self._protected(dotted) or dotted in ("labkit",):
                self._tamper(node, f"{name}() on `{dotted}`")
        elif name in HOOK_CALLS or (name == "register" and "events" in (self._dotted(func) or "")):
            self._tamper(node, f"calls {self._dotted(func) or name}()")
        elif (
            isinstance(func, ast.Attribute)
            and self._protected(self._dotted(func.value))
            and name in ("update", "pop", "setdefault", "clear", "__setitem__", "__delitem__", "popitem")
        ):
            self._tamper(node, f"calls {self._dotted(func)}()")
        elif name in SUSPICIOUS_CALLS:
            self._suspect(node, f"calls {self._dotted(func) or name}()")
        elif (
            name == "open"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and node.args[0].value.startswith(("/", "..", "~"))
        ):
            self._suspect(node, f"opens {node.args[0].value!r}")
        self.generic_visit(node)


def _aliases(trees: list[ast.AST]) -> dict[str, str]:
    names = {"labkit": "labkit"}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        names[a.asname] = a.name
                    else:
                        names.setdefault(a.name.split(".")[0], a.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def scan(nb, skip: set[str] = frozenset()) -> Findings:
    """Read the code cells of notebook `nb` (an nbformat node), leaving out those whose nbgrader
    grade id is in `skip` (the cells grading replaces by the master's)."""
    findings = Findings()
    parsed = []  # (cell index, tree, whether the student wrote it)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        own = cell.metadata.get("nbgrader", {}).get("grade_id") not in skip
        source, shell = _strip_magics(cell.source)
        for line in shell if own else ():
            findings.suspicious.append(f"cell {index}, line {line}: a shell command")
        try:
            parsed.append((index, ast.parse(source), own))
        except SyntaxError as err:
            if own:
                findings.suspicious.append(f"cell {index}: not valid Python ({err.msg}, line {err.lineno})")
    aliases = _aliases([tree for _, tree, _ in parsed])  # names the lab's own cells import count too
    for index, tree, own in parsed:
        if own:
            _Reader(aliases, f"cell {index}", findings).visit(tree)
    return findings
