"""Checks a student runs after an exercise: each says what is right, or what is wrong and a hint.

Introduced in notebooks/01_data_prep.ipynb. A failed check raises `CheckFailed` (an AssertionError).
A graded exercise wraps its checks in `exercise(...)`, which lets the lab go on while the answer still
raises NotImplementedError (`use` then hands later cells labkit's version), fails an answer that calls
the labkit function it asks the student to write (`forbid=[...]`), and, under `hidden=True` (the
instructor's hidden tests), reports every failure as a `CheckFailed` fit for the student's feedback.

    with labkit.check.exercise("02-cnn", forbid=[NaiveCNN], answer=MyCNN):
        labkit.check.shape(MyCNN(10)(x), (8, 10), "your CNN's output")
    model_class = labkit.check.use("02-cnn", MyCNN, NaiveCNN, "the CNN")
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import sys
import sysconfig
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

# Captured when the lab imports labkit: an answer that rebinds numpy's functions later does not change
# what the checks compare with.
_allclose, _asarray = np.allclose, np.asarray


_REMOTE: Any = None
"""Set by a grader that keeps the answer in a process of its own (`course.grading.remote.Watch`): where
an exercise's forbidden calls are watched and `beside_answer` helpers run. None in a notebook."""


class CheckFailed(AssertionError):
    """An exercise's answer is not right yet; the message says how it differs."""


def _ok(message: str) -> None:
    print(f"✓ {message}")


def _fail(message: str, hint: str | None) -> None:
    raise CheckFailed(message + (f"\nHint: {hint}" if hint else ""))


def shape(value: Any, expected: Sequence[int], what: str = "the output", hint: str | None = None) -> None:
    """`value` (a tensor or array) has shape `expected`."""
    got = tuple(getattr(value, "shape", ()))
    if got != tuple(expected):
        _fail(f"{what} has shape {got}, expected {tuple(expected)}.", hint)
    return _ok(f"{what} has shape {got}.")


def params(model: nn.Module, expected: int, what: str = "the model", hint: str | None = None) -> None:
    """`model` has `expected` parameters (trainable or not)."""
    got = sum(p.numel() for p in model.parameters())
    if got != expected:
        _fail(
            f"{what} has {got:,} parameters, expected {expected:,} (difference {got - expected:+,}).",
            hint or "count weights and biases of every conv, batch-norm and linear layer.",
        )
    return _ok(f"{what} has {got:,} parameters.")


def _array(value: Any) -> np.ndarray:
    return _asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=float)


def close(
    value: Any,
    expected: Any,
    what: str = "the value",
    atol: float = 1e-6,
    rtol: float = 1e-5,
    hint: str | None = None,
) -> None:
    """`value` equals `expected` within tolerances (numbers, arrays or tensors of the same shape)."""
    if value is None or isinstance(value, (str, bytes)):
        _fail(f"{what} is {type(value).__name__}, expected numbers.", hint)
    try:
        got = _array(value)
    except (TypeError, ValueError) as err:
        _fail(f"{what} cannot be read as numbers ({err}).", hint)
    want = _array(expected)
    if got.shape != want.shape:
        _fail(f"{what} has shape {got.shape}, expected {want.shape}.", hint)
    if not np.isfinite(got).all():
        _fail(f"{what} contains NaN or infinite values.", hint)
    if not _allclose(got, want, atol=atol, rtol=rtol):
        worst = float(np.max(np.abs(got - want))) if got.size else 0.0
        _fail(f"{what} differs from the expected value (largest difference {worst:.3g}).", hint)
    return _ok(f"{what} is right.")


def equal(value: Any, expected: Any, what: str = "the value", hint: str | None = None) -> None:
    """`value == expected` (plain Python values)."""
    if value != expected:
        _fail(f"{what} is {value!r}, expected {expected!r}.", hint)
    return _ok(f"{what} is {value!r}.")


