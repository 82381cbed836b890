"""Listener faults (issue 8, point 1), against vigild and real supervisord 4.3.

* A listener SIGKILLed while it holds an un-acknowledged event, N times in a row: every event is
  delivered at least once, in order, none lost — in the killed pool and in a healthy pool
  subscribed to the same events.
* Listeners that answer garbage, FAIL forever, or never answer: the core logs it, keeps serving
  a healthy pool and restarting a crashing program, and its memory stays bounded under a flood.

Events are REMOTE_COMMUNICATION events sent with ``sendRemoteCommEvent``, their data a
sequence number, so the test knows exactly what was sent and in which order. The listeners
(``programs/listener.py``) fsync each event's identity to a file *before* answering, so a
SIGKILL can never hide a delivery. Figures are printed (``-s``) and appended to
``$VIGIL_FIGURES``; RELIABILITY.md has the table.
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from manager.supervisor import STALL_AFTER
from tests.reliability.conftest import scaled
from tests.support.faults import (
    CHILD,
    LISTENER,
    account,
    alive,
    cpu_seconds,
    figure,
    log_entries,
    read_records,
    rss_kib,
    wait_until,
)
from tests.support.supervisor import Supervisor

Factory = Callable[..., Supervisor]


def _send(sv: Supervisor, idents: list[str]) -> None:
    rpc = sv.rpc().supervisor
    for ident in idents:
        assert rpc.sendRemoteCommEvent("fault", ident) is True


def _listener(name: str, mode: str, tmp: Path, events: str, buffer_size: int, *args: str) -> str:
    argv = " ".join([LISTENER, mode, *args])
    return f"""
[eventlistener:{name}]
command = {argv}
events = {events}
buffer_size = {buffer_size}
startsecs = 0
autorestart = true
stdout_logfile = NONE
stderr_logfile = {tmp / f"{name}.err"}
"""


# ---------------------------------------------------------------------------------------------
# SIGKILLed mid-event


def test_listener_sigkilled_mid_event_loses_nothing(
    any_core: Factory, tmp_path: Path, core: str
) -> None:
    # supervisord needs about 1.3 s per kill (its 1-second loop): fewer in the bounded form.
    kills = scaled(20 if core == "vigild" else 6, 100)
    sent = [f"ev-{i:05d}" for i in range(kills + 10)]
    victim, steady, release = tmp_path / "victim.rec", tmp_path / "steady.rec", tmp_path / "go"
    size = len(sent) + 10  # no overflow: this scenario is about kills, not buffer size
    body = _listener(
        "victim", "record", tmp_path, "REMOTE_COMMUNICATION", size, str(victim), str(release)
    ) + _listener("steady", "record", tmp_path, "REMOTE_COMMUNICATION", size, str(steady))
    sv = any_core(body, loglevel="info")
    sv.wait_state("victim", "RUNNING")
    sv.wait_state("steady", "RUNNING")
    _send(sv, sent)

    killed: list[str] = []
    latencies: list[float] = []  # SIGKILL -> the same event recorded again by the new listener
    started = time.monotonic()
    for _ in range(kills):
        holder = None

        def held() -> bool:
            nonlocal holder
            fresh = [r for r in read_records(victim) if r.ident not in killed]
            holder = fresh[0] if fresh else None
            return holder is not None

        wait_until(held, 15, f"the victim to hold event #{len(killed)}")
        assert holder is not None
        assert alive(holder.pid), holder
        os.kill(holder.pid, signal.SIGKILL)
        t_kill = time.monotonic()
        killed.append(holder.ident)
        ident = holder.ident
        wait_until(
            lambda ident=ident: sum(r.ident == ident for r in read_records(victim)) >= 2,
            15,
            f"{ident} redelivered after the kill",
        )
        latencies.append(time.monotonic() - t_kill)
    release.write_text("go")
    wait_until(
        lambda: (
            {r.ident for r in read_records(victim)} >= set(sent)
            and {r.ident for r in read_records(steady)} >= set(sent)
        ),
        30,
        "every event in both pools",
    )
    elapsed = time.monotonic() - started
    time.sleep(0.2)  # a late duplicate would show now

    v_records, s_records = read_records(victim), read_records(steady)
    v = account(sent, [r.ident for r in v_records])
    s = account(sent, [r.ident for r in s_records])
    pids = {r.pid for r in v_records}
    figure(
        "listener-sigkill",
        core,
        kills=kills,
        sent=len(sent),
        victim=v.__dict__,
        steady=s.__dict__,
        victim_processes=len(pids),
        redelivery_median_s=round(statistics.median(latencies), 3),
        redelivery_max_s=round(max(latencies), 3),
        elapsed_s=round(elapsed, 2),
    )
    # The contract, both cores: at least once, in order, nothing lost.
    assert (v.lost, v.order_violations, v.unexpected) == (0, 0, 0), v
    assert (s.lost, s.order_violations, s.unexpected) == (0, 0, 0), s
    assert v.delivered == s.delivered == len(sent)
    assert len(pids) == kills + 1  # every kill really took down the listener that held the event
    # Each killed event came back with the same serial and poolserial (a redelivery).
    for ident in killed:
        copies = {(r.serial, r.poolserial) for r in v_records if r.ident == ident}
        assert len(copies) == 1, (ident, copies)
    if core == "vigild":
        # Exactly one redelivery per kill, and only in the pool whose listener died
        # (supervisord rebuffers in every pool of equal priority, reference §1.7).
        assert v.duplicates == kills, v
        assert s.duplicates == 0, s
    assert sv.rpc().supervisor.getState()["statename"] == "RUNNING"


# ---------------------------------------------------------------------------------------------
# garbage, FAIL forever, silence


def _flood(sv: Supervisor, prefix: str, n: int) -> list[str]:
    idents = [f"{prefix}-{i:06d}" for i in range(n)]
    _send(sv, idents)
    return idents


def test_bad_listeners_do_not_stop_the_core(any_core: Factory, tmp_path: Path, core: str) -> None:
    # supervisord's RPC crawls under the FAIL hot loop (see the figures): smaller floods.
    flood = scaled(1000, 20000) if core == "vigild" else scaled(300, 2000)
    stuck = 20
    good = tmp_path / "good.rec"
    events = "REMOTE_COMMUNICATION,PROCESS_STATE"
    body = (
        _listener("fail", "fail", tmp_path, events, stuck)
        + _listener("garbage", "garbage", tmp_path, events, stuck)
        + _listener("silent", "silent", tmp_path, events, stuck)
        + _listener("good", "record", tmp_path, "REMOTE_COMMUNICATION", flood + 10, str(good))
        + """
