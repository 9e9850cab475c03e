"""labkit.train: fit (schedules, label smoothing, early stopping, checkpoints, exact resume),
overfit_one_batch, evaluate/predict, save/load_checkpoint. Tiny CPU models and data only."""

from __future__ import annotations

import copy
import datetime
import math
import random

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from labkit.core import LabError
from labkit.models import NaiveCNN
from labkit.train import (
    History,
    evaluate,
    fit,
    load_checkpoint,
    overfit_one_batch,
    predict,
    save_checkpoint,
    smooth,
)
from labkit.train import checkpoint as ckpt_module
from labkit.train import rng as rng_module
from labkit.train.history import SMOOTHING

# -------------------------------------------------------------------------------------------------- helpers


def make_data(n: int = 64, seed: int = 0, flip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """n images 3x16x16 of 4 classes: class c brightens one quadrant of one channel (learnable)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = 0.5 * torch.randn(n, 3, 16, 16, generator=g)
    for c in range(4):
        r, q = divmod(c, 2)
        x[y == c, c % 3, r * 8 : (r + 1) * 8, q * 8 : (q + 1) * 8] += 1.5
    return x, (y + 1) % 4 if flip else y


class Augmented(Dataset):
    """Draws from python's random, numpy's and torch's global generators, as real augmentation does."""

    def __init__(self, x, y, interrupt_after: int | None = None):
        self.x, self.y, self.calls, self.interrupt_after = x, y, 0, interrupt_after

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        self.calls += 1
        if self.interrupt_after is not None and self.calls > self.interrupt_after:
            raise KeyboardInterrupt  # as if the user pressed "interrupt the kernel" mid-epoch
        img = self.x[i] * random.uniform(0.9, 1.1)
        img = img + torch.from_numpy(np.random.normal(0.0, 0.05, size=tuple(img.shape)).astype(np.float32))
        return img + 0.05 * torch.randn(img.shape), self.y[i]


def loaders(shuffle_seed: int = 0, interrupt_after: int | None = None, batch_size: int = 16):
    x, y = make_data(64, seed=0)
    vx, vy = make_data(32, seed=1)
    train = DataLoader(
        Augmented(x, y, interrupt_after),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(shuffle_seed),
    )
    return train, DataLoader(TensorDataset(vx, vy), batch_size=16)


def tiny_model(seed: int = 0, dropout: float = 0.3) -> NaiveCNN:
    torch.manual_seed(seed)
    return NaiveCNN(num_classes=4, channels=(8, 16), convs_per_stage=1, hidden=16, dropout=dropout)


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), f"{k} differs"


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def no_history_seconds(h: History) -> pd.DataFrame:
    return h.df.drop(columns="seconds")


# --------------------------------------------------------------------------------------------- exact resume


def test_resume_after_two_epochs_gives_same_weights_as_straight_run(tmp_path):
    kw = dict(optimizer="sgd", lr=0.05, progress=False, restore_best=False)
    straight = tiny_model(0)
    tl, vl = loaders()
    seed_all(0)
    h_straight = fit(straight, tl, vl, epochs=4, **kw)

    ck = tmp_path / "run.pt"
    first = tiny_model(0)
    tl, vl = loaders()
    seed_all(0)
    fit(first, tl, vl, epochs=2, checkpoint=ck, **kw)

    # A new session: other global RNG states, another initialisation, another loader seed.
    seed_all(123)
    resumed = tiny_model(1)
    tl, vl = loaders(shuffle_seed=99)
    h_resumed = fit(resumed, tl, vl, epochs=4, checkpoint=ck, resume=True, **kw)

    assert_same_weights(resumed, straight)
    assert not same_weights(resumed, first)  # the resumed run did train epochs 3 and 4
    assert h_resumed.epochs_run == 4
    pd.testing.assert_frame_equal(no_history_seconds(h_resumed), no_history_seconds(h_straight))


