"""The isolation boundary around a submission's process: bubblewrap when it is there.

`command(...)` is the command line that starts `course.grading.submission_process` for one submission.
With bubblewrap (`bwrap`, Debian's package `bubblewrap`) the process gets

* a root of its own built from read-only binds: /usr and the libraries, the Python installation,
  the virtual environment, and labkit's and course's source folders; nothing else of the project (no
  masters, no tests, no instructors' files, no .git), no other submission, no gradebook;
* a private, writable /tmp and /dev/shm of `TMPFS_BYTES` each (bubblewrap 0.8's `--size`: a file in a
  tmpfs is memory that no process's resident size shows, so the memory watchdog would not see a
  notebook that fills them), and its own scratch folder (HOME, caches, the lab's outputs)
  as the only writable place it shares with the grader;
* its own network namespace (no interface but a loopback that reaches nothing), pid namespace (it sees
  no other process and everything in it dies with it), IPC and UTS namespaces, a new session (no
  terminal to inject into);
* under root: a user id of its own, fresh for each submission of a run, no groups, no capabilities
  (emptied bounding set), no new privileges (`setpriv`);
* the resource limits the worker sets before it starts (memory, file size, processes, no core files).

Without bubblewrap (a laptop without it, Colab), the process runs as a plain child, under its own user
when the grader is root (`setpriv`), with the same limits and the audit hook of `course.grading.sandbox`
as the only guard on what it reads and writes: the grader says so loudly (`warning()`).
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

TMPFS_BYTES = 512 * 2**20  # each of a submission's /tmp and /dev/shm (a DataLoader's shared batches fit)
ETC = ["ld.so.cache", "ld.so.conf", "ld.so.conf.d", "fonts", "localtime", "passwd", "group", "nsswitch.conf"]


@functools.cache
def bwrap() -> str | None:
    """bubblewrap's path, if it is installed and can build a sandbox here (a container may forbid it)."""
    path = shutil.which("bwrap")
    if path is None:
        return None
    probe = [path, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--die-with-parent", "true"]
    if os.geteuid() != 0:
        probe[1:1] = ["--unshare-user"]
    try:
        ok = subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return path if ok else None


@functools.cache
def sized_tmpfs() -> bool:
    """Whether this bubblewrap can bound the size of a tmpfs (`--size`, since 0.8)."""
    tool = bwrap()
    if tool is None:
        return False
    probe = [tool, "--ro-bind", "/", "/", "--size", str(2**20), "--tmpfs", "/tmp", "true"]
    if os.geteuid() != 0:
        probe[1:1] = ["--unshare-user"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def warning() -> str | None:
    """What to tell the instructor when there is no real boundary (None when there is)."""
    if bwrap():
        return None
    return (
        "WARNING: bubblewrap (bwrap) is not available here, so submissions run without an isolation "
        "boundary: only resource limits"
        + (", a user of their own" if setpriv() else "")
        + " and a Python audit hook stand between a hostile notebook and this machine's files, processes "
        "and network. Grade a class on a machine with bubblewrap (`apt-get install bubblewrap`)."
    )


def setpriv() -> str | None:
    """setpriv's path where the grader is root: then, without bubblewrap, each submission runs as a user of
    its own (None: it runs as the grader's user)."""
    return shutil.which("setpriv") if os.geteuid() == 0 else None


def closed_to_others(scratch: Path) -> Path | None:
    """Where bubblewrap is missing and the grader is root: the first folder on the way to Python, labkit or
    `scratch` that another user cannot pass through (no search permission for others), which the
    submission's own user must (None: none, or no such user)."""
    if bwrap() or not setpriv():
        return None
    for path in [*readable(), Path(scratch)]:
        for folder in [*reversed(path.resolve().parents), path.resolve()]:
            if folder.is_dir() and not folder.stat().st_mode & stat.S_IXOTH:
                return folder
    return None


def _system() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in ETC:
        if (Path("/etc") / name).exists():
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    return args


def readable() -> list[Path]:
    """What a submission's process may read besides the system: Python, the environment, the code it
    imports (each resolved: a link in the environment points into the installation)."""
    import course
    import labkit

    paths = {
        Path(sys.base_prefix).resolve(),
        Path(sys.prefix).resolve(),
        Path(sysconfig.get_paths()["purelib"]).resolve(),
        Path(labkit.__file__).resolve().parent,
        Path(course.__file__).resolve().parent,
    }
    chosen: list[Path] = []
    for path in sorted(paths, key=lambda p: len(p.parts)):
        if (
            path.exists()
            and not any(path.is_relative_to(c) for c in chosen)
            and not str(path).startswith("/usr")
        ):
            chosen.append(path)
    return chosen


def command(
    program: list[str],
    scratch: Path,
    uid: int | None,
    tmpfs_bytes: int = TMPFS_BYTES,
    shared: Path | None = None,
) -> tuple[list[str], str]:
    """The command running `program` for one submission, and how it is isolated, in words
    (`tmpfs_bytes`: the size of each of its /tmp and /dev/shm, where bubblewrap can bound it; `shared`:
    a folder of the grader's it may read, where the tests put files for the answer)."""
    scratch = Path(scratch).resolve()
    switch: list[str] = []
    who = "the grader's own user"
    user_switch = setpriv()
    if uid is not None and user_switch:
        switch = [
            user_switch,
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ]
        who = f"user {uid} (its own, no capabilities)"
    tool = bwrap()
    if tool is None:
        return [*switch, *program], f"no isolation tool (bubblewrap missing): a plain process as {who}"
    args = [
        tool,
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        *_system(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
    ]
    size = ["--size", str(tmpfs_bytes)] if sized_tmpfs() else []
    args += ["--perms", "01777", *size, "--tmpfs", "/tmp", "--perms", "01777", *size, "--tmpfs", "/dev/shm"]
    if os.geteuid() != 0:
        args.insert(1, "--unshare-user")
    made: set[str] = set()
    for path in [*readable(), *([Path(shared).resolve()] if shared else []), scratch]:
        parents = [p for p in reversed(path.parents) if str(p) != "/" and str(p) not in made]
        for parent in parents:
            args += ["--perms", "0755", "--dir", str(parent)]
            made.add(str(parent))
        bind = "--bind" if path == scratch else "--ro-bind"
        args += [bind, str(path), str(path)]
        made.add(str(path))
    args += ["--chdir", str(scratch), "--", *switch, *program]
    how = (
        "bubblewrap: a read-only root of the system, Python and labkit only, private /tmp"
        + (f" of {tmpfs_bytes // 2**20} MB" if sized_tmpfs() else " (unbounded: bubblewrap older than 0.8)")
        + ", no network, "
        f"its own pid namespace, as {who}"
    )
    return args, how
