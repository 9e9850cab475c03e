import pytest
import torch
from torch import nn

from labkit import check


def test_checks_pass_and_fail_with_hints(capsys):
    check.shape(torch.zeros(2, 3), (2, 3), "x")
    assert "✓ x has shape (2, 3)" in capsys.readouterr().out
    with pytest.raises(check.CheckFailed, match=r"x has shape \(2, 3\), expected \(3, 2\)"):
        check.shape(torch.zeros(2, 3), (3, 2), "x")
    layer = nn.Conv2d(3, 8, 3)
    check.params(layer, 3 * 8 * 9 + 8)
    with pytest.raises(
        check.CheckFailed, match=r"has 224 parameters, expected 216 \(difference \+8\)\.\nHint"
    ):
        check.params(layer, 216)
    check.close(torch.tensor([1.0, 2.0]), [1.0, 2.0 + 1e-9])
    with pytest.raises(check.CheckFailed, match="largest difference 0.5"):
        check.close([1.0, 2.5], [1.0, 2.0], "w")
    with pytest.raises(check.CheckFailed, match="below the 0.9"):
        check.at_least(0.5, 0.9, "accuracy")
    with pytest.raises(check.CheckFailed, match="is 3, expected 4"):
        check.equal(3, 4)


def _student(source: str) -> dict:
    """Define a student's answer as a notebook cell would: code from a file that is not labkit's."""
    namespace = {"torch": torch}
    exec(compile(source, "<student cell>", "exec"), namespace)
    return namespace


def test_unanswered_exercise_lets_the_lab_go_on_and_uses_the_reference(capsys):
    mine = _student("def my_tv(z):\n    raise NotImplementedError()")["my_tv"]
    with check.exercise("t-unanswered"):
        mine(torch.zeros(1))
    out = capsys.readouterr().out
    assert "not answered yet" in out and "Later cells that need it use the reference version" in out
    assert check.use("t-unanswered", mine, "reference", "thing") == "reference"
    with pytest.raises(check.CheckFailed, match="t-unanswered: not answered yet"):
        with check.exercise("t-unanswered", hidden=True):
            mine(torch.zeros(1))


def test_passing_exercise_uses_the_answer_and_hidden_failures_name_the_exercise(capsys):
    mine = _student("def double(x):\n    return 2 * x")["double"]
    with check.exercise("t-ok"):
        check.close(mine(torch.ones(2)), [2.0, 2.0], "double")
    assert check.STATUS["t-ok"] == "passed" and check.use("t-ok", mine, None, "double") is mine
    with pytest.raises(check.CheckFailed, match=r"t-ok, hidden tests: the answer raised TypeError"):
        with check.exercise("t-ok", hidden=True):
            mine(None)
    with pytest.raises(check.CheckFailed, match="differs"):
        with check.exercise("t-ok"):
            check.close(mine(torch.ones(2)), [3.0, 3.0], "double")
    assert check.STATUS["t-ok"] == "failed"


def test_an_answer_that_calls_or_is_the_reference_fails_with_the_reason():
    from labkit.interpret import total_variation

    z = torch.rand(2, 3, 4, 4)
    calls = _student("from labkit.interpret import total_variation as tv\ndef my_tv(z):\n    return tv(z)")[
        "my_tv"
    ]
    with pytest.raises(
        check.CheckFailed, match=r"calls labkit\.interpret\.ascent\.total_variation.*earns no points"
    ):
        with check.exercise("t-ref", forbid=[total_variation], answer=calls):
            check.close(calls(z), total_variation(z))  # the check may call the reference itself
    with pytest.raises(check.CheckFailed, match="the answer is labkit.interpret.ascent.total_variation"):
        with check.exercise("t-ref", forbid=[total_variation], answer=total_variation):
            pass
    own = _student(
        "def my_tv(z):\n    return (z[..., 1:, :] - z[..., :-1, :]).pow(2).mean((1, 2, 3)) + "
        "(z[..., 1:] - z[..., :-1]).pow(2).mean((1, 2, 3))"
    )["my_tv"]
    with check.exercise("t-ref", forbid=[total_variation], answer=own):
        check.close(own(z), total_variation(z), atol=1e-6)


def test_changed_checks_are_noticed():
    original = check.close
    try:
        check.close = lambda *a, **k: None
        with pytest.raises(check.CheckFailed, match="checks were changed"):
            with check.exercise("t-integrity"):
                pass
    finally:
        check.close = original
    with check.exercise("t-integrity"):
        pass


