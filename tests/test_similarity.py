"""Similarity of submissions (course.grading.similarity): a small class made here from lab 01's master.

Every student's answer cells hold the master's answer (a correct student) plus code of their own,
written by hand below as distinct explorations and helpers; `ada` and `bob` are a copied pair (bob is
ada with names changed, comments rewritten and independent lines reordered); `cy` and `dee` wrote
nothing beyond the reference answer (dee renamed its variables)."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

from course.grading import assignments, similarity, synthetic
from labkit.core import LabError

ROOT = Path(__file__).resolve().parents[1]

MASTER = Path(__file__).resolve().parents[1] / "notebooks" / "01_data_prep.ipynb"

# Own code per student, appended to the answer cell of the grade id. Independent students explore the
# same lab, so they share idioms (a loop over splits, a print of counts) but not code.
OWN = {
    "eve": {
        "01-verify-answer": '''
def count_by_suffix(paths):
    """How many files of each extension, to see what kind of files break."""
    counts = {}
    for p in paths:
        suffix = str(p).rsplit(".", 1)[-1].lower()
        counts[suffix] = counts.get(suffix, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))
''',
        "01-weights-answer": """
# check: a balanced set should give weights of one
balanced = np.repeat(np.arange(4), 25)
print(my_class_weights(balanced, 4))
print(my_class_weights(np.array([0, 0, 0, 1]), 2).numpy().round(3))
""",
    },
    "finn": {
        "01-split-answer": """
def split_report(targets, parts):
    rows = []
    for name, part in zip(["train", "val", "test"], parts):
        labels, freq = np.unique(np.asarray(targets)[part], return_counts=True)
        rows.append((name, len(part), dict(zip(labels.tolist(), (freq / len(part)).round(2).tolist()))))
    width = max(len(r[0]) for r in rows)
    for name, size, shares in rows:
        print(name.ljust(width), size, shares)
""",
        "01-sampler-answer": """
drawn = my_balanced_epoch([0] * 90 + [1] * 10, torch.Generator().manual_seed(3))
print("share of class 1 drawn:", (drawn >= 90).float().mean().item())
""",
    },
    "gus": {
        "01-stats-answer": """
def running_mean_plot(batches):
    import matplotlib.pyplot as plt

    seen, means = 0, []
    acc = torch.zeros(3)
    for b in batches:
        acc += b.float().mean(dim=(0, 2, 3)) * len(b)
        seen += len(b)
        means.append((acc / seen).tolist())
    plt.plot(means)
    plt.legend(["R", "G", "B"])
    plt.title("mean per channel as batches come in")
    plt.show()
""",
        "01-shift-answer": """
# sanity: padding 0 must leave everything where it was
g0 = torch.Generator().manual_seed(0)
same_img, same_mask = my_random_shift(torch.rand(2, 3, 8, 8), torch.ones(2, 8, 8, dtype=torch.bool), 0, g0)
assert same_img.shape == (2, 3, 8, 8) and bool(same_mask.all())
""",
    },
    "hal": {
        "01-verify-answer": """
import hashlib


def duplicates(paths):
    by_digest = collections.defaultdict(list)
    for path in paths:
        with open(path, "rb") as fh:
            by_digest[hashlib.md5(fh.read()).hexdigest()].append(path)
    return [group for group in by_digest.values() if len(group) > 1]


import collections
""",
        "01-weights-answer": """
def effective_number_weights(targets, num_classes, beta=0.99):
    n = np.bincount(np.asarray(targets), minlength=num_classes)
    eff = (1 - np.power(beta, n)) / (1 - beta)
    w = 1.0 / np.maximum(eff, 1e-12)
    return torch.tensor(w / w.sum() * num_classes, dtype=torch.float32)
""",
    },
    "ivy": {
        "01-split-answer": """
try_fracs = [(0.8, 0.1, 0.1), (0.6, 0.2, 0.2)]
for fr in try_fracs:
    pieces = my_stratified_split(np.arange(100) % 5, fr, seed=1)
    overlap = set(pieces[0].tolist()) & set(pieces[1].tolist())
    print(fr, [len(x) for x in pieces], "overlap" if overlap else "disjoint")
""",
        "01-stats-answer": """
class Welford:
    '''Mean and variance in one pass, kept for every channel.'''

    def __init__(self):
        self.k, self.m, self.s = 0, None, None

    def push(self, x):
        self.k += 1
        if self.m is None:
            self.m, self.s = x.clone(), torch.zeros_like(x)
        else:
            old = self.m.clone()
            self.m += (x - self.m) / self.k
            self.s += (x - old) * (x - self.m)
""",
    },
    "ada": {
        "01-split-answer": """
