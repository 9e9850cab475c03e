"""The process a submission's code runs in: `python -m course.grading.submission_process`, started by the
grader inside the isolation boundary (`course.grading.boundary`).

It runs the notebook's cells one by one in an IPython shell as the grader sends them (the student's
answers, and the lab's own cells with the visible checks only: the hidden tests, the master and the
gradebook are never sent here), and answers the grader's requests about what the notebook defined:
look a name up, call it, read an attribute, iterate. Values go back as plain data, everything else
as a handle (`course.grading.wire`). Nothing this process says is a score: the grader runs the tests
in its own process and decides.

Requests come on stdin; replies leave on the file descriptor stdout had at start. The notebook's
own output (print, warnings, tracebacks) goes to stderr, which the grader keeps in a capped log.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import traceback
from typing import Any

from course.grading import sandbox, wire

check: Any = None  # labkit.check, as imported before the notebook's first cell
TEST_FILENAME = "<grader's test cell>"  # the file name of the tests' code objects in the grader
SHIPPED_FILENAME = "<dynamic-code>"  # theirs here: cloudpickle (3.1) gives every function it ships this name
MAX_MESSAGE = 2000


class _Watch:
    """An exercise's forbidden calls, watched while the grader's requests run the answer (labkit.check's
    tripwires: Python calls by code object, torch operators by aten name)."""

    def __init__(self, name: str, forbid: list, ops: list[str], answer: Any) -> None:
        objects = [o for o in (_resolve(spec) for spec in forbid) if o is not None]
        # the tests' shipped helpers and this server are the checker: only the notebook's code is blamed
        checkers = (TEST_FILENAME, SHIPPED_FILENAME, __file__)
        self.tripwire = check._Tripwire(check._source_files(objects), checkers)
        self.ops = set(ops)
        self.mode = check._OpTripwire(self.ops, self.tripwire).mode
        aliased = check._is_reference(answer, objects) if answer is not None else None
        if aliased:
            self.tripwire.hits.append(aliased)

    @contextlib.contextmanager
    def active(self):
        previous = sys.getprofile()
        sys.setprofile(self.tripwire)
        try:
            with self.mode:
                yield
        finally:
            sys.setprofile(previous)


def _resolve(spec: tuple) -> Any:
    """A forbidden object named by the grader: ("module", name) or ("object", module, qualname)."""
    try:
        module = importlib.import_module(spec[1])
        if spec[0] == "module":
            return module
        obj: Any = module
        for part in spec[2].split("."):
            obj = getattr(obj, part)
        return obj
    except Exception:  # noqa: BLE001 - what cannot be found here cannot be called here either
        return None


class Server:
    def __init__(self, replies) -> None:
        from IPython.core.interactiveshell import InteractiveShell

        global check
        from labkit import check  # before any cell runs: a notebook that swaps the module misses this one

        self.replies = replies
        self.shell = InteractiveShell.instance(colors="NoColor")
        self.shell.showtraceback = self._showtraceback  # tracebacks go to the log, unformatted
        self.watch: _Watch | None = None
        self.handles: dict[int, Any] = wire.HANDLES

    def _showtraceback(self, *args, **kwargs) -> None:
        traceback.print_exc(file=sys.stderr)

    def handle(self, obj: Any) -> int:
        number = id(obj)
        self.handles[number] = obj
        return number

    def reply(self, *message: Any) -> None:
        wire.send(self.replies, wire.dumps_reply(message))

    def watched(self):
        return self.watch.active() if self.watch else contextlib.nullcontext()

    # --- the requests ------------------------------------------------------------------------------

    def op_exec(self, source: str) -> Any:
        result = self.shell.run_cell(source, store_history=False, silent=False)
        error = result.error_before_exec or result.error_in_exec
        if error is not None:
            raise error
        return None

    def op_global(self, name: str) -> Any:
        if name not in self.shell.user_ns:
            raise NameError(f"name {name!r} is not defined")
        return self.shell.user_ns[name]

    def op_attr(self, obj: Any, name: str) -> Any:
        with self.watched():
            return getattr(obj, name)

    def op_setattr(self, obj: Any, name: str, value: Any) -> None:
        with self.watched():
            setattr(obj, name, value)

    def op_call(self, obj: Any, args: tuple, kwargs: dict) -> Any:
        with self.watched():
            return obj(*args, **kwargs)

    def op_method(self, obj: Any, name: str, args: tuple, kwargs: dict) -> Any:
        with self.watched():
            return getattr(obj, name)(*args, **kwargs)

    def op_run(self, helper, args: tuple, kwargs: dict) -> Any:
        with self.watched():
            return helper(*args, **kwargs)

    def op_item(self, obj: Any, key: Any) -> Any:
        with self.watched():
            return obj[key]

    def op_setitem(self, obj: Any, key: Any, value: Any) -> None:
        with self.watched():
            obj[key] = value

    def op_iter(self, obj: Any) -> Any:
        with self.watched():
            return iter(obj)

    def op_next(self, obj: Any) -> Any:
        with self.watched():
            return next(obj)

    def op_copy(self, obj: Any, deep: bool) -> Any:
        import copy

        with self.watched():
            return copy.deepcopy(obj) if deep else copy.copy(obj)

    def op_isinstance(self, obj: Any, cls: Any) -> bool:
        return isinstance(obj, cls)

    def op_issubclass(self, sub: Any, cls: Any) -> bool:
        return isinstance(sub, type) and issubclass(sub, cls)

    def op_len(self, obj: Any) -> int:
        return int(len(obj))

    def op_bool(self, obj: Any) -> bool:
        return bool(obj)

    def op_contains(self, obj: Any, value: Any) -> bool:
        return bool(value in obj)

    def op_text(self, obj: Any) -> str:
        return str(obj)[:MAX_MESSAGE]

    def op_watch(self, name: str, forbid: list, ops: list, answer: Any) -> None:
        self.watch = _Watch(name, forbid, ops, answer)

    def op_unwatch(self) -> list[str]:
        hits = list(self.watch.tripwire.hits) if self.watch else []
        self.watch = None
        return hits

    def serve(self, requests) -> None:
        import pickle

        import cloudpickle  # noqa: F401 - the requests' functions are rebuilt by it

        while True:
            try:
                message = pickle.loads(wire.receive(requests))
            except wire.WireError:
                return  # the grader is gone
            op, args = message[0], message[1:]
            if op == "exit":
                return
            try:
                sent = wire.CALLS[op](*args) if op in wire.CALLS else None
                known = wire.known_ids(*sent) if sent else None
                before = wire.versions(*sent) if sent else {}
                value = getattr(self, f"op_{op}")(*args)
                tree = wire.encode(value, self.handle, known=known)
                changed = wire.encode(wire.changes(*sent, before) if sent else [], self.handle)
            except BaseException as err:  # noqa: BLE001 - every failure of the notebook's code is a reply
                self.reply("err", type(err).__name__, _text(err))
                continue
            self.reply("ok", tree, changed)


def _text(err: BaseException) -> str:
    try:
        return str(err)[:MAX_MESSAGE]
    except Exception:  # noqa: BLE001 - an exception whose str() fails
        return ""


def main() -> None:
    config = json.loads(os.environ.pop(sandbox.CONFIG_ENV))
    replies_fd = os.dup(1)
    os.dup2(2, 1)  # the notebook's prints join its log, never the replies
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    requests, replies = wire.pipe_files(0, replies_fd)
    sandbox.enter(config)
    Server(replies).serve(requests)
    # The grader has hung up and holds every answer: skip the interpreter's teardown (IPython saving its
    # history, torch's), 0.6-0.9 s of each submission, and any atexit handler the notebook registered.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
