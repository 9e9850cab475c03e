"""The messages between the grader and a submission's process: length-prefixed frames on a pipe.

Two directions, two trust levels:

* grader -> submission: `cloudpickle`, so that the tests can hand the answer what they would hand it in
  one process (tensors, modules, a lambda the answer is to maximise); the submission is free to read it.
* submission -> grader: `encode` turns a value into plain data (numbers, strings, tensors, arrays and
  containers of them); every other object stays in the submission's process and crosses as a handle
  ("H", id, the names of its classes). The grader reads it with `torch.load(weights_only=True)`, which
  builds tensors and containers and nothing else: no bytes the submission sends can run code in the
  grader, whatever they hold.
"""

from __future__ import annotations

import io
import os
import select
import struct
import time
from pathlib import PurePath
from typing import Any, BinaryIO

MAX_FRAME = 256 * 2**20  # a reply bigger than this is refused unread (a test needs kilobytes)
MAX_DEPTH = 40
HEADER = struct.Struct("<Q")


class WireError(RuntimeError):
    """The other side closed the pipe, or sent what is not a message."""


def send(stream: BinaryIO, payload: bytes) -> None:
    stream.write(HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _read_exactly(stream: BinaryIO, n: int, deadline: float | None = None) -> bytes:
    chunks, left = [], n
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([stream], [], [], wait)[0]:
                raise TimeoutError("the submission's process did not answer in time")
        chunk = stream.read(left)
        if not chunk:
            raise WireError("the submission's process closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(stream: BinaryIO, limit: int = MAX_FRAME, deadline: float | None = None) -> bytes:
    """One message; `deadline` (time.monotonic()) bounds the wait (TimeoutError)."""
    (size,) = HEADER.unpack(_read_exactly(stream, HEADER.size, deadline))
    if size > limit:
        raise WireError(f"a message of {size / 2**20:.0f} MB, over the {limit / 2**20:.0f} MB allowed")
    return _read_exactly(stream, size, deadline)


# --- submission -> grader: plain data only --------------------------------------------------------


def _type_names(obj: Any) -> list[str]:
    return [f"{c.__module__}.{c.__qualname__}" for c in type(obj).__mro__][:12]


def encode(obj: Any, handle, depth: int = 0, known: dict | None = None) -> Any:
    """`obj` as a tree of plain values; `handle(obj)` gives the id of an object kept where it is;
    `known` ({id: where}) names the objects the grader sent with the request (an argument, a parameter
    of an argument): they go back as ("A", where), and the grader answers with its own object."""
    import numpy as np
    import torch

    if depth > MAX_DEPTH:
        raise ValueError("the value is nested too deeply to send")
    kind = type(obj)
    if obj is None or kind in (bool, int, float, str, bytes):
        return obj
    if known and id(obj) in known:
        return ("A", known[id(obj)])
    if isinstance(obj, torch.Tensor) and obj.layout == torch.strided and obj.device.type != "meta":
        return ("T", obj.detach().to("cpu").as_subclass(torch.Tensor).clone())
    if isinstance(obj, np.ndarray) and obj.dtype.kind in "biuf" and obj.dtype.byteorder in "=|<":
        return ("N", torch.from_numpy(np.ascontiguousarray(obj).copy()))
    if isinstance(obj, np.generic) and obj.dtype.kind in "biuf":
        return ("n", obj.dtype.str, obj.item())
    if kind in (list, tuple, set, frozenset):
        tag = {list: "L", tuple: "U", set: "S", frozenset: "F"}[kind]
        return (tag, [encode(v, handle, depth + 1, known) for v in obj])
    if kind is torch.Size:
        return ("Z", [int(v) for v in obj])
    if kind is dict or kind.__name__ == "OrderedDict" and kind.__module__ == "collections":
        tag = "D" if kind is dict else "O"
        pairs = [
            [encode(k, handle, depth + 1, known), encode(v, handle, depth + 1, known)] for k, v in obj.items()
        ]
        return (tag, pairs)
    if isinstance(obj, PurePath) and kind.__module__ == "pathlib":
        return ("P", str(obj))
    if kind in (torch.dtype, torch.device):
        return ("y" if kind is torch.dtype else "d", str(obj))
    if kind is range:
        return ("R", [obj.start, obj.stop, obj.step])
    return ("H", handle(obj), _type_names(obj))


def dumps_reply(tree: Any) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(tree, buffer)
    return buffer.getvalue()


def loads_reply(data: bytes) -> Any:
    """A reply from the submission's process: tensors and containers only (torch's safe unpickler)."""
    import torch

    try:
        return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - anything that is not a safe reply is refused the same way
        raise WireError(f"the submission's process sent what is not a reply ({type(err).__name__})") from None


def decode(tree: Any, make_handle, depth: int = 0, sent=None) -> Any:
    """The value `encode` described; handles become `make_handle(id, class names)`, and what the request
    sent comes back as `sent(where)`: the grader's own object."""
    import numpy as np
    import torch

    if depth > MAX_DEPTH:
        raise WireError("the reply is nested too deeply")
    if tree is None or type(tree) in (bool, int, float, str, bytes):
        return tree
    if not (isinstance(tree, (tuple, list)) and tree and isinstance(tree[0], str)):
        raise WireError("the reply is not in the expected form")
    tag = tree[0]
    try:
        if tag == "T":
            return _tensor(tree[1])
        if tag == "N":
            return _tensor(tree[1]).numpy()
        if tag == "n":
            return np.dtype(str(tree[1])).type(tree[2])
        if tag in ("L", "U", "S", "F"):
            items = [decode(v, make_handle, depth + 1, sent) for v in tree[1]]
            return {"L": list, "U": tuple, "S": set, "F": frozenset}[tag](items)
        if tag == "Z":
            return torch.Size([int(v) for v in tree[1]])
        if tag in ("D", "O"):
            from collections import OrderedDict

            pairs = [
                (decode(k, make_handle, depth + 1, sent), decode(v, make_handle, depth + 1, sent))
                for k, v in tree[1]
            ]
            return dict(pairs) if tag == "D" else OrderedDict(pairs)
        if tag == "P":
            from pathlib import Path

            return Path(str(tree[1]))
        if tag == "y":
            value = getattr(torch, str(tree[1]).removeprefix("torch."), None)
            if not isinstance(value, torch.dtype):
                raise WireError("not a dtype")
            return value
        if tag == "d":
            return torch.device(str(tree[1]))
        if tag == "R":
            return range(*(int(v) for v in tree[1]))
        if tag == "H":
            return make_handle(int(tree[1]), [str(n) for n in tree[2]][:12])
        if tag == "A" and sent is not None:
            return sent(tree[1])
    except WireError:
        raise
    except Exception as err:  # noqa: BLE001
        raise WireError(f"the reply is not in the expected form ({type(err).__name__})") from None
    raise WireError(f"the reply holds an unknown kind of value {tag[:10]!r}")


def _tensor(value: Any):
    import torch

    if not isinstance(value, torch.Tensor):
        raise WireError("a tensor was expected")
    return value


def pipe_files(read_fd: int, write_fd: int) -> tuple[BinaryIO, BinaryIO]:
    return os.fdopen(read_fd, "rb", buffering=0), os.fdopen(write_fd, "wb", buffering=0)


# --- the handles' table, in the submission's process --------------------------------------------

HANDLES: dict[int, Any] = {}


def ref(number: int) -> Any:
    """What a handle the grader sends back stands for (called when the submission unpickles a request)."""
    return HANDLES[number]


# --- what a call handed over: its identity and its changes travel back --------------------------


CALLS = {  # the requests that hand the answer objects of the grader's: their (args, kwargs)
    "call": lambda obj, args, kwargs: (args, kwargs),
    "method": lambda obj, name, args, kwargs: (args, kwargs),
    "run": lambda helper, args, kwargs: (args, kwargs),
}


def _items(obj: Any) -> list[tuple[Any, Any]]:
    if type(obj) in (list, tuple):
        return list(enumerate(obj))
    if type(obj) is dict:
        return [(k, v) for k, v in obj.items() if type(k) in (str, int)]
    return []


def sent_objects(args: tuple, kwargs: dict) -> list[tuple[tuple, Any]]:
    """(where, object) for what a request handed over: each argument, and each item of an argument that
    is a list, tuple or dict."""
    found: list[tuple[tuple, Any]] = []
    for key, value in [
        *((("a", i), v) for i, v in enumerate(args)),
        *((("k", k), v) for k, v in kwargs.items()),
    ]:
        found.append((key, value))
        found += [((*key, j), item) for j, item in _items(value)]
    return found


def _tensors(module) -> list[tuple[str, Any]]:
    return [*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)]


class _Known(dict):
    """{id: (where, what inside)} that holds the objects too: one the call drops (the layer a new head
    replaced, its parameters) keeps its id until the reply is encoded, so no new object can take that id
    and pass for it."""

    def __init__(self) -> None:
        super().__init__()
        self.alive: list = []

    def add(self, obj: Any, where: tuple) -> None:
        if id(obj) not in self:
            self[id(obj)] = where
            self.alive.append(obj)


def known_ids(args: tuple, kwargs: dict) -> dict[int, tuple]:
    """{id: (where, what inside)} of the objects a request handed over, modules' tensors and submodules
    included (what the answer returns of them goes back as the grader's own)."""
    import torch

    known = _Known()
    for where, obj in sent_objects(args, kwargs):
        if obj is None or type(obj) in (bool, int, float, str, bytes):
            continue
        known.add(obj, (where, ""))
        if isinstance(obj, torch.nn.Module):
            for name, tensor in _tensors(obj):
                known.add(tensor, (where, name))
            for name, module in obj.named_modules():
                if name:
                    known.add(module, (where, "module:" + name))
    return known


def versions(args: tuple, kwargs: dict) -> dict[int, int]:
    """Each handed-over tensor's version counter (an in-place change bumps it)."""
    import torch

    found: dict[int, int] = {}
    for _, obj in sent_objects(args, kwargs):
        tensors = _tensors(obj) if isinstance(obj, torch.nn.Module) else [("", obj)]
        for _, tensor in tensors:
            if isinstance(tensor, torch.Tensor):
                found[id(tensor)] = tensor._version
    return found


def changes(args: tuple, kwargs: dict, before: dict[int, int]) -> list:
    """What a call changed in what it was handed: modules' changed tensors (the answer trained them),
    modes and requires_grad; tensors' requires_grad."""
    import torch

    out: list = []
    for where, obj in sent_objects(args, kwargs):
        if id(obj) in HANDLES:
            continue  # the submission's own object, which the grader only named
        if isinstance(obj, torch.nn.Module):
            # buffers always: batch-norm's kernel updates its running statistics without a version bump
            changed = {
                n: t
                for n, t in obj.named_parameters(remove_duplicate=False)
                if before.get(id(t)) != t._version
            }
            changed.update(obj.named_buffers(remove_duplicate=False))
            modes = {n: m.training for n, m in obj.named_modules()}
            grads = {n: p.requires_grad for n, p in obj.named_parameters(remove_duplicate=False)}
            out.append(["module", list(where), changed, modes, grads])
        elif isinstance(obj, torch.Tensor):
            # its values never come back: an answer that zeroed its input, then the test's expected
            # value computed from that input afterwards, would agree with a wrong answer; an answer
            # that calls x.requires_grad_() on its input changes the grader's x too
            out.append(["requires_grad", list(where), bool(obj.requires_grad)])
    return out


def find_sent(args: tuple, kwargs: dict, where: Any) -> Any:
    """The grader's object at `where` ((key, what inside), as `known_ids` named it)."""
    key, inside = tuple(where[0]), str(where[1])
    objects = {tuple(k): v for k, v in sent_objects(args, kwargs)}
    obj = objects[key]
    if not inside:
        return obj
    if inside.startswith("module:"):
        return obj.get_submodule(inside[len("module:") :])
    owner, _, name = inside.rpartition(".")
    return getattr(obj.get_submodule(owner) if owner else obj, name)


def apply_changes(args: tuple, kwargs: dict, found: list) -> None:
    """Make the grader's objects what the call left the submission's copies (`changes`)."""
    import torch

    objects = {tuple(k): v for k, v in sent_objects(args, kwargs)}
    for change in found:
        target = objects.get(tuple(change[1]))
        if change[0] == "module" and issubclass(type(target), torch.nn.Module):
            _, _, tensors, modes, grads = change
            with torch.no_grad():
                for name, value in tensors.items():
                    local = find_sent((target,), {}, [("a", 0), name])
                    if (
                        isinstance(local, torch.Tensor)
                        and isinstance(value, torch.Tensor)
                        and local.shape == value.shape
                    ):
                        local.copy_(value)
            for name, module in target.named_modules():
                if isinstance(modes.get(name), bool):
                    module.training = modes[name]
            for name, param in target.named_parameters(remove_duplicate=False):
                if isinstance(grads.get(name), bool) and param.is_leaf:
                    param.requires_grad_(grads[name])
        elif (
            change[0] == "requires_grad"
            and issubclass(type(target), torch.Tensor)
            and isinstance(change[2], bool)
        ):
            if target.is_leaf and target.requires_grad != change[2] and target.dtype.is_floating_point:
                target.requires_grad_(change[2])
        elif (
            change[0] == "tensor"
            and issubclass(type(target), torch.Tensor)
            and isinstance(change[2], torch.Tensor)
        ):
            if target.shape == change[2].shape:
                with torch.no_grad():
                    target.copy_(change[2])