def class_table(targets, parts, names=("train", "val", "test")):
    # one row per split with the count of every class, to eyeball stratification
    targets = np.asarray(targets)
    classes = np.unique(targets)
    header = "split".ljust(8) + "".join(f"{c:>6}" for c in classes)
    lines = [header]
    for name, part in zip(names, parts):
        counts = np.bincount(targets[part], minlength=classes.max() + 1)[classes]
        lines.append(name.ljust(8) + "".join(f"{n:>6}" for n in counts))
    total = sum(len(p) for p in parts)
    lines.append("all".ljust(8) + f"{total:>6}")
    return "\\n".join(lines)
""",
        "01-shift-answer": """
def shift_grid(images, masks, padding, seed=0, rows=2):
    # show the same images shifted several times: masks must follow the pixels
    import matplotlib.pyplot as plt

    gen = torch.Generator().manual_seed(seed)
    fig, axes = plt.subplots(rows, len(images), figsize=(2 * len(images), 2 * rows))
    for r in range(rows):
        moved, moved_masks = my_random_shift(images, masks, padding, gen)
        for c in range(len(images)):
            axes[r, c].imshow(moved[c].permute(1, 2, 0).clamp(0, 1))
            axes[r, c].contour(moved_masks[c], levels=[0.5], colors="w")
            axes[r, c].axis("off")
    fig.tight_layout()
    return fig
""",
    },
}

# bob copied ada: every name changed, comments rewritten, independent lines swapped
OWN["bob"] = {
    "01-split-answer": """
def per_split_counts(y, splits, labels=("train", "val", "test")):
    # table: how many of each class ended up in each split
    y = np.asarray(y)
    kinds = np.unique(y)
    head = "split".ljust(8) + "".join(f"{k:>6}" for k in kinds)
    out = [head]
    for label, idx in zip(labels, splits):
        per_class = np.bincount(y[idx], minlength=kinds.max() + 1)[kinds]
        out.append(label.ljust(8) + "".join(f"{v:>6}" for v in per_class))
    n_all = sum(len(s) for s in splits)
    out.append("all".ljust(8) + f"{n_all:>6}")
    return "\\n".join(out)
""",
    "01-shift-answer": """
def preview_shifts(imgs, msk, pad, seed=0, rows=2):
    import matplotlib.pyplot as plt
    # several random shifts of the same pictures, outline of the mask on top

    fig, ax = plt.subplots(rows, len(imgs), figsize=(2 * len(imgs), 2 * rows))
    rng = torch.Generator().manual_seed(seed)
    for i in range(rows):
        out_img, out_msk = my_random_shift(imgs, msk, pad, rng)
        for j in range(len(imgs)):
            ax[i, j].imshow(out_img[j].permute(1, 2, 0).clamp(0, 1))
            ax[i, j].contour(out_msk[j], levels=[0.5], colors="w")
            ax[i, j].axis("off")
    fig.tight_layout()
    return fig
""",
}
INDEPENDENT = ["eve", "finn", "gus", "hal", "ivy", "ada"]


def master():
    return nbformat.read(MASTER, as_version=4)


def submission(own: dict[str, str], rename: dict[str, str] | None = None):
    """Lab 01 as a correct student submits it: the master's answers (names changed by `rename`), with
    the student's own code after the answer of each grade id in `own`."""
    nb = master()
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not (meta.get("solution") and cell.cell_type == "code"):
            continue
        for old, new in (rename or {}).items():
            cell.source = cell.source.replace(old, new)
        if meta["grade_id"] in own:
            cell.source += "\n\n" + own[meta["grade_id"]].strip() + "\n"
    return nb


@pytest.fixture(scope="module")
def klass():
    subs = {name: submission(OWN[name]) for name in [*INDEPENDENT, "bob"]}
    subs["cy"] = submission({})
    subs["dee"] = submission({}, rename={"unreadable": "broken", "targets": "labels", "weights": "w8"})
    return subs


@pytest.fixture(scope="module")
def reference():
    return similarity.boilerplate(master())


def scores(subs, reference, a, b):
    """Both scores of one pair, whatever the threshold."""
    found = similarity.similar_pairs({a: subs[a], b: subs[b]}, reference, threshold=1e-9, min_shared=0)
    return (found[0].similarity_a, found[0].similarity_b) if found else (0.0, 0.0)


def test_solution_code_is_the_answer_cells_in_order_without_magics():
    nb = master()
    answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "01-verify-answer")
    answer.source = "%matplotlib inline\n!ls data\n" + answer.source
    code = similarity.solution_code(nb)
    ids = ["01-verify-answer", "01-split-answer", "01-stats-answer", "01-shift-answer", "01-weights-answer"]
    positions = [code.index(f"# [{i}]") for i in [*ids, "01-sampler-answer"]]
    assert positions == sorted(positions)
    assert "%matplotlib" not in code and "!ls" not in code
    assert "def my_unreadable(paths):" in code and "im.verify()" in code
    assert "The test split stands for" not in code  # a written answer is markdown, not code


