""":class:`NamespaceBase`: the state and plumbing every ``supervisor.*`` mixin shares.

Theory of operation
-------------------
``SupervisorNamespace`` (:mod:`manager.rpcinterface`) is one object per running
:class:`~manager.supervisor.Supervisor`, assembled from a mixin per topic; each mixin
derives from :class:`NamespaceBase`, which holds the state (the supervisor, the
configuration read last, the waits in progress, the cache of the fast renderings) and
the helpers. Helpers start with ``_`` so they are never published
(:mod:`manager.api.introspection`).

A wait never blocks: :meth:`NamespaceBase._wait` puts a callback in
``Supervisor.watchers``, evaluated on every process state change, which settles the
:class:`~manager.api.answers.Deferred` on the next turn of the loop (never from inside
the state change that decided it, so a reply never re-enters the state machine).
:meth:`NamespaceBase._for_each` is supervisord's ``make_allfunc`` for the group/all
operations; :func:`abandon` fails every pending wait when the supervisor goes away.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence

from manager.api.answers import PENDING, Deferred, RPCError
from manager.api.names import split_namespec
from manager.config import Config
from manager.faults import Fault
from manager.process import Process
from manager.states import SupervisorState
from manager.supervisor import Supervisor

__all__ = ["NamespaceBase", "Result", "abandon"]

#: A result struct of the group/all operations.
Result = dict[str, object]


def _result(process: Process, code: Fault, text: str) -> Result:
    return {"name": process.name, "group": process.group, "status": int(code), "description": text}


class NamespaceBase:
    """The state of the ``supervisor.*`` namespace on one running :class:`Supervisor`."""

    def __init__(self, sup: Supervisor) -> None:
        self._sup = sup
        #: the configuration read last (``reloadConfig``), which ``addProcessGroup``
        #: and ``getAllConfigInfo`` use
        self._config: Config = sup.config
        #: waits in progress, and how to stop watching for each
        self._pending: dict[Deferred, Callable[[], None]] = {}
        #: ``_static_members`` of each process, as of the last getAllProcessInfo
        self._statics: dict[Process, tuple[str, str]] = {}

    # -- helpers (not published: they start with "_")

    def _require_running(self) -> None:
        if self._sup.state is not SupervisorState.RUNNING:
            raise RPCError(Fault.SHUTDOWN_STATE)

    def _lookup(self, name: str) -> tuple[str, Process | None]:
        """(group name, process) for a namespec; process is None for ``g:*`` / ``g:``."""
        group_name, process_name = split_namespec(name)
        group = self._sup.groups.get(group_name)
        if group is None:
            raise RPCError(Fault.BAD_NAME, name)
        if process_name is None:
            return group_name, None
        process = group.processes.get(process_name)
        if process is None:
            raise RPCError(Fault.BAD_NAME, name)
        return group_name, process

    def _process(self, name: str) -> Process:
        _group, process = self._lookup(name)
        if process is None:
            raise RPCError(Fault.BAD_NAME, name)
        return process

    def _group_processes(self, name: str) -> list[Process]:
        group = self._sup.groups.get(name)
        if group is None:
            raise RPCError(Fault.BAD_NAME, name)
        return group.ordered()

    def _wait(self, check: Callable[[], object]) -> Deferred:
        """A Deferred settled by ``check()`` once it stops returning :data:`PENDING`.

        ``check`` runs after every process state change; it may raise RPCError.
        """
        sup = self._sup
        deferred = Deferred()

        def stop() -> None:
            with contextlib.suppress(ValueError):
                sup.watchers.remove(watcher)
            self._pending.pop(deferred, None)

        def settle(action: Callable[[], None]) -> None:
            stop()
            # answer on the next turn, outside the state change that decided it
            sup.loop.call_soon(action)

        def watcher(_process: Process) -> None:
            if deferred.done:
                stop()
                return
            try:
                value = check()
            except Exception as exc:  # RPCError, or a bug: either way the client hears of it
                settle(functools.partial(deferred.fail, exc))
                return
            if value is not PENDING:
                settle(functools.partial(deferred.resolve, value))

        sup.watchers.append(watcher)
        self._pending[deferred] = stop
        deferred.on_cancel(stop)
        return deferred

    def _for_each(
        self,
        processes: Sequence[Process],
        predicate: Callable[[Process], bool],
        action: Callable[[str], object],
    ) -> list[Result] | Deferred:
        """supervisord's ``make_allfunc``: act on each matching process, collect result structs.

        Immediate results come first, in ``processes`` order; waited ones follow, also
        in ``processes`` order, once the last has finished. (supervisord appends them
        as its 50 ms polls see them finish, which is the same order whenever they
        finish together, e.g. a group stopped at once; ours does not depend on timing.)
        """
        results: list[Result] = []
        waiting: list[tuple[Process, Deferred]] = []
        for process in processes:
            if not predicate(process):
                continue
            try:
                value = action(process.namespec)
            except RPCError as exc:
                results.append(_result(process, exc.code, exc.text))
                continue
            if isinstance(value, Deferred):
                waiting.append((process, value))
            else:
                results.append(_result(process, Fault.SUCCESS, "OK"))
        if not waiting:
            return results
        combined = Deferred()

        def finished(_d: Deferred) -> None:
            if combined.done or not all(d.done for _p, d in waiting):
                return
            for process, d in waiting:
                try:
                    d.result()
                except RPCError as exc:
                    results.append(_result(process, exc.code, exc.text))
                except Exception as exc:
                    combined.fail(exc)
                    return
                else:
                    results.append(_result(process, Fault.SUCCESS, "OK"))
            combined.resolve(results)

        def cancel_all() -> None:
            for _process, d in waiting:
                d.cancel()

        combined.on_cancel(cancel_all)
        for _process, d in waiting:
            d.add_done_callback(finished)
        return combined

    def _abandon(self) -> None:
        """This supervisor is gone (reload, shutdown): fail every pending wait."""
        for deferred, stop in list(self._pending.items()):
            stop()
            deferred.fail(RPCError(Fault.SHUTDOWN_STATE))


def abandon(namespace: NamespaceBase) -> None:
    """Its supervisor is gone (reload, shutdown): every pending wait fails with SHUTDOWN_STATE."""
    namespace._abandon()
