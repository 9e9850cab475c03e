"""The papermill runner: notebook resolution, parameter checks, failure reporting, summary and index."""

import json

import nbformat
import pytest

from course import run as runner
from labkit.core import LabError


def _notebook(path, body):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('profile = "full"\nout_dir = None\nepochs = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)
    return path


def test_resolve_by_number_and_name():
    every = runner.available()
    assert every, "notebooks/ is empty"
    first = every[0]
    assert runner.resolve([first.stem[:2]]) == [first]
    assert runner.resolve([first.stem]) == [first]
    assert runner.resolve([first.stem[3:]]) == [first]
    with pytest.raises(LabError, match="no notebook matches '42'"):
        runner.resolve(["42"])


def test_params_are_yaml_and_unknown_ones_are_refused(tmp_path):
    assert runner.parse_params(["epochs=3", "dataset=cifar10", "lr=1e-3", "root=null"]) == {
        "epochs": 3,
        "dataset": "cifar10",
        "lr": 1e-3,
        "root": None,
    }
    with pytest.raises(LabError, match="is not key=value"):
        runner.parse_params(["epochs"])
    nb = _notebook(tmp_path / "01_t.ipynb", "print(1)")
    with pytest.raises(LabError, match=r"\['epoch'\] are not declared.*\['epochs', 'out_dir'\]"):
        runner.plan([nb], {"epoch": 3})
    assert runner.plan([nb], {"epochs": 3}) == {nb: {"epochs": 3}}


def test_failure_names_notebook_and_cell(tmp_path, capsys):
    nb = _notebook(tmp_path / "01_fails.ipynb", "raise RuntimeError('broken on purpose')")
    out = tmp_path / "out"
    outcomes = runner.run([str(nb)], profile="smoke", out=out)
    assert outcomes[0].status == "failed"
    assert "RuntimeError: broken on purpose" in outcomes[0].error and "cell" in outcomes[0].error
    assert "FAILED 01_fails" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["notebooks"][0]["status"] == "failed"
    index = (out / "index.html").read_text()
    assert "broken on purpose" in index[index.index('class="failures"') : index.index('id="01_fails"')]
    assert runner.main(["run", str(nb), "--profile", "smoke", "--out", str(out), "--no-html"]) == 1


def test_kernels_talk_over_ipc_so_no_tcp_warning_reaches_the_terminal(tmp_path, capfd):
    nb = _notebook(tmp_path / "01_quiet.ipynb", "print('hello')")
    outcomes = runner.run([str(nb)], profile="smoke", out=tmp_path / "out", html_index=False)
    assert outcomes[0].status == "ok", outcomes[0].error
    err = capfd.readouterr().err  # the kernel's own stderr is the terminal's
    assert "without encryption" not in err and "WARNING" not in err, err
    assert runner.kernel_manager_class()().transport == "ipc"