def test_starter_code_is_what_nbgrader_gives_students():
    starter = similarity.starter_code(master())
    assert "def my_unreadable(paths):\n    # YOUR CODE HERE\n    raise NotImplementedError()" in starter
    assert "im.verify()" not in starter and "BEGIN SOLUTION" not in starter


def test_the_copied_pair_is_flagged_and_no_independent_pair(klass, reference):
    flagged = similarity.similar_pairs(klass, reference)
    assert [(p.a, p.b) for p in flagged] == [("ada", "bob")]
    pair = flagged[0]
    assert pair.similarity_a >= 0.5 and pair.similarity_b >= 0.5
    assert pair.shared >= similarity.MIN_SHARED


def test_independent_pairs_score_well_below_the_threshold(klass, reference):
    worst = max(
        max(scores(klass, reference, a, b)) for i, a in enumerate(INDEPENDENT) for b in INDEPENDENT[i + 1 :]
    )
    assert worst < 0.6 * similarity.THRESHOLD, worst  # 0.18 when written: ada and finn both tabulate splits


def test_sharing_only_the_reference_answer_is_not_evidence(klass, reference):
    assert scores(klass, reference, "cy", "dee") == (0.0, 0.0)
    assert similarity.similar_pairs({"cy": klass["cy"], "dee": klass["dee"]}, reference) == []
    # without the reference as boilerplate the same two are identical: the boilerplate is what clears them
    alike = similarity.similar_pairs(
        {"cy": klass["cy"], "dee": klass["dee"]}, [similarity.starter_code(master())]
    )
    assert [(p.a, p.b, round(p.similarity, 6)) for p in alike] == [("cy", "dee", 1.0)]


def test_shared_lines_are_the_copied_helper_on_both_sides(klass, reference):
    (pair,) = similarity.similar_pairs({"ada": klass["ada"], "bob": klass["bob"]}, reference)
    for side, helper in (("a", "def class_table("), ("b", "def per_split_counts(")):
        lines = pair.lines(side)
        start = next(i for i, (text, _) in enumerate(lines) if text.startswith(helper))
        body = [shared for text, shared in lines[start + 1 : start + 12] if text.strip()]
        assert sum(body) >= 0.7 * len(body), (side, body)
        # the master's answer above it is boilerplate: not highlighted
        verify = next(i for i, (text, _) in enumerate(lines) if "im.verify()" in text)
        assert not lines[verify][1]
    ranges = pair.shared_lines("a")
    assert ranges == sorted(ranges) and all(first <= last for first, last in ranges)
    marked = {i + 1 for i, (_, shared) in enumerate(pair.lines("a")) if shared}
    assert marked == {n for first, last in ranges for n in range(first, last + 1)}


def test_bad_settings_are_refused_with_the_fix():
    with pytest.raises(LabError, match="between 0"):
        similarity.similar_pairs({}, [], threshold=1.5)
    with pytest.raises(LabError, match="noise_t <= guarantee_t"):
        similarity.similar_pairs({}, [], noise_t=30, guarantee_t=20)


def test_a_missing_detector_is_named_with_the_fix(monkeypatch, klass, reference):
    monkeypatch.setitem(sys.modules, "copydetect", None)  # import copydetect now raises ImportError
    with pytest.raises(LabError, match="pip install copydetect"):
        similarity.similar_pairs(klass, reference)


def test_starter_code_is_the_answer_cells_of_nbgraders_student_version(tmp_path):
    (student,) = assignments.make_student_copies(MASTER.parent, tmp_path, ["01"])
    assert similarity.solution_code(nbformat.read(student, as_version=4)) == similarity.starter_code(master())


@pytest.mark.parametrize("lab", ["01", "02"])
def test_the_synthetic_class_has_its_copies_flagged_and_no_independent_pair(tmp_path, lab):
    # course.grading.synthetic: own code drawn from one grammar, so independent students share many short
    # idioms by chance; the copies in disguise (renamed, re-commented) must stand out, and nothing else
    manifest = synthetic.make_class(lab, tmp_path, 80, seed=3)
    students = list(manifest.students.values()) if isinstance(manifest.students, dict) else manifest.students
    notebooks = {
        s.student: nbformat.read(tmp_path / "submissions" / f"{s.student}.ipynb", as_version=4)
        for s in students
        if not s.malformed
    }
    masters = ROOT / "notebooks"
    master = nbformat.read(next(masters.glob(f"{lab}_*.ipynb")), as_version=4)
    flagged = {(p.a, p.b) for p in similarity.similar_pairs(notebooks, similarity.boilerplate(master))}
    copies = {tuple(sorted((s.student, s.pair))) for s in students if s.pair}
    assert copies and flagged == copies