def test_resume_is_exact_only_because_loader_generator_is_restored(tmp_path, monkeypatch):
    """The control for the test above: skip restoring the loaders' generators and the weights differ."""
    kw = dict(optimizer="sgd", lr=0.05, progress=False, restore_best=False)
    straight = tiny_model(0)
    tl, vl = loaders()
    seed_all(0)
    fit(straight, tl, vl, epochs=3, **kw)

    ck = tmp_path / "run.pt"
    first = tiny_model(0)
    tl, vl = loaders()
    seed_all(0)
    fit(first, tl, vl, epochs=1, checkpoint=ck, **kw)
    original = rng_module.restore
    monkeypatch.setattr(rng_module, "restore", lambda state, lds: original(state, {}))
    resumed = tiny_model(0)
    tl, vl = loaders(shuffle_seed=99)
    fit(resumed, tl, vl, epochs=3, checkpoint=ck, resume=True, **kw)
    assert not same_weights(resumed, straight)


def test_resume_after_keyboard_interrupt_mid_epoch_with_adam_cosine_and_early_stopping(tmp_path, capsys):
    kw = dict(optimizer="adam", lr=3e-3, scheduler="cosine", patience=5, label_smoothing=0.1, progress=False)
    straight = tiny_model(0)
    tl, vl = loaders()
    seed_all(0)
    h_straight = fit(straight, tl, vl, epochs=5, **kw)

    ck = tmp_path / "run.pt"
    interrupted = tiny_model(0)
    tl, vl = loaders(interrupt_after=64 * 2 + 20)  # dies 20 images into epoch 3
    seed_all(0)
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, tl, vl, epochs=5, checkpoint=ck, **kw)
    assert "resume=True" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]  # no temporary file left
    assert torch.load(ck, weights_only=True)["fit"]["epoch"] == 2

    seed_all(7)
    resumed = tiny_model(3)
    tl, vl = loaders(shuffle_seed=5)
    h_resumed = fit(resumed, tl, vl, epochs=5, checkpoint=ck, resume=True, **kw)
    assert_same_weights(resumed, straight)  # both restored the same best epoch's weights
    assert h_resumed.best_epoch == h_straight.best_epoch
    pd.testing.assert_frame_equal(no_history_seconds(h_resumed), no_history_seconds(h_straight))


def test_resume_without_checkpoint_file_trains_from_scratch(tmp_path):
    kw = dict(lr=1e-2, progress=False)
    a, b = tiny_model(0), tiny_model(0)
    tl, vl = loaders()
    seed_all(0)
    fit(a, tl, vl, epochs=2, **kw)
    tl, vl = loaders()
    seed_all(0)
    h = fit(b, tl, vl, epochs=2, checkpoint=tmp_path / "new.pt", resume=True, **kw)
    assert h.epochs_run == 2 and (tmp_path / "new.pt").is_file()
    assert_same_weights(a, b)


def test_resume_refuses_changed_epochs_with_epoch_dependent_schedule(tmp_path):
    ck = tmp_path / "run.pt"
    tl, vl = loaders()
    fit(tiny_model(0), tl, vl, epochs=2, scheduler="cosine", checkpoint=ck, progress=False)
    with pytest.raises(LabError, match=r"run with epochs=2, not epochs=4: resume with epochs=2"):
        fit(tiny_model(0), tl, vl, epochs=4, scheduler="cosine", checkpoint=ck, resume=True, progress=False)
    with pytest.raises(LabError, match=r"run with optimizer='Adam', not optimizer='SGD'"):
        fit(
            tiny_model(0),
            tl,
            vl,
            epochs=2,
            optimizer="sgd",
            scheduler="cosine",
            checkpoint=ck,
            resume=True,
            progress=False,
        )


def test_resume_from_save_checkpoint_file_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "model.pt", tiny_model(0))
    tl, vl = loaders()
    with pytest.raises(LabError, match="written by save_checkpoint, not by fit"):
        fit(tiny_model(0), tl, vl, epochs=2, checkpoint=path, resume=True, progress=False)


# ---------------------------------------------------------------------------------------------- checkpoints


