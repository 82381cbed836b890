"""vigilctl against the real supervisorctl 4.3, on supervisord and on vigild.

Every check runs the same command line through both clients against the same core and
asserts (1) both print the same thing and exit with the same status, then (2) that this is
what supervisord 4.3 answers (the expected text below was taken from supervisorctl against
supervisord). Step (1) pins vigilctl; step (2) pins the core. Where vigild answers
differently from supervisord the check is marked ``xfail(strict=True)`` *just before step
(2)*, with the exact difference in :data:`VIGILD_DIFFERENCES`; a client mismatch still fails.

Only what legitimately differs between runs is normalised: pids, uptimes, stop dates, the
text after ``error: `` (supervisorctl prints a traceback summary with its own file and
line numbers there) and the program name in usage errors.

One core per module and per core kind (``shared``) carries most checks; each check puts
the processes it touches into the state it needs through XML-RPC first, once per client.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from manager import vigilctl
from manager.rpcclient import SupervisorClient
from tests.support.supervisor import (
    CORES,
    PYTHON,
    Supervisor,
    core_command,
    render_config,
    start_supervisor,
)

pytestmark = pytest.mark.integration

Factory = Callable[..., Supervisor]

SUPERVISORCTL = [PYTHON, "-m", "supervisor.supervisorctl"]
VIGILCTL = [str(Path(PYTHON).parent / "vigilctl")]
TOOLS = {"supervisorctl": SUPERVISORCTL, "vigilctl": VIGILCTL}
CTL_TIMEOUT = 30.0

#: key -> exact description of how vigild's answer differs from supervisord 4.3's.
VIGILD_DIFFERENCES: dict[str, str] = {}

# Fault codes used for setting up states (reference §5.3).
ALREADY_STARTED = 60
NOT_RUNNING = 70

CHILD = """\
import os, signal, sys, time

signal.signal(signal.SIGHUP, lambda *_: os.write(1, b"got HUP\\n"))
mode = sys.argv[1]
if mode == "childutils":
    from supervisor import childutils

    print(childutils.getRPCInterface(os.environ).supervisor.getState(), flush=True)
elif mode == "talker":
    print("".join(f"line {i}\\n" for i in range(1, 41)), end="", flush=True)
    print("oops", file=sys.stderr, flush=True)
elif mode == "sleeper":
    print("hello stdout", flush=True)
    print("hello stderr", file=sys.stderr, flush=True)
while mode == "ticker":
    os.write(1, b".")
    time.sleep(0.02)
while True:
    time.sleep(3600)
"""

NOFILE = "/nonexistent/vigil-ctl-test"
#: what runs after start-up, and what ends up FATAL
RUNNING_NAMES = ("childutils", "g:ga", "g:gb", "sleeper", "talker", "ticker")
FAILING = ("fatal", "noexec", "nofile")


def program(name: str, mode: str, script: Path, extra: str = "") -> str:
    # stopwaitsecs = 1: a SIGTERM that lands between supervisord's fork() and exec() is
    # caught by supervisord's own handler in the child and lost; the SIGKILL comes sooner
    return (
        f"[program:{name}]\ncommand = {PYTHON} {script} {mode}\nstartsecs = 0\n"
        f"stopwaitsecs = 1\n{extra}\n"
    )


def body_for(tmp: Path, *, edited: bool = False) -> str:
    """The shared core's programs; ``edited`` adds, changes and removes some groups."""
    script = tmp / "child.py"
    parts = [
        program("childutils", "childutils", script),
        "[program:fatal]\ncommand = sh -c 'sleep 0.3; exit 3'\nstartsecs = 5\n"
        "startretries = 0\nautorestart = false\n",
        program("ga", "sleeper", script),
        program("gb", "sleeper", script, "environment = EDITED=1\n" if edited else ""),
        "[group:g]\nprograms = ga,gb\n",
        program("idle", "sleeper", script, "autostart = false\n" + "startretries = 7\n" * edited),
        # a command that is not executable (the script itself, mode 0644)
        f"[program:noexec]\ncommand = {script}\nstartretries = 0\n",
        program("sleeper", "sleeper", script),
        program("talker", "talker", script),
        # keeps supervisord's loop busy (it polls deferred RPC replies once per wakeup,
        # at least once a second); started first and stopped last
        program("ticker", "ticker", script, "stdout_logfile = NONE\npriority = 1\n"),
    ]
    if not edited:
        parts.append(f"[program:nofile]\ncommand = {NOFILE}\nstartretries = 0\n")
    else:
        parts.append(program("added", "sleeper", script, "autostart = false\n"))
    return "\n".join(parts)


# --- running the clients -------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    out: str
    err: str
    rc: int


def run_tool(tool: str, *args: str, conf: Path | None = None, cwd: Path | None = None) -> Run:
    return run_tools([tool], list(args), conf=conf, cwd=cwd)[tool]


def vigilctl_in_process(argv: list[str]) -> Run:
    """``vigilctl.main(argv)`` with stdout/stderr captured (as UTF-8 streams, like a pipe)."""
    raw_out, raw_err = io.BytesIO(), io.BytesIO()
    out = io.TextIOWrapper(raw_out, encoding="utf-8", newline="\n", write_through=True)
    err = io.TextIOWrapper(raw_err, encoding="utf-8", newline="\n", write_through=True)
    with out, err, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = vigilctl.main(argv)
        return Run(raw_out.getvalue().decode(), raw_err.getvalue().decode(), rc)


