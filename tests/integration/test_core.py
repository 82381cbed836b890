"""The core's process management against real supervisord 4.3 and vigild, same assertions.

Every ``any_core`` test runs twice: supervisord is the contract, vigild must match it.
Where supervisord's 1-second loop makes timings loose, its bounds are loose and vigild's
are tight. Tests named ``test_vigild_*`` cover behaviour where vigild deliberately differs
from supervisord (reference §9 item 9) or that only vigild has (its config error lines).

Child programs are modes of one helper script (``PROGS``) written into the test directory,
and ``STAMP_LISTENER`` is a raw-protocol event listener that records every event with the
time it arrived, so nothing needs shell quoting inside the config file.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.supervisor import (
    PYTHON,
    VIGIL_LISTENER,
    Supervisor,
    render_config,
    unix_proxy,
)

pytestmark = pytest.mark.integration

Factory = Callable[..., Supervisor]

VIGILD = str(Path(sys.executable).parent / "vigild")
VIGILD_COMMAND = [VIGILD, "-n", "-c", "{conf}"]

#: Child programs: ``progs.py MODE ARGS...``.
PROGS = r"""
import json
import os
import signal
import sys
import time
from pathlib import Path


def forever() -> None:
    while True:
        time.sleep(600)


def main() -> None:
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "trap-slow":  # exits 0, half a second after SIGTERM
        def on_term(signum, frame):
            time.sleep(0.5)
            os._exit(0)
        signal.signal(signal.SIGTERM, on_term)
        forever()
    elif mode == "record-signal":  # writes the name of the first signal it gets, exits 0
        def record(signum, frame):
            Path(args[0]).write_text(signal.Signals(signum).name)
            os._exit(0)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(sig, record)
        forever()
    elif mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        forever()
    elif mode == "env":
        Path("created-by-child").write_text("x")
        umask = os.umask(0)
        report = {"env": dict(os.environ), "cwd": os.getcwd(), "umask": umask}
        Path(args[0]).write_text(json.dumps(report))
    elif mode == "say":
        print(args[0], flush=True)
        forever()
    elif mode == "both":
        print("to-stdout", flush=True)
        print("to-stderr", file=sys.stderr, flush=True)
        forever()
    elif mode == "chatter":  # 20 separate writes of 300 bytes
        for i in range(20):
            sys.stdout.write(f"chatter-{i:03d} ".ljust(299, "x") + "\n")
            sys.stdout.flush()
            time.sleep(0.03)
    elif mode == "capture":
        sys.stdout.write(
            "before\n<!--XSUPERVISOR:BEGIN-->captured-payload<!--XSUPERVISOR:END-->\n"
            # longer than the begin token: supervisord 4.3 holds back shorter tails
            "after-the-block-with-enough-bytes\n"
        )
        sys.stdout.flush()
        forever()
    elif mode == "talk":
        i = 0
        while True:
            print(f"line-{i}", flush=True)
            i += 1
            time.sleep(0.05)
    elif mode == "exit-once":  # first run: exit 0 after 0.3 s, recording when; later: stay up
        marker, stamp = Path(args[0]), Path(args[1])
        if marker.exists():
            forever()
        marker.write_text("x")
        time.sleep(0.3)
        stamp.write_text(repr(time.time()))
        os._exit(0)
    else:
        raise SystemExit(f"unknown mode {mode}")


main()
"""

#: A raw event listener: one JSON line per event with ``t`` = time.time() at arrival.
STAMP_LISTENER = r"""
import json
import sys
import time


def main() -> None:
    with open(sys.argv[1], "a") as out:
        while True:
            sys.stdout.write("READY\n")
            sys.stdout.flush()
            line = sys.stdin.readline()
            if not line:
                return
            t = time.time()
            header = dict(tok.split(":", 1) for tok in line.split())
            body = sys.stdin.read(int(header["len"]))
            head, _, data = body.partition("\n")
            rec = {"t": t, "eventname": header["eventname"], "data": data}
            for tok in head.split():
                key, _, value = tok.partition(":")
                rec[key] = value
            out.write(json.dumps(rec) + "\n")
            out.flush()
            sys.stdout.write("RESULT 2\nOK")
            sys.stdout.flush()


main()
"""

LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+) (.*)$", re.MULTILINE)
TOO_QUICKLY = "Exited too quickly (process log may have details)"


# ---------------------------------------------------------------------------------------------
# helpers


def write_progs(directory: Path) -> str:
    """Write the helper script into ``directory``; return the ``command=`` prefix for it."""
    path = directory / "progs.py"
    path.write_text(PROGS)
    return f"{PYTHON} {path}"


def stamp_listener(directory: Path, name: str, events: str = "PROCESS_STATE") -> str:
    """An ``[eventlistener:name]`` section recording events into ``directory/name.jsonl``."""
    script = directory / "stamp_listener.py"
    script.write_text(STAMP_LISTENER)
    return f"""
[eventlistener:{name}]
command = {PYTHON} {script} {directory / f"{name}.jsonl"}
events = {events}
buffer_size = 100
startsecs = 1
stdout_logfile = NONE
stderr_logfile = {directory / f"{name}.err"}
"""


def jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.startswith("{")]


def log_entries(sv: Supervisor) -> list[tuple[float, str]]:
    """(epoch seconds, message) for every line of the core's main log."""
    return [
        (datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp(), m[3])
        for m in LOG_LINE.finditer(sv.log_text())
    ]


