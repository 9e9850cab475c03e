"""The first, cheap layer around a submission's code, inside its process; and the grader's tools to
watch and end that process.

`enter(config)` is what `course.grading.submission_process` runs before the notebook's first cell:

1. HOME, TMPDIR, IPYTHONDIR, the caches and Python's bytecode writing point into the submission's
   scratch folder (the worker has set OMP_NUM_THREADS in the environment the process starts with);
2. resource limits: data segment (memory), file size, no core files;
3. an audit hook (PEP 578, it cannot be removed) that refuses, from Python code, reading the
   instructor's files, writing outside the scratch folder, starting programs and signalling other
   processes.

The hook sees Python's own calls only (not ctypes, a compiled extension, `os.open` relative to a
folder descriptor, sqlite's ATTACH): the boundary is `course.grading.boundary` (bubblewrap), and
the hook is what remains where bubblewrap is missing. `Watchdog` kills the process tree when its
resident memory passes the limit; `kill_tree` ends a process and everything below it.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
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

    def __init__(self, root: str, deny: list[str], pid: int, readable: list[str] = ()) -> None:
        self.root = os.path.realpath(root)
        self.deny = [os.path.realpath(d) for d in deny]
        self.readable = [os.path.realpath(r) for r in readable]  # the tests' files for the answer
        self.pid = pid

    def _read(self, path: str | None) -> None:
        if not path or _within(path, self.root) or any(_within(path, r) for r in self.readable):
            return
        if any(_within(path, d) for d in self.deny):
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


def enter(config: dict) -> None:
    """Set up the process described by `config` (the grader's $LABKIT_SANDBOX) for a submission's code:
    scratch folders, environment, limits, the audit hook."""
    root = Path(config["root"])
    dirs = {
        "HOME": root / "home",
        "TMPDIR": root / "tmp",
        "IPYTHONDIR": root / "home" / ".ipython",
        "XDG_CACHE_HOME": root / "home" / ".cache",
        "MPLCONFIGDIR": root / "home" / ".matplotlib",
        "LABKIT_CACHE": root / "cache",
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
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
    sys.addaudithook(Guard(str(root), config.get("deny", []), os.getpid(), config.get("readable", [])))


def readable_by_others(path: str | Path) -> bool:
    """Whether a user with no groups can read `path` (every folder above it searchable)."""
    path = Path(path).resolve()
    for folder in [*reversed(path.parents), path]:
        mode = folder.stat().st_mode
        if folder.is_dir() and not mode & 0o001 or folder == path and not mode & 0o004:
            return False
    return True


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
    """Kills the kernel when its resident memory (with its children) passes `limit` bytes (0: no limit,
    it only watches); `peak` is the highest resident memory it saw, in bytes."""

    def __init__(self, pid: int, limit: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.limit, self.interval = pid, limit, interval
        self.fired = False
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            rss = _rss(self.pid)
            self.peak = max(self.peak, rss)
            if self.limit and rss > self.limit:
                self.fired = True
                kill_tree(self.pid)
                return