def run_tools(
    tools: list[str], args: list[str], *, conf: Path | None = None, cwd: Path | None = None
) -> dict[str, Run]:
    """Run ``args`` through each of ``tools`` at the same time.

    supervisorctl always runs as a subprocess. vigilctl runs in this process (its
    ``main()``, what the console script calls) unless ``cwd`` matters, which saves an
    interpreter start per check; the console script itself is exercised by the
    follow-mode and usage tests.
    """
    config = ["-c", str(conf)] if conf is not None else []
    procs = {
        tool: subprocess.Popen(
            [*TOOLS[tool], *config, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
        )
        for tool in tools
        if tool != "vigilctl" or cwd is not None
    }
    runs: dict[str, Run] = {}
    try:
        if "vigilctl" in tools and "vigilctl" not in procs:
            runs["vigilctl"] = vigilctl_in_process([*config, *args])
        for tool, proc in procs.items():
            out, err = proc.communicate(timeout=CTL_TIMEOUT)
            runs[tool] = Run(out, err, proc.returncode)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return runs


_UPTIME = re.compile(r"pid \d+, uptime (?:\d+ days?, )?\d+:\d\d:\d\d")
_DATE = re.compile(r"\b[A-Z][a-z]{2} \d\d \d\d:\d\d [AP]M\b")
_ERROR = re.compile(r"^error: .*$", re.MULTILINE)
_PROG = re.compile(r"^For help, use \S+ -h$", re.MULTILINE)


def normalise(text: str) -> str:
    text = _UPTIME.sub("pid <PID>, uptime <UPTIME>", text)
    text = _DATE.sub("<DATE>", text)
    text = _ERROR.sub("error: <details>", text)
    return _PROG.sub("For help, use <prog> -h", text)


def known_difference(request: pytest.FixtureRequest, core: str | None, key: str | None) -> None:
    if key is not None and core == "vigild" and key in VIGILD_DIFFERENCES:
        request.applymarker(pytest.mark.xfail(strict=True, reason=VIGILD_DIFFERENCES[key]))


def compare(
    request: pytest.FixtureRequest,
    core: str | None,
    args: list[str],
    expected: str,
    rc: int,
    *,
    conf: Path | None,
    before: Callable[[], None] | None = None,
    known: str | None = None,
    cwd: Path | None = None,
    any_order: bool = False,
    err: str = "",
) -> None:
    """Run ``args`` through both clients (``before`` each) and check output and status.

    ``core`` is ``"supervisord"``, ``"vigild"`` or ``None`` (no core involved).

    ``any_order`` compares the output lines sorted: supervisord reports the results of
    ``stop g:*``, ``start all``... in the order the processes finished.
    """
    if before is None:  # nothing to set up: both clients at once
        raw = run_tools(list(TOOLS), args, conf=conf, cwd=cwd)
    else:
        raw = {}
        for tool in TOOLS:
            before()
            raw[tool] = run_tool(tool, *args, conf=conf, cwd=cwd)
    runs: dict[str, tuple[str, str, int]] = {}
    for tool, run in raw.items():
        out = normalise(run.out)
        if any_order:
            out = "".join(sorted(out.splitlines(keepends=True)))
        runs[tool] = (out, normalise(run.err), run.rc)
    if any_order:
        expected = "".join(sorted(expected.splitlines(keepends=True)))
    assert runs["vigilctl"] == runs["supervisorctl"], f"clients differ on {args}"
    known_difference(request, core, known)
    assert runs["supervisorctl"] == (expected, err, rc), f"{core} differs on {args}"


# --- the shared core -----------------------------------------------------------------


@dataclass
class Shared:
    core: str
    tmp: Path
    sv: Supervisor

    @property
    def conf(self) -> Path:
        return self.sv.conf

    def rpc(self) -> Any:
        return self.sv.rpc().supervisor

    def write_config(self, body: str) -> None:
        self.conf.write_text(render_config(self.tmp, self.sv.sock, body, loglevel="info"))

    # -- putting processes into a state

    def start(self, *names: str) -> None:
        for name in names:
            try:
                self.rpc().startProcess(name)
            except xmlrpc.client.Fault as e:
                if e.faultCode != ALREADY_STARTED:
                    raise
            self.sv.wait_state(name, "RUNNING")

    def stop(self, *names: str) -> None:
        for name in names:
            try:
                self.rpc().stopProcess(name)
            except xmlrpc.client.Fault as e:
                if e.faultCode != NOT_RUNNING:
                    raise

    def wait_settled(self, *, childutils: bool = True) -> None:
        """Wait for the states the core has after starting on :func:`body_for`.

        ``childutils``: also wait for the childutils program's output. (After a
        ``reload`` supervisord 4.3 leaves its first ``getState()`` call unanswered.)
        """
        for name in FAILING:
            self.sv.wait_state(name, "FATAL")
        for name in RUNNING_NAMES:
            self.sv.wait_state(name, "RUNNING")
        if childutils:
            self.sv.wait_for(
                lambda: "statename" in self.sv.child_log("childutils"), what="childutils output"
            )

    def apply_update(self) -> None:
        """What ``supervisorctl update`` does, through XML-RPC (no client involved)."""
        added, changed, removed = self.rpc().reloadConfig()[0]
        for name in removed:
            self.rpc().stopProcessGroup(name)
            self.rpc().removeProcessGroup(name)
        for name in changed:
            self.rpc().stopProcessGroup(name)
            self.rpc().removeProcessGroup(name)
            self.rpc().addProcessGroup(name)
        for name in added:
            self.rpc().addProcessGroup(name)


@pytest.fixture(scope="module", params=CORES)
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shared]:
    core = str(request.param)
    tmp = tmp_path_factory.mktemp(f"ctl-{core}")
    (tmp / "child.py").write_text(CHILD)
    sv = start_supervisor(
        tmp, body_for(tmp), command=core_command(Path("{conf}"), core), loglevel="info"
    )
    state = Shared(core, tmp, sv)
    try:
        state.wait_settled()
        yield state
    finally:
        state.sv.stop()


@pytest.fixture
def check(request: pytest.FixtureRequest, shared: Shared) -> Callable[..., None]:
    """``check(args, expected, rc, before=None, known=None)`` against the shared core."""

    def run(
        args: list[str],
        expected: str,
        rc: int,
        *,
        before: Callable[[], None] | None = None,
        known: str | None = None,
        any_order: bool = False,
        err: str = "",
    ) -> None:
        compare(
            request,
            shared.core,
            args,
            expected,
            rc,
            conf=shared.conf,
            before=before,
            known=known,
            any_order=any_order,
            err=err,
        )

    return run


Check = Callable[..., None]


def status_line(name: str, state: str, desc: str = "") -> str:
    return f"{name:<33}{state:<10}{desc}\n"


RUNNING = "pid <PID>, uptime <UPTIME>"
FATAL_DESC = "Exited too quickly (process log may have details)"


# --- childutils ----------------------------------------------------------------------


def test_childutils_get_rpc_interface_from_a_child_sees_running(shared: Shared) -> None:
    log = shared.sv.child_log("childutils")
    assert "'statename': 'RUNNING'" in log, log


# --- status --------------------------------------------------------------------------


ALL_STATUS = (
    status_line("childutils", "RUNNING", RUNNING)
    + status_line("fatal", "FATAL", FATAL_DESC)
    + status_line("g:ga", "RUNNING", RUNNING)
    + status_line("g:gb", "RUNNING", RUNNING)
    + status_line("idle", "STOPPED", "Not started")
    + status_line("noexec", "FATAL", "command at '{script}' is not executable")
    + status_line("nofile", "FATAL", f"can't find command '{NOFILE}'")
    + status_line("sleeper", "RUNNING", RUNNING)
    + status_line("talker", "RUNNING", RUNNING)
    + status_line("ticker", "RUNNING", RUNNING)
)


def test_status_all_lists_every_process_and_exits_3_when_some_are_stopped(
    check: Check, shared: Shared
) -> None:
    expected = ALL_STATUS.replace("{script}", str(shared.tmp / "child.py"))
    check(["status"], expected, 3)
    check(["status", "all"], expected, 3)


def test_status_of_a_running_name_exits_0(check: Check) -> None:
    check(["status", "sleeper"], status_line("sleeper", "RUNNING", RUNNING), 0)


def test_status_of_a_group_lists_its_members(check: Check) -> None:
    expected = status_line("g:ga", "RUNNING", RUNNING) + status_line("g:gb", "RUNNING", RUNNING)
    check(["status", "g:*"], expected, 0)
    check(["status", "g:ga"], status_line("g:ga", "RUNNING", RUNNING), 0)


def test_status_of_unknown_names_exits_4(check: Check) -> None:
    check(["status", "nosuch"], "nosuch: ERROR (no such process)\n", 4)
    check(["status", "nosuch:*"], "nosuch: ERROR (no such group)\n", 4)
    check(["status", "g:nosuch"], "g:nosuch: ERROR (no such process)\n", 4)
    check(
        ["status", "sleeper", "nosuch"],
        "nosuch: ERROR (no such process)\n" + status_line("sleeper", "RUNNING", RUNNING),
        4,
    )