def times_of(sv: Supervisor, pattern: str) -> list[float]:
    rx = re.compile(pattern)
    return [t for t, msg in log_entries(sv) if rx.search(msg)]


def spawn_count(sv: Supervisor, name: str) -> int:
    return len(times_of(sv, rf"^spawned: '{re.escape(name)}' with pid \d+$"))


def respawned(sv: Supervisor, name: str) -> bool:
    return spawn_count(sv, name) >= 2


def proc_table() -> dict[int, tuple[str, int]]:
    """pid -> (state letter, ppid) for every process in /proc."""
    out: dict[int, tuple[str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[int(entry.name)] = (fields[0], int(fields[1]))
    return out


def descendants(pid: int) -> set[int]:
    table = proc_table()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        children = {p for p, (_, ppid) in table.items() if ppid in frontier} - found
        found |= children
        frontier = children
    return found


def is_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@contextlib.contextmanager
def killing_leftovers(pids: set[int]) -> Iterator[None]:
    """SIGKILL any of ``pids`` still alive (and still a ``sleep``) when the block ends."""
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(OSError):
                if is_alive(pid) and b"sleep" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)


def state_events(records: list[dict[str, Any]], name: str) -> list[tuple[str, str, str | None]]:
    """(new state, from_state, tries) for every PROCESS_STATE event of ``name``."""
    return [
        (r["eventname"].removeprefix("PROCESS_STATE_"), r["from_state"], r.get("tries"))
        for r in records
        if r.get("processname") == name and r["eventname"].startswith("PROCESS_STATE_")
    ]


def wait_listener_running(sv: Supervisor, name: str, path: Path) -> None:
    """Until the listener has acknowledged its own RUNNING event (so it is READY now)."""
    sv.wait_for(
        lambda: ("RUNNING", "STARTING", None) in state_events(jsonl(path), name),
        10,
        f"listener {name} to process its own RUNNING event",
    )


# ---------------------------------------------------------------------------------------------
# state machine


def test_backoff_sequence_timing_and_fatal(any_core: Factory, tmp_path: Path, core: str) -> None:
    body = """
[program:dies]
command = sh -c "sleep 0.2; exit 0"
startsecs = 2
startretries = 2

[program:nocmd]
command = /nonexistent/vigil-test-command
startsecs = 1
startretries = 1
""" + stamp_listener(tmp_path, "stamp")
    sv = any_core(body)
    info = sv.wait_state("dies", "FATAL", timeout=15)
    assert info["spawnerr"] == TOO_QUICKLY

    def both_fatal() -> bool:
        events = jsonl(tmp_path / "stamp.jsonl")
        fatal = ("FATAL", "BACKOFF", None)
        return fatal in state_events(events, "dies") and fatal in state_events(events, "nocmd")

    sv.wait_for(both_fatal, 10, "both FATAL events at the listener")
    events = jsonl(tmp_path / "stamp.jsonl")
    assert state_events(events, "dies") == [
        ("STARTING", "STOPPED", "0"),
        ("BACKOFF", "STARTING", "1"),
        ("STARTING", "BACKOFF", "1"),
        ("BACKOFF", "STARTING", "2"),
        ("STARTING", "BACKOFF", "2"),
        ("BACKOFF", "STARTING", "3"),
        ("FATAL", "BACKOFF", None),
    ]
    # A command that cannot be found fails before any fork: BACKOFF at once, same counting.
    info = sv.wait_state("nocmd", "FATAL")
    assert info["spawnerr"] == "can't find command '/nonexistent/vigil-test-command'"
    assert state_events(events, "nocmd") == [
        ("STARTING", "STOPPED", "0"),
        ("BACKOFF", "STARTING", "1"),
        ("STARTING", "BACKOFF", "1"),
        ("BACKOFF", "STARTING", "2"),
        ("FATAL", "BACKOFF", None),
    ]
    assert spawn_count(sv, "nocmd") == 0
    spawns = times_of(sv, r"^spawned: 'dies' with pid \d+$")
    assert len(spawns) == 3, sv.log_text()
    first, second = spawns[1] - spawns[0], spawns[2] - spawns[1]
    if core == "vigild":
        # dies at +0.2, waits 1 s; dies at +1.4, waits 2 s -> spawns at 0, 1.2, 3.4.
        assert abs(first - 1.2) <= 0.3, spawns
        assert abs(spawns[2] - spawns[0] - 3.4) <= 0.3, spawns
    else:
        # Same delays, but every step may be up to ~1 s late (reap and retry on a 1 s poll).
        assert 1.1 <= first <= 1.2 + 1.5, spawns
        assert 2.1 <= second <= 2.2 + 1.5, spawns
    log = sv.log_text()
    assert log.count("spawnerr: can't find command '/nonexistent/vigil-test-command'") == 2, log
    assert "gave up: nocmd entered FATAL state, too many start retries too quickly" in log
    assert log.count("exited: dies (exit status 0; not expected)") == 3, log
    gave_up = [m for _, m in log_entries(sv) if m.startswith("gave up: dies")]
    assert gave_up == ["gave up: dies entered FATAL state, too many start retries too quickly"]
    assert "success: dies" not in log


def test_exitcodes_and_autorestart(any_core: Factory, tmp_path: Path) -> None:
    here = tmp_path

    def once(name: str, code: int) -> str:
        marker = here / f"{name}.once"
        return (
            f'sh -c "if [ -e {marker} ]; then exec sleep 600; fi; '
            f'touch {marker}; sleep 1.3; exit {code}"'
        )

    body = f"""
[program:expected3]
command = sh -c "sleep 1.3; exit 3"
autorestart = unexpected
exitcodes = 0,3
startsecs = 1

[program:unexpected4]
command = {once("unexpected4", 4)}
autorestart = unexpected
exitcodes = 0,3
startsecs = 1

[program:always]
command = {once("always", 0)}
autorestart = true
startsecs = 1

[program:never]
command = sh -c "sleep 1.3; exit 4"
autorestart = false
startsecs = 1

[program:killed]
command = sleep 600
autorestart = unexpected
exitcodes = 0
startsecs = 1
"""
    sv = any_core(body)
    names = ("unexpected4", "always", "killed")
    first_pids = {n: sv.wait_state(n, "RUNNING")["pid"] for n in names}
    # A death by signal is never expected (status -1): always restarted by `unexpected`.
    os.kill(first_pids["killed"], signal.SIGKILL)
    for name in names:
        sv.wait_for(functools.partial(respawned, sv, name), 10, f"{name} to be respawned")
        info = sv.wait_state(name, "RUNNING")
        assert info["pid"] != first_pids[name]
    for name, status in (("expected3", 3), ("never", 4)):
        info = sv.wait_state(name, "EXITED")
        assert info["exitstatus"] == status
    # Give an (incorrect) restart of the EXITED ones time to happen: > one supervisord loop.
    time.sleep(1.5)
    for name in ("expected3", "never"):
        assert sv.process_info(name)["statename"] == "EXITED"
        assert spawn_count(sv, name) == 1
    log = sv.log_text()
    assert "exited: expected3 (exit status 3; expected)" in log
    assert "exited: unexpected4 (exit status 4; not expected)" in log
    assert "exited: always (exit status 0; expected)" in log
    assert "exited: never (exit status 4; not expected)" in log
    assert "exited: killed (terminated by SIGKILL; not expected)" in log
    assert spawn_count(sv, "unexpected4") == spawn_count(sv, "always") == 2
    assert spawn_count(sv, "killed") == 2


def test_exitstatus_is_cleared_when_respawned(any_core: Factory) -> None:
    sv = any_core("[program:killed]\ncommand = sleep 600\nstartsecs = 0\n")
    pid = sv.wait_state("killed", "RUNNING")["pid"]
    os.kill(pid, signal.SIGKILL)
    sv.wait_for(functools.partial(respawned, sv, "killed"), 10, "killed to be respawned")
    info = sv.wait_state("killed", "RUNNING")
    assert info["pid"] != pid
    assert info["exitstatus"] == 0


def test_exitstatus_is_not_set_by_a_too_quick_exit(any_core: Factory) -> None:
    sv = any_core('[program:quick1]\ncommand = sh -c "exit 1"\nstartsecs = 1\nstartretries = 0\n')
    info = sv.wait_state("quick1", "FATAL")
    assert "exited: quick1 (exit status 1; not expected)" in sv.log_text()
    assert info["exitstatus"] == 0


def test_priorities_start_order_and_group_by_group_shutdown(
    any_core: Factory, tmp_path: Path
) -> None:
    progs = write_progs(tmp_path)
    body = f"""
[program:a_high]
command = {progs} trap-slow
priority = 300
startsecs = 1

[group:b_mid]
programs = m1,m2
priority = 200

[program:m1]
command = sleep 600
priority = 200
startsecs = 1

[program:m2]
command = {progs} trap-slow
priority = 200
startsecs = 1

[program:z_low]
command = sleep 600
priority = 100
startsecs = 1
""" + stamp_listener(tmp_path, "listener")  # an [eventlistener:x] has priority -1
    sv = any_core(body)
    for name in ("a_high", "b_mid:m1", "b_mid:m2", "z_low", "listener"):
        sv.wait_state(name, "RUNNING")
    spawned = [
        m.group(1) for _, msg in log_entries(sv) if (m := re.match(r"spawned: '(\S+)'", msg))
    ]
    assert spawned == ["listener", "z_low", "m1", "m2", "a_high"]
    sv.proc.send_signal(signal.SIGTERM)
    assert sv.proc.wait(20) == 0
    stopped = [
        (t, m.group(1)) for t, msg in log_entries(sv) if (m := re.match(r"stopped: (\S+) ", msg))
    ]
    names = [n for _, n in stopped]
    # Highest priority number first, one group at a time: a_high needs 0.5 s to exit and
    # m2 too, so a core that did not wait for each group would stop z_low first.
    assert names[0] == "a_high", stopped
    assert sorted(names[1:3]) == ["m1", "m2"], stopped
    assert names[3:] == ["z_low", "listener"], stopped
    when = {n: t for t, n in stopped}
    (term,) = times_of(sv, r"^received SIGTERM indicating exit request$")
    assert when["a_high"] - term >= 0.45, (term, stopped)
    assert when["m2"] - when["a_high"] >= 0.45, stopped
    assert when["z_low"] >= when["m2"], stopped


def test_numprocs_naming_and_heterogeneous_group(any_core: Factory) -> None:
    body = """
[program:w]
command = sleep 600
numprocs = 3
numprocs_start = 5
process_name = %(program_name)s_%(process_num)02d
startsecs = 0

[group:x]
programs = p1,p2

[program:p1]
command = sleep 600
startsecs = 0

[program:p2]
command = sleep 600
startsecs = 0
"""
    sv = any_core(body)
    for name in ("w:w_05", "w:w_06", "w:w_07", "x:p1", "x:p2"):
        sv.wait_state(name, "RUNNING")
    rpc = sv.rpc().supervisor
    infos = rpc.getAllProcessInfo()
    assert sorted((i["group"], i["name"]) for i in infos) == [
        ("w", "w_05"),
        ("w", "w_06"),
        ("w", "w_07"),
        ("x", "p1"),
        ("x", "p2"),
    ]
    p1 = rpc.getProcessInfo("x:p1")
    assert (p1["group"], p1["name"]) == ("x", "p1")
    assert rpc.stopProcess("x:p1") is True
    assert rpc.getProcessInfo("x:p1")["statename"] == "STOPPED"
    assert rpc.getProcessInfo("x:p2")["statename"] == "RUNNING"
    with pytest.raises(xmlrpc.client.Fault) as exc:
        rpc.getProcessInfo("p1")
    assert exc.value.faultCode == 10  # BAD_NAME: p1 is only reachable as x:p1
    assert rpc.startProcess("x:p1") is True
    assert rpc.getProcessInfo("x:p1")["statename"] == "RUNNING"


def test_waiting_for_stop_and_die_reports(any_core: Factory, tmp_path: Path) -> None:
    """supervisord's INFO lines while a stop waits: ``waiting for x to stop`` at once and every
    2 s for a ``wait=True`` stop, ``waiting for x, y to die`` at once and every 3 s in a
    shutdown."""
    progs = write_progs(tmp_path)
    body = f"""
[program:slow]
command = {progs} ignore-term
stopwaitsecs = 3
startsecs = 1

[program:slow2]
command = {progs} ignore-term
stopwaitsecs = 4
startsecs = 1
"""
    sv = any_core(body, loglevel="info")
    sv.wait_state("slow", "RUNNING")
    sv.wait_state("slow2", "RUNNING")
    assert sv.rpc().supervisor.stopProcess("slow") is True
    log = sv.log_text()
    assert 2 <= log.count("INFO waiting for slow to stop") <= 3, log
    assert sv.rpc().supervisor.startProcess("slow") is True
    sv.proc.send_signal(signal.SIGTERM)
    sv.proc.wait(15)
    log = sv.log_text()
    reports = [line for line in log.splitlines() if " to die" in line]
    assert len(reports) >= 2, log
    assert reports[0].endswith(
        ("INFO waiting for slow, slow2 to die", "INFO waiting for slow2, slow to die")
    ), reports


def test_stopwaitsecs_sigkill_and_stopasgroup(any_core: Factory, tmp_path: Path, core: str) -> None:
    progs = write_progs(tmp_path)
    body = f"""
[program:stubborn]
command = {progs} ignore-term
stopwaitsecs = 1
startsecs = 1

[program:tree]
command = sh -c "sleep 600 & sleep 600"
stopasgroup = true
startsecs = 1

[program:sigrec]
command = {progs} record-signal {tmp_path / "sigrec.txt"}
stopsignal = usr1
startsecs = 1
"""
    sv = any_core(body)
    pid = sv.wait_state("stubborn", "RUNNING")["pid"]
    tree_pid = sv.wait_state("tree", "RUNNING")["pid"]
    sv.wait_for(lambda: len(descendants(tree_pid)) >= 1, 5, "tree's background sleep")
    below = descendants(tree_pid)
    with killing_leftovers(below | {tree_pid}):
        started = time.monotonic()
        assert sv.rpc().supervisor.stopProcess("stubborn") is True
        elapsed = time.monotonic() - started
        assert sv.process_info("stubborn")["statename"] == "STOPPED"
        assert not is_alive(pid)
        if core == "vigild":
            assert 0.9 <= elapsed <= 1.5, elapsed
        else:
            assert 0.9 <= elapsed <= 4.0, elapsed
        log = sv.log_text()
        assert f"killing 'stubborn' ({pid}) with SIGKILL" in log
        assert "stopped: stubborn (terminated by SIGKILL)" in log

        assert sv.rpc().supervisor.stopProcess("tree") is True
        sv.wait_for(
            lambda: not any(is_alive(p) for p in below | {tree_pid}),
            5,
            "the whole process group of tree to die",
        )
        assert "stopped: tree (terminated by SIGTERM)" in sv.log_text()

    # stopsignal (a name in any case, without SIG) is what the child gets.
    sv.wait_state("sigrec", "RUNNING")
    assert sv.rpc().supervisor.stopProcess("sigrec") is True
    assert (tmp_path / "sigrec.txt").read_text() == "SIGUSR1"
    assert "stopped: sigrec (exit status 0)" in sv.log_text()


# ---------------------------------------------------------------------------------------------
# spawning environment and logs


def test_child_environment_directory_and_umask(any_core: Factory, tmp_path: Path) -> None:
    progs = write_progs(tmp_path)
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    report = tmp_path / "env.json"
    body = f"""
[group:g]
programs = envprobe

[program:envprobe]
command = {progs} env {report}
directory = {workdir}
umask = 027
environment = VIGIL_A="hello world",VIGIL_B=2
autorestart = false
startsecs = 0
"""
    sv = any_core(body)
    sv.wait_state("g:envprobe", "EXITED")
    data = json.loads(report.read_text())
    env = data["env"]
    assert env["SUPERVISOR_ENABLED"] == "1"
    assert env["SUPERVISOR_PROCESS_NAME"] == "envprobe"
    assert env["SUPERVISOR_GROUP_NAME"] == "g"
    assert env["SUPERVISOR_SERVER_URL"] == f"unix://{sv.sock}"
    assert env["VIGIL_A"] == "hello world"
    assert env["VIGIL_B"] == "2"
    assert data["cwd"] == str(workdir)
    assert data["umask"] == 0o027
    assert (workdir / "created-by-child").stat().st_mode & 0o777 == 0o640


def test_child_logs_auto_named_redirect_rotation_and_capture(
    any_core: Factory, tmp_path: Path
) -> None:
    progs = write_progs(tmp_path)
    body = f"""
[program:autolog]
command = {progs} say auto-out
startsecs = 0

[program:named]
command = {progs} say named-out
stdout_logfile = {tmp_path / "named.log"}
startsecs = 0

[program:merged]
command = {progs} both
redirect_stderr = true
startsecs = 0

[program:rotating]
command = {progs} chatter
stdout_logfile = {tmp_path / "rot.log"}
stdout_logfile_maxbytes = 1KB
stdout_logfile_backups = 2
autorestart = false
startsecs = 0

[program:capture]
command = {progs} capture
stdout_logfile = {tmp_path / "capture.log"}
stdout_capture_maxbytes = 1KB
startsecs = 0

[eventlistener:comm]
command = {VIGIL_LISTENER} --plugins log
events = PROCESS_COMMUNICATION
stdout_logfile = NONE
stderr_logfile = {tmp_path / "comm.err"}
"""
    sv = any_core(body)

    # AUTO: a file in childlogdir named after process, channel and identifier.
    sv.wait_for(lambda: "auto-out\n" in sv.child_log("autolog"), 10, "autolog output")
    info = sv.process_info("autolog")
    auto = Path(info["stdout_logfile"])
    assert auto.parent == tmp_path
    assert re.fullmatch(r"autolog-stdout---vigiltest-\w+\.log", auto.name), auto.name
    assert auto.read_text() == "auto-out\n"
    assert re.fullmatch(
        r"autolog-stderr---vigiltest-\w+\.log", Path(info["stderr_logfile"]).name
    ), info

    # A named file.
    sv.wait_for(lambda: "named-out\n" in sv.child_log("named"), 10, "named output")
    assert sv.process_info("named")["stdout_logfile"] == str(tmp_path / "named.log")
    assert (tmp_path / "named.log").read_text() == "named-out\n"

    # redirect_stderr: both streams in the stdout log, no stderr log at all.
    sv.wait_for(lambda: "to-stderr\n" in sv.child_log("merged"), 10, "merged stderr")
    assert sv.child_log("merged") == "to-stdout\nto-stderr\n"
    assert sv.process_info("merged")["stderr_logfile"] == ""
    assert not list(tmp_path.glob("merged-stderr---*"))

    # Rotation at 1 KB with 2 backups: .1 and .2, never .3, no line lost in what is kept.
    sv.wait_state("rotating", "EXITED")
    rot = tmp_path / "rot.log"
    assert (tmp_path / "rot.log.1").exists() and (tmp_path / "rot.log.2").exists()
    assert not (tmp_path / "rot.log.3").exists()
    for backup in ("rot.log.1", "rot.log.2"):
        size = (tmp_path / backup).stat().st_size
        assert 0 < size <= 1024 + 300, (backup, size)
    kept = "".join(
        (tmp_path / n).read_text() for n in ("rot.log.2", "rot.log.1", "rot.log") if n
    ).splitlines()
    numbers = [int(line.split()[0].removeprefix("chatter-")) for line in kept]
    assert numbers == list(range(numbers[0], 20)), numbers
    assert rot.exists()

    # Capture mode: the block becomes one PROCESS_COMMUNICATION_STDOUT, not log text.
    err = tmp_path / "comm.err"

    def comm_records() -> list[dict[str, Any]]:
        return [r for r in jsonl(err) if r["eventname"] == "PROCESS_COMMUNICATION_STDOUT"]

    sv.wait_for(lambda: bool(comm_records()), 15, "PROCESS_COMMUNICATION_STDOUT at the listener")
    (record,) = comm_records()
    capture = sv.process_info("capture")
    assert record["processname"] == "capture"
    assert record["groupname"] == "capture"
    assert record["pid"] == capture["pid"]
    assert record["data"] == "captured-payload"
    sv.wait_for(lambda: "bytes\n" in sv.child_log("capture"), 5, "capture's trailing output")
    text = (tmp_path / "capture.log").read_text()
    assert text == "before\n\nafter-the-block-with-enough-bytes\n"
    assert "captured-payload" not in text and "XSUPERVISOR" not in text


# ---------------------------------------------------------------------------------------------
# signals to the core


def test_sighup_reloads_changed_config_in_same_process(any_core: Factory) -> None:
    sv = any_core("[program:one]\ncommand = sleep 600\nstartsecs = 0\n")
    old = sv.wait_state("one", "RUNNING")["pid"]
    assert sv.rpc().supervisor.getPID() == sv.pid
    sv.conf.write_text(
        sv.conf.read_text() + "\n[program:two]\ncommand = sleep 600\nstartsecs = 0\n"
    )
    sv.proc.send_signal(signal.SIGHUP)
    sv.wait_state("two", "RUNNING", timeout=15)
    new = sv.wait_state("one", "RUNNING")["pid"]
    assert new != old
    assert not is_alive(old)
    assert sv.proc.poll() is None
    rpc = sv.rpc().supervisor
    assert rpc.getPID() == sv.pid
    assert sorted(i["name"] for i in rpc.getAllProcessInfo()) == ["one", "two"]
    assert "received SIGHUP indicating restart request" in sv.log_text()


def test_sigusr2_reopens_logs_and_sigterm_exits_cleanly(any_core: Factory, tmp_path: Path) -> None:
    progs = write_progs(tmp_path)
    talk = tmp_path / "talk.log"
    sv = any_core(
        f"[program:talker]\ncommand = {progs} talk\nstdout_logfile = {talk}\nstartsecs = 0\n"
    )
    sv.wait_for(lambda: talk.exists() and talk.read_text().count("\n") >= 3, 10, "talker output")
    moved = tmp_path / "talk.log.moved"
    talk.rename(moved)
    main_moved = tmp_path / "supervisord.log.moved"
    sv.logfile.rename(main_moved)
    sv.proc.send_signal(signal.SIGUSR2)
    sv.wait_for(lambda: talk.exists() and talk.read_text().count("\n") >= 3, 10, "a new talk.log")
    time.sleep(0.2)

    def numbers(path: Path) -> list[int]:
        return [int(x.removeprefix("line-")) for x in path.read_text().split()]

    before, after = numbers(moved), numbers(talk)
    assert before and after
    assert max(before) < min(after), (before, after)
    assert after == list(range(after[0], after[0] + len(after)))
    # The main log is reopened too: the USR2 line is the last one in the old file.
    assert "received SIGUSR2 indicating log reopen request" in main_moved.read_text()
    sv.wait_for(sv.logfile.exists, 5, "a new main log")
    assert sv.proc.poll() is None

    pidfile = tmp_path / "supervisord.pid"
    assert pidfile.read_text().strip() == str(sv.pid)
    assert sv.sock.exists()
    child = sv.process_info("talker")["pid"]
    sv.proc.send_signal(signal.SIGTERM)
    assert sv.proc.wait(15) == 0
    assert not pidfile.exists()
    assert not sv.sock.exists()
    assert not is_alive(child)
    assert "received SIGTERM indicating exit request" in sv.log_text()
    assert "received SIGTERM" not in main_moved.read_text()


# ---------------------------------------------------------------------------------------------
# vigild only: configuration errors


def _bad_conf(tmp_path: Path, body: str) -> Path:
    conf = tmp_path / "bad.conf"
    conf.write_text(
        f"""[supervisord]
nodaemon = true
logfile = {tmp_path / "vigild.log"}
pidfile = {tmp_path / "vigild.pid"}
childlogdir = {tmp_path}

[program:marker]
command = touch {tmp_path / "spawned-marker"}
startsecs = 0
autorestart = false

{body}
"""
    )
    return conf


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        pytest.param(
            "[program:a]\ncommand = sleep 1\nautostart = maybe\n",
            ["[program:a]", "autostart", "maybe"],
            id="bad-boolean",
        ),
        pytest.param(
            "[eventlistener:l]\ncommand = cat\nevents = PROCESS_STATE,NO_SUCH_EVENT\n",
            ["[eventlistener:l]", "events", "NO_SUCH_EVENT"],
            id="unknown-event",
        ),
        pytest.param(
            "[program:a]\nautostart = true\n",
            ["[program:a]", "command"],
            id="missing-command",
        ),
        pytest.param(
            "[program:a]\ncommand = sleep 1\nnumprocs = 2\n",
            ["[program:a]", "process_name", "%(program_name)s", "%(process_num)", "numprocs"],
            id="numprocs-without-process_num",
        ),
    ],
)
def test_vigild_config_error_exits_2_with_one_line(
    tmp_path: Path, body: str, needles: list[str]
) -> None:
    conf = _bad_conf(tmp_path, body)
    result = subprocess.run(
        [VIGILD, "-n", "-c", str(conf)],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=10,
    )
    time.sleep(0.1)  # a `touch` it should not have spawned would have run by now
    assert result.returncode == 2, result
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    (line,) = errors
    for needle in [str(conf), *needles]:
        assert needle in line, (needle, line)
    assert not (tmp_path / "spawned-marker").exists()
    assert not (tmp_path / "vigild.pid").exists()


