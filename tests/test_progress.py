"""labkit.progress: a live bar where someone watches, the final state where a report is written."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm import std
from tqdm.notebook import tqdm as notebook_tqdm

from labkit import progress, train


def test_headless_bar_prints_only_its_final_state(monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_HEADLESS", "1")
    bar = progress.tqdm(total=3, desc="fit", unit="epoch")
    for loss in (0.9, 0.5, 0.25):
        bar.update(1)
        bar.set_postfix(train_loss=f"{loss:.3f}")
    assert capsys.readouterr().out == ""  # nothing while it runs
    bar.close()
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("fit: 100%") and "3/3" in out and "train_loss=0.250" in out
    bar.close()
    assert capsys.readouterr().out == ""  # closing twice prints once


def test_headless_inner_and_disabled_bars_print_nothing(monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_HEADLESS", "1")
    for _ in progress.tqdm(range(4), desc="epoch 1/2", leave=False):
        pass
    for _ in progress.tqdm(range(4), desc="off", disable=True):
        pass
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_the_bar_follows_where_it_runs(monkeypatch):
    monkeypatch.delenv("LABKIT_HEADLESS", raising=False)
    assert type(progress.tqdm(total=1, disable=True)) is std.tqdm  # a terminal: tqdm's text bar
    monkeypatch.setattr(progress, "jupyter_kernel", lambda: True)
    assert isinstance(progress.tqdm(total=1, disable=True), notebook_tqdm)  # JupyterLab, Colab: the widget
    monkeypatch.setenv("LABKIT_HEADLESS", "1")
    assert isinstance(progress.tqdm(total=1), progress.FinalLine)  # the runner's kernels
    monkeypatch.setenv("LABKIT_HEADLESS", "0")
    assert isinstance(progress.tqdm(total=1, disable=True), notebook_tqdm)


def test_fit_reports_epochs_done_and_last_losses_when_headless(monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_HEADLESS", "1")
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,)))
    loader = DataLoader(data, batch_size=8)
    history = train.fit(nn.Linear(4, 2), loader, loader, epochs=2, device="cpu")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, lines  # the epoch bar's last state; the batch bars print nothing
    assert lines[0].startswith("fit: 100%") and "2/2" in lines[0]
    assert f"train_loss={history.df['train_loss'].iloc[-1]:.3f}" in lines[0] and "val_acc=" in lines[0]
