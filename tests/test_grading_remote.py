"""The two-process grading's pieces on small cases: the messages (wire), the tests' stand-ins for the
notebook's objects (remote), and which names a test cell reads (verdict). The whole path, with hostile
notebooks, is in test_grading.py and test_grading_hostile.py."""

from __future__ import annotations

import copy
import io
import json
import os
import pickle
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn

from course.grading import remote, sandbox, wire
from course.grading.verdict import free_names
from labkit.check import CheckFailed


def roundtrip(value):
    handles: dict[int, object] = {}

    def handle(obj):
        handles[id(obj)] = obj
        return id(obj)

    data = wire.dumps_reply(("ok", wire.encode(value, handle)))
    tree = wire.loads_reply(data)
    return wire.decode(tree[1], lambda number, types: ("handle", types[0]))


def test_plain_values_cross_as_copies_and_other_objects_as_handles():
    value = {
        "t": torch.arange(6.0).reshape(2, 3),
        "a": np.arange(4, dtype=np.int16),
        "s": np.float32(2.5),
        "n": [1, 2.0, "x", None, True, b"raw"],
        "u": (torch.Size([2, 3]), torch.float16, range(1, 7, 2)),
        "m": nn.Linear(2, 2),
    }
    got = roundtrip(value)
    assert torch.equal(got["t"], value["t"]) and got["t"] is not value["t"]
    assert got["a"].dtype == np.int16 and got["a"].tolist() == [0, 1, 2, 3]
    assert type(got["s"]) is np.float32 and got["s"] == 2.5
    assert got["n"] == [1, 2.0, "x", None, True, b"raw"]
    assert got["u"] == (torch.Size([2, 3]), torch.float16, range(1, 7, 2))
    assert got["m"] == ("handle", "torch.nn.modules.linear.Linear")


def test_a_parameter_comes_back_as_a_plain_tensor_without_its_graph():
    w = nn.Parameter(torch.ones(3))
    got = roundtrip((w * 2,))
    assert type(got[0]) is torch.Tensor and not got[0].requires_grad and got[0].grad_fn is None


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_reply_that_would_run_code_is_refused():
    # what a hostile submission could write on its pipe instead of a reply: a pickle that calls a function
    for payload in (pickle.dumps(("ok", _Exploit())), b"\x80\x04garbage", b""):
        with pytest.raises(wire.WireError):
            wire.loads_reply(payload)
    buffer = io.BytesIO()
    torch.save(("ok", ("H", 1, ["x"])), buffer)
    with pytest.raises(wire.WireError, match="unknown kind"):
        wire.decode(("Q", 1), lambda *a: None)


def test_a_message_over_the_limit_is_refused_unread():
    stream = io.BytesIO(wire.HEADER.pack(wire.MAX_FRAME + 1) + b"x" * 10)
    with pytest.raises(wire.WireError, match="over the"):
        wire.receive(stream)


def test_free_names_follow_pythons_scoping():
    source = (
        "import numpy as np\n"
        "def shift(images, masks, g):\n"
        "    return batch_aug.translate(torch.cat([images, masks]), g)\n"
        "shifted = masks[:n] if masks is not None else np.zeros(3)\n"
        "squares = [k * k for k in range(3)]\n"
    )
    names = free_names(source)
    assert names[:2] == ["masks", "n"]  # the notebook's `masks`, not the function's argument of that name
    assert {"batch_aug", "torch"} <= set(names)
    assert not {"images", "g", "k", "np", "shifted", "shift"} & set(names)


def start(root, log, seconds: float) -> remote.Submission:
    """A submission's process without the boundary (its mechanics only), in folder `root`."""
    env = {
        **os.environ,
        sandbox.CONFIG_ENV: json.dumps({"root": str(root), "deny": []}),
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "course.grading.submission_process"]
    return remote.Submission(command, env, str(root), log, time.monotonic() + seconds)


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    """A submission's process (without the boundary: its mechanics only) that has run one cell."""
    root = tmp_path_factory.mktemp("remote")
    log = open(root / "log.txt", "wb")
    sub = start(root, log, 300)
    sub.request(
        "exec",
        """
import torch
from torch import nn

class Doubler(nn.Module):
    def forward(self, x):
        return 2 * x

class Oops(Exception):
    pass

def train_step(net, x):
    net.train()
    with torch.no_grad():
        net.weight.add_(1.0)
    return net, net.weight

def numbers(n):
    for i in range(n):
        yield i * i

def explode():
    raise Oops("a message of the notebook's")

def fail_value():
    raise ValueError("bad value")

def count(batches):
    return sum(len(b) for b in batches)

doubler = Doubler()
print("ran")
""",
    )
    yield sub
    sub.close()
    sub.proc.wait(timeout=30)
    log.close()


def test_calling_the_notebooks_objects_through_stand_ins(notebook):
    doubler = notebook.request("global", "doubler")
    assert isinstance(doubler, remote.Remote) and isinstance(doubler, nn.Module)  # its library class
    assert torch.equal(doubler(torch.ones(2)), torch.full((2,), 2.0))
    assert doubler.training is True
    assert list(notebook.request("global", "numbers")(4)) == [0, 1, 4, 9]
    twin = copy.deepcopy(doubler)
    assert isinstance(twin, remote.Remote) and twin != doubler
    assert isinstance(doubler, notebook.request("global", "Doubler"))
    # a generator of the test's is handed over as what it yields
    assert notebook.request("global", "count")(b for b in ([1, 2], [3])) == 3
    with pytest.raises(NameError):
        notebook.request("global", "not_defined_anywhere")


def test_what_a_call_does_to_the_tests_objects_comes_back(notebook):
    net = nn.Linear(2, 2).eval()
    before = net.weight.detach().clone()
    returned, weight = notebook.request("global", "train_step")(net, torch.zeros(1, 2))
    assert returned is net and weight is net.weight  # the grader's own objects, not copies
    assert net.training and torch.equal(net.weight, before + 1)


def test_the_notebooks_exceptions_arrive_as_exceptions_never_as_results(notebook):
    with pytest.raises(ValueError, match="bad value"):
        notebook.request("global", "fail_value")()
    with pytest.raises(remote.RemoteError, match="Oops: a message of the notebook's"):
        notebook.request("global", "explode")()
    notebook.exceptions = {"Oops": type("Oops", (Exception,), {})}
    with pytest.raises(notebook.exceptions["Oops"]):
        notebook.request("global", "explode")()
    notebook.exceptions = {}
    with pytest.raises(NameError):
        notebook.request("exec", "raise CheckFailedLookalike")  # a NameError of its own: not a pass
    assert not issubclass(remote.RemoteError, CheckFailed)


def test_a_notebook_that_stops_answering_ends_at_the_deadline(tmp_path):
    with open(tmp_path / "log.txt", "wb") as log:
        sub = start(tmp_path, log, 5)  # the process starts, then spins until the deadline
        with pytest.raises(remote.SubmissionGone, match="time limit"):
            sub.request("exec", "while True:\n    pass")
        assert sub.timed_out
        with pytest.raises(remote.SubmissionGone):
            sub.request("global", "anything")  # gone stays gone
        sandbox.kill_tree(sub.pid)
        sub.proc.wait(timeout=30)