@pytest.mark.parametrize("ident", ["my box", "a/b", "x" * 101])
def test_vigild_identifier_from_the_command_line_is_checked_too(tmp_path: Path, ident: str) -> None:
    conf = _bad_conf(tmp_path, "[program:a]\ncommand = sleep 1\n")
    result = subprocess.run(
        [VIGILD, "-n", "-c", str(conf), "-i", ident],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 2, result
    assert result.stderr.startswith(f"Error: -i/--identifier {ident!r}: "), result.stderr
    assert not (tmp_path / "vigild.pid").exists()


# ---------------------------------------------------------------------------------------------
# vigild only: deliberate improvements over supervisord (reference §9 item 9)


def test_vigild_exited_event_and_respawn_within_100ms(
    supervisor_factory: Factory, tmp_path: Path
) -> None:
    progs = write_progs(tmp_path)
    exit_stamp = tmp_path / "quick.exit"
    body = f"""
[program:quick]
command = {progs} exit-once {tmp_path / "quick.once"} {exit_stamp}
autostart = false
autorestart = true
startsecs = 0
""" + stamp_listener(tmp_path, "stamp")
    sv = supervisor_factory(body, command=VIGILD_COMMAND)
    events_path = tmp_path / "stamp.jsonl"
    wait_listener_running(sv, "stamp", events_path)
    assert sv.rpc().supervisor.startProcess("quick", False) is True

    def arrived(state: str, from_state: str) -> list[dict[str, Any]]:
        return [
            r
            for r in jsonl(events_path)
            if r.get("processname") == "quick"
            and r["eventname"] == f"PROCESS_STATE_{state}"
            and r["from_state"] == from_state
        ]

    sv.wait_for(lambda: bool(arrived("STARTING", "EXITED")), 10, "quick's respawn event")
    exited_at = float(exit_stamp.read_text())
    (exited,) = arrived("EXITED", "RUNNING")
    (respawn,) = arrived("STARTING", "EXITED")
    assert exited["expected"] == "1"
    assert 0 <= exited["t"] - exited_at < 0.1, exited["t"] - exited_at
    assert 0 <= respawn["t"] - exited_at < 0.1, respawn["t"] - exited_at
    sv.wait_state("quick", "RUNNING")
    (exit_line,) = times_of(sv, r"^exited: quick \(exit status 0; expected\)$")
    spawns = times_of(sv, r"^spawned: 'quick' with pid \d+$")
    assert len(spawns) == 2
    assert 0 <= spawns[1] - exit_line < 0.1, (exit_line, spawns)


def test_vigild_backoff_stopped_by_request_restarts_with_tries_0(
    supervisor_factory: Factory, tmp_path: Path
) -> None:
    body = """
[program:flaky]
command = sh -c "sleep 0.1; exit 1"
autostart = false
startsecs = 1
startretries = 5
""" + stamp_listener(tmp_path, "stamp")
    sv = supervisor_factory(body, command=VIGILD_COMMAND)
    events_path = tmp_path / "stamp.jsonl"
    wait_listener_running(sv, "stamp", events_path)
    rpc = sv.rpc().supervisor
    assert rpc.startProcess("flaky", False) is True
    sv.wait_state("flaky", "BACKOFF")
    assert rpc.stopProcess("flaky") is True
    assert sv.process_info("flaky")["statename"] == "STOPPED"
    assert rpc.startProcess("flaky", False) is True

    def flaky() -> list[tuple[str, str, str | None]]:
        return state_events(jsonl(events_path), "flaky")

    sv.wait_for(lambda: len(flaky()) >= 5, 10, "flaky's second BACKOFF at the listener")
    assert flaky()[:5] == [
        ("STARTING", "STOPPED", "0"),
        ("BACKOFF", "STARTING", "1"),
        ("STOPPED", "BACKOFF", None),
        ("STARTING", "STOPPED", "0"),  # supervisord 4.3 says tries:1 here
        ("BACKOFF", "STARTING", "1"),
    ]


def test_vigild_first_spawn_has_no_startup_delay(supervisor_factory: Factory) -> None:
    sv = supervisor_factory(
        "[program:first]\ncommand = sleep 600\nstartsecs = 0\n", command=VIGILD_COMMAND
    )
    sv.wait_state("first", "RUNNING")
    (started,) = times_of(sv, r"started with pid \d+$")
    (spawned,) = times_of(sv, r"^spawned: 'first' with pid \d+$")
    assert 0 <= spawned - started < 0.5, spawned - started


def test_vigild_survives_sigusr1(supervisor_factory: Factory) -> None:
    sv = supervisor_factory(
        "[program:steady]\ncommand = sleep 600\nstartsecs = 0\n", command=VIGILD_COMMAND
    )
    child = sv.wait_state("steady", "RUNNING")["pid"]
    sv.proc.send_signal(signal.SIGUSR1)
    time.sleep(0.3)
    assert sv.proc.poll() is None
    assert sv.rpc().supervisor.getState()["statename"] == "RUNNING"
    info = sv.process_info("steady")
    assert (info["statename"], info["pid"]) == ("RUNNING", child)
    assert is_alive(child)


def test_vigild_sigkilled_leaves_no_orphan(supervisor_factory: Factory) -> None:
    """supervisord's children outlive a SIGKILLed supervisord (#168); vigild's do not."""
    sv = supervisor_factory(
        "[program:a]\ncommand = sleep 600\nstartsecs = 0\n"
        "[program:b]\ncommand = sleep 600\nstartsecs = 0\nnumprocs = 2\n"
        "process_name = b_%(process_num)d\n",
        command=VIGILD_COMMAND,
    )
    pids = [int(sv.wait_state(n, "RUNNING")["pid"]) for n in ("a", "b:b_0", "b:b_1")]
    os.kill(sv.pid, signal.SIGKILL)
    sv.proc.wait(10)
    deadline = time.monotonic() + 5
    alive = pids
    try:
        while alive and time.monotonic() < deadline:
            alive = [p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)]
            time.sleep(0.02)
        assert alive == [], f"orphans left running: {alive}"
    finally:
        for pid in alive:  # only when the assertion failed: do not leave them behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return False


