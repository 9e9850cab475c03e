"""The headless lab runner: execute notebooks with papermill, collect their recorded figures.

    python -m course run [NOTEBOOK ...] --profile smoke -p epochs=3 --out runs/smoke

NOTEBOOK is a number (`02`), a name (`02_naive_cnn`, `naive_cnn`) or a path; none means every
notebook in `notebooks/`. Each `-p key=value` is read as YAML (`3` is an int, `'3'` a string,
`null` is None) and goes to every selected notebook whose `parameters` cell declares it; a key no
selected notebook declares is refused before anything runs. The executed notebooks land in
`{out}/notebooks/`, their figures in `{out}/figures/`, their recorded metrics in `{out}/metrics/`;
the runner adds `{out}/summary.json` and an HTML index `{out}/index.html`, prints a summary table,
and exits non-zero naming the notebook and cell that failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labkit.core import PROFILES, LabError, project_root, write_json_atomic


@dataclass
class Outcome:
    """What happened to one notebook."""

    notebook: str
    status: str = "not run"  # "ok", "failed" or "not run"
    seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    executed: str | None = None


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def available() -> list[Path]:
    """Every lab notebook, in lab order."""
    return sorted(p for p in notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


def resolve(names: list[str]) -> list[Path]:
    """Turn `02`, `2`, `02_naive_cnn`, `naive_cnn` or a path into notebook paths (all when empty)."""
    every = available()
    if not names:
        if not every:
            raise LabError(f"no notebooks found in {notebooks_dir()}; run from the project checkout.")
        return every
    chosen = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            chosen.append(path.resolve())
            continue
        stem = path.stem
        matches = [
            p
            for p in every
            if stem in (p.stem, p.stem[:2], p.stem[3:]) or (stem.isdigit() and int(stem) == int(p.stem[:2]))
        ]
        if len(matches) != 1:
            known = ", ".join(p.stem for p in every)
            raise LabError(f"no notebook matches {name!r}; choose a number or a name among: {known}.")
        chosen.append(matches[0])
    return chosen


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """`["epochs=3", "dataset=cifar10"]` -> {"epochs": 3, "dataset": "cifar10"} (values read as YAML)."""
    import yaml

    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise LabError(f"-p {pair!r} is not key=value; write for example -p epochs=3.")
        try:
            params[key.strip()] = _number_or_itself(yaml.safe_load(value)) if value.strip() else None
        except yaml.YAMLError as err:
            raise LabError(f"-p {pair!r}: the value is not valid YAML ({err.problem}); quote it.") from err
    return params


def _number_or_itself(value: Any) -> Any:
    """YAML 1.1 reads `1e-3` (no dot) as a string; on a command line it means a float."""
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+(\.\d*)?[eE][+-]?\d+", value):
        return float(value)
    return value


def declared_parameters(path: Path) -> set[str]:
    import papermill

    return set(papermill.inspect_notebook(str(path)))


def plan(paths: list[Path], params: dict[str, Any]) -> dict[Path, dict[str, Any]]:
    """The parameters each notebook receives; refuses keys that no selected notebook declares."""
    declared = {path: declared_parameters(path) for path in paths}
    for path, names in declared.items():
        if "profile" not in names:
            raise LabError(f"{path.name} has no `parameters` cell declaring `profile`; see DESIGN.md.")
    unknown = sorted(set(params) - set().union(*declared.values()))
    if unknown:
        every = sorted(set().union(*declared.values()) - {"profile"})
        raise LabError(
            f"parameter(s) {unknown} are not declared by the selected notebooks; they take: {every}."
        )
    return {path: {k: v for k, v in params.items() if k in names} for path, names in declared.items()}


def kernel_manager_class():
    """The kernel manager of the runner's kernels: Jupyter's, talking to the kernel over local IPC
    sockets where the system has them (not on Windows), so no TCP port is opened and no "Kernel is
    running over TCP without encryption" warning reaches the user's terminal for every lab; and it
    does not interrupt a kernel it is shutting down (the notebook has finished by then; the interrupt
    only makes the kernel log "KeyboardInterrupt caught in kernel")."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import CaselessStrEnum

    class LabKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(
            ["tcp", "ipc"], default_value="tcp" if os.name == "nt" else "ipc", config=True
        )

        async def _async_interrupt_kernel(self) -> None:
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

    return LabKernelManager


