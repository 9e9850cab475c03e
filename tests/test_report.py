"""course.report: the runner's index puts failures first, shows headline numbers, how training
ended, and thumbnails that open the full-size figures."""

import matplotlib.pyplot as plt
import nbformat

from course.report import headline, notebook_story, write_html_index
from course.run import Outcome


def _executed(path, title, printed):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("fit(...)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\ntext"), cell]
    nbformat.write(nb, path)
    return str(path)


def test_index_puts_failures_first_with_numbers_training_and_thumbnails(tmp_path):
    final = (
        "fit: 100%|██████████| 14/14 [00:31<00:00,  2.2s/epoch, "
        "train_loss=0.123, val_loss=0.200, val_acc=0.950]"
    )
    ok = Outcome(
        "02_naive_cnn",
        "ok",
        31.0,
        {
            "test_accuracy": 0.9712,
            "dataset": "shapes",
            "pointing_game": {"Grad-CAM": 0.9, "saliency": 0.7},
            "class_counts": {"train": {str(i): i for i in range(12)}},
        },
        executed=_executed(tmp_path / "02.ipynb", "Lab 02 — A naive CNN", f"loading\n{final}\n"),
    )
    bad = Outcome(
        "05_filters",
        "failed",
        2.0,
        {},
        error="cell 3 (index 4): LabError: epochs=-1 must be >= 1",
        executed=_executed(tmp_path / "05.ipynb", "Lab 05 — Filters", "started\n"),
    )
    skipped = Outcome("06_deconvnet")
    figures = tmp_path / "figures" / "02_naive_cnn"
    figures.mkdir(parents=True)
    fig, _ = plt.subplots()
    fig.savefig(figures / "learning_curves.png")

    page = write_html_index(tmp_path, [ok, bad, skipped], "smoke").read_text()
    failures = page.index('class="failures"')
    assert failures < page.index('id="02_naive_cnn"'), "failures come before the labs"
    assert "epochs=-1 must be &gt;= 1" in page[failures : page.index('id="02_naive_cnn"')]
    assert "Lab 02 — A naive CNN" in page and "0.9712" in page and "Grad-CAM" in page
    assert "train_loss=0.123" in page and "14/14" in page  # how training ended
    assert '<a href="figures/02_naive_cnn/learning_curves.png" target="_blank"' in page
    assert '<img src="figures/02_naive_cnn/learning_curves.png"' in page
    assert "more recorded figures (1)" in page  # the big table folds away
    assert 'href="html/02_naive_cnn.html"' in page and (tmp_path / "html" / "05_filters.html").is_file()
    assert "not run" in page and not (tmp_path / "html" / "06_deconvnet.html").exists()
    assert "http://" not in page and "https://" not in page  # nothing fetched from the network


def test_headline_keeps_scalars_and_small_tables():
    shown, rest = headline(
        {"a": 0.5, "b": [1, 2, 3], "c": {"x": 1.0}, "d": {"x": {"y": 1}}, "e": list(range(9))}
    )
    assert [k for k, _ in shown] == ["a", "b", "c"] and list(rest) == ["d", "e"]


def test_story_reads_title_and_final_progress_lines(tmp_path):
    text = (
        "checking\nfit: 100%|███| 3/3 [00:01<00:00, train_loss=0.1]\nfit:   0%|   | 0/3 [00:00<?, ?epoch/s]\n"
    )
    title, lines = notebook_story(_executed(tmp_path / "n.ipynb", "Lab 09 — T", text))
    assert title == "Lab 09 — T" and lines == [
        "fit: 100%|███| 3/3 [00:01<00:00, train_loss=0.1]",
        "fit:   0%|   | 0/3 [00:00<?, ?epoch/s]",
    ]
    assert notebook_story(None) == (None, [])