def test_fit_checkpoint_loads_with_weights_only(tmp_path):
    ck = tmp_path / "run.pt"
    tl, vl = loaders()
    fit(tiny_model(0), tl, vl, epochs=2, scheduler="onecycle", patience=3, checkpoint=ck, progress=False)
    state = torch.load(ck, weights_only=True)  # raises if anything in it needs pickled code
    assert state["fit"]["epoch"] == 2
    assert [row["epoch"] for row in state["fit"]["rows"]] == [1, 2]
    assert set(state["fit"]["rows"][-1]) == set(History.from_rows([]).df.columns)
    assert isinstance(state["fit"]["rng"]["numpy"][0], torch.Tensor)  # numpy's keys
    assert len(state["fit"]["rng"]["loaders"]["train"]) == 1  # the shuffling generator is saved


def test_load_checkpoint_uses_weights_only(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "m.pt", tiny_model(0))
    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_checkpoint(path)
    assert seen.get("weights_only") is True


def test_load_checkpoint_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "extra": {"when": datetime.date(2024, 1, 1)}}, path)  # needs code to load
    with pytest.raises(LabError, match="weights_only=True refuses"):
        load_checkpoint(path, tiny_model(0))


def test_save_and_load_checkpoint_round_trip_rebuilds_architecture(tmp_path):
    model = tiny_model(0).eval()
    extra = {
        "classes": ["a", "b", "c", "d"],
        "image_size": 16,
        "mean": (0.5, 0.4, 0.3),
        "counts": np.array([1, 2, 3]),
        "seed": np.int64(3),
        "where": tmp_path,
    }
    path = save_checkpoint(tmp_path / "sub" / "m.pt", model, **extra)
    rebuilt, got = load_checkpoint(path)
    assert isinstance(rebuilt, NaiveCNN) and not rebuilt.training
    assert rebuilt.arch == model.arch
    assert_same_weights(rebuilt, model)
    assert got["classes"] == ["a", "b", "c", "d"] and got["mean"] == (0.5, 0.4, 0.3)
    assert (
        torch.equal(got["counts"], torch.tensor([1, 2, 3]))
        and got["seed"] == 3
        and got["where"] == str(tmp_path)
    )
    x = make_data(8)[0]
    assert torch.equal(rebuilt(x), model(x))


def test_save_checkpoint_refuses_non_plain_extra_before_writing(tmp_path):
    with pytest.raises(LabError, match=r"extra\['bad'\] is a object"):
        save_checkpoint(tmp_path / "m.pt", tiny_model(0), bad=object())
    assert list(tmp_path.iterdir()) == []


def test_save_checkpoint_is_atomic_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    old = tiny_model(0)
    save_checkpoint(path, old, note="old")
    real_save = torch.save

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, tiny_model(1), note="new")
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # the temporary file is gone
    model, extra = load_checkpoint(path)
    assert extra == {"note": "old"}
    assert_same_weights(model, old)


def test_fit_checkpoint_survives_crash_during_write(tmp_path, monkeypatch):
    ck = tmp_path / "run.pt"
    real_save = torch.save
    calls = []

    def save_then_fail(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            f.write(b"garbage")
            raise OSError("disk full")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_then_fail)
    tl, vl = loaders()
    with pytest.raises(OSError, match="disk full"):
        fit(tiny_model(0), tl, vl, epochs=3, checkpoint=ck, progress=False)
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]
    assert torch.load(ck, weights_only=True)["fit"]["epoch"] == 1


def test_load_checkpoint_with_other_architecture_names_both(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", tiny_model(0))
    other = NaiveCNN(num_classes=4, channels=(8, 32), convs_per_stage=1, hidden=16)
    with pytest.raises(
        LabError,
        match=r"holds naive_cnn\(.*channels=\[8, 16\].*model given is naive_cnn\(.*"
        r"channels=\[8, 32\].*load_checkpoint\(path\) without a model",
    ):
        load_checkpoint(path, other)


def test_load_checkpoint_lists_key_and_shape_mismatches_readably(tmp_path):
    path = save_checkpoint(tmp_path / "plain.pt", nn.Sequential(nn.Linear(4, 3)))  # no .arch
    with pytest.raises(LabError, match=r"shape mismatch: 0.weight saved \(3, 4\) vs model \(5, 4\)"):
        load_checkpoint(path, nn.Sequential(nn.Linear(4, 5)))
    with pytest.raises(LabError, match=r"missing in .*plain.pt: 2.weight, 2.bias\)") as err:
        load_checkpoint(path, nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)))
    assert len(str(err.value)) < 400  # a short message, not torch's wall of text
    with pytest.raises(LabError, match="records no architecture"):
        load_checkpoint(path)


