"""Where a submission's code runs: a Jupyter kernel in its own scratch folder, with limits.

`python -m course.grading.sandbox -f CONNECTION_FILE` is the kernel command the grader's kernel
manager (`SandboxKernelManager`) starts instead of ipykernel's. Before it hands over to ipykernel it

1. points HOME, TMPDIR, IPYTHONDIR, the tensor cache and Python's bytecode writing into the scratch
   folder (the worker has set OMP_NUM_THREADS in the environment the kernel starts with);
2. sets resource limits: data segment (memory), file size, no core files, and, under its own user,
   a process count;
3. runs, when the grader runs as root, as an unprivileged user of its own (a uid per grading slot,
   no groups, `setpriv --no-new-privs`), so the operating system stops it writing the grader's
   files or the other submissions' and signalling their processes. Where the Python installation is
   not readable by other users (a pyenv under /root), that user keeps one capability,
   CAP_DAC_READ_SEARCH, to read it: reading is then guarded by the audit hook alone;
4. installs an audit hook (PEP 578, it cannot be removed) that refuses, from Python code, reading
   the instructor's files (masters, gradebook, answers, other submissions), writing anywhere outside
   the scratch folder, starting programs, and signalling other processes.

Limits, stated in the README: native code (ctypes, a compiled extension) is not seen by the audit
hook; without root the kernel runs as the grader's own user, so only the hook protects the
grader's files, and the network is not cut.

`SandboxedExecute` is nbgrader's `Execute` preprocessor with a deadline for the whole notebook (a
cell still running at the deadline ends the run, and every cell after it is marked as not run), a
watchdog on the kernel's memory, and a kernel that may die without ending the grading.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import threading
import time
from pathlib import Path

CONFIG_ENV = "LABKIT_SANDBOX"
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
DEVICES = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom", "/dev/tty")
# (event, indexes of path arguments that are written, indexes that are read)
PATH_EVENTS = {
    "os.remove": ((0,), ()),
    "os.rmdir": ((0,), ()),
    "os.mkdir": ((0,), ()),
    "os.rename": ((0, 1), ()),
    "os.replace": ((0, 1), ()),
    "os.chmod": ((0,), ()),
    "os.chown": ((0,), ()),
    "os.link": ((1,), (0,)),
    "os.symlink": ((1,), (0,)),
    "os.truncate": ((0,), ()),
    "os.utime": ((0,), ()),
    "os.chflags": ((0,), ()),
    "os.setxattr": ((0,), ()),
    "os.removexattr": ((0,), ()),
    "shutil.rmtree": ((0,), ()),
    "shutil.move": ((0, 1), ()),
    "shutil.copyfile": ((1,), (0,)),
    "shutil.copymode": ((1,), (0,)),
    "shutil.copystat": ((1,), (0,)),
    "shutil.copytree": ((1,), (0,)),
    "shutil.chown": ((0,), ()),
    "os.listdir": ((), (0,)),
    "os.scandir": ((), (0,)),
    "glob.glob": ((), (0,)),
    "os.listxattr": ((), (0,)),
    "sqlite3.connect": ((), (0,)),
}
PROGRAM_EVENTS = {
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.startfile",
    "os.popen",
}


def _path(value) -> str | None:
    if isinstance(value, int) or value is None:
        return None
    try:
        value = os.fsdecode(os.fspath(value))
    except TypeError:
        return None
    return os.path.realpath(value)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class Guard:
    """The audit hook: refuses what a submission's Python code must not do (see the module docstring)."""

    def __init__(self, root: str, deny: list[str], pid: int) -> None:
        self.root = os.path.realpath(root)
        self.deny = [os.path.realpath(d) for d in deny]
        self.pid = pid

    def _read(self, path: str | None) -> None:
        if path and not _within(path, self.root) and any(_within(path, d) for d in self.deny):
            raise PermissionError(f"grading sandbox: {path} is not readable by a submission")

    def _write(self, path: str | None) -> None:
        if path and not _within(path, self.root) and path not in DEVICES:
            raise PermissionError(
                f"grading sandbox: a submission writes only inside its folder, not to {path}"
            )

    def __call__(self, event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, 0))[:3]
            path = _path(path)
            writes = any(c in (mode or "") for c in "wax+") or bool((flags or 0) & WRITE_FLAGS)
            self._read(path)
            if writes:
                self._write(path)
        elif event in PATH_EVENTS:
            written, read = PATH_EVENTS[event]
            for i in written:
                if i < len(args):
                    p = _path(args[i])
                    self._read(p)
                    self._write(p)
            for i in read:
                if i < len(args):
                    self._read(_path(args[i]) if args[i] is not None else None)
        elif event in PROGRAM_EVENTS:
            raise PermissionError(f"grading sandbox: a submission may not start programs ({event})")
        elif event in ("os.kill", "os.killpg") and args and args[0] not in (self.pid, 0):
            raise PermissionError("grading sandbox: a submission may not signal other processes")


