"""The parts of vigild's :class:`~manager.supervisor.Supervisor`, one concern per module.

:mod:`manager.supervisor` assembles ``Supervisor`` from the mixins here and re-exports
the names other modules use; import from there. A mixin calls only what it or its bases
define, so ``mypy --strict`` checks the split; the bases say what each part needs:

* :mod:`~manager.daemon.group`: :class:`~manager.daemon.group.Group` (a group's
  processes, its listener pool, its fcgi sockets).
* :mod:`~manager.daemon.pipes`: one child's pipes (``Output``, ``Child``) and what they
  use of the supervisor (``OutputHost``).
* :mod:`~manager.daemon.base`: ``SupervisorBase``, the state every mixin shares, the
  clock and OS part of :class:`~manager.process.ProcessHost`, lookups over groups.
* :mod:`~manager.daemon.pacing`: events to listener pools; backpressure, restart
  pacing, stalled pools.
* :mod:`~manager.daemon.ticks`: the TICK_5/60/3600 events.
* :mod:`~manager.daemon.spawning`: a child's spec and environment, its fcgi socket.
* :mod:`~manager.daemon.childio`: a new child's pipes wired to log files, events and
  its pool; its stdin.
* :mod:`~manager.daemon.reaping`: waitpid, and what a child's exit releases.
* :mod:`~manager.daemon.shutdown`: process state changes; shutdown and reload, a
  group at a time.
* :mod:`~manager.daemon.groups`: adding, removing and starting groups.

``Supervisor`` itself (start, signals, the run loop, closing everything at the end)
stays in :mod:`manager.supervisor`.
"""