def at_least(value: float, threshold: float, what: str = "the value", hint: str | None = None) -> None:
    """`value >= threshold`."""
    if not value >= threshold:
        _fail(f"{what} is {value:.4g}, below the {threshold:.4g} this exercise asks for.", hint)
    return _ok(f"{what} is {value:.4g} (≥ {threshold:.4g}).")


def true(condition: Any, message: str, hint: str | None = None) -> None:
    """`condition` holds; otherwise fail with `message` (what is wrong, in the student's terms)."""
    if not condition:
        _fail(message, hint)


def copy_weights(source: nn.Module, target: nn.Module, what: str = "your network") -> None:
    """Load `source`'s parameters and buffers into `target`: by name when the names agree, else in
    order when every shape agrees (an answer may name its layers its own way)."""
    src, dst = source.state_dict(), target.state_dict()
    if list(src) == list(dst) and all(src[k].shape == dst[k].shape for k in src):
        target.load_state_dict(src)
        return
    if len(src) == len(dst) and all(a.shape == b.shape for a, b in zip(src.values(), dst.values())):
        target.load_state_dict(dict(zip(dst, src.values())))
        return
    mine, want = [tuple(v.shape) for v in dst.values()], [tuple(v.shape) for v in src.values()]
    i = next((i for i, (a, b) in enumerate(zip(mine, want)) if a != b), min(len(mine), len(want)))
    _fail(
        f"{what} does not have the layers expected: its tensors, in order, differ from labkit's from number "
        f"{i + 1} on ({_entry(dst, mine, i)} where labkit has {_entry(src, want, i)}); "
        f"{len(mine)} tensors against {len(want)}.",
        "create the layers in the order they are used, with the sizes and bias settings asked for.",
    )


def _entry(tensors: dict, shapes: list, i: int) -> str:
    return f"{list(tensors)[i]} {shapes[i]}" if i < len(shapes) else "none"


def same_network(
    mine: nn.Module,
    reference: nn.Module,
    x: torch.Tensor,
    what: str = "your network",
    atol: float = 1e-5,
    train: bool = False,
) -> None:
    """`mine` has `reference`'s parameter count and, with its weights, gives the same output on `x`
    (in eval mode; with `train=True` in training mode too, for batch-norm's batch statistics)."""
    params(mine, sum(p.numel() for p in reference.parameters()), what)
    copy_weights(reference, mine, what)
    for training in (False, True) if train else (False,):
        mine.train(training)
        reference.train(training)
        with torch.no_grad():
            got, want = mine(x), reference(x)
        shape(got, tuple(want.shape), f"{what}'s output for input {tuple(x.shape)}")
        close(got, want, f"{what}'s output ({'training' if training else 'eval'} mode)", atol=atol, rtol=1e-4)


def no_hooks(model: nn.Module, what: str = "the model") -> None:
    """No forward or backward hook is left registered on any module of `model`."""
    left = [
        name or "(the model)"
        for name, m in model.named_modules()
        if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
    ]
    if left:
        _fail(
            f"hooks are still registered on {what}: {', '.join(left[:4])}.",
            "keep each handle that register_forward_hook returns and call handle.remove() in a finally "
            "block.",
        )
    _ok(f"no hooks left on {what}.")


# --- graded exercises -------------------------------------------------------------------------

STATUS: dict[str, str] = {}
"""What each exercise's last check found: "passed", "unanswered" or "failed"."""


def _spellings(path: str) -> set[str]:
    """A path as code objects may name it: as given, absolute, and with symlinks resolved (a venv
    reached through a symlink names its files by the link)."""
    return {path, os.path.abspath(path), str(Path(path).resolve())}


_LABKIT_DIRS = tuple(sorted(d + os.sep for d in _spellings(os.path.dirname(__file__))))
_PREFIXES = (sys.prefix, sys.base_prefix, sys.exec_prefix, *sysconfig.get_paths().values())
_LIBRARY_DIRS = tuple(sorted({d.rstrip(os.sep) + os.sep for p in _PREFIXES if p for d in _spellings(p)}))