def _limits(config: dict) -> None:
    memory = config.get("memory_bytes")
    if memory:
        resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    fsize = config.get("file_bytes")
    if fsize:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))


def launch(argv: list[str]) -> None:
    """Set up the sandbox described by $LABKIT_SANDBOX, then run ipykernel with `argv`."""
    config = json.loads(os.environ.pop(CONFIG_ENV))
    root = Path(config["root"])
    dirs = {
        "HOME": root / "home",
        "TMPDIR": root / "tmp",
        "IPYTHONDIR": root / "home" / ".ipython",
        "XDG_CACHE_HOME": root / "home" / ".cache",
        "LABKIT_CACHE": root / "cache",
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)  # as the kernel's user: the grader handed `root` over
    os.environ.update({k: str(v) for k, v in dirs.items()})
    os.environ.update(
        {
            "PYTHONDONTWRITEBYTECODE": "1",
            "LABKIT_HEADLESS": "1",
            "MPLBACKEND": "Agg",
            "USER": "student",
            "LOGNAME": "student",
        }
    )
    sys.dont_write_bytecode = True
    os.chdir(root)
    _limits(config)
    if os.geteuid() != 0:
        resource.setrlimit(resource.RLIMIT_NPROC, (512, 512))
    sys.addaudithook(Guard(str(root), config.get("deny", []), os.getpid()))
    from ipykernel.kernelapp import launch_new_instance

    sys.argv = [sys.argv[0], *argv]
    launch_new_instance()


# --- the grader's side: a kernel manager that starts the command above, and the executor ------


def readable_by_others(path: str | Path) -> bool:
    """Whether a user with no groups can read `path` (every folder above it searchable)."""
    path = Path(path).resolve()
    for folder in [*reversed(path.parents), path]:
        mode = folder.stat().st_mode
        if folder.is_dir() and not mode & 0o001 or folder == path and not mode & 0o004:
            return False
    return True


def user_switch(config: dict) -> tuple[list[str], str]:
    """The command prefix that runs the kernel as `config["uid"]`, and how it isolates, in words."""
    import sysconfig

    from labkit.core import project_root

    uid = config.get("uid")
    if uid is None or os.geteuid() != 0:
        return [], "the grader's own user"
    setpriv = shutil.which("setpriv")
    if not setpriv:
        return [], "the grader's user (root: setpriv from util-linux is missing)"
    needed = [
        sys.executable,
        sysconfig.get_paths()["stdlib"],
        sysconfig.get_paths()["purelib"],
        project_root() / "labkit",
        project_root() / "course",
    ]
    caps = (
        []
        if all(readable_by_others(p) for p in needed)
        else ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    )
    how = f"unprivileged user {uid}" + (
        " (with CAP_DAC_READ_SEARCH: Python is not readable by others)" if caps else ""
    )
    return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs", *caps, "--"], how


def hand_over(root: Path, uid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            os.chown(name, uid, uid)


def kernel_manager_class():
    from jupyter_client.manager import AsyncKernelManager

    class SandboxKernelManager(AsyncKernelManager):
        """Starts `python -m course.grading.sandbox` (under its own user where possible) instead of
        ipykernel's launcher; the kernel reads its connection file from its own folder."""

        def format_kernel_cmd(self, extra_arguments=None):
            config = json.loads(os.environ[CONFIG_ENV])
            root = Path(config["root"])
            own = root / "home" / "kernel.json"
            own.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.connection_file, own)
            prefix, _ = user_switch(config)
            if prefix:
                hand_over(root, int(config["uid"]))
            return [
                *prefix,
                sys.executable,
                "-m",
                "course.grading.sandbox",
                "-f",
                str(own),
                *(extra_arguments or []),
            ]

    return SandboxKernelManager