def run(
    names: list[str] | None = None,
    *,
    profile: str = "full",
    params: dict[str, Any] | None = None,
    out: str | Path | None = None,
    keep_going: bool = False,
    html_index: bool = True,
    progress: bool = False,
    prepare: Callable[[Any, str], Any] | None = None,
) -> list[Outcome]:
    """Execute notebooks under `profile` into `out` (default `runs/{profile}`); see the module docstring.
    `prepare(nb, name)`, when given, returns the notebook to execute in place of each one read (the test
    suite adds its probes of the exercises this way)."""
    import nbformat
    import papermill

    if profile not in PROFILES:
        raise LabError(f"--profile {profile!r} is not a profile; use one of {PROFILES}.")
    paths = resolve(list(names or []))
    params = dict(params or {})
    for reserved in ("profile", "out_dir"):
        if reserved in params:
            raise LabError(f"set {reserved} with --{'profile' if reserved == 'profile' else 'out'}, not -p.")
    per_notebook = plan(paths, params)
    # The kernels inherit this: widgets explorers save static figures instead (labkit.widgets.headless).
    os.environ.setdefault("LABKIT_HEADLESS", "1")
    out_dir = Path(out) if out else project_root() / "runs" / profile
    out_dir = out_dir.expanduser().resolve()
    executed_dir = out_dir / "notebooks"
    executed_dir.mkdir(parents=True, exist_ok=True)

    outcomes = [Outcome(p.stem) for p in paths]
    for path, outcome in zip(paths, outcomes):
        target = executed_dir / path.name
        parameters = {**per_notebook[path], "profile": profile, "out_dir": str(out_dir)}
        print(f"[labkit] {path.stem} ({profile}) ...", flush=True)
        start = time.perf_counter()
        try:
            notebook = prepare(nbformat.read(path, as_version=4), path.stem) if prepare else str(path)
            papermill.execute_notebook(
                notebook,
                str(target),
                parameters=parameters,
                cwd=str(path.parent),
                progress_bar=progress,
                kernel_name="python3",
                kernel_manager_class=kernel_manager_class(),
                # The run is over when the last cell returns: a lab writes every file inside its cells.
                # A graceful shutdown then waits about 2 s per lab (IPython's history, torch's teardown).
                shutdown_kernel="immediate",
            )
            outcome.status = "ok"
        except papermill.PapermillExecutionError as err:
            outcome.status = "failed"
            outcome.error = f"cell {err.exec_count} (index {err.cell_index}): {err.ename}: {err.evalue}"
        except Exception as err:  # noqa: BLE001 - a kernel that dies must still be reported by name
            outcome.status = "failed"
            outcome.error = f"{type(err).__name__}: {err}"
        outcome.seconds = round(time.perf_counter() - start, 1)
        outcome.executed = str(target)
        metrics_path = out_dir / "metrics" / f"{path.stem}.json"
        if metrics_path.is_file():
            outcome.metrics = json.loads(metrics_path.read_text())
        if outcome.status == "failed":
            print(
                f"[labkit] FAILED {path.stem} at {outcome.error}\n         executed copy: {target}",
                flush=True,
            )
            if not keep_going:
                break
        else:
            print(f"[labkit] {path.stem} ok in {outcome.seconds:.1f} s", flush=True)

    write_json_atomic(
        out_dir / "summary.json",
        {"profile": profile, "params": params, "notebooks": [asdict(o) for o in outcomes]},
    )
    if html_index:
        from course.report import write_html_index

        write_html_index(out_dir, outcomes, profile)
    print(summary_table(outcomes))
    print(f"[labkit] summary: {out_dir / 'summary.json'}; index: {out_dir / 'index.html'}")
    return outcomes


def _brief(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        inner = [f"{k}: {_brief(v)}" for k, v in value.items() if not isinstance(v, (dict, list))]
        return "{" + ", ".join(inner) + "}" if inner and len(inner) <= 4 else f"{{{len(value)} entries}}"
    if isinstance(value, list):
        return f"[{len(value)} values]"
    return str(value)


def summary_table(outcomes: list[Outcome]) -> str:
    """A plain-text table: one block per notebook, one line per recorded figure."""
    lines = [f"{'notebook':<28} {'status':<8} {'seconds':>8}  figures"]
    for o in outcomes:
        figures = [f"{k} = {_brief(v)}" for k, v in o.metrics.items()]
        lines.append(f"{o.notebook:<28} {o.status:<8} {o.seconds:>8.1f}  {figures[0] if figures else ''}")
        lines += [f"{'':<47}{f}" for f in figures[1:]]
        if o.error:
            lines.append(f"{'':<47}error: {o.error}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course", description="CNN Lab notebook runner")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="execute notebooks headlessly with papermill")
    run_p.add_argument("notebooks", nargs="*", help="numbers or names (default: all)")
    run_p.add_argument("--profile", default="full", choices=PROFILES)
    run_p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    run_p.add_argument("--out", default=None, help="output folder (default: runs/{profile})")
    run_p.add_argument("--keep-going", action="store_true", help="run the rest after a failure")
    run_p.add_argument("--no-html", action="store_true", help="skip the HTML index")
    sub.add_parser("list", help="list the notebooks")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            for path in available():
                print(path.stem)
            return 0
        outcomes = run(
            args.notebooks,
            profile=args.profile,
            params=parse_params(args.param),
            out=args.out,
            keep_going=args.keep_going,
            html_index=not args.no_html,
        )
    except LabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    failed = [o for o in outcomes if o.status != "ok"]
    if failed:
        print(
            f"[labkit] {len(failed)} notebook(s) failed or did not run: "
            f"{', '.join(o.notebook for o in failed)}",
            file=sys.stderr,
        )
        return 1
    return 0
