"""Soak (issue 8, point 3): start/exit/restart cycles under both cores, then account for all.

Each run (bench/soak.py) crash-loops ``startsecs=0`` / ``autorestart=true`` programs and
stops/starts another over XML-RPC, with a listener recording every PROCESS_STATE event.
Afterwards, at quiet points where the same children are alive: no zombie child of the
core, no file-descriptor growth, VmRSS growth ≤ 5 MB, and every event accounted for
(``poolserial`` without gaps, in order, each transition's ``from_state`` the state before,
every child's RUNNING and EXITED recorded). vigild runs a cycle count; supervisord runs
for a fixed wall time. The long form: ``VIGIL_RELIABILITY=full`` (10,000 cycles), or
``python -m bench.soak --cycles 10000`` for the side-by-side table.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import SoakResult, account, run_soak
from tests.reliability.conftest import scaled

CYCLES = scaled(400, 10_000)
SUPERVISORD_SECONDS = scaled(5, 60)
RSS_GROWTH_LIMIT_KB = 5 * 1024


@pytest.fixture(scope="module")
def vigild_soak(tmp_path_factory: pytest.TempPathFactory) -> SoakResult:
    """vigild: ``CYCLES`` exit cycles of 4 crash loops and ``CYCLES / 10`` XML-RPC cycles."""
    return run_soak("vigild", tmp_path_factory.mktemp("soak-vigild"), cycles=CYCLES)


@pytest.fixture(scope="module")
def supervisord_soak(tmp_path_factory: pytest.TempPathFactory) -> SoakResult:
    """supervisord: the same programs for ``SUPERVISORD_SECONDS`` of cycles."""
    return run_soak(
        "supervisord",
        tmp_path_factory.mktemp("soak-supervisord"),
        cycles=CYCLES,
        seconds=SUPERVISORD_SECONDS,
    )


@pytest.fixture(params=["supervisord", "vigild"])
def soak(request: pytest.FixtureRequest) -> SoakResult:
    result: SoakResult = request.getfixturevalue(f"{request.param}_soak")
    return result


def test_soak_reaches_its_cycles(vigild_soak: SoakResult, supervisord_soak: SoakResult) -> None:
    assert vigild_soak.exit_cycles >= CYCLES
    assert vigild_soak.rpc_cycles >= CYCLES // 10
    # supervisord cycles too (its figure is what its loop reached in the window)
    assert supervisord_soak.exit_cycles > 0
    assert supervisord_soak.rpc_cycles > 0


def test_soak_leaves_no_zombie(soak: SoakResult) -> None:
    assert soak.zombies_end == 0


def test_soak_core_fds_do_not_grow(soak: SoakResult) -> None:
    assert soak.fds_after <= soak.fds_before, (soak.fds_before, soak.fds_after)


def test_soak_core_rss_grows_at_most_5_mb(soak: SoakResult) -> None:
    assert soak.rss_growth_kb <= RSS_GROWTH_LIMIT_KB, (soak.rss_before_kb, soak.rss_after_kb)


def test_soak_events_arrive_in_order_and_every_loss_is_logged(soak: SoakResult) -> None:
    """Whatever a core drops it logs (``event buffer overflowed``), and it never reorders.

    A lost event breaks its process's ``from_state`` chain and may leave a child's
    RUNNING/EXITED unrecorded; neither may happen without a loss.
    """
    acc = soak.accounting
    assert acc.reordered == 0, acc.problems
    assert acc.serial_gaps == soak.overflow_logged, acc.problems
    if acc.serial_gaps == 0:
        assert acc.chain_breaks == 0, acc.problems
        assert acc.missing == 0, acc.problems
    # each exit cycle makes 3 events and each XML-RPC cycle 4: all recorded or counted lost
    assert acc.events + acc.serial_gaps >= 3 * soak.exit_cycles + 4 * soak.rpc_cycles


def test_vigild_one_crash_loop_with_rpc_cycles_loses_no_event(tmp_path: Path) -> None:
    """One crash loop paced to the listener plus XML-RPC stop/start cycles: nothing lost."""
    result = run_soak("vigild", tmp_path / "one", cycles=CYCLES, flaps=1)
    acc = result.accounting
    assert result.exit_cycles >= CYCLES
    assert (acc.serial_gaps, acc.reordered, acc.chain_breaks, acc.missing) == (0, 0, 0, 0), (
        acc.problems
    )
    assert result.overflow_logged == 0
    assert result.zombies_end == 0
    assert result.fds_after <= result.fds_before


def test_vigild_concurrent_crash_loops_lose_no_event(vigild_soak: SoakResult) -> None:
    """Four crash loops and XML-RPC cycles: paced restarts plus the pool's spill room
    (manager/pool.py) keep every event; supervisord discards at buffer_size."""
    acc = vigild_soak.accounting
    assert (acc.serial_gaps, acc.chain_breaks, acc.missing) == (0, 0, 0), acc.problems


# --- the accounting itself ---------------------------------------------------------------


def _rec(serial: int, state: str, proc: str, before: str, pid: int | None = None) -> str:
    group = proc.split("_")[0]
    tail = f" pid:{pid}" if pid is not None else ""
    return (
        f"{serial} PROCESS_STATE_{state} processname:{proc} groupname:{group} "
        f"from_state:{before}{tail}"
    )


def test_account_complete_record_has_nothing_lost() -> None:
    record = [
        _rec(0, "STARTING", "flap_0", "STOPPED"),
        _rec(1, "RUNNING", "flap_0", "STARTING", 10),
        _rec(2, "EXITED", "flap_0", "RUNNING", 10),
        _rec(3, "STARTING", "flap_0", "EXITED"),
        _rec(4, "RUNNING", "flap_0", "STARTING", 11),
    ]
    acc = account(record, [10, 11], held={11})
    assert (acc.events, acc.serial_gaps, acc.reordered, acc.chain_breaks, acc.missing) == (
        5,
        0,
        0,
        0,
        0,
    )


def test_account_counts_a_lost_event_a_broken_chain_and_a_missing_exit() -> None:
    record = [
        _rec(0, "STARTING", "flap_0", "STOPPED"),
        _rec(1, "RUNNING", "flap_0", "STARTING", 10),
        # 2: EXITED pid 10 lost
        _rec(3, "STARTING", "flap_0", "EXITED"),
        _rec(4, "RUNNING", "flap_0", "STARTING", 11),
    ]
    acc = account(record, [10, 11], held={11})
    assert (acc.serial_gaps, acc.chain_breaks, acc.missing) == (1, 1, 1)


def test_account_counts_reordered_events() -> None:
    record = [
        _rec(1, "RUNNING", "flap_0", "STARTING", 10),
        _rec(0, "STARTING", "flap_0", "STOPPED"),
    ]
    acc = account(record, [], held=set())
    assert acc.reordered == 1