def test_load_checkpoint_missing_file_names_path(tmp_path):
    with pytest.raises(LabError, match=r"no checkpoint at .*nowhere\.pt"):
        load_checkpoint(tmp_path / "nowhere.pt")


def test_load_checkpoint_truncated_file(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", tiny_model(0))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(LabError, match="cannot be read as a torch checkpoint"):
        load_checkpoint(path)


# -------------------------------------------------------------------------------------------- fit behaviour


def test_early_stopping_stops_and_restores_best_weights():
    x, y = make_data(64)

    def train():
        return DataLoader(
            TensorDataset(x, y), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0)
        )

    val = DataLoader(TensorDataset(x, (y + 1) % 4), batch_size=32)  # learning the task makes val worse
    kw = dict(lr=1e-2, progress=False)
    model = tiny_model(0)
    h = fit(model, train(), val, epochs=30, patience=2, **kw)

    assert h.stopped_early and h.epochs_run < 30
    assert h.epochs_run == h.best_epoch + 2
    raw = h.df["val_loss"].to_list()
    expected = [raw[0]]
    for v in raw[1:]:
        expected.append(SMOOTHING * expected[-1] + (1 - SMOOTHING) * v)
    np.testing.assert_allclose(h.df["val_loss_smooth"], expected, rtol=0, atol=1e-12)
    assert h.df["val_loss_smooth"].iloc[-1] > h.df["val_loss_smooth"].min()
    assert h.best_epoch == int(np.argmin(expected)) + 1
    assert h.best_val_acc == h.df["val_acc"].iloc[h.best_epoch - 1]

    reference = tiny_model(0)  # the same run stopped by hand at the best epoch
    fit(reference, train(), val, epochs=h.best_epoch, restore_best=False, **kw)
    assert_same_weights(model, reference)
    assert evaluate(model, val)["accuracy"] == pytest.approx(h.best_val_acc, abs=1e-12)