def kill_tree(pid: int) -> None:
    """Kill process `pid` and every process below it (gone already: nothing to do)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        for p in [*proc.children(recursive=True), proc]:
            p.kill()
    except psutil.Error:
        pass


def _rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
    except psutil.Error:
        return 0


class Watchdog(threading.Thread):
    """Kills the kernel when its resident memory (with its children) passes `limit` bytes."""

    def __init__(self, pid: int, limit: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.limit, self.interval = pid, limit, interval
        self.fired = False
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            if _rss(self.pid) > self.limit:
                self.fired = True
                kill_tree(self.pid)
                return


def error_output(ename: str, evalue: str):
    from nbformat.notebooknode import NotebookNode

    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def executor_class():
    """nbgrader's Execute with a deadline, a memory watchdog and survival of a dead kernel."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from nbgrader.preprocessors import Execute
    from traitlets import Float, Integer, Unicode

    class SandboxedExecute(Execute):
        time_limit = Float(600.0, help="seconds for the whole notebook").tag(config=True)
        memory_limit = Integer(0, help="bytes of resident memory before the kernel is killed (0: none)").tag(
            config=True
        )
        sandbox = Unicode("", help="the kernel's working folder").tag(config=True)

        def __init__(self, *args, **kwargs):
            kwargs.setdefault("kernel_manager_class", kernel_manager_class())
            super().__init__(*args, **kwargs)
            self.interrupt_on_timeout = False
            self.raise_on_iopub_timeout = False
            # nbclient waits 4 s for a cell's outputs after its reply, then drops the rest: on a loaded
            # machine that lost a test cell's "hidden tests passed" line, and with it the points
            self.iopub_timeout = 120
            self.shutdown_kernel = "immediate"
            self.events: list[str] = []
            self._stopped: str | None = None
            self._deadline = None
            self._watchdog: Watchdog | None = None

        def preprocess(self, nb, resources=None, km=None):
            resources = resources or {}
            resources.setdefault("metadata", {})["path"] = self.sandbox
            self._deadline = time.monotonic() + self.time_limit
            try:
                return super().preprocess(nb, resources, km=km)
            finally:
                if self._watchdog:
                    self._watchdog.stopped.set()

        def _start_watchdog(self) -> None:
            process = getattr(getattr(self.km, "provisioner", None), "process", None)
            if self._watchdog is None and self.memory_limit and process is not None:
                self._watchdog = Watchdog(process.pid, self.memory_limit)
                self._watchdog.start()

        def _stop(self, ename: str, why: str, cell) -> None:
            self._stopped = why
            self.events.append(why)
            cell.outputs.append(error_output(ename, why))

        def preprocess_cell(self, cell, resources, index):
            if cell.cell_type != "code":
                return cell, resources
            if self._stopped is None and time.monotonic() >= self._deadline:
                self._stopped = f"time limit of {self.time_limit:.0f} s reached before this cell"
                self.events.append(self._stopped)
            if self._stopped:
                cell.outputs = [error_output("NotRun", f"not run: {self._stopped}")]
                return cell, resources
            self._start_watchdog()
            self.timeout = max(1, int(self._deadline - time.monotonic() + 0.999))
            try:
                return super().preprocess_cell(cell, resources, index)
            except CellTimeoutError:
                self._stop(
                    "TimeLimitExceeded",
                    f"time limit of {self.time_limit:.0f} s reached in cell {index}",
                    cell,
                )
            except DeadKernelError:
                if self._watchdog is not None and self._watchdog.fired:
                    why = (
                        f"memory limit of {self.memory_limit / 2**30:.1f} GiB exceeded in cell {index}: "
                        "kernel killed"
                    )
                    self._stop("MemoryLimitExceeded", why, cell)
                else:
                    self._stop("KernelDied", f"the kernel died in cell {index}", cell)
            return cell, resources

    return SandboxedExecute


if __name__ == "__main__":
    launch(sys.argv[1:])