def _is_student_code(filename: str) -> bool:
    """Code that is neither labkit nor an installed library: notebook cells, exec'd strings, a
    student's own module."""
    return not filename.startswith(("<frozen", *_LABKIT_DIRS, *_LIBRARY_DIRS))


def _code_objects(target: Any) -> list:
    """The code objects of a function (unwrapped from its decorators) or of a class's own methods."""
    if inspect.isclass(target):
        members = [getattr(m, "__func__", m) for m in vars(target).values()]
        members += [f for m in vars(target).values() if isinstance(m, property) for f in (m.fget, m.fset)]
        # functions only: a class attribute may be another class (autograd.Function's _backward_cls)
        return [code for m in members if inspect.isfunction(inspect.unwrap(m)) for code in _code_objects(m)]
    code = getattr(inspect.unwrap(target), "__code__", None)
    return [code] if code is not None else []


def _source_files(objects: Sequence[Any]) -> dict[Any, str]:
    """{what the tripwire recognises (a function's or a class's methods' code objects; each spelling of a
    module's file): its name for messages}. By code object, so that forbidding one function of a file
    does not forbid the rest of it, nor the decorator it is wrapped in."""
    found: dict[Any, str] = {}
    for obj in objects:
        target = obj.__func__ if inspect.ismethod(obj) else obj
        module = getattr(target, "__module__", None) or getattr(target, "__name__", "")
        name = getattr(target, "__qualname__", getattr(target, "__name__", repr(target)))
        if inspect.ismodule(target):
            path = inspect.getsourcefile(target)
            found.update(dict.fromkeys(_spellings(path), name) if path else {})
        else:
            found.update(dict.fromkeys(_code_objects(target), f"{module}.{name}"))
    return found


class _Tripwire:
    """A profile function that notes when code of the student's calls a forbidden labkit function: when
    the nearest frame up the stack that is the checking cell's (`checker`, which may call the reference
    to compute the expected value) or the student's is the student's."""

    def __init__(self, forbidden: dict[Any, str], checker: str | tuple[str, ...]) -> None:
        self.forbidden = forbidden
        self.checkers = {checker} if isinstance(checker, str) else set(checker)
        self.hits: list[str] = []

    def __call__(self, frame, event, arg) -> None:
        if event != "call":
            return
        name = self.forbidden.get(frame.f_code) or self.forbidden.get(frame.f_code.co_filename)
        if name is not None:
            self.blame(name, frame.f_back)

    def blame(self, name: str, caller) -> None:
        """Note `name` as called by the student when the student's code is nearer than the checker's."""
        while caller is not None:
            filename = caller.f_code.co_filename
            if filename in self.checkers:
                return
            if _is_student_code(filename):
                if name not in self.hits:
                    self.hits.append(name)
                return
            caller = caller.f_back


class _OpTripwire:
    """A torch dispatch mode that notes when code of the student's reaches a forbidden aten operator
    ("aten.convolution"), whichever Python spelling called it: `F.conv2d`, `nn.Conv2d`, `torch.ops`..."""

    def __init__(self, ops: set[str], tripwire: _Tripwire) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(mode, func, types, args=(), kwargs=None):  # noqa: N805 - torch's signature
                name = str(func.overloadpacket)
                if name in ops:
                    tripwire.blame(name, sys._getframe(1))
                return func(*args, **(kwargs or {}))

        self.mode = Mode() if ops else contextlib.nullcontext()


class Exercise:
    """What `exercise(...)` yields: its name, whether it runs hidden tests, and the forbidden names."""

    def __init__(self, name: str, hidden: bool, forbidden: list[str]) -> None:
        self.name, self.hidden, self.forbidden = name, hidden, forbidden