[program:crasher]
command = sh -c "sleep 0.1; exit 3"
startsecs = 0
autorestart = true
stdout_logfile = NONE
stderr_logfile = NONE
"""
    )
    sv = any_core(body, loglevel="info")
    for name in ("fail", "garbage", "silent", "good"):
        sv.wait_state(name, "RUNNING")

    def spawns() -> int:
        return sum(1 for _, msg in log_entries(sv) if msg.startswith("spawned: 'crasher'"))

    # Warm up (one small flood), then measure two big ones.
    warm = _flood(sv, "warm", 100)
    wait_until(lambda: len(read_records(good)) >= len(warm), 30, "the warm-up events")
    rss = [rss_kib(sv.pid)]
    cpu0, log0, t0 = cpu_seconds(sv.pid), sv.logfile.stat().st_size, time.monotonic()
    sent: list[str] = list(warm)
    # supervisord rebuffers every FAIL in every pool of equal priority (reference §1.7): the
    # good pool is flooded with the rejected event and never catches up; it gets a short wait.
    patience = 60 if core == "vigild" else 3
    # Chunks of 500, each waited for at the good pool: its backlog (and RSS high-water mark)
    # stays small, so RSS measures what the stuck pools cost.
    chunk = 500
    complete: list[bool] = []
    for round_ in range(2):
        caught_up = True
        for start in range(0, flood, chunk):
            sent += _flood(sv, f"r{round_}c{start}", min(chunk, flood - start))
            if not caught_up:
                continue
            try:
                wait_until(
                    lambda want=set(sent): {r.ident for r in read_records(good)} >= want,
                    patience,
                    f"flood {round_} at the good pool",
                )
            except AssertionError:
                if core == "vigild":
                    raise
                caught_up = False
        complete.append(caught_up)
        rss.append(rss_kib(sv.pid))
    spawned_before = spawns()
    # The crasher must keep being restarted while the bad pools stay stuck (vigild paces a
    # restart while a PROCESS_STATE pool is full, at most PACE_MAX_DELAY = 1 s each).
    time.sleep(4)
    restarts = spawns() - spawned_before
    dt = time.monotonic() - t0
    cpu = cpu_seconds(sv.pid) - cpu0
    log_bytes = sv.logfile.stat().st_size - log0
    good_records = read_records(good)
    g = account(sent, [r.ident for r in good_records if r.eventname == "REMOTE_COMMUNICATION"])
    foreign = sum(1 for r in good_records if r.eventname != "REMOTE_COMMUNICATION")
    log = sv.log_text()
    states = {
        name: sv.process_info(name)["statename"] for name in ("fail", "garbage", "silent", "good")
    }
    unknown = "has entered the UNKNOWN state and will no longer receive events"
    figure(
        "bad-listeners",
        core,
        events_per_flood=flood,
        rss_kib=rss,
        rss_growth_kib=rss[-1] - rss[1],
        good=g.__dict__,
        good_complete=complete,
        good_foreign_events=foreign,
        crasher_restarts_in_4s=restarts,
        core_cpu_s=round(cpu, 2),
        window_s=round(dt, 1),
        log_bytes_per_s=int(log_bytes / dt),
        rejected_lines=log.count("event was rejected"),
        garbage_unknown="garbage: " + unknown in log,
        overflow_lines=log.count("event buffer overflowed"),
        listener_states=states,
    )
    # Both cores: the protocol violation is logged, the bad listeners keep running (no restart
    # storm), a crashing program keeps being restarted, the core answers.
    assert f"garbage: {unknown}" in log
    assert "fail: event was rejected" in log
    assert "pool silent event buffer overflowed" in log
    assert states == dict.fromkeys(states, "RUNNING")
    assert restarts >= 2, restarts
    assert sv.rpc().supervisor.getState()["statename"] == "RUNNING"
    # Memory: the second flood of the same size costs (almost) nothing more: buffers are capped.
    assert rss[-1] - rss[1] < (1024 if core == "vigild" else 4096), rss
    if core == "vigild":
        # The healthy pool got every event once, in order, and nothing it did not subscribe
        # to: another pool's FAIL is rebuffered in that pool only (unlike supervisord, §1.7).
        assert complete == [True, True]
        assert (g.lost, g.order_violations, g.unexpected, g.duplicates) == (0, 0, 0, 0), g
        assert foreign == 0
        # ... and each stuck pool is declared stalled (restarts no longer wait for it), 5 s
        # (STALL_AFTER) after something first waited on it: the floods may end sooner.
        stalled = [
            f"pool {n} has accepted no event for 5 seconds" for n in ("fail", "garbage", "silent")
        ]
        wait_until(
            lambda: all(line in sv.log_text() for line in stalled), 15, "the stall declarations"
        )


# ---------------------------------------------------------------------------------------------
# a stuck listener and a program whose output it subscribes to


def test_a_stuck_listener_does_not_freeze_a_program(
    any_core: Factory, tmp_path: Path, core: str
) -> None:
    """A program with stdout_events_enabled keeps running when the PROCESS_LOG pool is stuck.

    vigild stops reading a child's pipe while a pool its events go to is full (backpressure,
    so that a slow listener loses nothing); a listener that never answers must not hold the
    program forever: after STALL_AFTER seconds without an accepted event the pool is stalled,
    the program's output flows again and the pool discards its oldest events, as supervisord
    does at once.
    """
    progress = tmp_path / "progress"
    body = f"""
