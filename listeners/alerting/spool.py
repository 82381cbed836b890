"""The durable spool of one channel: one JSON file per undelivered alert.

Theory of operation
-------------------
The plugin's inline handler :meth:`Spool.add`\\ s an alert *before* the event is
acknowledged; the courier deletes it (:meth:`Spool.remove`) only after the
receiver accepted it. Anything in between — a dead receiver, a SIGKILLed listener,
a reboot — leaves the file, and :meth:`Spool.open` at the next start finds it.
Delivery is therefore at-least-once: a listener killed between a receiver's
acceptance and the delete sends that alert again (same ``id``).

Layout of ``spool_dir`` (created with mode 0700)::

    00001714567890123456789-<id>.json   one alert each; the name sorts by spool time
    state.json                          the policy's firing conditions (ChannelPolicy.snapshot)
    .tmp-*                              half-written files (removed at open)
    *.bad                               unreadable files set aside (never deleted by us)

Every write goes to a ``.tmp-`` file that is fsynced and then renamed over the
target, so a reader sees the old or the new content, never a torn one. The spool
holds at most ``max_items`` alerts; adding to a full spool drops the *oldest*
alert and returns it so the caller can say what was lost. A lock makes the
in-memory index and the files agree across threads.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from listeners.alerting.model import Alert

__all__ = ["Spool", "SpoolStatistics"]

STATE_FILE = "state.json"
RECORD_VERSION = 1


@dataclass(frozen=True)
class SpoolStatistics:
    pending: int
    added: int
    delivered: int
    dropped: int
    set_aside: int


class Spool:
    """Undelivered alerts of one channel, on disk under ``directory``."""

    def __init__(
        self,
        directory: Path,
        max_items: int = 1000,
        *,
        fsync: bool = True,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.directory = directory
        self.max_items = max_items
        self._fsync = fsync
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        #: file name -> alert, in file-name (= spool) order
        self._items: dict[str, Alert] = {}
        self._last_seq = 0
        self._added = self._delivered = self._dropped = self._set_aside = 0

    # -- opening -----------------------------------------------------------------------

    def open(self) -> list[str]:
        """Create the directory if needed and load what a previous run left.

        Returns:
            One line per file that could not be read (it is renamed to ``*.bad``).

        Raises:
            OSError: the directory cannot be created or listed.
        """
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        problems: list[str] = []
        with self._lock:
            for path in sorted(self.directory.iterdir()):
                if path.name.startswith(".tmp-"):
                    path.unlink(missing_ok=True)
                    continue
                if not path.name.endswith(".json") or path.name == STATE_FILE:
                    continue
                try:
                    record = json.loads(path.read_text("utf-8"))
                    if record.get("v") != RECORD_VERSION:
                        raise ValueError(f"record version {record.get('v')!r}")
                    alert = Alert.from_record(record["alert"])
                except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                    problems.append(f"{path}: unreadable ({exc}); set aside as {path.name}.bad")
                    with contextlib.suppress(OSError):
                        path.rename(path.with_name(path.name + ".bad"))
                    self._set_aside += 1
                    continue
                self._items[path.name] = alert
                seq, _, _ = path.name.partition("-")
                if seq.isdigit():
                    self._last_seq = max(self._last_seq, int(seq))
        return problems

    # -- items -------------------------------------------------------------------------

    def add(self, alert: Alert) -> list[Alert]:
        """Store ``alert`` durably; returns the alerts dropped to stay within ``max_items``.

        Raises:
            OSError: the file could not be written (the alert is not stored).
        """
        with self._lock:
            dropped: list[Alert] = []
            while len(self._items) >= self.max_items:
                oldest = next(iter(self._items))
                dropped.append(self._items.pop(oldest))
                (self.directory / oldest).unlink(missing_ok=True)
                self._dropped += 1
            self._last_seq = max(self._last_seq + 1, self._clock_ns())
            name = f"{self._last_seq:023d}-{alert.id}.json"
            self._write(name, {"v": RECORD_VERSION, "alert": alert.to_record()})
            self._items[name] = alert
            self._added += 1
            return dropped

    def update(self, alert: Alert) -> bool:
        """Replace the stored alert with the same id (e.g. with context added).

        Returns:
            False if it is no longer in the spool (delivered or dropped meanwhile).
        """
        with self._lock:
            name = self._name_of(alert.id)
            if name is None:
                return False
            self._write(name, {"v": RECORD_VERSION, "alert": alert.to_record()})
            self._items[name] = alert
            return True

    def remove(self, ids: set[str], *, delivered: bool = True) -> None:
        """Forget the alerts with these ids (delivered, or dropped for good)."""
        with self._lock:
            for name in [n for n, a in self._items.items() if a.id in ids]:
                del self._items[name]
                (self.directory / name).unlink(missing_ok=True)
                if delivered:
                    self._delivered += 1
                else:
                    self._dropped += 1

    def pending(self) -> list[Alert]:
        """Every stored alert, oldest first."""
        with self._lock:
            return list(self._items.values())

    def get(self, alert_id: str) -> Alert | None:
        with self._lock:
            name = self._name_of(alert_id)
            return None if name is None else self._items[name]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def statistics(self) -> SpoolStatistics:
        with self._lock:
            return SpoolStatistics(
                len(self._items), self._added, self._delivered, self._dropped, self._set_aside
            )

    # -- the policy's state ------------------------------------------------------------

    def load_state(self) -> dict[str, Any] | None:
        """What :meth:`save_state` last stored (None if nothing or unreadable).

        Raises:
            ValueError: the file exists but is not a JSON object.
        """
        path = self.directory / STATE_FILE
        try:
            data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not a JSON object")
        return data

    def save_state(self, state: dict[str, Any]) -> None:
        with self._lock:
            self._write(STATE_FILE, state)

    # -- internals ---------------------------------------------------------------------

    def _name_of(self, alert_id: str) -> str | None:
        for name, a in self._items.items():
            if a.id == alert_id:
                return name
        return None

    def _write(self, name: str, data: dict[str, Any]) -> None:
        tmp = self.directory / f".tmp-{name}"
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
            if self._fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.directory / name)
