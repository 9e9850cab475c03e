"""A lab's test cells, run in the grader's process against a submission's process: the verdict.

`Tests(master, submission)` runs each test cell of the master (visible checks and hidden tests) in a
namespace of the grader's own. Names the cell reads are found, in this order:

1. what the tests defined themselves (earlier test cells, this one);
2. the imports of the master's own cells (`import torch`, `from labkit import data`), run here: a
   notebook that rebinds `np` or `data` changes nothing the tests use;
3. functions and classes the master's read-only cells define, from the master's source;
4. anything else, the student's answers first, from the submission's process: plain values as
   copies, other objects as `course.grading.remote.Remote` stand-ins.

A test cell passes when it runs to its end; its exception is the reason it failed. Nothing the
submission's process prints, returns or raises can make a test pass: at most it is the value a check
compares.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import os
import symtable
import tempfile
from pathlib import Path
from typing import Any

from course.grading import remote
from course.grading.submission_process import TEST_FILENAME


def free_names(source: str) -> list[str]:
    """Global names the code reads and does not bind at its top level, from Python's own scoping
    (`symtable`): a function's argument named like a notebook variable is not one of them."""
    top = symtable.symtable(source, TEST_FILENAME, "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    found: dict[str, None] = {}
    tables = [top]
    while tables:
        table = tables.pop(0)
        for symbol in table.get_symbols():
            if symbol.is_referenced() and symbol.is_global() and symbol.get_name() not in bound:
                found.setdefault(symbol.get_name())
        tables += table.get_children()
    return list(found)


def _is_solution(cell) -> bool:
    return bool(cell.metadata.get("nbgrader", {}).get("solution"))


def master_sources(master) -> tuple[dict[str, str], dict[str, str]]:
    """({name: import statement}, {name: def or class source}) of the master's cells that are not answers;
    definitions from read-only cells only."""
    imports: dict[str, str] = {}
    definitions: dict[str, str] = {}
    for cell in master.cells:
        if cell.cell_type != "code" or _is_solution(cell):
            continue
        meta = cell.metadata.get("nbgrader", {})
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    name = (alias.asname or alias.name).split(".")[0]
                    single = (
                        ast.Import([alias])
                        if isinstance(node, ast.Import)
                        else ast.ImportFrom(node.module, [alias], node.level)
                    )
                    imports.setdefault(name, ast.unparse(single))
            elif (
                meta.get("locked")
                and not meta.get("grade")
                and isinstance(node, (ast.FunctionDef, ast.ClassDef))
            ):
                definitions[node.name] = ast.unparse(node)
    return imports, definitions


class Tests:
    """The master's test cells, run one at a time against `submission` (a `remote.Submission`)."""

    def __init__(self, master, submission: remote.Submission, shared: Path | None = None) -> None:
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        self.submission = submission
        self.shared = shared
        submission.exceptions = self.namespace
        self.imports, self.definitions = master_sources(master)

    def _resolve(self, name: str, seen: set[str]) -> None:
        if name in self.namespace or hasattr(builtins, name) or name in seen:
            return
        seen.add(name)
        if name in self.imports:
            exec(compile(self.imports[name], TEST_FILENAME, "exec"), self.namespace)
            return
        if name in self.definitions:
            for needed in free_names(self.definitions[name]):
                self._resolve(needed, seen)
            exec(compile(self.definitions[name], TEST_FILENAME, "exec"), self.namespace)
            return
        try:
            self.namespace[name] = self.submission.request("global", name)
        except NameError:
            pass  # the cell will fail on it, as it would in the notebook

    def run(self, source: str) -> None:
        """Run one test cell; raises what the cell raised."""
        for name in free_names(source):
            self._resolve(name, set())
        with self.shared_temporary_files():
            exec(compile(source, TEST_FILENAME, "exec"), self.namespace)

    @contextlib.contextmanager
    def shared_temporary_files(self):
        """The tests' temporary files in a folder of the grader's that the submission's process can read
        and not change (its /tmp is its own): files a test makes for the answer to read (lab 01's
        damaged images) reach it."""
        if self.shared is None:
            yield
            return
        made = tempfile.mkdtemp

        def readable_mkdtemp(*args, **kwargs):
            path = made(*args, **kwargs)
            os.chmod(path, 0o755)
            return path

        before = tempfile.tempdir
        tempfile.tempdir, tempfile.mkdtemp = str(self.shared), readable_mkdtemp
        try:
            yield
        finally:
            tempfile.tempdir, tempfile.mkdtemp = before, made