[program:talker]
command = {CHILD} talk {progress}
stdout_events_enabled = true
stdout_logfile = NONE
stderr_logfile = NONE
startsecs = 0
""" + _listener("stuck", "silent", tmp_path, "PROCESS_LOG", 10)
    sv = any_core(body, loglevel="info")
    sv.wait_state("stuck", "RUNNING")
    sv.wait_state("talker", "RUNNING")

    def written() -> int:
        try:
            return int(progress.read_text() or 0)
        except (OSError, ValueError):
            return 0

    wait_until(lambda: written() > 0, 10, "the talker to write")
    # vigild holds the program up to STALL_AFTER; supervisord never holds it.
    time.sleep(STALL_AFTER + 1 if core == "vigild" else 1)
    before, rss_before = written(), rss_kib(sv.pid)
    time.sleep(2)
    after, rss_after = written(), rss_kib(sv.pid)
    figure(
        "stuck-listener-vs-program",
        core,
        lines_written_in_2s=after - before,
        lines_before=before,
        rss_kib=[rss_before, rss_after],
        overflow_lines=sv.log_text().count("pool stuck event buffer overflowed"),
    )
    assert after - before >= 500, (before, after)  # ~1,000 lines/s when not blocked
    assert rss_after - rss_before < 4096, (rss_before, rss_after)
    assert "pool stuck event buffer overflowed, discarding event" in sv.log_text()
    assert sv.process_info("talker")["statename"] == "RUNNING"


# ---------------------------------------------------------------------------------------------
# the flood itself: XML-RPC calls must not cost memory


def test_core_memory_is_flat_under_an_xmlrpc_flood(any_core: Factory, core: str) -> None:
    """RSS after N more calls equals RSS before, within allocator noise.

    (vigild kept every closed connection, with its parsed request, alive in a cancelled
    60-second request timer until the deadline: +15 MB after 40,000 ``getState`` calls.)
    """
    calls = scaled(3000, 40000)
    sv = any_core("[program:a]\ncommand = sleep 600\nstartsecs = 0\n", loglevel="info")
    rpc = sv.rpc().supervisor
    for _ in range(1000):  # warm-up: caches, allocator arenas
        rpc.getState()
    before = rss_kib(sv.pid)
    started = time.monotonic()
    for _ in range(calls):
        rpc.getState()
    took = time.monotonic() - started
    after = rss_kib(sv.pid)
    figure(
        "xmlrpc-flood-rss",
        core,
        calls=calls,
        rss_kib=[before, after],
        calls_per_s=int(calls / took),
    )
    # 256 KiB of allocator noise plus 16 bytes a call (supervisord: ~9 B a call over 40,000;
    # the leak was ~375 B a call)
    assert after - before < 256 + calls // 64, (before, after)
