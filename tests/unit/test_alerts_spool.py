"""The spool: durable, ordered, bounded (says what it drops), readable after a restart."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from listeners.alerting.model import Alert, Status, Trigger, new_id
from listeners.alerting.spool import Spool


def alert(name: str = "web", **kw: object) -> Alert:
    a = Alert(
        id=new_id(),
        key=f"h/{name}/FATAL",
        status=Status.FIRING,
        trigger=Trigger.FATAL,
        condition=Trigger.FATAL,
        host="h",
        group=name,
        name=name,
        summary=f"{name} is FATAL",
        started_at=1_700_000_000.5,
        at=1_700_000_001.25,
        to_state="FATAL",
    )
    return a.replace(**kw)


def items(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.name[0].isdigit())


def test_add_writes_one_file_per_alert_in_order(tmp_path: Path) -> None:
    s = Spool(tmp_path / "spool")
    assert s.open() == []
    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700
    a, b, c = alert("a"), alert("b"), alert("c")
    for x in (a, b, c):
        assert s.add(x) == []
    assert [x.id for x in s.pending()] == [a.id, b.id, c.id]
    files = items(tmp_path / "spool")
    assert [f.name.split("-", 1)[1] for f in files] == [f"{x.id}.json" for x in (a, b, c)]
    record = json.loads(files[0].read_text())
    assert record["v"] == 1 and Alert.from_record(record["alert"]) == a
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600


def test_remove_deletes_and_reopen_reads_back_what_is_left(tmp_path: Path) -> None:
    s = Spool(tmp_path)
    s.open()
    a, b = alert("a"), alert("b", stderr_tail="ünïcode ✓\n", exit_status=3, enriched=True)
    s.add(a)
    s.add(b)
    s.remove({a.id})
    again = Spool(tmp_path)
    assert again.open() == []
    assert again.pending() == [b]
    assert again.statistics().pending == 1
    # new alerts sort after the ones read back
    c = alert("c")
    again.add(c)
    assert [x.id for x in again.pending()] == [b.id, c.id]


def test_full_spool_drops_the_oldest_and_returns_it(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_items=2)
    s.open()
    a, b, c = alert("a"), alert("b"), alert("c")
    s.add(a)
    s.add(b)
    assert s.add(c) == [a]
    assert [x.id for x in s.pending()] == [b.id, c.id]
    assert len(items(tmp_path)) == 2
    assert s.statistics().dropped == 1


def test_update_rewrites_only_if_still_spooled(tmp_path: Path) -> None:
    s = Spool(tmp_path)
    s.open()
    a = alert()
    s.add(a)
    assert s.update(a.replace(enriched=True, exit_status=1))
    assert Spool(tmp_path).open() == [] and s.get(a.id) == a.replace(enriched=True, exit_status=1)
    s.remove({a.id})
    assert not s.update(a.replace(exit_status=2))
    assert items(tmp_path) == []


def test_unreadable_files_are_set_aside_and_temporaries_removed(tmp_path: Path) -> None:
    (tmp_path / "00000000000000000000001-x.json").write_text("{not json")
    (tmp_path / "00000000000000000000002-y.json").write_text('{"v": 99, "alert": {}}')
    (tmp_path / ".tmp-00000000000000000000003-z.json").write_text("half")
    s = Spool(tmp_path)
    problems = s.open()
    assert len(problems) == 2 and all("set aside" in p for p in problems)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "00000000000000000000001-x.json.bad",
        "00000000000000000000002-y.json.bad",
    ]
    assert s.pending() == [] and s.statistics().set_aside == 2


def test_state_round_trip(tmp_path: Path) -> None:
    s = Spool(tmp_path)
    s.open()
    assert s.load_state() is None
    s.save_state({"version": 1, "firing": []})
    assert s.load_state() == {"version": 1, "firing": []}
    assert s.pending() == []  # state.json is not an alert
    (tmp_path / "state.json").write_text("[1]")
    with pytest.raises(ValueError):
        s.load_state()


def test_concurrent_adds_and_removes_agree_with_the_files(tmp_path: Path) -> None:
    s = Spool(tmp_path, fsync=False)
    s.open()
    added: list[Alert] = []

    def producer() -> None:
        for i in range(50):
            a = alert(f"p{i}")
            s.add(a)
            added.append(a)

    t = threading.Thread(target=producer)
    t.start()
    deadline = time.monotonic() + 5
    while (t.is_alive() or s.pending()) and time.monotonic() < deadline:
        for a in s.pending()[:3]:
            s.remove({a.id})
    t.join()
    assert s.pending() == [] and items(tmp_path) == []
    assert s.statistics().delivered == 50


def test_spool_directory_that_cannot_be_created_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError):
        Spool(blocker / "spool").open()
    assert os.path.isfile(blocker)