def test_vigild_daemonizes_without_n_and_writes_its_pidfile(tmp_path: Path) -> None:
    sock = Path(tempfile.mkdtemp(prefix="vd", dir="/tmp")) / "d.sock"
    conf = tmp_path / "d.conf"
    conf.write_text(
        render_config(tmp_path, sock, "[program:a]\ncommand = sleep 600\nstartsecs = 0\n").replace(
            "nodaemon = true", "nodaemon = false"
        )
    )
    starter = subprocess.run([VIGILD, "-c", str(conf)], capture_output=True, timeout=10)
    assert starter.returncode == 0, starter.stderr
    pidfile = tmp_path / "supervisord.pid"
    daemon = 0
    try:
        deadline = time.monotonic() + 10
        while not (pidfile.exists() and pidfile.read_text().strip()):
            assert time.monotonic() < deadline, "no pidfile"
            time.sleep(0.02)
        daemon = int(pidfile.read_text())
        assert daemon != os.getpid()
        while True:
            try:
                state = unix_proxy(sock).supervisor.getState()
                break
            except OSError:
                assert time.monotonic() < deadline, "daemon not serving"
                time.sleep(0.05)
        assert state["statename"] == "RUNNING"
        # detached: its own session, and not our child
        assert os.getsid(daemon) == daemon
    finally:
        if daemon:
            with contextlib.suppress(ProcessLookupError):
                os.kill(daemon, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while Path(f"/proc/{daemon}").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        shutil.rmtree(sock.parent, ignore_errors=True)
    assert not Path(f"/proc/{daemon}").exists()
    assert not pidfile.exists() and not sock.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="user= needs the core to run as root")
