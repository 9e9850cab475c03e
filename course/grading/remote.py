"""The grader's side of a submission's process: start it, send it cells, and reach what it defined.

`Submission` starts `course.grading.submission_process` inside the boundary and talks to it over two
pipes (`course.grading.wire`). `Remote` stands, in the grader's process, for an object that lives in
the submission's: calling it, reading an attribute, indexing or iterating it is a request; plain
values (numbers, strings, tensors, arrays and containers of them) come back as copies, everything
else as another `Remote`. The tests run in the grader's process on these stand-ins, so the hidden
tests and the verdict never exist where the student's code runs.

What this costs the tests: a tensor that comes back is a copy (changing it in place does not change
the submission's, and it carries no autograd graph back). A test that needs the student's code to run
beside its own, e.g. to take a gradient through the answer, marks that helper with
`labkit.check.beside_answer`: the helper is shipped to the submission's process and run there, and only
its result comes back.
"""

from __future__ import annotations

import builtins
import contextlib
import subprocess
import sys
import threading
from typing import Any

import cloudpickle

from course.grading import wire

MAX_LOG = 10 * 2**20  # bytes of a notebook's output kept in its log
MAX_MESSAGE = 500  # characters of a message from the submission that reach a test's failure
RAISED = {  # what the submission's errors become in the grader: builtins by name, anything else RemoteError
    name: getattr(builtins, name)
    for name in (
        "ArithmeticError AssertionError AttributeError EOFError FileNotFoundError ImportError IndexError "
        "KeyError LookupError MemoryError ModuleNotFoundError NameError NotImplementedError OSError "
        "OverflowError PermissionError RecursionError RuntimeError StopIteration TypeError UnicodeError "
        "ValueError ZeroDivisionError"
    ).split()
}


class RemoteError(Exception):
    """The submission's code raised an exception of its own kind (its name and message are kept)."""


class SubmissionGone(Exception):
    """The submission's process ended, broke the protocol, or ran past the time limit."""


class Submission:
    """One submission's process and the connection to it."""

    def __init__(self, command: list[str], env: dict, cwd: str, log, deadline: float, preexec=None) -> None:
        self.deadline = deadline
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=preexec,
            bufsize=0,  # raw pipes: `select` then sees every byte not yet read
        )
        self.drainer = threading.Thread(target=_drain, args=(self.proc.stderr, log), daemon=True)
        self.drainer.start()
        self.gone: str | None = None
        self.exceptions: dict[str, Any] = {}  # the tests' own exception classes, by name
        self.timed_out = False
        self.out_of_memory = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def request(self, *message: Any) -> Any:
        if self.gone:
            raise SubmissionGone(self.gone)
        try:
            wire.send(self.proc.stdin, _dumps(message))
            reply = wire.loads_reply(wire.receive(self.proc.stdout, deadline=self.deadline))
        except TimeoutError:
            self.timed_out = True
            self.gone = "the time limit was reached while the notebook's code ran"
            raise SubmissionGone(self.gone) from None
        except (wire.WireError, OSError, ValueError) as err:
            self.gone = f"the notebook's process stopped answering ({err})"
            raise SubmissionGone(self.gone) from None
        if not (isinstance(reply, tuple) and reply and reply[0] in ("ok", "err")):
            self.gone = "the notebook's process sent what is not a reply"
            raise SubmissionGone(self.gone)
        if reply[0] == "ok" and len(reply) == 3:
            sent = wire.CALLS.get(message[0], lambda *a: ((), {}))(*message[1:])
            try:
                value = wire.decode(reply[1], self._remote, sent=lambda where: wire.find_sent(*sent, where))
                wire.apply_changes(*sent, wire.decode(reply[2], self._remote))
            except (wire.WireError, KeyError, IndexError, AttributeError, TypeError) as err:
                self.gone = f"the notebook's process sent what is not a reply ({type(err).__name__}: {err})"
                raise SubmissionGone(self.gone) from None
            return value
        name, text = (str(reply[1])[:80], str(reply[2])[:MAX_MESSAGE]) if len(reply) == 3 else ("Error", "")
        raise _exception(name, text, self.exceptions)

    def _remote(self, number: int, types: list[str]) -> Remote:
        return Remote(self, number, types)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            wire.send(self.proc.stdin, _dumps(("exit",)))
        with contextlib.suppress(Exception):
            self.proc.stdin.close()


def _drain(stream, log) -> None:
    """Keep the first MAX_LOG bytes of the notebook's output; read and drop the rest (a notebook that
    prints without end fills neither the grader's memory nor its disk)."""
    kept = 0
    while chunk := stream.read(65536):
        if kept < MAX_LOG:
            log.write(chunk[: MAX_LOG - kept])
            log.flush()
            kept += len(chunk)
            if kept >= MAX_LOG:
                log.write(b"\n[the grader kept the first 10 MB of this notebook's output]\n")


class _Pickler(cloudpickle.Pickler):
    """cloudpickle, with the tests' iterators sent as what they yield: a generator cannot cross, and
    the answer reads what it is given once either way."""

    def reducer_override(self, obj):
        import types

        if isinstance(obj, types.GeneratorType) or (
            hasattr(obj, "__next__")
            and type(obj).__name__.endswith("iterator")
            and not isinstance(obj, Remote)
        ):
            return iter, (list(obj),)
        return super().reducer_override(obj)