def test_library_code_reached_through_a_symlink_is_not_the_students(tmp_path):
    """A venv reached through a symlink names its files by the link: they are still library code."""
    import subprocess
    import sys

    link = tmp_path / "venv"
    link.symlink_to(sys.prefix)
    code = "import torch, labkit.check as c; print(c._is_student_code(torch.nn.modules.module.__file__))"
    out = subprocess.run(
        [str(link / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False", out
    assert check._is_student_code("/tmp/ipykernel_1/123.py") and check._is_student_code("<student cell>")


@pytest.mark.parametrize(
    "body",
    [
        "torch.nn.functional.conv2d(x, w, padding=1)",
        "torch.conv2d(x, w, padding=1)",
        "torch.ops.aten.convolution(x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1)",
    ],
)
def test_a_forbidden_torch_operator_is_caught_whatever_spelling_reaches_it(body):
    """An exercise that asks for a convolution from scratch closes torch's operator itself, not one
    Python name for it; the check may still call it to compute the expected value."""
    x, w = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3)
    calls = _student(f"def my_conv(x, w):\n    return {body}")["my_conv"]
    with pytest.raises(check.CheckFailed, match=r"reaches torch's aten\.convolution.*write yourself"):
        with check.exercise("t-op", forbid=["aten.convolution"]):
            check.close(calls(x, w), torch.nn.functional.conv2d(x, w, padding=1), atol=1e-5)
    own = _student(
        "def my_conv(x, w):\n"
        "    cols = torch.nn.functional.unfold(x, 3, padding=1)\n"
        "    return (w.flatten(1) @ cols).view(x.shape[0], w.shape[0], x.shape[2], x.shape[3])"
    )["my_conv"]
    with check.exercise("t-op", forbid=["aten.convolution"]):
        check.close(own(x, w), torch.nn.functional.conv2d(x, w, padding=1), atol=1e-5)
    assert check.STATUS["t-op"] == "passed"
    with pytest.raises(ValueError, match="aten operators"):
        with check.exercise("t-op", forbid=["conv2d"]):
            pass


def test_forbidding_one_function_leaves_its_neighbours_and_its_decorator_alone():
    """Forbidding `extract_features` (wrapped in torch.no_grad) must not forbid `torch.no_grad` itself,
    nor the other functions of its file; calling it is still caught."""
    from labkit.models import extract_features
    from labkit.models import features as features_module

    neighbour = features_module.fold_batchnorm  # a function of the same file
    mine = _student(
        "def my_extract(x):\n    with torch.no_grad():\n        return x * 2\n"
        "def calls(fn, *a):\n    return fn(*a)"
    )
    with check.exercise("t-narrow", forbid=[extract_features]):
        check.close(mine["my_extract"](torch.ones(2)), [2.0, 2.0])
    assert check.STATUS["t-narrow"] == "passed"
    assert neighbour.__code__ not in check._source_files([extract_features])
    with pytest.raises(check.CheckFailed, match="extract_features"):
        with check.exercise("t-narrow", forbid=[extract_features]):
            mine["calls"](extract_features, torch.nn.Identity(), [(torch.ones(1, 1, 2, 2), torch.zeros(1))])


def test_an_autograd_function_class_can_be_forbidden():
    """Its forward and backward are what it does; its _backward_cls, a class pointing back at it, is not
    followed."""
    from labkit.interpret import GuidedReLU

    codes = check._source_files([GuidedReLU])
    assert GuidedReLU.forward.__code__ in codes and GuidedReLU.backward.__code__ in codes
    mine = _student("def guided(x):\n    return Guided.apply(x)")
    mine["guided"].__globals__["Guided"] = GuidedReLU
    with pytest.raises(check.CheckFailed, match="GuidedReLU"):
        with check.exercise("t-fn", forbid=[GuidedReLU]):
            mine["guided"](torch.randn(3))


def test_a_forbidden_call_is_the_reason_given_even_when_the_result_is_also_wrong():
    from labkit.interpret import total_variation

    calls = _student(
        "from labkit.interpret import total_variation as tv\ndef my_tv(z):\n    return 2 * tv(z)"
    )
    z = torch.rand(2, 3, 4, 4)
    for hidden in (False, True):
        with pytest.raises(check.CheckFailed, match=r"^t-both: the answer calls labkit\.interpret"):
            with check.exercise("t-both", forbid=[total_variation], hidden=hidden):
                check.close(calls["my_tv"](z), total_variation(z))
