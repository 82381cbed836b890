""":class:`Controller`: every vigilctl command, on one connection and one exit status."""

from __future__ import annotations

from manager.ctl.logs import LogCommands
from manager.ctl.processes import ProcessCommands
from manager.ctl.server import ServerCommands
from manager.ctl.shell import ShellCommands

__all__ = ["Controller"]


class Controller(ShellCommands, ProcessCommands, LogCommands, ServerCommands):
    """Runs supervisorctl command lines against a server (arguments: see
    :class:`~manager.ctl.base.ControllerBase`).

    :meth:`onecmd` runs one line and returns the exit status; :meth:`cmdloop` is the
    interactive shell. Each ``do_<command>`` comes from the mixin for its topic.
    """