def test_resume_of_early_stopped_run_trains_nothing_more(tmp_path):
    x, y = make_data(64)
    tl = DataLoader(
        TensorDataset(x, y), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    vl = DataLoader(TensorDataset(x, (y + 1) % 4), batch_size=32)
    ck = tmp_path / "run.pt"
    model = tiny_model(0)
    h = fit(model, tl, vl, epochs=30, patience=1, lr=1e-2, checkpoint=ck, progress=False)
    again = tiny_model(5)
    h2 = fit(again, tl, vl, epochs=30, patience=1, lr=1e-2, checkpoint=ck, resume=True, progress=False)
    assert h2.stopped_early and h2.epochs_run == h.epochs_run and h2.best_epoch == h.best_epoch
    assert_same_weights(again, model)


def _lrs(scheduler, epochs, optimizer="sgd", lr=0.1):
    tl, vl = loaders()
    h = fit(
        tiny_model(0), tl, vl, epochs=epochs, optimizer=optimizer, lr=lr, scheduler=scheduler, progress=False
    )
    return h.df["lr"].to_list()


def test_cosine_schedule_records_lr_per_epoch():
    expected = [0.1 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    np.testing.assert_allclose(_lrs("cosine", 4), expected, rtol=1e-12)


def test_step_and_onecycle_and_custom_schedules():
    np.testing.assert_allclose(_lrs("step", 6), [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-9)
    onecycle = _lrs("onecycle", 3)  # per batch: warm up from lr/25, peak, anneal
    assert (
        onecycle[0] == pytest.approx(0.1 / 25)
        and max(onecycle) > onecycle[0]
        and onecycle[-1] < max(onecycle)
    )
    halving = _lrs(lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5), 3)
    np.testing.assert_allclose(halving, [0.1, 0.05, 0.025], rtol=1e-12)


def test_optimizer_instance_and_param_groups_are_used():
    model = tiny_model(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.02)
    tl, vl = loaders()
    h = fit(model, tl, vl, epochs=1, optimizer=opt, lr=99.0, progress=False)
    assert h.df["lr"].iloc[0] == 0.02

    model = tiny_model(0)
    frozen = {k: v.clone() for k, v in model.features.state_dict().items()}
    groups = [{"params": model.classifier.parameters(), "lr": 0.05}]
    fit(model, tl, vl, epochs=1, optimizer="sgd", param_groups=groups, progress=False)
    for k, v in model.features.state_dict().items():
        if "running" not in k and "num_batches" not in k:
            assert torch.equal(v, frozen[k]), f"{k} was updated though not in param_groups"


def test_label_smoothing_reaches_the_loss():
    x, y = make_data(16)
    vx, vy = make_data(16, seed=3)
    tl = DataLoader(TensorDataset(x, y), batch_size=16)
    vl = DataLoader(TensorDataset(vx, vy), batch_size=16)
    model = tiny_model(0, dropout=0.0)
    before = copy.deepcopy(model).train()
    eps = 0.5
    # lr=0: the weights stay, so the recorded losses can be recomputed by hand.
    h = fit(model, tl, vl, epochs=1, optimizer="sgd", lr=0.0, label_smoothing=eps, progress=False)

    def manual(logits, target):
        logp = logits.log_softmax(1)  # (B, K)
        per = (1 - eps) * -logp[torch.arange(len(target)), target] + eps / 4 * -logp.sum(1)
        return float(per.mean())

    with torch.no_grad():
        train_manual = manual(before(x), y)
        val_manual = manual(model.eval()(vx), vy)
        plain = float(F.cross_entropy(model(vx), vy))
    assert h.df["train_loss"].iloc[0] == pytest.approx(train_manual, rel=1e-5)
    assert h.df["val_loss"].iloc[0] == pytest.approx(val_manual, rel=1e-5)
    assert abs(val_manual - plain) > 1e-3  # the options do change the number


def test_fit_restores_modes_and_keeps_frozen_batchnorm_in_eval():
    model = tiny_model(0)
    bn = model.features.bn1_1
    for p in bn.parameters():
        p.requires_grad_(False)
    running = bn.running_mean.clone()
    model.eval()
    tl, vl = loaders()
    fit(model, tl, vl, epochs=1, progress=False)
    assert torch.equal(bn.running_mean, running)  # a frozen BN does not learn statistics either
    assert not model.features.bn2_1.running_mean.eq(0).all()  # the trainable one does
    assert all(not m.training for m in model.modules())  # modes as found


def test_fit_rejects_bad_arguments_before_training():
    tl, vl = loaders()
    m = tiny_model(0)
    with pytest.raises(LabError, match="epochs=0"):
        fit(m, tl, vl, epochs=0)
    with pytest.raises(LabError, match="optimizer='rmsprop' is not known"):
        fit(m, tl, vl, epochs=1, optimizer="rmsprop")
    with pytest.raises(LabError, match="scheduler='triangle' is not known"):
        fit(m, tl, vl, epochs=1, scheduler="triangle")
    with pytest.raises(LabError, match="resume=True needs checkpoint"):
        fit(m, tl, vl, epochs=1, resume=True)
    with pytest.raises(LabError, match="patience needs a val_loader"):
        fit(m, tl, None, epochs=1, patience=2)
    with pytest.raises(LabError, match="label_smoothing=1.5"):
        fit(m, tl, vl, epochs=1, label_smoothing=1.5)
    with pytest.raises(LabError, match="ReduceLROnPlateau needs the validation loss"):
        fit(m, tl, vl, epochs=1, scheduler=torch.optim.lr_scheduler.ReduceLROnPlateau)


def test_fit_under_torchrun_without_a_world_says_to_pass_one(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    tl, vl = loaders()
    with pytest.raises(LabError, match=r"WORLD_SIZE=2 .*pass world=course\.distributed\.join"):
        fit(tiny_model(0), tl, vl, epochs=1, progress=False)


def test_fit_diverging_loss_says_lower_the_lr():
    tl, vl = loaders()
    with pytest.raises(LabError, match="diverged in epoch 1.*Lower the learning rate"):
        fit(tiny_model(0), tl, vl, epochs=2, optimizer="sgd", lr=1e30, progress=False)


def test_fit_without_val_loader_and_history_csv(tmp_path):
    tl, _ = loaders()
    h = fit(tiny_model(0), tl, None, epochs=2, progress=False)
    assert h.best_epoch is None and h.df["val_loss"].isna().all()
    path = h.to_csv(tmp_path / "h.csv")
    back = pd.read_csv(path)
    assert list(back.columns) == [
        "epoch",
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "val_loss_smooth",
        "lr",
        "seconds",
    ]
    np.testing.assert_allclose(back["train_loss"], h.df["train_loss"])
    assert h.seconds == pytest.approx(h.df["seconds"].sum())


def test_progress_bars_and_silence(capsys):
    tl, vl = loaders()
    fit(tiny_model(0), tl, vl, epochs=1, progress=False)
    assert capsys.readouterr() == ("", "")
    fit(tiny_model(0), tl, vl, epochs=1, progress=True)
    shown = capsys.readouterr()  # headless here (LABKIT_HEADLESS=1): the bar's final line, on stdout
    assert "fit" in shown.out + shown.err


def test_smooth_formula():
    np.testing.assert_allclose(smooth([1.0, 3.0, 3.0], 0.5), [1.0, 2.0, 2.5])
    np.testing.assert_allclose(smooth([1.0, 3.0], 0.0), [1.0, 3.0])


# ----------------------------------------------------------------------------------------- overfit, predict


def test_overfit_one_batch_reaches_low_loss_and_restores_modes():
    tl, _ = loaders()
    model = tiny_model(0, dropout=0.5).eval()
    df = overfit_one_batch(model, tl, steps=150, lr=1e-2)
    assert list(df.columns) == ["step", "loss", "accuracy"] and len(df) == 150
    assert df["loss"].iloc[-1] < 0.05 and df["accuracy"].iloc[-1] == 1.0
    assert df["loss"].iloc[0] > 1.0  # it started from chance
    assert all(not m.training for m in model.modules())


def test_predict_and_evaluate_in_eval_mode_without_grad_and_modes_restored():
    x, y = make_data(40)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    model = tiny_model(0).train()
    model.features.bn1_1.eval()  # a mixed state must come back as it was
    modes = [m.training for m in model.modules()]

    p = predict(model, loader)
    assert [m.training for m in model.modules()] == modes
    assert all(q.grad is None for q in model.parameters())
    np.testing.assert_array_equal(p.y_true, y.numpy())
    assert p.probs.shape == (40, 4)
    np.testing.assert_allclose(p.probs.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(p.y_pred, p.probs.argmax(1))
    np.testing.assert_allclose(p.confidence, p.probs.max(1))

    model_eval = copy.deepcopy(model).eval()
    with torch.no_grad():
        logits = model_eval(x)
    np.testing.assert_allclose(p.probs, logits.softmax(1).numpy(), rtol=1e-5, atol=1e-6)
    assert np.array_equal(predict(model, loader).probs, p.probs)  # no dropout: deterministic

    result = evaluate(model, loader)
    assert [m.training for m in model.modules()] == modes
    assert result["loss"] == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
    assert result["accuracy"] == pytest.approx(p.accuracy)


def test_predict_rejects_loader_without_targets():
    loader = DataLoader(make_data(8)[0], batch_size=4)
    with pytest.raises(LabError, match="not an \\(images, targets\\) pair"):
        predict(tiny_model(0), loader)


def test_checkpoint_module_exports_atomic_save(tmp_path):
    # atomic_save writes any plain payload; a partial write never replaces the target.
    path = ckpt_module.atomic_save({"a": torch.ones(2)}, tmp_path / "x.pt")
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))