def test_status_of_a_stopped_name_exits_3_and_overrides_4(check: Check) -> None:
    check(["status", "idle"], status_line("idle", "STOPPED", "Not started"), 3)
    check(
        ["status", "nosuch", "idle"],
        "nosuch: ERROR (no such process)\n" + status_line("idle", "STOPPED", "Not started"),
        3,
    )


def test_status_of_a_fatal_program_exits_3(check: Check) -> None:
    check(["status", "fatal"], status_line("fatal", "FATAL", FATAL_DESC), 3)


# --- start ---------------------------------------------------------------------------


def test_start_a_stopped_name(check: Check, shared: Shared) -> None:
    check(["start", "idle"], "idle: started\n", 0, before=lambda: shared.stop("idle"))
    shared.stop("idle")


def test_start_an_already_started_name_exits_0(check: Check, shared: Shared) -> None:
    check(
        ["start", "sleeper"],
        "sleeper: ERROR (already started)\n",
        0,
        before=lambda: shared.start("sleeper"),
    )


def test_start_missing_names_and_groups(check: Check) -> None:
    check(["start", "nosuch"], "nosuch: ERROR (no such process)\n", 1)
    check(["start", "g:nosuch"], "g:nosuch: ERROR (no such process)\n", 1)
    check(["start", "nosuch:*"], "nosuch: ERROR (no such group)\n", 2)


def test_start_a_missing_or_not_executable_command_exits_1(check: Check) -> None:
    check(["start", "nofile"], "nofile: ERROR (no such file)\n", 1)
    check(["start", "noexec"], "noexec: ERROR (file is not executable)\n", 1)


def test_start_a_program_that_exits_too_quickly_is_spawn_error_exit_7(
    check: Check, shared: Shared
) -> None:
    def fatal() -> None:
        shared.sv.wait_state("fatal", "FATAL")

    check(["start", "fatal"], "fatal: ERROR (spawn error)\n", 7, before=fatal)
    fatal()


def test_start_a_group(check: Check, shared: Shared) -> None:
    check(
        ["start", "g:*"],
        "g:ga: started\ng:gb: started\n",
        0,
        before=lambda: shared.stop("g:ga", "g:gb"),
    )
    check(["start", "g:*"], "", 0)  # only not-running members are started and reported


def test_start_without_a_name_exits_2_with_help(check: Check) -> None:
    check(
        ["start"],
        "Error: start requires a process name\n"
        "start <name>\t\tStart a process\n"
        "start <gname>:*\t\tStart all processes in a group\n"
        "start <name> <name>\tStart multiple processes or groups\n"
        "start all\t\tStart all processes\n",
        2,
    )


# --- stop ----------------------------------------------------------------------------


def test_stop_a_running_name(check: Check, shared: Shared) -> None:
    check(["stop", "sleeper"], "sleeper: stopped\n", 0, before=lambda: shared.start("sleeper"))
    check(["status", "sleeper"], status_line("sleeper", "STOPPED", "<DATE>"), 3)
    shared.start("sleeper")


def test_stop_a_not_running_name_exits_0(check: Check, shared: Shared) -> None:
    check(["stop", "idle"], "idle: ERROR (not running)\n", 0, before=lambda: shared.stop("idle"))


def test_stop_missing_names_and_groups_exit_1(check: Check) -> None:
    check(["stop", "nosuch"], "nosuch: ERROR (no such process)\n", 1)
    check(["stop", "nosuch:*"], "nosuch: ERROR (no such group)\n", 1)


def test_stop_a_group(check: Check, shared: Shared) -> None:
    check(
        ["stop", "g:*"],
        "g:ga: stopped\ng:gb: stopped\n",
        0,
        before=lambda: shared.start("g:ga", "g:gb"),
        any_order=True,
    )
    shared.start("g:ga", "g:gb")


# --- restart -------------------------------------------------------------------------


def test_restart_a_running_name(check: Check, shared: Shared) -> None:
    check(
        ["restart", "sleeper"],
        "sleeper: stopped\nsleeper: started\n",
        0,
        before=lambda: shared.start("sleeper"),
    )


def test_restart_a_not_running_name(check: Check, shared: Shared) -> None:
    check(
        ["restart", "idle"],
        "idle: ERROR (not running)\nidle: started\n",
        0,
        before=lambda: shared.stop("idle"),
    )
    shared.stop("idle")


def test_restart_a_missing_name_exits_1(check: Check) -> None:
    check(
        ["restart", "nosuch"],
        "nosuch: ERROR (no such process)\nnosuch: ERROR (no such process)\n",
        1,
    )


def test_restart_a_group(check: Check, shared: Shared) -> None:
    check(
        ["restart", "g:*"],
        "g:ga: stopped\ng:gb: stopped\ng:ga: started\ng:gb: started\n",
        0,
        before=lambda: shared.start("g:ga", "g:gb"),
        any_order=True,
    )


# --- all -----------------------------------------------------------------------------


def _initial_states(shared: Shared) -> Callable[[], None]:
    def reset() -> None:
        shared.start(*RUNNING_NAMES)
        shared.stop("idle")
        for name in FAILING:
            shared.sv.wait_state(name, "FATAL")

    return reset


STOP_ALL = "".join(f"{name}: stopped\n" for name in RUNNING_NAMES)
START_ALL = (
    "childutils: started\n"
    "fatal: ERROR (spawn error)\n"
    "g:ga: started\n"
    "g:gb: started\n"
    "idle: started\n"
    "noexec: ERROR (file is not executable)\n"
    "nofile: ERROR (no such file)\n"
    "sleeper: started\n"
    "talker: started\n"
    "ticker: started\n"
)


def test_stop_all(check: Check, shared: Shared) -> None:
    check(
        ["stop", "all"],
        STOP_ALL,
        0,
        before=_initial_states(shared),
        any_order=True,
    )


def test_start_all(check: Check, shared: Shared) -> None:
    def stopped() -> None:  # test_stop_all left everything stopped
        shared.rpc().stopAllProcesses()
        for name in FAILING:
            shared.sv.wait_state(name, "FATAL")

    check(["start", "all"], START_ALL, 7, before=stopped, any_order=True)


def test_restart_all(check: Check, shared: Shared) -> None:
    check(
        ["restart", "all"],
        STOP_ALL + START_ALL,
        7,
        before=_initial_states(shared),
        any_order=True,
    )
    _initial_states(shared)()


# --- signal --------------------------------------------------------------------------


def test_signal_hup_a_running_name(check: Check, shared: Shared) -> None:
    check(
        ["signal", "HUP", "sleeper"],
        "sleeper: signalled\n",
        0,
        before=lambda: shared.start("sleeper"),
    )
    shared.sv.wait_for(lambda: "got HUP" in shared.sv.child_log("sleeper"), what="got HUP")


def test_signal_all_signals_the_signallable_processes(check: Check, shared: Shared) -> None:
    # signalAllProcesses goes by priority, then name, and skips what is not running
    expected = "".join(f"{n}: signalled\n" for n in ("ticker", *RUNNING_NAMES[:-1]))
    check(["signal", "HUP", "all"], expected, 0, before=_initial_states(shared))


