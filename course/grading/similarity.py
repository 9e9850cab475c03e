"""Pairs of submissions whose answers are suspiciously alike, for the class report (`make grade`).

The detector is copydetect (PyPI), which fingerprints code the way MOSS does: the code is tokenised
and normalised (every variable, attribute and function name becomes one letter, comments and
whitespace go), hashed in k-grams of `noise_t` characters and winnowed so that any match of
`guarantee_t` characters or more is found. Renaming, re-commenting and re-spacing therefore change
nothing; moving lines around breaks only the k-grams that straddle the moved lines.

Only the answer cells are compared (`solution_code`): the rest of a submission is the lab's own text.

Boilerplate, code whose sharing is no evidence, is two things (`boilerplate`):

* the starter code, the answer cells as students receive them (function headers, the placeholder
  that raises NotImplementedError): every submission starts from it;
* the reference solution, the master's answer cells: a correct answer is often the reference answer
  almost token for token, since there are few short ways to write it, so two correct students share
  it without having copied from each other.

Every k-gram of either is removed from each submission's fingerprints before comparing, so a score
is the share of a student's *own* code (what is left beyond the starter and the reference) that the
other submission also has. Two students who share code beyond the reference answer are flagged.

Scores come in two directions: `similarity_a` is the share of a's own code found in b, and the other
way round; a short submission copied into a long one scores high on its side only. A pair is
flagged when the larger of the two reaches `threshold` and at least `min_shared` normalised
characters (about four lines) are shared: common idioms such as `for i in range(len(x)):` are shared
by everyone and must not flag two students whose own code is tiny.

Defaults, from tests/test_similarity.py's class built on lab 01 (independent students who write the
reference answers plus explorations of their own, a copied pair renamed, re-commented and reordered):
the independent pairs score at most 0.18 (two students who both tabulate their splits with the same
idioms, 52 characters shared) and the copied pair 0.98, so 0.35 is about twice the worst independent
pair and leaves room for a copier who rewrote part of what they took (copydetect's own display
threshold is 0.33). On synthetic classes of 200 (`course.grading.synthetic`: students whose own
code is drawn from one grammar of small explorations, so that after normalisation they share many
short idioms by chance) the share alone flagged 91 (lab 01) and 175 (lab 02) independent pairs: a
student whose own code is short reaches 0.35 with a few idioms. A copy shares long stretches, an
accident short ones: over the about 14,600 independent pairs of each class with any code in common the
longest shared stretch was at most 423 (lab 01) and 459 (lab 02) characters, half of them under 170,
while every copied pair shared at least 1,399. So a pair is also flagged only when one stretch of at
least `MIN_RUN` = 600 characters (about 15 lines) is shared; the cost is that a copy of one short
answer alone is not flagged. The instructor reads
the flagged pairs and decides; nothing is deducted automatically.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from labkit.core import LabError

THRESHOLD = 0.35  # share of one side's own code found in the other (see the module docstring)
MIN_SHARED = 60  # normalised characters shared, about four lines: below it a match is an idiom
# the longest stretch of code the two share, in characters of the submissions' text (about 15 lines):
# matches made of many short idioms that both happen to use stay below it (module docstring)
MIN_RUN = 600
NOISE_T = 25  # copydetect's default k: matches shorter than this many normalised characters are noise
GUARANTEE_T = 25  # every match at least this long is found (winnowing window = guarantee_t - noise_t + 1)
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"  # nbgrader's placeholder for Python answers


@dataclass(frozen=True)
class Pair:
    """Two submissions, how much of each one's own code the other shares, and where.

    `spans_a` are (start, end) character ranges of `code_a` (the text of `solution_code`) that b shares,
    and `spans_b` the same for `code_b`."""

    a: str
    b: str
    similarity_a: float  # share of a's own code (beyond the boilerplate) found in b
    similarity_b: float
    shared: int  # normalised characters of a that b shares
    code_a: str
    code_b: str
    spans_a: tuple[tuple[int, int], ...]
    spans_b: tuple[tuple[int, int], ...]

    @property
    def similarity(self) -> float:
        return max(self.similarity_a, self.similarity_b)

    def segments(self, side: str) -> list[list[tuple[str, bool]]]:
        """Side "a" or "b" line by line, each line as (text, shared) pieces that join to the line."""
        code, spans = (self.code_a, self.spans_a) if side == "a" else (self.code_b, self.spans_b)
        shared = np.zeros(len(code) + 1, dtype=bool)
        for start, end in spans:
            shared[start:end] = True
        lines, position = [], 0
        for line in code.split("\n"):
            pieces: list[tuple[str, bool]] = []
            for offset, char in enumerate(line):
                flag = bool(shared[position + offset])
                if pieces and pieces[-1][1] == flag:
                    pieces[-1] = (pieces[-1][0] + char, flag)
                else:
                    pieces.append((char, flag))
            lines.append(pieces)
            position += len(line) + 1
        return lines

    def lines(self, side: str) -> list[tuple[str, bool]]:
        """Side "a" or "b" as (line, shared) pairs: a line is shared when code of it (not only its
        indentation) lies in a span the other side shares."""
        return [
            ("".join(text for text, _ in pieces), any(flag and text.strip() for text, flag in pieces))
            for pieces in self.segments(side)
        ]

    def shared_lines(self, side: str) -> list[tuple[int, int]]:
        """Side "a" or "b": the 1-based, inclusive line ranges of its code that the other side shares."""
        ranges: list[tuple[int, int]] = []
        for number, (_, shared) in enumerate(self.lines(side), start=1):
            if not shared:
                continue
            if ranges and ranges[-1][1] == number - 1:
                ranges[-1] = (ranges[-1][0], number)
            else:
                ranges.append((number, number))
        return ranges


def _is_solution(cell) -> bool:
    return cell.cell_type == "code" and bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution"))


def _python_lines(source: str) -> str:
    # IPython magics and shell escapes are not Python: the tokenizer would read them as errors
    return "\n".join(line for line in source.split("\n") if not line.lstrip().startswith(("%", "!")))


def solution_cells(nb) -> list[str]:
    """The code of `nb`'s answer cells (code cells whose nbgrader metadata says solution), in order, each
    under a comment naming its grade id (comments do not count in a comparison), without magics and
    shell lines."""
    return [
        f"# [{cell.metadata['nbgrader'].get('grade_id', 'answer')}]\n{_python_lines(cell.source).strip()}"
        for cell in nb.cells
        if _is_solution(cell)
    ]


def _joined(cells: list[str]) -> str:
    return "\n\n".join(cells) + "\n" if cells else ""


def solution_code(nb) -> str:
    """`solution_cells` of `nb` as one text, the way it is compared."""
    return _joined(solution_cells(nb))


def starter_cells(master) -> list[str]:
    """`solution_cells` of the student version of `master`, as nbgrader's ClearSolutions writes it: each
    `### BEGIN SOLUTION` ... `### END SOLUTION` region replaced by the placeholder, indented."""
    parts = []
    for cell in master.cells:
        if not _is_solution(cell):
            continue
        lines, inside = [], False
        for line in cell.source.split("\n"):
            if "BEGIN SOLUTION" in line:
                inside = True
                indent = re.match(r"\s*", line).group(0)
                lines += [indent + stub for stub in STUB.split("\n")]
            elif "END SOLUTION" in line:
                inside = False
            elif not inside:
                lines.append(line)
        code = _python_lines("\n".join(lines)).strip()
        parts.append(f"# [{cell.metadata['nbgrader'].get('grade_id', 'answer')}]\n{code}")
    return parts


def starter_code(master) -> str:
    """`starter_cells` of `master` as one text."""
    return _joined(starter_cells(master))


def boilerplate(master, student_version=None) -> list[str]:
    """The code sharing which is no evidence: the starter code (the answer cells of `student_version`,
    or derived from `master` as nbgrader would), the reference solution (`master`'s answer cells), and
    every join of one cell's starter or reference with the next cell's: a k-gram that runs from a cell
    left as given into the next one answered as the reference (or the other way round) is in neither
    whole text, yet every submission with that mix of answered cells has it."""
    starter = solution_cells(student_version) if student_version is not None else starter_cells(master)
    reference = solution_cells(master)
    joins = [
        _joined([first, second])
        for i in range(min(len(starter), len(reference)) - 1)
        for first in (starter[i], reference[i])
        for second in (starter[i + 1], reference[i + 1])
    ]
    return [_joined(starter), _joined(reference), *joins]


def _copydetect():
    try:
        import copydetect
    except ImportError:
        raise LabError(
            "similarity needs copydetect, which is not installed: pip install copydetect "
            "(it comes with the course tools' dev extra: pip install -e '.[dev]')."
        ) from None
    return copydetect


def _fingerprint(code: str, k: int, window: int, skip=None):
    # copydetect reads from `fp` when given; the file name is only for its messages
    return _copydetect().CodeFingerprint(
        "solution.py", k, window, boilerplate=skip, language="python", fp=io.StringIO(code)
    )


def similar_pairs(
    submissions: dict,
    boilerplate: list[str],
    threshold: float = THRESHOLD,
    *,
    min_shared: int = MIN_SHARED,
    min_run: int = MIN_RUN,
    noise_t: int = NOISE_T,
    guarantee_t: int = GUARANTEE_T,
) -> list[Pair]:
    """The flagged pairs among `submissions` ({student: notebook}), most similar first.

    `boilerplate`: code whose k-grams are removed before comparing (see `boilerplate()`). A pair is
    flagged when `max(similarity_a, similarity_b) >= threshold`, `shared >= min_shared` and the longest
    stretch of code they share is at least `min_run` characters.
    `noise_t` and `guarantee_t` are copydetect's: the k-gram length and the shortest match that is
    always found, in normalised characters."""
    if not 0 < threshold <= 1:
        raise LabError(f"similarity threshold {threshold!r}: give a share between 0 (excluded) and 1.")
    if not 1 <= noise_t <= guarantee_t:
        raise LabError(
            f"noise_t={noise_t}, guarantee_t={guarantee_t}: need 1 <= noise_t <= guarantee_t (copydetect)."
        )
    compare = _copydetect().compare_files  # a missing detector fails before any work
    window = guarantee_t - noise_t + 1
    # every k-gram of the boilerplate, not a winnowed sample: a shared k-gram of it must never count
    skip = np.unique(
        np.array([h for code in boilerplate for h in _fingerprint(code, noise_t, 1).hashes], dtype=np.int64)
    )
    codes = {student: solution_code(nb) for student, nb in sorted(submissions.items())}
    prints = {student: _fingerprint(code, noise_t, window, skip) for student, code in codes.items()}
    pairs = []
    for a, b in combinations(sorted(codes), 2):
        shared, (sim_a, sim_b), (slices_a, slices_b) = compare(prints[a], prints[b])
        if max(sim_a, sim_b) < threshold or shared < min_shared:
            continue
        run = max((int(e) - int(s) for side in (slices_a, slices_b) for s, e in zip(*side)), default=0)
        if run < min_run:
            continue
        pairs.append(
            Pair(
                a,
                b,
                float(sim_a),
                float(sim_b),
                int(shared),
                codes[a],
                codes[b],
                tuple((int(s), int(e)) for s, e in zip(*slices_a)),
                tuple((int(s), int(e)) for s, e in zip(*slices_b)),
            )
        )
    return sorted(pairs, key=lambda p: (-p.similarity, p.a, p.b))
