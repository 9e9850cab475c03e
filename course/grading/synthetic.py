"""A synthetic class of submissions made from a lab's master: `python -m course.grading.synthetic 02 --out
DIR -n 200` (the tests use a small one, `make bench BENCH=grading` a full one).

`make_class(lab, out, n)` writes

* `OUT/submissions/<student>.ipynb`, students s000, s001, ... of these kinds (shares of the class; the
  counts are rounded, each kind gets at least its minimum, full takes the rest; the smallest class, of 8,
  has no full one but a pair, whose notebooks hold the master's answers too):

  | kind | share | min | what the notebook is |
  |---|---|---|---|
  | full | rest (about 40 %) | 0 | every answer cell holds the master's answer |
  | partial | 20 % | 1 | some exercises answered, the others left as the student version's placeholder |
  | wrong | 16 % | 1 | one or two exercises answered by a wrong answer of `tests/wrong_answers/labNN.py` |
  | empty | 8 % | 1 | the student version, untouched |
  | near-duplicate | 10 % | 2 | pairs: the second is the first's notebook in disguise (answer cells' |
  | | | | identifiers renamed, comments changed, blank lines moved) |
  | malformed | 6 % | 3 | in turn: invalid JSON, a file cut short, a notebook of no lab |

  Real students do not write identical code, so every answered cell also ends with a few lines of the
  student's own exploration (`Scratch`: small computations and prints drawn from a grammar, parameterised
  per student, harmless and fast, with names no lab uses): two independent students share the master's
  answer and little else, while a near-duplicate pair shares its own lines too;
* `OUT/timestamps.csv` (`student,timestamp`, ISO 8601): 10 % of the gradable students (at least one)
  submitted after `due`, the others before it;
* `OUT/roster.csv`: a Canvas-style roster (`Student, ID, SIS User ID, SIS Login ID, Section`; the SIS
  login is the student's file stem);
* `OUT/manifest.json`: each student's kind, the exercises expected to pass (`answered`) and to fail
  (`wrong`), the pair partner, the minutes late, the status grading should give.

Everything follows from the seed: the same arguments give the same bytes.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import csv
import io
import json
import keyword
import random
import re
import runpy
import sys
import tempfile
import tokenize
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat

from course.grading.assignments import exercises, make_student_copies
from labkit.core import LabError, atomic_write, project_root

SHARES = {"partial": 0.20, "wrong": 0.16, "empty": 0.08, "near-duplicate": 0.10, "malformed": 0.06}
MINIMUM = {"partial": 1, "wrong": 1, "empty": 1, "near-duplicate": 2, "malformed": 3}
LATE_SHARE = 0.10
MALFORMED = ("invalid json", "truncated", "no lab")
DUE = datetime(2025, 3, 14, 23, 59, tzinfo=timezone.utc)  # when `due` is not given
MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


@dataclass
class Student:
    """One synthetic student and what grading should find."""

    student: str
    kind: str
    answered: list[str] = field(default_factory=list)  # exercises with the master's answer: full marks
    wrong: list[str] = field(default_factory=list)  # exercises answered wrongly: they lose their points
    wrong_why: list[str] = field(default_factory=list)
    pair: str | None = None  # the other student of a near-duplicate pair
    copy_of: str | None = None  # the second of a pair: whose notebook it disguises
    malformed: str | None = None  # one of MALFORMED
    late_minutes: int = 0
    timestamp: str = ""
    expected_status: str = "ok"  # what grading should say: ok, unreadable, unknown lab
    expected_points: float | None = None  # the answered exercises' points (None: not gradable)


@dataclass
class Manifest:
    """The class `make_class` wrote (also `OUT/manifest.json`)."""

    lab: str
    n: int
    seed: int
    due: str
    exercises: dict[str, float]  # exercise -> points
    counts: dict[str, int]
    notes: list[str]
    students: dict[str, Student]

    def of_kind(self, kind: str) -> list[Student]:
        return [s for s in self.students.values() if s.kind == kind]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def read(cls, path: str | Path) -> Manifest:
        data = json.loads(Path(path).read_text())
        data["students"] = {k: Student(**v) for k, v in data["students"].items()}
        return cls(**data)


# ----------------------------------------------------------------------------- the student's own lines
WORDS = (
    "tmp probe check trial scratch demo look peek extra aux note quick sample mine rough draft spare side "
    "little test try toy small first other"
).split()
NOUNS = (
    "vals total count items acc seq table score size pairs ratio idx steps parts buf nums tally stack row "
    "bag list sums marks span bits key box"
).split()
LABELS = (
    "check sanity debug note peek values result quick look trying this does it work ok? seen here step "
    "done got so far"
).split()
PHRASES = (
    "just checking something",
    "trying things out",
    "my own test",
    "sanity check before moving on",
    "playing with the numbers",
    "does this behave as I think?",
    "quick experiment",
    "small check, can delete later",
)


class Scratch:
    """A student's exploration lines: small valid programs from a grammar of statements (numbers, lists,
    loops, branches, helpers, strings, checks, prints) over fresh names no lab uses; every loop short,
    every value small, every print one line, nothing that can raise."""

    def __init__(self, rng: random.Random, taken: set[str]) -> None:
        self.rng, self.taken = rng, set(taken)
        self.names: set[str] = (
            set()
        )  # every name this student's lines bind (the pair's disguise renames them)

    def fresh(self) -> str:
        while True:
            name = f"{self.rng.choice(WORDS)}_{self.rng.choice(NOUNS)}"
            if self.rng.random() < 0.3:
                name += str(self.rng.randint(1, 9))
            if name not in self.taken:
                self.taken.add(name)
                self.names.add(name)
                return name

    def block(self, defined: list[str]) -> list[str]:
        """One piece of exploration: 3-5 statements and a print, at the top level of a cell whose
        functions and classes are `defined`."""
        scope = _Scope()
        lines = [] if self.rng.random() < 0.6 else [f"# {self.rng.choice(PHRASES)}"]
        for _ in range(self.rng.randint(3, 5)):
            lines += self.statement(scope, 0)
        if defined and self.rng.random() < 0.2:  # a look at what the cell defined
            name, what = self.fresh(), self.rng.choice(defined)
            look = (f"len({what}.__name__)", f"{what}.__name__.count('_')", f"int(callable({what}))")
            lines.append(f"{name} = {self.rng.choice(look)}")
            scope.ints.append(name)
        lines.append(self.show(scope))
        return lines

    # expressions: integers only, no division by anything but a constant, nothing that can raise
    def atom(self, scope: _Scope) -> str:
        rng = self.rng
        pick = rng.random()
        if scope.ints and pick < 0.45:
            return rng.choice(scope.ints)
        if scope.lists and pick < 0.6:
            name, size = rng.choice(scope.lists)
            return rng.choice(
                (f"len({name})", f"sum({name})", f"{name}[{rng.randrange(size)}]", f"{name}[-1]")
            )
        return str(rng.randint(0, 29))

    def expr(self, scope: _Scope, depth: int = 2) -> str:
        rng = self.rng
        if depth == 0 or rng.random() < 0.25:
            return self.atom(scope)
        a, b = self.expr(scope, depth - 1), self.expr(scope, depth - 1)
        pa, pb = (x if " " not in x else f"({x})" for x in (a, b))
        return rng.choice(
            (
                f"{pa} + {pb}",
                f"{pa} - {pb}",
                f"{pa} * {pb}",
                f"{pa} % {rng.randint(2, 11)}",
                f"{pa} // {rng.randint(2, 11)}",
                f"max({a}, {b})",
                f"min({a}, {b}, {rng.randint(0, 20)})",
                f"abs({a} - {b})",
                f"{pa} if {pa} {rng.choice(('>', '<', '>=', '<=', '!='))} {pb} else {pb}",
                f"{pa} ^ {pb}",
                f"({a}) * {rng.randint(2, 5)} + {rng.randint(0, 9)}",
            )
        )

    def condition(self, scope: _Scope) -> str:
        op = self.rng.choice((">", "<", ">=", "<=", "==", "!="))
        text = f"{self.expr(scope, 1)} {op} {self.rng.randint(0, 25)}"
        if self.rng.random() < 0.25:
            parity = f"{self.expr(scope, 0)} % 2 == {self.rng.randint(0, 1)}"
            text = f"{text} {self.rng.choice(('and', 'or'))} {parity}"
        return text

    # statements: lists of lines, body statements indented by the caller
    def statement(self, scope: _Scope, depth: int) -> list[str]:
        rng = self.rng
        kinds = [self._assign, self._literal, self._comprehension, self._text, self._parse, self._check]
        if depth == 0:
            kinds += [self._loop, self._branch, self._countdown, self._helper, self._table, self._appended]
        if scope.ints:
            kinds.append(self._update)
        return rng.choice(kinds)(scope, depth)

    def _body(self, scope: _Scope, depth: int) -> list[str]:
        inner = _Scope(list(scope.ints), list(scope.lists))
        lines = []
        for _ in range(self.rng.randint(1, 2)):
            lines += self.statement(inner, depth + 1)
        return ["    " + line for line in lines]

    def _assign(self, scope: _Scope, depth: int) -> list[str]:
        name = self.fresh()
        line = f"{name} = {self.expr(scope)}"
        scope.ints.append(name)
        return [line]

    def _update(self, scope: _Scope, depth: int) -> list[str]:
        name = self.rng.choice([n for n in scope.ints if n.isidentifier()] or [None])
        if name is None:
            return self._assign(scope, depth)
        return [f"{name} {self.rng.choice(('+=', '-=', '^=', '|='))} {self.expr(scope, 1)}"]

    def _literal(self, scope: _Scope, depth: int) -> list[str]:
        name, size = self.fresh(), self.rng.randint(2, 7)
        values = ", ".join(str(self.rng.randint(-9, 40)) for _ in range(size))
        scope.lists.append((name, size))
        return [f"{name} = [{values}]"]

    def _comprehension(self, scope: _Scope, depth: int) -> list[str]:
        name, v, size = self.fresh(), self.fresh(), self.rng.randint(2, 9)
        value = self.expr(_Scope(scope.ints + [v], list(scope.lists)), 1)
        scope.lists.append((name, size))
        return [f"{name} = [{value} for {v} in range({size})]"]

    def _text(self, scope: _Scope, depth: int) -> list[str]:
        text, n = self.fresh(), self.fresh()
        words = " ".join(self.rng.sample(LABELS + WORDS, self.rng.randint(2, 5)))
        use = self.rng.choice(
            (f"len({text}.split())", f"{text}.count({self.rng.choice('aeiost')!r})", f"len({text}.strip())")
        )
        scope.ints.append(n)
        return [f"{text} = {words!r}", f"{n} = {use}"]

    def _parse(self, scope: _Scope, depth: int) -> list[str]:
        name = self.fresh()
        value = self.rng.choice(
            (str(self.rng.randint(0, 999)), self.rng.choice(WORDS), f" {self.rng.randint(0, 99)} ")
        )
        scope.ints.append(name)
        caught = self.rng.choice(("ValueError", "(TypeError, ValueError)", "Exception"))
        fallback = self.rng.choice((str(-self.rng.randint(1, 9)), "0", str(self.rng.randint(10, 99))))
        return [
            "try:",
            f"    {name} = {self.rng.choice(('int', 'len'))}({value!r})",
            f"except {caught}:",
            f"    {name} = {fallback}",
        ]

    def _check(self, scope: _Scope, depth: int) -> list[str]:
        if scope.lists and self.rng.random() < 0.5:
            name, size = self.rng.choice(scope.lists)
            return [f"assert len({name}) == {size}, {self.rng.choice(LABELS)!r}"]
        if scope.ints:
            return [f"assert isinstance({self.rng.choice(scope.ints)}, int)"]
        return self._literal(scope, depth)

    def _loop(self, scope: _Scope, depth: int) -> list[str]:
        total, v = self.fresh(), self.fresh()
        header = f"for {v} in range({self.rng.randint(2, 12)}):"
        if scope.lists and self.rng.random() < 0.4:
            header = f"for {v} in {self.rng.choice(scope.lists)[0]}:"
        inner = _Scope(scope.ints + [v], list(scope.lists))  # not `total`: no growth faster than linear
        scope.ints.append(total)
        body = [f"    {total} {self.rng.choice(('+=', '-=', '^='))} {self.expr(inner, 1)}"]
        if self.rng.random() < 0.4:
            body = [f"    if {self.condition(inner)}:", "    " + body[0]]
        return [f"{total} = {self.rng.randint(0, 9)}", header, *body]

    def _branch(self, scope: _Scope, depth: int) -> list[str]:
        lines = [f"if {self.condition(scope)}:", *self._body(scope, depth)]
        if self.rng.random() < 0.3:
            lines += [f"elif {self.condition(scope)}:", *self._body(scope, depth)]
        if self.rng.random() < 0.6:
            lines += ["else:", *self._body(scope, depth)]
        return lines

    def _countdown(self, scope: _Scope, depth: int) -> list[str]:
        left, steps = self.fresh(), self.fresh()
        scope.ints += [left, steps]
        down, up = self.rng.randint(3, 11), self.rng.randint(1, 3)
        lines = [
            self.rng.choice(
                (f"{left}, {steps} = {self.rng.randint(10, 80)}, 0", f"{left} = {self.rng.randint(10, 80)}")
            ),
            f"while {left} {self.rng.choice(('>', '>='))} {self.rng.randint(1, 5)}:",
            self.rng.choice((f"    {left} -= {down}", f"    {left} = {left} - {down}", f"    {left} //= 2")),
            self.rng.choice((f"    {steps} += {up}", f"    {steps} = {steps} + {up}")),
        ]
        if "," not in lines[0]:
            lines.insert(1, f"{steps} = {self.rng.randint(0, 3)}")
        return lines

    def _helper(self, scope: _Scope, depth: int) -> list[str]:
        fn, result = self.fresh(), self.fresh()
        params = [self.fresh() for _ in range(self.rng.randint(1, 3))]
        inner = _Scope(list(params), [])
        body = []
        if self.rng.random() < 0.5:
            body = self._body(inner, depth + 1)
        args = ", ".join(self.expr(scope, 0) for _ in params)
        scope.ints.append(result)
        return [
            f"def {fn}({', '.join(params)}):",
            *body,
            f"    return {self.expr(inner, 2)}",
            "",
            f"{result} = {fn}({args})",
        ]

    def _table(self, scope: _Scope, depth: int) -> list[str]:
        table, key, n = self.fresh(), self.fresh(), self.fresh()
        inner = _Scope(scope.ints + [key], list(scope.lists))
        size = self.rng.randint(2, 8)
        use = self.rng.choice((f"len({table})", f"sum({table}.values())", f"max({table}.values())"))
        scope.ints.append(n)
        return [f"{table} = {{{key}: {self.expr(inner, 1)} for {key} in range({size})}}", f"{n} = {use}"]

    def _appended(self, scope: _Scope, depth: int) -> list[str]:
        name, v, size = self.fresh(), self.fresh(), self.rng.randint(1, 8)
        value = self.expr(_Scope(scope.ints + [v], list(scope.lists)), 1)
        scope.lists.append((name, size))
        return [f"{name} = []", f"for {v} in range({size}):", f"    {name}.append({value})"]

    def show(self, scope: _Scope) -> str:
        """A one-line print of a label and a few of the values, in one of the ways people write it."""
        rng = self.rng
        values = [n for n in scope.ints if n.isidentifier()] + [f"len({n})" for n, _ in scope.lists]
        parts = rng.sample(values, min(len(values), rng.randint(1, 3))) or [str(rng.randint(0, 9))]
        label = " ".join(rng.sample(LABELS, rng.randint(1, 2)))
        style = rng.randrange(4)
        if style == 0:
            return f"print({label!r}, {', '.join(parts)})"
        if style == 1:
            return "print(f" + repr(f"{label}: " + ", ".join("{" + p + "}" for p in parts)) + ")"
        if style == 2:
            return f"print({label!r} + ' ' + str(({', '.join(parts)},)))"
        return f"print({(label + ' ' + ' '.join('%s' for _ in parts))!r} % ({', '.join(parts)},))"


@dataclass
class _Scope:
    """What a piece of exploration can use: integer names and expressions, and lists with their lengths."""

    ints: list[str] = field(default_factory=list)
    lists: list[tuple[str, int]] = field(default_factory=list)


# ----------------------------------------------------------------------------- a copy in disguise
def _renamable(tree: ast.AST, own: set[str]) -> set[str]:
    """Names safe to rename everywhere in a cell: the student's own (`own`), and master locals, i.e. names
    every occurrence of which is a local variable of a function enclosing it (not an argument, not
    global, not a comprehension variable only)."""
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    local: dict[ast.AST, set[str]] = {}
    excluded = {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            excluded |= set(node.names)

    def scope(node):  # the innermost function or comprehension around `node`
        node = parents.get(node)
        while node is not None and not isinstance(
            node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.comprehension, ast.ClassDef)
        ):
            node = parents.get(node)
        return node

    names = [n for n in ast.walk(tree) if isinstance(n, ast.Name)]
    for n in names:
        where = scope(n)
        if isinstance(n.ctx, ast.Store) and isinstance(where, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local.setdefault(where, set()).add(n.id)
    candidates = set().union(*local.values()) - excluded if local else set()
    for n in names:
        if n.id not in candidates:
            continue
        node, ok = n, False
        while (node := parents.get(node)) is not None:
            if n.id in local.get(node, ()):
                ok = True
                break
        if not ok:
            candidates.discard(n.id)
    return candidates | own


def _rename_tree(tree: ast.AST, mapping: dict[str, str]) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in mapping:
            node.id = mapping[node.id]
        elif isinstance(node, ast.arg) and node.arg in mapping:
            node.arg = mapping[node.arg]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in mapping:
            node.name = mapping[node.name]
    return tree


def _rename_text(source: str, tree: ast.AST, mapping: dict[str, str]) -> str:
    """`source` with the names of `mapping` replaced where the tree says they are (comments kept)."""
    lines = [line.encode() for line in source.split("\n")]
    spots = []  # (line index, byte column, old name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in mapping:
            spots.append((node.lineno - 1, node.col_offset, node.id))
        elif isinstance(node, ast.arg) and node.arg in mapping:
            spots.append((node.lineno - 1, node.col_offset, node.arg))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in mapping:
            found = re.compile(rb"(async\s+)?def\s+").match(lines[node.lineno - 1], node.col_offset)
            if found:
                spots.append((node.lineno - 1, found.end(), node.name))
    for row, col, old in sorted(spots, reverse=True):
        line = lines[row]
        if line[col : col + len(old)] == old.encode():
            lines[row] = line[:col] + mapping[old].encode() + line[col + len(old) :]
    return "\n".join(line.decode() for line in lines)


def _tokens(source: str) -> list[tokenize.TokenInfo]:
    return list(tokenize.generate_tokens(io.StringIO(source).readline))


def _restyle(source: str, rng: random.Random) -> str:
    """Comments dropped or reworded, blank lines removed and others added before statements."""
    lines = source.split("\n")
    protected: set[int] = set()  # lines inside a string spanning lines (0-based, as `lines`)
    starts: set[int] = set()  # lines a statement starts on
    dropped: set[int] = set()  # comment lines left out
    new_statement = True
    for tok in _tokens(source):
        row, col = tok.start[0] - 1, tok.start[1]
        if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
            protected |= set(range(tok.start[0], tok.end[0]))
        if tok.type == tokenize.NEWLINE:
            new_statement = True
        elif tok.type == tokenize.COMMENT:
            code = lines[row][:col]
            if rng.random() < 0.5:  # left out
                lines[row] = code.rstrip()
                if not code.strip():
                    dropped.add(row)
            else:
                lines[row] = code + f"# {rng.choice(PHRASES)}"
        elif new_statement and tok.type not in (
            tokenize.INDENT,
            tokenize.DEDENT,
            tokenize.NL,
            tokenize.ENDMARKER,
        ):
            starts.add(row)
            new_statement = False
    out: list[str] = []
    for i, line in enumerate(lines):
        if i in dropped or (not line.strip() and i not in protected and rng.random() < 0.7):
            continue
        if i in starts and out and rng.random() < 0.25:
            out.append("")
        out.append(line)
    return "\n".join(out)


def disguise(source: str, own: set[str], rng: random.Random, taken: set[str]) -> str:
    """A copy of the cell `source` in disguise: the student's own names (`own`) and the answer's local
    variables renamed, comments changed, blank lines moved; the same program (checked on its syntax tree,
    else only restyled)."""
    tree = ast.parse(source)
    present = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    mapping = {}
    for old in sorted(_renamable(tree, own & present)):
        while True:
            new = f"{rng.choice(WORDS)}_{rng.choice(NOUNS)}{rng.randint(1, 99)}"
            if new not in taken:
                taken.add(new)
                mapping[old] = new
                break
    renamed = _rename_text(source, tree, mapping)
    expected = ast.dump(_rename_tree(ast.parse(source), mapping))
    try:
        same = ast.dump(ast.parse(renamed)) == expected
    except SyntaxError:
        same = False
    if not same:
        renamed = source
    restyled = _restyle(renamed, rng)
    return restyled if ast.dump(ast.parse(restyled)) == ast.dump(ast.parse(renamed)) else renamed


# ----------------------------------------------------------------------------- the class
def _resolve(lab: str, masters: Path) -> Path:
    found = sorted(masters.glob("[0-9][0-9]_*.ipynb"))
    chosen = [p for p in found if lab in (p.stem, p.stem[:2])]
    if len(chosen) != 1:
        raise LabError(f"lab {lab!r}: not one of the masters in {masters}: {[p.stem for p in found]}.")
    return chosen[0]


def _wrong_answers(lab: str, masters: Path) -> list[dict]:
    for folder in (masters.parent / "tests" / "wrong_answers", project_root() / "tests" / "wrong_answers"):
        path = folder / f"lab{lab[:2]}.py"
        if path.is_file():
            return runpy.run_path(str(path))["WRONG"]
    return []


def _counts(n: int, has_wrong: bool) -> dict[str, int]:
    """Students of each kind: the shares rounded, at least each kind's minimum, full the rest (a small
    class takes from the biggest kinds down to their minimums to keep one full submission if it can)."""
    counts = {}
    for kind, share in SHARES.items():
        if kind == "wrong" and not has_wrong:
            counts[kind] = 0
        elif kind == "near-duplicate":
            counts[kind] = 2 * max(1, round(share * n / 2))
        else:
            counts[kind] = max(MINIMUM[kind], round(share * n))
    while n - sum(counts.values()) < 1:  # one full submission, where the minimums leave room for it
        spare = [k for k in counts if counts[k] > (MINIMUM[k] if counts[k] else 0)]
        if not spare:
            break
        biggest = max(spare, key=lambda k: counts[k])
        counts[biggest] -= 2 if biggest == "near-duplicate" else 1
    if n < sum(counts.values()):
        least = sum(counts.values())
        raise LabError(f"a class of {n} is too small for every kind of submission: give -n {least} or more.")
    counts["full"] = n - sum(counts.values())
    return counts


def _identifiers(*notebooks) -> set[str]:
    words = set(dir(builtins)) | set(keyword.kwlist) | {"labkit"}
    for nb in notebooks:
        for cell in nb.cells:
            words |= set(re.findall(r"[A-Za-z_]\w*", cell.source))
    return words


def _strip_markers(source: str) -> str:
    return "\n".join(line for line in source.split("\n") if line.strip() not in MARKERS)


def _defined(source: str) -> list[str]:
    tree = ast.parse(source)
    return [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]


def _answer_cells(master, exercise_ids: set[str]) -> dict[str, str]:
    """{grade id of an answer cell: its exercise}: each answer cell belongs to the next test cell."""
    owner, pending = {}, []
    for cell in master.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution"):
            pending.append(meta["grade_id"])
        elif meta.get("grade_id") in exercise_ids:
            owner.update({gid: meta["grade_id"] for gid in pending})
            pending = []
    return owner


class _Maker:
    """Builds the notebooks of one class (see `make_class`)."""

    def __init__(self, master_path: Path, student_path: Path, seed: int, masters: Path) -> None:
        self.master = nbformat.read(master_path, as_version=4)
        self.release = nbformat.read(student_path, as_version=4)
        self.lab = master_path.stem
        self.seed = seed
        self.points = {e.id: e.points for e in exercises(self.master)}
        self.owner = _answer_cells(self.master, set(self.points))
        self.answers = {
            c.metadata["nbgrader"]["grade_id"]: c.source
            for c in self.master.cells
            if c.metadata.get("nbgrader", {}).get("grade_id") in self.owner
        }
        self.taken = _identifiers(self.master, self.release)
        self.wrong = [w for w in _wrong_answers(self.lab, masters) if self._applies(w)]

    def _applies(self, wrong: dict) -> bool:
        source = self.answers.get(f"{wrong['exercise']}-answer")
        cells = [gid for gid, ex in self.owner.items() if ex == wrong["exercise"]]
        texts = [self.answers[g] for g in cells] if source is None else [source]
        return any(all(t.count(old) == 1 for old in wrong["replace"]) for t in texts)

    def rng(self, student: str, what: str) -> random.Random:
        return random.Random(f"{self.seed}:{self.lab}:{student}:{what}")

    def notebook(self, student: str, chosen: dict[str, dict | None]):
        """The student version with the exercises of `chosen` answered ({exercise: None for the master's
        answer, or a wrong answer}) and the student's own lines in each answered cell; the names those
        lines bind."""
        rng = self.rng(student, "code")
        scratch = Scratch(rng, self.taken)
        nb = nbformat.from_dict(json.loads(json.dumps(self.release)))
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            gid = meta.get("grade_id")
            if cell.cell_type == "markdown" and meta.get("solution") and chosen:
                cell.source = self._written(rng)
            if gid not in self.owner or self.owner[gid] not in chosen:
                continue
            source = self.answers[gid]
            wrong = chosen[self.owner[gid]]
            if wrong and all(source.count(old) == 1 for old in wrong["replace"]):
                for old, new in wrong["replace"].items():
                    source = source.replace(old, new)
            source = _strip_markers(source).rstrip("\n")
            extra = [
                line for _ in range(rng.randint(2, 3)) for line in ["", *scratch.block(_defined(source))]
            ]
            cell.source = source + "\n\n" + "\n".join(extra)
        return nb, scratch.names

    def _written(self, rng: random.Random) -> str:
        opening = rng.choice(("I think", "In my view", "From the figure,", "My answer:", "Because"))
        body = rng.choice(
            (
                "the split keeps the classes balanced, so the estimate is fair",
                "the numbers depend on the training data only, which avoids leaking the test set",
                "the network sees more varied images and generalises better",
                "rare classes get more weight, so the loss does not ignore them",
                "the curves show it starts to overfit after a few epochs",
            )
        )
        return f"{opening} {body}."

    def disguised(self, nb, own: set[str], student: str):
        rng = self.rng(student, "disguise")
        copy = nbformat.from_dict(json.loads(json.dumps(nb)))
        taken = set(self.taken) | own
        for cell in copy.cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type == "code" and meta.get("solution") and meta.get("grade_id") in self.owner:
                cell.source = disguise(cell.source, own, rng, taken)
        return copy

    def malformed(self, what: str, student: str) -> bytes:
        rng = self.rng(student, "malformed")
        full, _ = self.notebook(student, {e: None for e in self.points})
        text = nbformat.writes(full)
        if what == "invalid json":  # a merge conflict left in the file
            cut = text.index('"cells": [') + len('"cells": [')
            return (text[:cut] + "\n<<<<<<< HEAD\n" + text[cut:]).encode()
        if what == "truncated":
            return text.encode()[: int(len(text) * rng.uniform(0.2, 0.8))]
        other = nbformat.v4.new_notebook(
            cells=[
                nbformat.v4.new_markdown_cell("# Homework 3 (another course)"),
                nbformat.v4.new_code_cell(
                    f"{rng.choice(WORDS)}_{rng.choice(NOUNS)} = {rng.randint(1, 99)}\n"
                ),
            ]
        )
        for cell in other.cells:  # nbformat draws cell ids at random
            cell.id = f"{rng.getrandbits(32):08x}"
        return nbformat.writes(other).encode()


def _write(path: Path, data: bytes | str) -> None:
    with atomic_write(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def _clear(out: Path) -> None:
    """Remove the notebooks of an earlier synthetic class in `out`; refuse a folder that holds others."""
    subs = out / "submissions"
    present = sorted(subs.glob("*.ipynb")) if subs.is_dir() else []
    if not present:
        return
    if not (out / "manifest.json").is_file():
        raise LabError(
            f"{subs} already holds notebooks that no synthetic class wrote: give --out an empty folder."
        )
    for path in present:
        path.unlink()


def make_class(
    lab: str,
    out: str | Path,
    n: int = 200,
    *,
    seed: int = 0,
    masters: str | Path | None = None,
    due: datetime | None = None,
) -> Manifest:
    """Write a synthetic class of `n` submissions of `lab` ("01" or "01_data_prep") into `out` (see the
    module docstring); returns its manifest."""
    masters = Path(masters).resolve() if masters else project_root() / "notebooks"
    master_path = _resolve(lab, masters)
    due = due or DUE
    _counts(n, bool(_wrong_answers(master_path.stem, masters)))  # a class too small: said before any work
    out = Path(out)
    _clear(out)
    rng = random.Random(f"{seed}:{master_path.stem}:class")
    with tempfile.TemporaryDirectory(prefix="labkit-synthetic-") as tmp:
        student_path = make_student_copies(masters, Path(tmp), [master_path.stem])[0]
        maker = _Maker(master_path, student_path, seed, masters)
    counts = _counts(n, bool(maker.wrong))
    notes = [] if maker.wrong else [f"no wrong answers apply to {maker.lab}: the kind 'wrong' is left out"]
    kinds = [k for k, c in counts.items() if k != "near-duplicate" for _ in range(c)]
    kinds += ["pair"] * (counts["near-duplicate"] // 2)
    rng.shuffle(kinds)
    width = max(3, len(str(n - 1)))
    names = iter(f"s{i:0{width}d}" for i in range(n))
    students: dict[str, Student] = {}
    files: dict[str, bytes] = {}
    malformed = iter(MALFORMED * n)
    ids = list(maker.points)
    for kind in kinds:
        name = next(names)
        if kind == "pair":
            second = next(names)
            nb, own = maker.notebook(name, {e: None for e in ids})
            files[name] = nbformat.writes(nb).encode()
            files[second] = nbformat.writes(maker.disguised(nb, own, second)).encode()
            for who, other, copy_of in ((name, second, None), (second, name, name)):
                students[who] = Student(who, "near-duplicate", list(ids), pair=other, copy_of=copy_of)
            continue
        student = Student(name, kind)
        if kind == "malformed":
            student.malformed = next(malformed)
            student.expected_status = "unknown lab" if student.malformed == "no lab" else "unreadable"
            files[name] = maker.malformed(student.malformed, name)
            students[name] = student
            continue
        pick = maker.rng(name, "pick")
        chosen: dict[str, dict | None] = {}
        if kind == "full":
            chosen = {e: None for e in ids}
        elif kind == "partial":
            chosen = {e: None for e in sorted(pick.sample(ids, pick.randint(1, len(ids) - 1)), key=ids.index)}
        elif kind == "wrong":
            by_exercise: dict[str, list[dict]] = {}
            for w in maker.wrong:
                by_exercise.setdefault(w["exercise"], []).append(w)
            bad = pick.sample(sorted(by_exercise), min(len(by_exercise), pick.randint(1, 2)))
            chosen = {e: (pick.choice(by_exercise[e]) if e in bad else None) for e in ids}
            student.wrong = [e for e in ids if e in bad]
            student.wrong_why = [chosen[e]["why"] for e in student.wrong]
        nb, _ = maker.notebook(name, chosen)
        student.answered = [e for e in ids if e in chosen and e not in student.wrong]
        files[name] = nbformat.writes(nb).encode()
        students[name] = student
    students = dict(sorted(students.items()))
    gradable = [s for s in students.values() if s.expected_status == "ok"]
    late = set(rng.sample([s.student for s in gradable], min(len(gradable), max(1, round(LATE_SHARE * n)))))
    for s in students.values():
        if s.expected_status == "ok":
            s.expected_points = float(round(sum(maker.points[e] for e in s.answered), 3))
        minutes = rng.randint(1, 3 * 24 * 60) if s.student in late else -rng.randint(5, 4 * 24 * 60)
        s.late_minutes = max(0, minutes)
        s.timestamp = (due + timedelta(minutes=minutes, seconds=rng.randint(0, 59))).isoformat()
    for name, data in files.items():
        _write(out / "submissions" / f"{name}.ipynb", data)
    _write(
        out / "timestamps.csv",
        _csv(["student", "timestamp"], [[s.student, s.timestamp] for s in students.values()]),
    )
    _write(out / "roster.csv", _roster(list(students), rng))
    manifest = Manifest(maker.lab, n, seed, due.isoformat(), maker.points, counts, notes, students)
    _write(out / "manifest.json", json.dumps(manifest.to_json(), indent=2) + "\n")
    return manifest


def _csv(header: list[str], rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


FIRST = "Ada Ben Chloe Dev Emil Fatima Gus Hana Ivan Jun Kemi Liam Mona Nils Omar Pia Quinn Rosa".split()
LAST = "Okafor Lindqvist Nakamura Silva Novak Haddad Byrne Moreau Kowalski Mensah Rossi Tanaka Weber".split()


def _roster(students: list[str], rng: random.Random) -> str:
    rows = []
    for i, student in enumerate(students):
        rows.append(
            [
                f"{rng.choice(LAST)}, {rng.choice(FIRST)}",
                str(40000 + i),
                f"U{2025000 + i}",
                student,
                f"CNN Lab - Section {'AB'[i % 2]}",
            ]
        )
    return _csv(["Student", "ID", "SIS User ID", "SIS Login ID", "Section"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course.grading.synthetic", description=__doc__.split("\n")[0]
    )
    parser.add_argument("lab", help='"01" or "01_data_prep"')
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("-n", type=int, default=200, help="students (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--due", type=datetime.fromisoformat, default=None, help="ISO 8601 (default %(default)s)"
    )
    parser.add_argument("--masters", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        manifest = make_class(args.lab, args.out, args.n, seed=args.seed, masters=args.masters, due=args.due)
    except LabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{k} {v}" for k, v in manifest.counts.items())
    late = sum(1 for s in manifest.students.values() if s.late_minutes)
    print(f"{manifest.n} submissions of {manifest.lab} in {args.out / 'submissions'}: {counts}; {late} late")
    for note in manifest.notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