def _dumps(message: tuple) -> bytes:
    import io

    buffer = io.BytesIO()
    _Pickler(buffer, protocol=5).dump(message)
    return buffer.getvalue()


def _exception(name: str, text: str, own: dict[str, Any]) -> BaseException:
    mine = own.get(name)
    if isinstance(mine, type) and issubclass(mine, Exception):
        with contextlib.suppress(Exception):
            return mine(text)  # a test's exception its helper raised beside the answer (StopForward)
    if name == "CheckFailed":
        from labkit.check import CheckFailed

        return CheckFailed(text)
    kind = RAISED.get(name)
    if kind is StopIteration:
        return StopIteration()
    if kind is not None:
        return kind(text)
    return RemoteError(f"{name}: {text}" if text else name)


def _local_class(types: list[str]) -> type | None:
    """The first of the object's classes that the grader has loaded from a library (torch's nn.Conv2d,
    labkit's NaiveCNN...): what `isinstance` sees. Classes of the notebook's own are not trusted."""
    for qualified in types:
        module_name, _, qualname = qualified.rpartition(".")
        if module_name in ("builtins", "__main__", "") or "<" in qualname:
            continue
        obj: Any = sys.modules.get(module_name)
        for part in qualname.split(".") if obj is not None else []:
            obj = getattr(obj, part, None)
        if isinstance(obj, type):
            return obj
    return None


class Remote:
    """An object of the submission's process (see the module docstring)."""

    __slots__ = ("_sub", "_id", "_types")

    def __init__(self, submission: Submission, number: int, types: list[str]) -> None:
        object.__setattr__(self, "_sub", submission)
        object.__setattr__(self, "_id", number)
        object.__setattr__(self, "_types", types)

    @property  # type: ignore[misc]
    def __class__(self):  # noqa: D105 - isinstance(remote, nn.Module) as the object's library class says
        return _local_class(self._types) or Remote

    def __reduce__(self):
        return wire.ref, (self._id,)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._sub.request("attr", self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._sub.request("setattr", self, name, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._sub.request("call", self, args, kwargs)

    def __getitem__(self, key: Any) -> Any:
        return self._sub.request("item", self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._sub.request("setitem", self, key, value)

    def __iter__(self):
        iterator = self._sub.request("iter", self)
        if not isinstance(iterator, Remote):
            return iter(iterator)
        return _RemoteIterator(iterator)

    def __next__(self) -> Any:
        return self._sub.request("next", self)

    def __copy__(self) -> Any:
        return self._sub.request("copy", self, False)

    def __deepcopy__(self, memo: dict) -> Any:
        return self._sub.request("copy", self, True)

    def __instancecheck__(self, instance: Any) -> bool:
        return self._sub.request("isinstance", instance, self) is True

    def __subclasscheck__(self, subclass: Any) -> bool:
        return self._sub.request("issubclass", subclass, self) is True

    def __len__(self) -> int:
        n = self._sub.request("len", self)
        if type(n) is not int or n < 0:
            raise TypeError("len() of the submission's object is not a count")
        return n

    def __bool__(self) -> bool:
        return self._sub.request("bool", self) is True

    def __contains__(self, value: Any) -> bool:
        return self._sub.request("contains", self, value) is True

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Remote) and other._id == self._id

    def __hash__(self) -> int:
        return hash(("remote", self._id))

    def __repr__(self) -> str:
        kind = self._types[0].rpartition(".")[2][:60] if self._types else "object"
        return f"<{kind} of the submission>"

    def __str__(self) -> str:
        text = self._sub.request("text", self)
        return text[:MAX_MESSAGE] if isinstance(text, str) else repr(self)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


class _RemoteIterator:
    def __init__(self, iterator: Remote) -> None:
        self.iterator = iterator

    def __iter__(self):
        return self

    def __next__(self):
        return self.iterator._sub.request("next", self.iterator)


class Watch:
    """`labkit.check`'s hook in the grader: an exercise's forbidden calls are watched where the answer
    runs, and the names it called come back."""

    def __init__(self, submission: Submission) -> None:
        self.submission = submission

    @contextlib.contextmanager
    def watch(self, name: str, forbid: list, ops: set[str], answer: Any):
        hits: list[str] = []
        specs = [s for s in (_spec(f) for f in forbid) if s is not None]
        self.submission.request(
            "watch", name, specs, sorted(ops), answer if isinstance(answer, Remote) else None
        )
        try:
            yield hits
        finally:
            with contextlib.suppress(SubmissionGone, Exception):
                found = self.submission.request("unwatch")
                hits.extend(str(h)[:200] for h in found if isinstance(found, list))

    def beside(self, helper, args: tuple, kwargs: dict) -> Any:
        return self.submission.request("run", helper, args, kwargs)


def _spec(obj: Any) -> tuple | None:
    """How the submission's process finds a forbidden object: by module and qualified name."""
    import inspect

    if inspect.ismodule(obj):
        return ("module", obj.__name__)
    target = getattr(obj, "__func__", obj)
    module, qualname = getattr(target, "__module__", None), getattr(target, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    return ("object", module, qualname)
