"""fit under torchrun with course.distributed's world: two CPU processes (gloo) train the shapes naive
CNN (tests/ddp_worker.py runs them once per session), and the script entry `python -m course train`
refuses bad input early."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course import distributed
from course.train import train_recipe
from labkit.core import LabError
from labkit.data.tensor_loader import TensorLoader
from labkit.train import evaluate, load_checkpoint, predict
from labkit.train.world import OneProcess

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def tensor_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "tensor_cache"))


def torchrun(args: list[str], cache: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """`python -m torch.distributed.run --standalone --nproc-per-node 2 ARGS` (a free port of its own)."""
    env = {**os.environ, "LABKIT_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    return subprocess.run(cmd, env=env, cwd=HERE.parent, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """The folder where tests/ddp_worker.py left what each of its two processes ended with."""
    out = tmp_path_factory.mktemp("ddp")
    done = torchrun([str(HERE / "ddp_worker.py"), str(out)], out / "tensor_cache")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def ranks(out: Path, run: str) -> tuple[dict, dict]:
    return tuple(torch.load(out / f"{run}_rank{r}.pt", weights_only=True) for r in (0, 1))


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


def test_two_processes_end_with_identical_weights(two_processes):
    import ddp_worker

    r0, r1 = ranks(two_processes, "straight")
    assert_same_state(r0["state"], r1["state"])  # parameters and batch-norm statistics
    assert r0["history"] == r1["history"]  # every process computed the same epoch figures
    assert len(r0["history"]["epoch"]) == ddp_worker.EPOCHS


def test_validation_accuracy_is_that_of_the_whole_split_in_one_process(two_processes):
    import ddp_worker

    r0, _ = ranks(two_processes, "straight")
    net = ddp_worker.model()
    net.load_state_dict(r0["state"])
    val = ddp_worker.loaders().val
    assert len(set(predict(net, val).y_pred.tolist())) > 1  # not a network that answers one class
    whole = evaluate(net, val)  # one process, every validation image
    assert whole["accuracy"] == r0["history"]["val_acc"][-1]
    assert whole["loss"] == pytest.approx(r0["history"]["val_loss"][-1], rel=1e-5)


def test_interrupted_two_process_run_resumes_exactly(two_processes):
    straight, _ = ranks(two_processes, "straight")
    r0, r1 = ranks(two_processes, "resumed")
    assert_same_state(r0["state"], straight["state"])
    assert_same_state(r1["state"], straight["state"])
    assert r0["history"] == straight["history"]


def test_dataloader_path_gives_identical_weights_and_whole_split_accuracy(two_processes):
    import ddp_worker

    r0, r1 = ranks(two_processes, "dataloader")
    assert_same_state(r0["state"], r1["state"])
    net = ddp_worker.model()
    net.load_state_dict(r0["state"])
    assert evaluate(net, ddp_worker.loaders(in_memory=False).val)["accuracy"] == r0["history"]["val_acc"][-1]


def test_data_missing_on_one_rank_stops_every_rank_before_training(two_processes):
    rank0 = (two_processes / "missing_rank0.txt").read_text()
    rank1 = (two_processes / "missing_rank1.txt").read_text()
    assert "rank [1]" in rank0 and "no process trains" in rank0
    assert rank1.startswith("rank 1:") and "does not exist" in rank1
    assert not (two_processes / "recipe" / "checkpoints").exists()


def test_resume_with_another_number_of_processes_says_it_is_not_exact(two_processes, tmp_path, capsys):
    import ddp_worker

    state = tmp_path / "state.pt"
    shutil.copy(two_processes / "straight_state.pt", state)
    net, history = ddp_worker.train(ddp_worker.EPOCHS + 1, checkpoint=state, resume=True)
    assert "Resuming a run of 2 process(es) with 1" in capsys.readouterr().out
    assert history.epochs_run == ddp_worker.EPOCHS + 1
    straight, _ = ranks(two_processes, "straight")
    assert history.df["val_acc"].tolist()[: ddp_worker.EPOCHS] == straight["history"]["val_acc"]


def test_torchrun_script_entry_saves_where_the_labs_find_it(tmp_path):
    from labkit import zoo
    from labkit.lab import Lab

    out = tmp_path / "runs"
    args = "-m course train naive --dataset shapes --profile smoke --epochs 1 --out".split() + [str(out)]
    done = torchrun(args, tmp_path / "tensor_cache")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lab = Lab("07_gradcam", "smoke", torch.device("cpu"), out, params={"dataset": None, "seed": 0})
    model, info = zoo.naive_cnn(lab, verbose=False)
    assert info["source"] == "checkpoint" and info["processes"] == 2
    assert done.stdout.count("[labkit] test accuracy") == 1  # printed by rank 0 only


# ----------------------------------------------------------------------------- without processes
def test_tensor_loader_shares_cover_one_shuffle_and_val_shares_partition():
    images = torch.arange(11, dtype=torch.uint8).view(11, 1, 1, 1).expand(11, 3, 2, 2).contiguous()
    loader = TensorLoader(images, list(range(11)), 2, mean=(0, 0, 0), std=(1, 1, 1), shuffle=True, seed=3)
    parts = [loader.shard(r, 3, pad=True) for r in range(3)]
    order = torch.randperm(11, generator=torch.Generator().manual_seed(3))
    seen = []
    for part in parts:
        part.generator.manual_seed(3)  # each process starts from the same generator state
        seen.append(torch.cat([y for _, y in part]))
    assert {len(s) for s in seen} == {4} and all(len(p) == 2 for p in parts)  # 12 = 11 + 1 repeated
    assert sorted(torch.cat(seen).tolist()) == sorted(order.tolist() + order[:1].tolist())
    assert torch.equal(seen[1], torch.cat([order, order[:1]])[1::3])
    val = TensorLoader(images, list(range(11)), 2, mean=(0, 0, 0), std=(1, 1, 1))
    shares = [torch.cat([y for _, y in val.shard(r, 3, pad=False)]) for r in range(3)]
    assert sorted(torch.cat(shares).tolist()) == list(range(11))  # each image exactly once
    assert loader.rank == 0 and loader.world_size == 1  # the caller's loader is unchanged


def test_one_process_leaves_loaders_and_model_as_they_are(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    world, device = distributed.join(torch.device("cpu"))
    assert type(world) is OneProcess and device == torch.device("cpu") and world.main
    assert not torch.distributed.is_initialized()
    loader = object()
    assert world.shard(loader, train=True) is loader
    model = torch.nn.Linear(2, 2)
    assert world.wrap(model) is model
    assert world.all_sum([1.5, 2, 3]) == [1.5, 2, 3]
    assert world.agree(True) == [] and world.agree(False) == [0]


def test_world_size_without_rank_says_use_torchrun(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(LabError, match="torchrun"):
        distributed.from_env()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_nccl_without_gpus_is_refused_before_the_process_group_starts(monkeypatch):
    for name, value in {
        "WORLD_SIZE": "2",
        "RANK": "1",
        "LOCAL_RANK": "1",
        "LABKIT_DIST_BACKEND": "nccl",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(LabError, match="no CUDA GPU"):
        distributed.join(torch.device("cpu"))
    assert not torch.distributed.is_initialized()
    with pytest.raises(LabError, match="NCCL"):
        train_recipe("naive", "shapes", profile="smoke", backend="nccl")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["vgg"], "recipe 'vgg' is not known"),
        (["naive", "--epochs", "0"], "epochs=0: expected a positive int"),
        (["naive", "--dataset", "folder:/no/such/folder"], "does not exist"),
        (["naive", "--dataset", "mnist"], "unknown dataset 'mnist'"),
    ],
)
def test_script_entry_refuses_bad_input_before_training(args, message, tmp_path, capsys):
    from course.__main__ import main

    assert main(["train", *args, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


def test_train_recipe_refuses_bad_epochs_and_unknown_recipe():
    with pytest.raises(LabError, match="epochs=-1"):
        train_recipe("naive", "shapes", epochs=-1)
    with pytest.raises(LabError, match="not known"):
        train_recipe("alexnet", "shapes")


def test_a_two_process_checkpoint_loads_in_one_process(two_processes):
    model, _ = load_checkpoint(two_processes / "straight_state.pt")
    straight, _ = ranks(two_processes, "straight")
    assert_same_state(model.state_dict(), straight["state"])


def test_seconds_to_target_counts_epochs_until_the_first_that_reaches_it():
    from course.train import _seconds_to
    from labkit.train import History

    rows = [
        {
            "epoch": e,
            "train_loss": 1.0,
            "train_acc": 0.5,
            "val_loss": 1.0,
            "val_acc": acc,
            "val_loss_smooth": 1.0,
            "lr": 0.1,
            "seconds": 2.0,
        }
        for e, acc in enumerate([0.5, 0.93, 0.95, 0.94], start=1)
    ]
    history = History.from_rows(rows)
    assert _seconds_to(history, 0.94) == 6.0
    assert _seconds_to(history, 0.99) is None
