"""Core faults (issue 8, point 2), against vigild and real supervisord 4.3.

* SIGTERM with 100 children: all stopped in reverse priority, exit 0, no child left.
* SIGKILL of the core: vigild's children die with it (its watchdog) and a restarted vigild runs
  exactly one instance of each program; supervisord leaves orphans (reference §8, #168) and a
  restarted supervisord starts a second copy — recorded as a figure, not asserted as the
  contract.
* Children that ignore SIGTERM are SIGKILLed after ``stopwaitsecs``.
* A child that forks and exits (daemonizes) is reported as supervisord reports it, and
  ``stopasgroup``/``killasgroup`` clean up a process group.

Children whose existence is checked run ``sleep`` through a symlink in the test's tmp dir, so
``/proc/*/cmdline`` tells ours from anyone else's; leftovers are SIGKILLed by pid at the end.
Figures are printed (``-s``) and appended to ``$VIGIL_FIGURES``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.reliability.conftest import scaled
from tests.support.faults import (
    CHILD,
    LISTENER,
    alive,
    children_of,
    figure,
    group_members,
    kill_pids,
    log_entries,
    pids_with_token,
    read_records,
    wait_until,
)
from tests.support.supervisor import Supervisor, core_command, run_core

Factory = Callable[..., Supervisor]


def _hold(tmp: Path) -> str:
    """A ``sleep`` reachable under a path unique to this test (its argv[0] in /proc)."""
    bindir = tmp / "bin"
    bindir.mkdir(exist_ok=True)
    link = bindir / "hold"
    if not link.exists():
        sleep = shutil.which("sleep")
        assert sleep is not None
        link.symlink_to(sleep)
    return str(link)


@contextlib.contextmanager
def _reaping(token: str) -> Iterator[None]:
    """At the end, SIGKILL every live process whose command line holds ``token``."""
    try:
        yield
    finally:
        kill_pids(pids_with_token(token))


def _instances(token: str) -> dict[str, int]:
    """How many live processes run ``token ARG``, per ARG."""
    counts: dict[str, int] = {}
    for pid in pids_with_token(token):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if argv[0].decode() == token:
                arg = argv[1].decode()
                counts[arg] = counts.get(arg, 0) + 1
    return counts


def _all_running(sv: Supervisor, n: int) -> bool:
    infos = sv.rpc().supervisor.getAllProcessInfo()
    return len(infos) == n and all(i["statename"] == "RUNNING" for i in infos)


# ---------------------------------------------------------------------------------------------
# SIGTERM with 100 children


def test_sigterm_stops_every_child_in_reverse_priority(
    any_core: Factory, tmp_path: Path, core: str
) -> None:
    n = 100
    hold = _hold(tmp_path)
    body = "".join(
        f"[program:p{i:03d}]\ncommand = {hold} 600\npriority = {i + 1}\nstartsecs = 0\n"
        "stdout_logfile = NONE\nstderr_logfile = NONE\n\n"
        for i in range(n)
    )
    with _reaping(hold):
        sv = any_core(body, loglevel="info")
        sv.wait_for(lambda: _all_running(sv, n), 30, f"{n} children RUNNING")
        pids = {int(i["pid"]) for i in sv.rpc().supervisor.getAllProcessInfo()}
        assert len(pids) == n and pids <= pids_with_token(hold)
        started = time.monotonic()
        sv.proc.send_signal(signal.SIGTERM)
        status = sv.proc.wait(60)
        took = time.monotonic() - started
        left = {p for p in pids if alive(p)} | pids_with_token(hold)
        stopped = [m[1] for _, msg in log_entries(sv) if (m := re.match(r"stopped: (p\d+) ", msg))]
        figure("sigterm-100", core, children=n, shutdown_s=round(took, 3), left=len(left))
        assert status == 0
        assert left == set()
        # Highest priority number first, one at a time (each program is its own group here).
        assert stopped == [f"p{i:03d}" for i in reversed(range(n))], stopped


# ---------------------------------------------------------------------------------------------
# SIGKILL of the core, then a restart with the same config


def test_sigkill_of_the_core_and_restart(
    supervisor_factory: Factory, tmp_path: Path, core: str
) -> None:
    n = scaled(20, 100)
    hold = _hold(tmp_path)
    body = "".join(
        f"[program:k{i:03d}]\ncommand = {hold} {60000 + i}\nstartsecs = 0\n"
        "stdout_logfile = NONE\nstderr_logfile = NONE\n\n"
        for i in range(n)
    )
    command = core_command(Path("{conf}"), core)
    expected = {str(60000 + i): 1 for i in range(n)}
    with _reaping(hold):
        sv = supervisor_factory(body, command=command, loglevel="info")
        sv.wait_for(lambda: _all_running(sv, n), 30, f"{n} children RUNNING")
        first = {int(i["pid"]) for i in sv.rpc().supervisor.getAllProcessInfo()}
        # RUNNING may be reported before the forked child has exec'd sleep: wait for /proc.
        sv.wait_for(lambda: _instances(hold) == expected, 10, "one instance of each program")
        os.kill(sv.pid, signal.SIGKILL)
        sv.proc.wait(10)
        killed_at = time.monotonic()
        if core == "vigild":
            gone_after = wait_until(
                lambda: not any(alive(p) for p in first), 5, "vigild's children to die with it"
            )
            orphans = 0
            # ... and the watchdog (a fork of vigild: same command line) is gone too.
            wait_until(lambda: not pids_with_token(str(sv.conf)), 5, "vigild's watchdog to exit")
        else:
            time.sleep(1.0)  # give them every chance to go: they do not
            gone_after = -1.0
            orphans = sum(1 for p in first if alive(p))
        # Restart the same config (stale socket and pidfile left by the SIGKILL).
        sv2 = run_core(sv.conf, sock=sv.sock, logfile=sv.logfile, command=command)
        try:
            sv2.wait_for(lambda: _all_running(sv2, n), 30, f"{n} children RUNNING again")
            wanted = expected if core == "vigild" else {arg: 2 for arg in expected}
            with contextlib.suppress(AssertionError):  # the assertion below tells what is wrong
                sv2.wait_for(lambda: _instances(hold) == wanted, 10, "the children after restart")
            time.sleep(0.3)  # a late double start would show now
            counts = _instances(hold)
            second = {int(i["pid"]) for i in sv2.rpc().supervisor.getAllProcessInfo()}
            doubled = sum(1 for c in counts.values() if c > 1)
            figure(
                "sigkill-restart",
                core,
                children=n,
                orphans_after_sigkill=orphans,
                children_gone_s=round(gone_after, 3),
                programs_running_twice_after_restart=doubled,
                since_kill_s=round(time.monotonic() - killed_at, 2),
            )
            assert second.isdisjoint(first)
            if core == "vigild":
                assert counts == expected, counts  # exactly one instance of each program
            else:
                # supervisord's contract (reference §8, #168): the orphans keep running and
                # the restarted supervisord starts a second copy of each.
                assert orphans == n
                assert counts == {arg: 2 for arg in expected}, counts
            # supervisord stops these one group (one program) per loop turn, 0.5-1 s each
            # here: 13-16 s for 20, past the usual 15 s (a CI run SIGKILLed it at 15 s)
            status = sv2.stop(timeout=15 if core == "vigild" else 60)
            assert status == 0
            if core == "vigild":
                assert pids_with_token(hold) == set()
        finally:
            sv2.stop()


# ---------------------------------------------------------------------------------------------
# SIGTERM ignored: SIGKILL after stopwaitsecs


def test_children_ignoring_sigterm_are_killed_after_stopwaitsecs(
    any_core: Factory, tmp_path: Path, core: str
) -> None:
    n = scaled(5, 20)
    wait = 2
    body = f"[group:stubborn]\nprograms = {','.join(f's{i}' for i in range(n))}\n\n" + "".join(
        f"[program:s{i}]\ncommand = {CHILD} ignore-term\nstopwaitsecs = {wait}\nstartsecs = 0\n"
        "stdout_logfile = NONE\nstderr_logfile = NONE\n\n"
        for i in range(n)
    )
    sv = any_core(body, loglevel="info")
    # RUNNING at once (startsecs=0): wait until each has installed its SIGTERM handler.
    sv.wait_for(lambda: _all_running(sv, n), 30, f"{n} children RUNNING")
    pids = {i["name"]: int(i["pid"]) for i in sv.rpc().supervisor.getAllProcessInfo()}
    sv.wait_for(lambda: all(_ignores_term(p) for p in pids.values()), 10, "SIGTERM ignored by all")
    asked = time.time()
    result = sv.rpc(timeout=30).supervisor.stopProcessGroup("stubborn")
    took = time.time() - asked
    assert all(r["status"] == 80 for r in result), result  # SUCCESS for each
    kills = {
        m[1]: t - asked
        for t, msg in log_entries(sv)
        if (m := re.match(r"killing '(s\d+)' \((\d+)\) with SIGKILL", msg))
    }
    figure(
        "stopwaitsecs",
        core,
        children=n,
        stopwaitsecs=wait,
        sigkill_after_s=sorted(round(v, 3) for v in kills.values()),
        stop_call_s=round(took, 3),
    )
    assert sorted(kills) == sorted(pids), kills
    log = sv.log_text()
    for name, pid in pids.items():
        assert not alive(pid), name
        assert f"stopped: {name} (terminated by SIGKILL)" in log
        assert sv.process_info(f"stubborn:{name}")["statename"] == "STOPPED"
    # Log timestamps have millisecond resolution; supervisord checks deadlines once a second.
    slack = 0.5 if core == "vigild" else 2.0
    assert all(wait - 0.01 <= v <= wait + slack for v in kills.values()), kills


def _ignores_term(pid: int) -> bool:
    """True once ``pid`` has SIGTERM in its ignored-signals mask (SigIgn in /proc status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    ign = next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:"))
    return bool(int(ign, 16) & (1 << (signal.SIGTERM - 1)))


# ---------------------------------------------------------------------------------------------
# daemonizing children, process groups


def _state_sequence(path: Path, name: str) -> list[str]:
    return [
        r.eventname.removeprefix("PROCESS_STATE_")
        for r in read_records(path)
        if r.ident == name and r.eventname.startswith("PROCESS_STATE_")
    ]


def _pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def test_daemonizing_child_and_process_groups(any_core: Factory, tmp_path: Path, core: str) -> None:
    rec = tmp_path / "states.rec"
    d0, d1 = tmp_path / "d0.pids", tmp_path / "d1.pids"
    g_all, g_lead = tmp_path / "g_all.pids", tmp_path / "g_lead.pids"
    body = f"""
[eventlistener:states]
command = {LISTENER} record {rec}
events = PROCESS_STATE
buffer_size = 100
startsecs = 0
stdout_logfile = NONE
stderr_logfile = NONE

[program:daemon0]
command = {CHILD} daemonize {d0}
startsecs = 0
autorestart = false
autostart = false

[program:daemon1]
command = {CHILD} daemonize {d1}
startsecs = 1
startretries = 1
autostart = false

[program:grp]
command = {CHILD} group 3 {g_all}
stopasgroup = true
stopwaitsecs = 1
startsecs = 0
autostart = false

[program:grplead]
command = {CHILD} group 3 {g_lead} leader-exits
stopasgroup = true
stopwaitsecs = 1
startsecs = 0
autostart = false
"""
    sv = any_core(body, loglevel="info")
    daemons: list[int] = []
    groups: list[int] = []
    try:
        sv.wait_state("states", "RUNNING")
        rpc = sv.rpc(timeout=30).supervisor

        # A daemonizing program with startsecs=0: RUNNING, then EXITED (expected), its daemon
        # left running in the program's process group, outside supervision.
        rpc.startProcess("daemon0", False)
        sv.wait_state("daemon0", "EXITED")
        wait_until(lambda: len(_pids(d0)) == 1, 10, "daemon0's daemon")
        sv.wait_for(lambda: len(_state_sequence(rec, "daemon0")) >= 3, 10, "daemon0 events")
        daemons += _pids(d0)
        seq0 = _state_sequence(rec, "daemon0")
        info0 = sv.process_info("daemon0")

        # The same with startsecs=1 (the usual mistake): BACKOFF, one retry, FATAL — one stray
        # daemon per attempt.
        rpc.startProcess("daemon1", False)
        sv.wait_state("daemon1", "FATAL", timeout=15)
        wait_until(lambda: len(_pids(d1)) == 2, 10, "daemon1's two daemons")
        sv.wait_for(lambda: "FATAL" in _state_sequence(rec, "daemon1"), 10, "daemon1 FATAL")
        daemons += _pids(d1)
        seq1 = _state_sequence(rec, "daemon1")

        # stopasgroup + killasgroup: the whole group ignores SIGTERM -> SIGKILL to the group.
        rpc.startProcess("grp")
        wait_until(lambda: len(_pids(g_all)) == 4, 10, "grp's group")
        leader = int(sv.process_info("grp")["pid"])
        groups.append(leader)
        assert group_members(leader) == set(_pids(g_all))
        assert rpc.stopProcess("grp") is True
        grp_left_at_stop = group_members(leader)
        grp_left = set(group_members(leader))

        # The leader exits on SIGTERM while its children ignore it: supervisord never sends
        # SIGKILL; vigild sends it to the rest of the group at the stop's deadline.
        rpc.startProcess("grplead")
        wait_until(lambda: len(_pids(g_lead)) == 4, 10, "grplead's group")
        lead = int(sv.process_info("grplead")["pid"])
        groups.append(lead)
        assert rpc.stopProcess("grplead") is True
        lead_left_at_stop = group_members(lead)
        time.sleep(1.5)  # longer than stopwaitsecs
        lead_left = group_members(lead)

        daemons_alive = [p for p in daemons if alive(p)]
        figure(
            "daemonize-and-groups",
            core,
            daemon0_events=seq0,
            daemon0_exitstatus=info0["exitstatus"],
            daemon1_events=seq1,
            stray_daemons_alive=len(daemons_alive),
            grp_members_left_after_stop=len(grp_left),
            grplead_members_left_after_stop=len(lead_left),
        )
        assert seq0 == ["STARTING", "RUNNING", "EXITED"], seq0
        assert (info0["statename"], info0["exitstatus"]) == ("EXITED", 0)
        assert seq1 == ["STARTING", "BACKOFF", "STARTING", "BACKOFF", "FATAL"], seq1
        # The daemons escaped (as under supervisord): they are in the program's group, alive.
        assert len(daemons_alive) == 3, daemons
        assert grp_left_at_stop == set() and grp_left == set(), grp_left
        assert sv.process_info("grp")["statename"] == "STOPPED"
        assert "stopped: grp (terminated by SIGKILL)" in sv.log_text()
        assert sv.process_info("grplead")["statename"] == "STOPPED"
        # The leader's exit ends the stop (STOPPED at once) in both cores; its children stay
        # under supervisord and are SIGKILLed at the deadline under vigild.
        assert len(lead_left_at_stop) == 3, lead_left_at_stop
        if core == "vigild":
            assert lead_left == set(), lead_left
            assert "killing the rest of grplead's process group (pgid " in sv.log_text()
        else:
            assert len(lead_left) == 3, lead_left
    finally:
        kill_pids(daemons)
        for pgid in groups:
            kill_pids(group_members(pgid))


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_daemonizing_exits_leak_no_file_descriptor(
    any_core: Factory, tmp_path: Path, core: str
) -> None:
    """Each start leaves a daemon holding the program's pipes; the core's fds must not grow.

    (vigild kept its ends of all three pipes open while the daemon lived: 3 fds per exit.)
    """
    starts = scaled(20, 200)
    hold = _hold(tmp_path)
    body = f"""
[program:d]
command = sh -c "{hold} 600 & exit 0"
startsecs = 0
autostart = false
autorestart = false
stdout_logfile = NONE
stderr_logfile = NONE
"""
    with _reaping(hold):
        sv = any_core(body, loglevel="info")
        rpc = sv.rpc().supervisor

        def start(i: int) -> None:
            # not waiting in startProcess: supervisord answers ABNORMAL_TERMINATION when the
            # process has already exited by the time it checks
            rpc.startProcess("d", False)
            sv.wait_for(
                lambda: (
                    len(pids_with_token(hold)) == i + 1
                    and sv.process_info("d")["statename"] == "EXITED"
                ),
                10,
                f"start #{i} to exit",
            )

        start(0)
        before = _fds(sv.pid)
        for i in range(1, starts):
            start(i)
        time.sleep(0.2)
        after = _fds(sv.pid)
        figure("daemonizing-fds", core, starts=starts, core_fds=[before, after])
        assert after <= before, (before, after)


def test_vigild_replaces_a_killed_watchdog(supervisor_factory: Factory, tmp_path: Path) -> None:
    """The watchdog SIGKILLed: vigild logs it and forks a new one; a SIGKILL of vigild then
    still leaves no orphan (before: "reaped unknown pid" at INFO, and every child survived)."""
    n = 5
    hold = _hold(tmp_path)
    body = "".join(
        f"[program:w{i}]\ncommand = {hold} 600\nstartsecs = 0\n"
        "stdout_logfile = NONE\nstderr_logfile = NONE\n\n"
        for i in range(n)
    )
    with _reaping(hold):
        sv = supervisor_factory(
            body, command=core_command(Path("{conf}"), "vigild"), loglevel="info"
        )
        sv.wait_for(lambda: _all_running(sv, n), 30, f"{n} children RUNNING")
        pids = {int(i["pid"]) for i in sv.rpc().supervisor.getAllProcessInfo()}
        (watchdog,) = children_of(sv.pid) - pids
        os.kill(watchdog, signal.SIGKILL)
        line = re.compile(rf"the orphan watchdog \(pid {watchdog}\) died; a new one \(pid (\d+)\)")
        sv.wait_for(lambda: line.search(sv.log_text()) is not None, 5, "the watchdog replaced")
        match = line.search(sv.log_text())
        assert match is not None
        new = int(match[1])
        assert children_of(sv.pid) - pids == {new}
        assert f"watches {n} children" in sv.log_text()
        os.kill(sv.pid, signal.SIGKILL)
        sv.proc.wait(10)
        wait_until(lambda: not any(alive(p) for p in pids), 5, "the children to die with vigild")
        figure("watchdog-replaced", "vigild", children=n, orphans_after_sigkill=0)