def _check_integrity() -> None:
    """The checks are the ones labkit defined: a notebook that rebinds them cannot pass."""
    module = sys.modules.get(__name__)
    # getattr(None, ...) is None: without the module in sys.modules, every check counts as changed
    changed = [
        n for n, fn in _PRISTINE.items() if fn.__code__ is not _CODES[n] or getattr(module, n, None) is not fn
    ]
    if module is not None and getattr(module, "_allclose", None) is not _PRISTINE_ALLCLOSE:
        changed.append("_allclose")
    if changed:
        raise CheckFailed(
            f"the checks were changed in this notebook (labkit.check.{', labkit.check.'.join(changed)} is no "
            "longer labkit's): answers checked by altered checks earn no points."
        )


def _is_reference(answer: Any, forbid: Sequence[Any]) -> str | None:
    """The name of the forbidden object `answer` is, wraps or subclasses, if any."""
    seen = answer
    while isinstance(seen, functools.partial):
        seen = seen.func
    seen = getattr(seen, "__func__", seen)
    for ref in forbid:
        ref_fn = getattr(ref, "__func__", ref)
        if seen is ref_fn or (inspect.isclass(seen) and inspect.isclass(ref_fn) and issubclass(seen, ref_fn)):
            return f"{getattr(ref_fn, '__module__', '')}.{getattr(ref_fn, '__qualname__', ref_fn)}"
    return None


def _forbidden_call(name: str, hits: list[str], ops: set[str]) -> CheckFailed | None:
    """The failure for an answer that called what it was asked to write, if it did."""
    builtin = [hit for hit in hits if hit in ops]
    ours = [hit for hit in hits if hit.startswith("labkit.")]
    if builtin:
        return CheckFailed(
            f"{name}: the answer reaches torch's {', '.join(builtin)} (through F.*, nn.* or torch.*), "
            "the built-in operator this exercise asks you to write yourself; it earns no points. "
            "Write it from simpler operations (loops, unfold, matmul)."
        )
    if ours:
        return CheckFailed(
            f"{name}: the answer calls {', '.join(ours)}, labkit's version of what this exercise asks you "
            "to write; an answer that calls it earns no points. Write it with PyTorch yourself."
        )
    if hits:
        return CheckFailed(
            f"{name}: the answer calls {', '.join(hits)}, which this exercise asks you to do without (it "
            "would do the exercise's work for you); it earns no points."
        )
    return None


