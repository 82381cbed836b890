"""How a method answers: a value, an :class:`RPCError` (a fault), or a :class:`Deferred`.

Theory of operation
-------------------
A method that has to wait for a state (``startProcess(name, wait=True)``) returns a
:class:`Deferred` instead of blocking the loop. :mod:`manager.rpcserver` sends the
response when it settles and cancels it when the client goes away; ``system.multicall``
chains them (:func:`outcome` turns a settled one into its multicall entry). A wait
condition returns :data:`PENDING` while its state has not been reached
(:meth:`manager.api.base.NamespaceBase._wait`).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

from manager.faults import Fault

__all__ = ["PENDING", "Deferred", "RPCError", "failed_struct", "outcome"]

log = logging.getLogger("vigild.rpc")


class RPCError(Exception):
    """A fault: ``code`` is the :class:`Fault`, ``text`` is ``NAME`` or ``NAME: detail``."""

    def __init__(self, fault: Fault, detail: object = None) -> None:
        self.code = fault
        self.text = fault.name if detail is None else f"{fault.name}: {detail}"
        super().__init__(self.text)


class _Pending(enum.Enum):
    PENDING = "PENDING"


#: What a wait condition returns while its state has not been reached.
PENDING = _Pending.PENDING


class Deferred:
    """An answer that is not known yet.

    Exactly one of :meth:`resolve`, :meth:`fail` or :meth:`cancel` takes effect;
    later calls are ignored. Done callbacks run on resolve/fail (at once if already
    settled), cancel callbacks on cancel (the client went away).
    """

    def __init__(self) -> None:
        self.done = False
        self.cancelled = False
        self._value: object = None
        self._error: Exception | None = None
        self._callbacks: list[Callable[[Deferred], None]] = []
        self._cancellers: list[Callable[[], None]] = []

    def resolve(self, value: object) -> None:
        if not self.done:
            self._value = value
            self._settle()

    def fail(self, error: Exception) -> None:
        if not self.done:
            self._error = error
            self._settle()

    def result(self) -> object:
        """The value, or raise the error it failed with.

        Raises:
            RPCError: the fault it failed with (or any other exception it carries).
        """
        assert self.done and not self.cancelled
        if self._error is not None:
            raise self._error
        return self._value

    def add_done_callback(self, callback: Callable[[Deferred], None]) -> None:
        if self.done:
            if not self.cancelled:
                callback(self)
            return
        self._callbacks.append(callback)

    def on_cancel(self, callback: Callable[[], None]) -> None:
        if not self.done:
            self._cancellers.append(callback)

    def cancel(self) -> None:
        if self.done:
            return
        self.done = self.cancelled = True
        self._callbacks.clear()
        cancellers, self._cancellers = self._cancellers, []
        for cb in cancellers:
            try:
                cb()
            except Exception:
                log.exception("error while cancelling a deferred XML-RPC answer")

    def _settle(self) -> None:
        self.done = True
        self._cancellers.clear()
        callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            # a broken callback must not take the loop (and every process) down with it
            try:
                cb(self)
            except Exception:
                log.exception("error in a callback of a deferred XML-RPC answer")


def outcome(deferred: Deferred) -> object:
    """A settled Deferred as multicall reports it: the value, or a fault struct."""
    try:
        return deferred.result()
    except RPCError as exc:
        return {"faultCode": int(exc.code), "faultString": exc.text}
    except Exception as exc:
        return failed_struct(exc)


def failed_struct(exc: Exception) -> dict[str, object]:
    """supervisord's fault struct for an unexpected exception inside multicall (FAILED)."""
    return {"faultCode": int(Fault.FAILED), "faultString": f"FAILED: {type(exc)}:{exc}"}