def test_signal_a_group(check: Check, shared: Shared) -> None:
    check(
        ["signal", "HUP", "g:*"],
        "g:ga: signalled\ng:gb: signalled\n",
        0,
        before=lambda: shared.start("g:ga", "g:gb"),
    )


def test_signal_a_stopped_name_exits_7(check: Check, shared: Shared) -> None:
    check(
        ["signal", "HUP", "idle"],
        "idle: ERROR (not running)\n",
        7,
        before=lambda: shared.stop("idle"),
    )


def test_signal_errors_exit_1(check: Check) -> None:
    check(["signal", "HUP", "nosuch"], "nosuch: ERROR (no such process)\n", 1)
    check(["signal", "HUP", "nosuch:*"], "nosuch: ERROR (no such group)\n", 1)
    check(["signal", "BOGUS", "sleeper"], "sleeper: ERROR (bad signal name)\n", 1)
    check(
        ["signal", "HUP"],
        "Error: signal requires a signal name and a process name\n"
        "signal <signal name> <name>\t\tSignal a process\n"
        "signal <signal name> <gname>:*\t\tSignal all processes in a group\n"
        "signal <signal name> <name> <name>\tSignal multiple processes or groups\n"
        "signal <signal name> all\t\tSignal all processes\n",
        1,
    )


# --- pid -----------------------------------------------------------------------------


def test_pid_of_the_core_and_of_children(check: Check, shared: Shared) -> None:
    check(["pid"], f"{shared.sv.pid}\n", 0)
    shared.start("sleeper")
    check(["pid", "sleeper"], f"{shared.sv.process_info('sleeper')['pid']}\n", 0)
    check(["pid", "idle"], "0\n", 7, before=lambda: shared.stop("idle"))
    check(["pid", "nosuch"], "No such process nosuch\n", 1)
    pids = "".join(f"{i['pid']}\n" for i in shared.rpc().getAllProcessInfo())
    check(["pid", "all"], pids, 0)


# --- tail and clear ------------------------------------------------------------------

TALKER_OUT = "".join(f"line {i}\n" for i in range(1, 41))


def _fresh_talker(shared: Shared) -> Callable[[], None]:
    def fresh() -> None:
        shared.start("talker")
        shared.rpc().clearProcessLogs("talker")  # only a running process has open logs
        shared.stop("talker")
        shared.start("talker")
        shared.sv.wait_for(
            lambda: (
                shared.sv.child_log("talker") == TALKER_OUT
                and shared.sv.child_log("talker", "stderr") == "oops\n"
            ),
            what="talker output",
        )

    return fresh


def test_tail_shows_the_last_bytes_of_a_channel(check: Check, shared: Shared) -> None:
    _fresh_talker(shared)()
    check(["tail", "talker"], TALKER_OUT + "\n", 0)
    check(["tail", "talker", "stderr"], "oops\n\n", 0)
    check(["tail", "-17", "talker"], TALKER_OUT[-17:] + "\n", 0)
    check(["tail", "-17", "talker", "stdout"], TALKER_OUT[-17:] + "\n", 0)


def test_tail_errors(check: Check) -> None:
    check(["tail", "nosuch"], "nosuch: ERROR (no such process name)\n", 1)
    check(["tail", "talker", "bogus"], "Error: bad channel 'bogus'\n", 1)
    check(["tail", "-x", "talker"], "Error: bad argument -x\n", 1)
    check(["tail", "-f"], "Error: tail requires process name\n", 1)
    check(["tail", "ticker"], "ticker: ERROR (no log file)\n", 1)  # stdout_logfile = NONE
    check(
        ["tail"],
        "Error: too few arguments\n"
        "tail [-f] <name> [stdout|stderr] (default stdout)\n"
        "Ex:\n"
        "tail -f <name>\t\tContinuous tail of named process stdout\n"
        "\t\t\tCtrl-C to exit.\n"
        "tail -100 <name>\tlast 100 *bytes* of process stdout\n"
        "tail <name> stderr\tlast 1600 *bytes* of process stderr\n",
        1,
    )


HEADER = "==> Press Ctrl-C to exit <==\n"