def test_user_drops_privileges_for_the_child(any_core: Factory) -> None:
    sv = any_core(
        "[program:who]\ncommand = sh -c 'id -u; id -g; sleep 600'\nuser = nobody\nstartsecs = 0\n"
    )
    sv.wait_state("who", "RUNNING")
    sv.wait_for(lambda: len(sv.child_log("who").split()) >= 2, 5, "id output")
    uid, gid = sv.child_log("who").split()[:2]
    nobody = pwd.getpwnam("nobody")
    assert (int(uid), int(gid)) == (nobody.pw_uid, nobody.pw_gid)


def test_vigild_tick_5_is_aligned_and_on_time(supervisor_factory: Factory) -> None:
    body = f"""
[eventlistener:ticks]
command = {VIGIL_LISTENER} --plugins log
events = TICK_5
startsecs = 0
stdout_logfile = NONE
stderr_logfile = %(here)s/ticks.err
"""
    sv = supervisor_factory(body, command=VIGILD_COMMAND)
    err = sv.dir / "ticks.err"
    deadline = time.monotonic() + 12
    seen: list[tuple[int, float]] = []
    while len(seen) < 2 and time.monotonic() < deadline:
        if err.exists():
            whens = [
                json.loads(line)["when"]
                for line in err.read_text().splitlines()
                if line.startswith("{")
            ]
            for when in whens[len(seen) :]:
                seen.append((when, time.time()))
        time.sleep(0.005)
    assert len(seen) == 2, "no two TICK_5 within 12 s"
    (w1, _), (w2, t2) = seen
    assert w1 % 5 == 0 and w2 == w1 + 5  # the slice boundary, one per slice
    assert 0 <= t2 - w2 < 0.25, f"TICK_5 arrived {t2 - w2:.3f}s after its boundary"


def test_vigild_backpressure_delivers_every_communication_event(
    supervisor_factory: Factory,
) -> None:
    """2,000 PROCESS_COMMUNICATION events into a pool of buffer_size=10: none dropped.

    vigild stops reading the child's pipe while the pool is full (supervisord drops).
    """
    chatty = Path(__file__).resolve().parents[2] / "bench" / "programs" / "chatty.py"
    body = f"""
[program:chatty]
command = {PYTHON} {chatty} --n 2000 --delay 1
stdout_capture_maxbytes = 1KB
stdout_logfile = NONE

[eventlistener:comm]
command = {VIGIL_LISTENER} --plugins log
events = PROCESS_COMMUNICATION
buffer_size = 10
stdout_logfile = NONE
stderr_logfile = %(here)s/comm.err
"""
    sv = supervisor_factory(body, command=VIGILD_COMMAND)
    err = sv.dir / "comm.err"

    def count() -> int:
        if not err.exists():
            return 0
        return sum(1 for line in err.read_text().splitlines() if line.startswith("{"))

    sv.wait_for(lambda: count() >= 2000, 30, "2,000 PROCESS_COMMUNICATION events")
    assert count() == 2000
    assert "event buffer overflowed" not in sv.log_text()