@contextlib.contextmanager
def exercise(
    name: str, *, forbid: Sequence[Any] = (), answer: Any = None, hidden: bool = False
) -> Iterator[Exercise]:
    """Run one exercise's checks (see the module docstring).

    Args:
        name: the exercise's grade id in the grading system, e.g. "02-cnn".
        forbid: what the exercise asks the student to write (labkit functions, classes or modules, and
            torch operators by aten name, e.g. "aten.convolution"): the answer must not call it (the check
            itself may), nor be, wrap or subclass it (`answer`).
        hidden: the instructor's hidden tests: an unanswered exercise fails instead of being skipped.
    """
    label = "hidden tests" if hidden else "check"
    ops = {f for f in forbid if isinstance(f, str)}
    bad = [f for f in ops if not f.startswith("aten.")]
    if bad:
        raise ValueError(f"forbid={bad}: name torch operators as aten operators, e.g. 'aten.convolution'.")
    forbid = [f for f in forbid if not isinstance(f, str)]
    forbidden = _source_files(forbid)
    tripwire = _Tripwire(forbidden, sys._getframe(2).f_code.co_filename)  # 2: the cell with the `with`
    op_mode = _OpTripwire(ops, tripwire).mode
    elsewhere = contextlib.nullcontext([]) if _REMOTE is None else _REMOTE.watch(name, forbid, ops, answer)
    called_there: list[str] = []
    previous = sys.getprofile()
    try:
        _check_integrity()
        aliased = _is_reference(answer, forbid)
        if aliased:
            raise CheckFailed(
                f"{name}: the answer is {aliased}, labkit's version of what this exercise asks you to write; "
                "it earns no points. Write it with PyTorch yourself."
            )
        with warnings.catch_warnings(), contextlib.redirect_stderr(sys.stdout):
            # the grading system counts anything written to stderr in a test cell as a failure
            warnings.simplefilter("ignore")
            sys.setprofile(tripwire)
            try:
                with op_mode, elsewhere as found:
                    called_there = found
                    yield Exercise(name, hidden, sorted({*forbidden.values(), *ops}))
            finally:
                replaced = sys.getprofile() is not tripwire
                sys.setprofile(previous)
                tripwire.hits += [hit for hit in called_there if hit not in tripwire.hits]
        if replaced:
            raise CheckFailed(
                f"{name}: the answer switched off Python's profiler (sys.setprofile), which the "
                "check uses to see what the answer calls; it earns no points."
            )
        forbidden_call = _forbidden_call(name, tripwire.hits, ops)
        if forbidden_call:
            raise forbidden_call
    except NotImplementedError:
        STATUS[name] = "unanswered"
        message = (
            f"{name}: not answered yet (the answer still raises NotImplementedError; replace "
            "`raise NotImplementedError()` by your code)."
        )
        if hidden:
            raise CheckFailed(message) from None
        print(f"✗ {message} Later cells that need it use the reference version.")
        return
    except (KeyboardInterrupt, SystemExit):
        STATUS[name] = "failed"
        raise
    except BaseException as err:  # noqa: BLE001 - recorded, then raised again (as CheckFailed when hidden)
        STATUS[name] = "failed"
        forbidden_call = _forbidden_call(name, tripwire.hits, ops)
        if forbidden_call and str(err) != str(forbidden_call):
            raise forbidden_call from None  # the reason that matters, even when the result is wrong too
        if not hidden or (isinstance(err, CheckFailed) and str(err).startswith(name)):
            raise
        if isinstance(err, CheckFailed):
            raise CheckFailed(f"{name}, {label}: {err}") from None
        raise CheckFailed(f"{name}, {label}: the answer raised {type(err).__name__}: {err}") from None
    STATUS[name] = "passed"
    _ok(f"{name}: {label} passed.")


def beside_answer(helper):
    """Mark a test's helper that must run in the answer's own process: it takes a gradient through the
    answer, or watches what the answer keeps in memory. In a notebook this is the helper itself; under a
    grader that keeps the answer in a process of its own, the helper is sent there and only its result
    comes back (so its result is a value to check, never the verdict)."""

    @functools.wraps(helper)
    def run(*args: Any, **kwargs: Any) -> Any:
        if _REMOTE is None:
            return helper(*args, **kwargs)
        return _REMOTE.beside(helper, args, kwargs)

    return run


def use(name: str, mine: Any, reference: Any, what: str) -> Any:
    """`mine` when exercise `name` passed its check, else `reference` (saying so), so that the cells
    after an unanswered or failing exercise still run."""
    status = STATUS.get(name, "")
    if status == "passed":
        print(f"Using your {what}.")
        return mine
    why = {"unanswered": "is not answered yet", "failed": "does not pass its check yet"}
    state = why.get(status, "was not checked")
    print(f"Exercise {name} {state}: later cells use the reference version of {what}.")
    return reference


# What `_check_integrity` compares with: these functions and their code objects, as labkit defined them.
_PRISTINE = {
    name: globals()[name]
    for name in "shape params close equal at_least true exercise use _check_integrity _fail _ok _array "
    "_source_files _code_objects _is_reference _forbidden_call copy_weights same_network no_hooks".split()
}
_CODES = {name: fn.__code__ for name, fn in _PRISTINE.items()}
_PRISTINE_ALLCLOSE = _allclose