class Follower:
    """A client in a follow mode (``tail -f``, ``fg``), its stdout collected by a thread.

    ``stdin``: give it a pipe to :meth:`send` lines to (``fg``); else it reads nothing.
    """

    def __init__(self, tool: str, conf: Path, args: list[str], *, stdin: bool = False) -> None:
        self.proc = subprocess.Popen(
            [*TOOLS[tool], "-c", str(conf), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        )
        self._chunks: list[bytes] = []
        self._err = ""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            with self._lock:
                self._chunks.append(chunk)

    @property
    def out(self) -> str:
        with self._lock:
            return b"".join(self._chunks).decode()

    def wait_for(self, predicate: Callable[[str], bool], what: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.out):
            if self.proc.poll() is not None:  # its last words may still be in the pipe
                self._reader.join(CTL_TIMEOUT)
                assert predicate(self.out), f"exited early waiting for {what}: {self.out!r}"
                return
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.out!r}"
            time.sleep(0.02)

    def send(self, line: str) -> None:
        """Write ``line`` to its stdin (nothing if it has exited and closed the pipe)."""
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.write(line.encode())
            self.proc.stdin.flush()

    def interrupt(self) -> Run:
        """Ctrl-C; wait for the exit and return everything it printed."""
        self.proc.send_signal(signal.SIGINT)
        self.close()
        assert self.proc.stderr is not None
        return Run(self.out, self._err, self.proc.returncode)

    def finish(self, nudge: Callable[[], None]) -> Run:
        """Wait for the exit, calling ``nudge()`` every second; return everything it printed."""
        deadline = time.monotonic() + CTL_TIMEOUT
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, f"did not exit: {self.out!r}"
            nudge()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(1)
        self.close()
        return Run(self.out, self._err, self.proc.returncode)

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                with contextlib.suppress(BrokenPipeError):
                    self.proc.stdin.close()
            self.proc.wait(CTL_TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(CTL_TIMEOUT)
            assert self.proc.stdout is not None and self.proc.stderr is not None
            self._err = self.proc.stderr.read().decode()
            self.proc.stdout.close()
            self.proc.stderr.close()

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.close()


def test_tail_f_follows_appended_output_and_cleared_logs_until_ctrl_c(shared: Shared) -> None:
    for tool in TOOLS:
        shared.start("sleeper")
        start = HEADER + shared.sv.child_log("sleeper")[-1024:]
        with Follower(tool, shared.conf, ["tail", "-f", "sleeper"]) as follower:
            follower.wait_for(start.__eq__, "the last 1024 bytes")
            shared.rpc().signalProcess("sleeper", "HUP")
            follower.wait_for((start + "got HUP\n").__eq__, "got HUP")
            shared.rpc().clearProcessLogs("sleeper")  # a new, empty file: followed from 0
            shared.rpc().signalProcess("sleeper", "HUP")
            follower.wait_for((start + "got HUP\n" * 2).__eq__, "got HUP after clear")
            run = follower.interrupt()
        assert run == Run(start + "got HUP\n" * 2 + "\n", "", 0), tool


def test_tail_f_without_a_log_reports_404(check: Check, shared: Shared) -> None:
    url = f"unix://{shared.sv.sock}"
    for name, channel in (("nosuch", "stdout"), ("ticker", "stdout"), ("g:*", "stderr")):
        check(
            ["tail", "-f", name, channel],
            HEADER,
            0,
            err=f"{url}/logtail/{name}/{channel} Cannot read, status code 404\n",
        )


def test_tail_f_ends_with_a_message_when_stdout_goes_away(shared: Shared) -> None:
    """``tail -f ... | head -c 5``: the next write fails; a line on stderr, exit 0."""
    url = f"unix://{shared.sv.sock}"
    shared.start("sleeper")
    for tool in TOOLS:
        proc = subprocess.Popen(
            [*TOOLS[tool], "-c", str(shared.conf), "tail", "-f", "sleeper"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None and proc.stderr is not None
            assert proc.stdout.read(5) == HEADER[:5].encode()
            proc.stdout.close()
            deadline = time.monotonic() + CTL_TIMEOUT
            while proc.poll() is None:  # it finds out at its next write
                assert time.monotonic() < deadline, f"{tool} did not exit"
                shared.rpc().signalProcess("sleeper", "HUP")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(1)
            err = proc.stderr.read().decode()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
        assert (err, proc.returncode) == (
            f"{url}/logtail/sleeper/stdout Cannot connect, error: "
            "<class 'BrokenPipeError'> ([Errno 32] Broken pipe)\n",
            0,
        ), tool


#: a program per client whose stdout log rotates at 40 bytes (``hello stdout\n`` is 13
#: and each ``got HUP\n`` 8), so each client follows a log of its own
ROTATING = "".join(
    program(
        f"hup_{tool}",
        "sleeper",
        Path("%(here)s/child.py"),
        f"stdout_logfile = %(here)s/hup_{tool}.log\nstdout_logfile_maxbytes = 40\n"
        "stdout_logfile_backups = 1\n",
    )
    for tool in TOOLS
)
TRUNCATED = "==> File truncated <==\n"


def test_tail_f_follows_a_rotated_log_and_one_truncated_in_place(
    any_core: Factory, core: str, tmp_path: Path
) -> None:
    """What the cores stream; both clients print just that.

    supervisord rotates *after* the write that reaches 40 bytes (the 4th ``got HUP`` goes
    to the old file, and the stream has already moved on to the new one), vigild before
    the write that would pass 40 bytes (the 4th ``got HUP`` starts the new file). A log
    truncated in place makes vigild say ``==> File truncated <==``; supervisord 4.3 fails
    there (a ``TypeError`` in its log) and closes the stream, so the client exits 0.
    """
    (tmp_path / "child.py").write_text(CHILD)
    sv = any_core(ROTATING)
    runs: dict[str, Run] = {}
    for tool in TOOLS:
        name = f"hup_{tool}"
        sv.wait_state(name, "RUNNING")
        shown = HEADER + "hello stdout\n"
        with Follower(tool, sv.conf, ["tail", "-f", name]) as follower:
            follower.wait_for(shown.__eq__, "hello stdout")
            for hup in range(1, 6):
                sv.rpc().supervisor.signalProcess(name, "HUP")
                if hup == 4 and core == "supervisord":  # rotated away before it was read
                    sv.wait_for((sv.dir / f"{name}.log.1").exists, what="rotation")
                    continue
                shown += "got HUP\n"
                follower.wait_for(shown.__eq__, f"HUP {hup}")
            os.truncate(sv.dir / f"{name}.log", 0)
            if core == "supervisord":
                runs[tool] = follower.finish(lambda: None)
                continue
            shown += TRUNCATED
            follower.wait_for(shown.__eq__, "the truncation")
            sv.rpc().supervisor.signalProcess(name, "HUP")
            shown += "got HUP\n"
            follower.wait_for(shown.__eq__, "HUP after the truncation")
            runs[tool] = follower.interrupt()
    assert runs["vigilctl"] == runs["supervisorctl"]
    if core == "supervisord":
        expected = HEADER + "hello stdout\n" + "got HUP\n" * 4
    else:
        expected = HEADER + "hello stdout\n" + "got HUP\n" * 5 + TRUNCATED + "got HUP\n\n"
    assert runs["supervisorctl"] == Run(expected, "", 0)


def test_tail_f_and_maintail_f_end_quietly_when_the_core_shuts_down(any_core: Factory) -> None:
    """The stream ends with the core: nothing more is printed (no blank line), exit 0."""
    sv = any_core(
        "[program:hello]\ncommand = sh -c 'echo hello stdout; exec sleep 3600'\n"
        "startsecs = 0\nstopwaitsecs = 1\n",
        loglevel="info",  # no child output in the main log: it has no blank lines
    )
    sv.wait_state("hello", "RUNNING")
    followers = {
        (tool, command): Follower(tool, sv.conf, args)
        for tool in TOOLS
        for command, args in (("tail", ["tail", "-f", "hello"]), ("maintail", ["maintail", "-f"]))
    }
    try:
        for (tool, command), follower in followers.items():
            if command == "tail":
                follower.wait_for((HEADER + "hello stdout\n").__eq__, f"{tool} tail -f")
            else:
                follower.wait_for(lambda out: len(out) > len(HEADER), f"{tool} maintail -f")
        sv.rpc().supervisor.shutdown()
        assert sv.proc.wait(CTL_TIMEOUT) == 0
        runs = {key: follower.finish(lambda: None) for key, follower in followers.items()}
    finally:
        for follower in followers.values():
            follower.__exit__()
    log = sv.logfile.read_text()
    for tool in TOOLS:
        assert runs[tool, "tail"] == Run(HEADER + "hello stdout\n", "", 0), tool
        run = runs[tool, "maintail"]
        assert (run.err, run.rc) == ("", 0), (tool, run)
        assert run.out.startswith(HEADER) and run.out[len(HEADER) :] in log, (tool, run.out)
        assert run.out.endswith("\n") and not run.out.endswith("\n\n"), (tool, run.out)


def test_clear_empties_the_logs(check: Check, shared: Shared) -> None:
    check(["clear", "talker"], "talker: cleared\n", 0, before=_fresh_talker(shared))
    check(["tail", "talker"], "\n", 0)
    check(["clear", "nosuch"], "nosuch: ERROR (no such process)\n", 1)
    check(["clear", "g:*"], "g:None: ERROR (no such process)\n", 1)
    # clearAllProcessLogs goes by priority, then name
    names = [
        *("ticker", "childutils", "fatal", "g:ga", "g:gb", "idle", "noexec", "nofile"),
        *("sleeper", "talker"),
    ]
    check(["clear", "all"], "".join(f"{n}: cleared\n" for n in names), 0)


# --- fg ------------------------------------------------------------------------------

FG_HELP = "fg <process>\tConnect to a process in foreground mode\n\t\tCtrl-C to exit\n"
#: one ``cat`` per client, so each ``fg`` session starts on an empty log of its own
CATS = "".join(
    f"[program:cat_{tool}]\ncommand = cat\nstartsecs = 0\nstopwaitsecs = 1\n"
    f"stdout_logfile = %(here)s/cat_{tool}.log\n\n"
    for tool in TOOLS
)
FG_END = "Exiting foreground\n"


def test_fg_without_a_name_exits_1_with_help(check: Check) -> None:
    check(["fg"], "ERROR: no process name supplied\n" + FG_HELP, 1)
    check(["fg", "sleeper", "talker"], "ERROR: too many process names supplied\n", 1)


def test_fg_of_an_unknown_name_exits_1(check: Check) -> None:
    check(["fg", "nosuch"], "ERROR: bad process name supplied\n", 1)
    check(["fg", "g:*"], "ERROR: bad process name supplied\n", 1)


def test_fg_of_a_not_running_name_exits_1(check: Check, shared: Shared) -> None:
    check(["fg", "idle"], "ERROR: process not running\n", 1, before=lambda: shared.stop("idle"))
    check(["fg", "fatal"], "ERROR: process not running\n", 1)


def _fg(tool: str, sv: Supervisor) -> Follower:
    sv.wait_state(f"cat_{tool}", "RUNNING")
    session = Follower(tool, sv.conf, ["fg", f"cat_{tool}"], stdin=True)
    session.wait_for(HEADER.__eq__, "the fg header")
    return session


def _fg_exit(session: Follower, log: Path) -> Run:
    """Wait for an ``fg`` session that printed ``Exiting foreground`` to exit.

    supervisorctl's stream thread then still sits in ``select()`` (30 s timeout) on the
    sockets it has closed; output appended to the followed log wakes it up at once.
    """
    session.wait_for(lambda out: out.endswith(FG_END), "the end of fg")

    def nudge() -> None:
        with log.open("a") as f:
            f.write("\n")

    return session.finish(nudge)


def test_fg_echoes_a_line_sent_on_stdin_until_ctrl_c(any_core: Factory) -> None:
    sv = any_core(CATS)
    runs: dict[str, Run] = {}
    for tool in TOOLS:
        with _fg(tool, sv) as session:
            session.send("hello fg\n")  # cat echoes it into the log fg follows
            session.wait_for((HEADER + "hello fg\n").__eq__, "the echo")
            session.proc.send_signal(signal.SIGINT)
            runs[tool] = _fg_exit(session, sv.dir / f"cat_{tool}.log")
    assert runs["vigilctl"] == runs["supervisorctl"]
    assert runs["supervisorctl"] == Run(HEADER + "hello fg\n" + FG_END, "", 0)


def test_fg_ends_when_the_process_stops(any_core: Factory) -> None:
    sv = any_core(CATS)
    runs: dict[str, Run] = {}
    for tool in TOOLS:
        with _fg(tool, sv) as session:
            sv.rpc().supervisor.stopProcess(f"cat_{tool}")
            # supervisorctl finds out when it sends the next line; vigilctl may have already
            session.send("anyone there?\n")
            runs[tool] = _fg_exit(session, sv.dir / f"cat_{tool}.log")
    assert runs["vigilctl"] == runs["supervisorctl"]
    assert runs["supervisorctl"] == Run(HEADER + "Process got killed\n" + FG_END, "", 0)


def test_vigilctl_fg_ends_by_itself_when_the_process_stops(any_core: Factory) -> None:
    """No line needed (a deliberate difference: supervisorctl waits for the next line)."""
    sv = any_core(CATS)
    with _fg("vigilctl", sv) as session:
        sv.rpc().supervisor.stopProcess("cat_vigilctl")
        run = _fg_exit(session, sv.dir / "cat_vigilctl.log")
    assert run == Run(HEADER + "Process got killed\n" + FG_END, "", 0)


# --- maintail and version ------------------------------------------------------------


def test_maintail_shows_the_end_of_the_main_log(
    request: pytest.FixtureRequest, shared: Shared
) -> None:
    runs = {tool: run_tool(tool, "maintail", "-300", conf=shared.conf) for tool in TOOLS}
    tail = shared.sv.logfile.read_bytes()[-300:].decode("utf-8", "replace")
    assert runs["vigilctl"] == runs["supervisorctl"]
    assert runs["vigilctl"] == Run(tail + "\n", "", 0)


def _caught_up(log: Path, mark: int, out: str) -> bool:
    """Whether ``out`` ends with everything written to ``log`` after byte ``mark``."""
    new = log.read_bytes()[mark:].decode()
    return bool(new) and out.endswith(new)


def test_maintail_f_follows_the_main_log(shared: Shared) -> None:
    log = shared.sv.logfile
    for tool in TOOLS:
        with Follower(tool, shared.conf, ["maintail", "-f"]) as follower:
            follower.wait_for(lambda out: len(out) > len(HEADER), "the end of the main log")
            mark = log.stat().st_size
            shared.start("idle")
            shared.stop("idle")
            follower.wait_for(functools.partial(_caught_up, log, mark), "the new log lines")
            run = follower.interrupt()
        assert run.rc == 0 and run.err == "", (tool, run)
        assert run.out.startswith(HEADER) and run.out.endswith("\n\n"), (tool, run.out)
        assert run.out[len(HEADER) : -1] in log.read_text(), (tool, run.out)


def test_version_is_the_core_version(check: Check, shared: Shared) -> None:
    check(["version"], shared.rpc().getSupervisorVersion() + "\n", 0)


def test_unknown_command_exits_1(check: Check) -> None:
    check(["frobnicate", "x"], "*** Unknown syntax: frobnicate x\n", 1)


def test_help_lists_the_commands_and_explains_one(check: Check) -> None:
    check(
        ["help"],
        "\ndefault commands (type help <topic>):\n"
        "=====================================\n"
        "add    exit      open  reload  restart   start   tail   \n"
        "avail  fg        pid   remove  shutdown  status  update \n"
        "clear  maintail  quit  reread  signal    stop    version\n\n",
        0,
    )
    check(
        ["help", "stop"],
        "stop <name>\t\tStop a process\n"
        "stop <gname>:*\t\tStop all processes in a group\n"
        "stop <name> <name>\tStop multiple processes or groups\n"
        "stop all\t\tStop all processes\n",
        0,
    )
    check(["help", "frobnicate"], "*** No help on frobnicate\n", 0)


# --- configuration -------------------------------------------------------------------


def avail_line(name: str, inuse: bool, auto: bool) -> str:
    use = "in use" if inuse else "avail"
    start = "auto" if auto else "manual"
    return f"{name:<32} {use:<9} {start:<9} 999:999\n"


def test_avail_lists_configured_programs(check: Check) -> None:
    expected = (
        avail_line("childutils", True, True)
        + avail_line("fatal", True, True)
        + avail_line("g:ga", True, True)
        + avail_line("g:gb", True, True)
        + avail_line("idle", True, False)
        + avail_line("noexec", True, True)
        + avail_line("nofile", True, True)
        + avail_line("sleeper", True, True)
        + avail_line("talker", True, True)
        + avail_line("ticker", True, True).replace("999:999", "1:1")
    )
    check(["avail"], expected, 0)


def test_add_and_remove_groups(check: Check, shared: Shared) -> None:
    def present_and_stopped() -> None:
        with contextlib.suppress(xmlrpc.client.Fault):
            shared.rpc().addProcessGroup("idle")
        shared.stop("idle")

    def absent() -> None:
        present_and_stopped()
        shared.rpc().removeProcessGroup("idle")

    check(["remove", "idle"], "idle: removed process group\n", 0, before=present_and_stopped)
    check(["add", "idle"], "idle: added process group\n", 0, before=absent)
    check(["add", "idle"], "ERROR: process group already active\n", 0)
    check(["remove", "sleeper"], "ERROR: process/group still running: sleeper\n", 1)
    check(["add", "nosuch"], "ERROR: no such process/group: nosuch\n", 1)
    check(["remove", "nosuch"], "ERROR: no such process/group: nosuch\n", 1)
    present_and_stopped()


def test_reread_and_update_after_editing_the_config(check: Check, shared: Shared) -> None:
    original = body_for(shared.tmp)
    edited = body_for(shared.tmp, edited=True)

    def original_applied() -> None:
        shared.write_config(original)
        shared.apply_update()
        shared.write_config(edited)

    try:
        check(["reread"], "No config updates to processes\n", 0)
        shared.write_config(edited)
        check(
            ["reread"],
            "added: available\ng: changed\nidle: changed\nnofile: disappeared\n",
            0,
        )
        avail = "".join(
            avail_line(name, name != "added", name not in ("added", "idle"))
            for name in (
                *("added", "childutils", "fatal", "g:ga", "g:gb", "idle", "noexec"),
                *("sleeper", "talker"),
            )
        ) + avail_line("ticker", True, True).replace("999:999", "1:1")
        check(["avail"], avail, 0)
        check(
            ["update"],
            "nofile: stopped\nnofile: removed process group\n"
            "g: stopped\ng: updated process group\n"
            "idle: stopped\nidle: updated process group\n"
            "added: added process group\n",
            0,
            before=original_applied,
        )
        check(["reread"], "No config updates to processes\n", 0)
        check(
            ["update", "idle", "nosuch"],
            "ERROR: no such group: nosuch\nidle: stopped\nidle: updated process group\n",
            1,
            before=original_applied,
        )
        shared.write_config(original + "\n[program:broken]\n")
        check(
            ["reread"],
            "ERROR: CANT_REREAD: program section program:broken does not specify a command "
            f"in section 'program:broken' (file: '{shared.conf}')\n",
            1,
            known="cant_reread",
        )
    finally:
        shared.write_config(original)
        shared.apply_update()
        shared.start("g:ga", "g:gb")


def test_reload_restarts_the_core(check: Check, shared: Shared) -> None:
    def running() -> None:
        shared.sv.wait_running()
        shared.wait_settled(childutils=False)

    check(["reload"], "Restarted supervisord\n", 0, before=running)
    running()


# --- credentials and unreachable servers ---------------------------------------------


def _start_auth_core(
    tmp: Path, core: str, *, password: str = "secret", client_password: str = "wrong"
) -> Supervisor:
    """A core that wants ``alice``/``password``; ``[supervisorctl]`` says ``client_password``."""
    sockdir = Path(tempfile.mkdtemp(prefix="vc", dir="/tmp"))
    sock = sockdir / "sv.sock"
    conf = tmp / "supervisord.conf"
    text = render_config(tmp, sock, "")
    text = text.replace(
        "chmod = 0700\n", f"chmod = 0700\nusername = alice\npassword = {password}\n"
    )
    text = text.replace(
        f"serverurl = unix://{sock}\n",
        f"serverurl = unix://{sock}\nusername = alice\npassword = {client_password}\n",
    )
    conf.write_text(text)
    with (tmp / "supervisord.out").open("wb") as out:
        proc = subprocess.Popen(
            core_command(conf, core),
            cwd=tmp,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    sv = Supervisor(
        dir=tmp,
        conf=conf,
        sock=sock,
        proc=proc,
        logfile=tmp / "supervisord.log",
        output=tmp / "supervisord.out",
        sockdir=sockdir,
    )
    client = SupervisorClient(f"unix://{sock}", "alice", password, timeout=5, retry_for=10)
    try:
        deadline = time.monotonic() + 10
        while client.supervisor.getState()["statename"] != "RUNNING":
            assert time.monotonic() < deadline, sv.diagnostics()
            time.sleep(0.05)
    except BaseException:
        sv.stop()
        raise
    return sv


def test_wrong_credentials_say_server_requires_authentication(
    request: pytest.FixtureRequest, core: str, tmp_path: Path
) -> None:
    sv = _start_auth_core(tmp_path, core)
    try:
        needs_auth = "Server requires authentication\nerror: <details>\n"
        for args in (
            *(["status"], ["avail"], ["start", "x"], ["shutdown"], ["fg", "x"]),
            *(["tail", "-f", "x"], ["maintail", "-f"]),  # the API check fails before the stream
        ):
            compare(request, core, args, needs_auth, 1, conf=sv.conf)
        compare(request, core, ["-p", "secret", "status"], "", 0, conf=sv.conf)
        compare(request, core, ["-p", "secret", "avail"], "", 0, conf=sv.conf)
    finally:
        sv.stop()


def test_follow_sends_an_empty_password_which_supervisorctl_leaves_out(
    core: str, tmp_path: Path
) -> None:
    """A deliberate difference: a core whose password is empty takes ``alice:`` (the
    XML-RPC calls of both clients get in), but supervisorctl's stream sends no
    credentials when the password is empty, gets 401 and says so; vigilctl follows."""
    sv = _start_auth_core(tmp_path, core, password="", client_password="")
    try:
        url = f"unix://{sv.sock}"
        run = run_tool("supervisorctl", "maintail", "-f", conf=sv.conf)
        assert run == Run(HEADER, f"{url}/mainlogtail Cannot read, status code 401\n", 0)
        with Follower("vigilctl", sv.conf, ["maintail", "-f"]) as follower:
            follower.wait_for(lambda out: len(out) > len(HEADER), "the end of the main log")
            run = follower.interrupt()
        assert (run.err, run.rc) == ("", 0), run
        assert run.out.startswith(HEADER) and run.out.endswith("\n\n"), run.out
        assert run.out[len(HEADER) : -1] in sv.logfile.read_text(), run.out
    finally:
        sv.stop()


def test_maintail_f_without_a_main_log_reports_404(
    request: pytest.FixtureRequest, core: str, any_core: Factory
) -> None:
    sv = any_core("")
    sv.logfile.unlink()  # a main log that was removed: the core answers 404
    url = f"unix://{sv.sock}"
    err = f"{url}/mainlogtail Cannot read, status code 404\n"
    compare(request, core, ["maintail", "-f"], HEADER, 0, conf=sv.conf, err=err)


@contextlib.contextmanager
def _vanishing_server(address: str | tuple[str, int]) -> Iterator[None]:
    """A server that answers one XML-RPC call (``getVersion``: 3.0), then is gone.

    It stops listening (a unix socket's file removed) before it answers, so a client
    that passed its API check then finds nobody there: a core that went away between
    the check and the stream of ``tail -f``.
    """
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(address)
    listener.listen(1)
    listener.settimeout(CTL_TIMEOUT)
    reply = xmlrpc.client.dumps(("3.0",), methodresponse=True).encode()

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return  # no client came (or the test ended): nothing to answer
        with conn:
            conn.settimeout(CTL_TIMEOUT)
            request = b""
            while b"</methodCall>" not in request:
                data = conn.recv(65536)
                if not data:
                    return
                request += data
            listener.close()
            if isinstance(address, str):
                os.unlink(address)
            conn.sendall(
                b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n"
                + f"Content-Length: {len(reply)}\r\n\r\n".encode()
                + reply
            )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # wakes an accept() still waiting
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(CTL_TIMEOUT)
        if isinstance(address, str):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(address)


@pytest.mark.parametrize("scheme", ["unix", "http"])
def test_follow_when_the_server_went_away_after_the_api_check(
    scheme: str, sockdir: Path, tmp_path: Path
) -> None:
    """supervisorctl's asyncore client raises what a unix socket connect meets at once
    (supervisorctl: a traceback summary, vigilctl: one ``error:`` line; exit 1), and
    reports on stderr what a TCP connect meets later (a refusal; exit 0)."""
    address: str | tuple[str, int]
    if scheme == "unix":
        address = str(sockdir / "gone.sock")
        url = f"unix://{address}"
    else:
        address = ("127.0.0.1", _refused_port())
        url = f"http://127.0.0.1:{address[1]}"
    conf = tmp_path / "ctl.conf"
    conf.write_text(f"[supervisorctl]\nserverurl = {url}\n")
    for args, path in (
        (["tail", "-f", "x"], "/logtail/x/stdout"),
        (["maintail", "-f"], "/mainlogtail"),
    ):
        runs = {}
        for tool in TOOLS:
            with _vanishing_server(address):
                run = run_tool(tool, *args, conf=conf)
            runs[tool] = Run(normalise(run.out), run.err, run.rc)
        assert runs["vigilctl"] == runs["supervisorctl"], args
        if scheme == "unix":
            expected = Run(HEADER + "error: <details>\n", "", 1)
        else:
            refused = "<class 'ConnectionRefusedError'> ([Errno 111] Connection refused)"
            expected = Run(HEADER, f"{url}{path} Cannot connect, error: {refused}\n", 0)
        assert runs["supervisorctl"] == expected, args


def test_shutdown_stops_the_core(
    request: pytest.FixtureRequest, core: str, any_core: Factory
) -> None:
    for tool in TOOLS:
        sv = any_core("")
        run = run_tool(tool, "shutdown", conf=sv.conf)
        assert (run.out, run.err, run.rc) == ("Shut down\n", "", 0), tool
        assert sv.proc.wait(15) == 0, tool
        assert not sv.sock.exists()
    # now nothing listens on the socket
    url = f"unix://{sv.sock}"
    compare(
        request,
        core,
        ["shutdown"],
        f"ERROR: {url} no such file (already shut down?)\n",
        1,
        conf=sv.conf,
    )
    compare(request, core, ["status"], f"{url} no such file\n", 4, conf=sv.conf)
    compare(request, core, ["start", "x"], f"{url} no such file\n", 7, conf=sv.conf)
    compare(request, core, ["avail"], "error: <details>\n", 1, conf=sv.conf)


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_connection_refused_exits_4(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_refused_port()}"
    conf = tmp_path / "ctl.conf"
    conf.write_text(f"[supervisorctl]\nserverurl = {url}\n")
    for args, expected, rc in (
        (["status"], f"{url} refused connection\n", 4),
        (["start", "x"], f"{url} refused connection\n", 4),
        (["pid"], f"{url} refused connection\n", 4),
        (["shutdown"], f"ERROR: {url} refused connection (already shut down?)\n", 1),
        (["reread"], "error: <details>\n", 1),
    ):
        compare(request, None, args, expected, rc, conf=conf)


def test_command_line_overrides_the_config_file(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    conf = tmp_path / "ctl.conf"
    conf.write_text("[supervisorctl]\nserverurl = unix://%(here)s/nowhere.sock\n")
    url = f"unix://{tmp_path}/other.sock"
    compare(
        request, None, ["status"], f"unix://{tmp_path}/nowhere.sock no such file\n", 4, conf=conf
    )
    compare(request, None, ["-s", url, "status"], f"{url} no such file\n", 4, conf=conf)


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    for args, err in (
        (
            ["-c", str(tmp_path / "missing.conf"), "status"],
            f"could not find config file {tmp_path}/missing.conf",
        ),
        (["-s", "nourl", "status"], "invalid value for -s 'nourl': value 'nourl' is not a URL"),
        (["-x", "status"], "option -x not recognized"),
    ):
        runs = {tool: run_tool(tool, *args, cwd=tmp_path) for tool in TOOLS}
        for tool, run in runs.items():
            assert (run.out, normalise(run.err), run.rc) == (
                "",
                f"Error: {err}\nFor help, use <prog> -h\n",
                2,
            ), tool
    conf = tmp_path / "noctl.conf"
    conf.write_text("[supervisord]\n")
    for tool in TOOLS:
        run = run_tool(tool, "status", conf=conf, cwd=tmp_path)
        assert run.rc == 2 and ".ini file does not include supervisorctl section" in run.err, tool


def test_vigilctl_h_prints_its_usage(tmp_path: Path) -> None:
    run = run_tool("vigilctl", "-h", cwd=tmp_path)
    assert run == Run(vigilctl.USAGE, "", 0)
    assert run.out.startswith("vigilctl -- ")
    assert "-i/--interactive" in run.out and "starts the interactive shell" in run.out


def _shell(tool: str, conf: Path, lines: str, *args: str) -> Run:
    """``tool`` without a command (the shell), fed ``lines`` on stdin."""
    done = subprocess.run(
        [*TOOLS[tool], "-c", str(conf), *args],
        input=lines,
        capture_output=True,
        text=True,
        timeout=CTL_TIMEOUT,
    )
    return Run(done.stdout, done.stderr, done.returncode)


@pytest.mark.parametrize("end", ["quit\n", "exit\n", ""])
def test_the_shell_is_supervisorctls(shared: Shared, end: str) -> None:
    """No command: status first, then a command per line after the prompt, until quit,
    exit or end of input; unknown words and blank lines as supervisorctl; always exit 0."""
    lines = "pid\nfoo bar\n\nstatus fatal\nstop nosuch\nhelp stop\n" + end
    runs = {tool: _shell(tool, shared.conf, lines) for tool in TOOLS}
    sup, vig = runs["supervisorctl"], runs["vigilctl"]
    assert (normalise(vig.out), vig.err, vig.rc) == (normalise(sup.out), sup.err, 0)
    assert vig.out.count("supervisor> ") == 7  # six lines, then quit, exit or end of input
    assert "supervisor> *** Unknown syntax: foo bar\n" in vig.out
    assert f"supervisor> {shared.sv.pid}\n" in vig.out
    assert vig.out.endswith("supervisor> \n")


def test_the_shell_has_fg(shared: Shared) -> None:
    shared.stop("idle")
    runs = {tool: _shell(tool, shared.conf, "fg idle\nfg\nfg nosuch\n") for tool in TOOLS}
    sup, vig = runs["supervisorctl"], runs["vigilctl"]
    assert (normalise(vig.out), vig.err, vig.rc) == (normalise(sup.out), sup.err, 0)
    assert "supervisor> ERROR: process not running\nsupervisor> ERROR: no process" in vig.out
    assert "supervisor> ERROR: bad process name supplied\nsupervisor> \n" in vig.out


def test_the_shell_runs_a_command_given_with_i_and_exits(shared: Shared) -> None:
    """``-i`` with a command runs the command only, as supervisorctl."""
    runs = {tool: _shell(tool, shared.conf, "status\n", "-i", "pid") for tool in TOOLS}
    assert runs["vigilctl"] == runs["supervisorctl"] == Run(f"{shared.sv.pid}\n", "", 0)
