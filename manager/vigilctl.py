"""``vigilctl``: a supervisorctl-compatible client for supervisord and vigild.

Usage: ``vigilctl [-c FILE] [-s URL] [-u USER] [-p PASS] [-i] [-r FILE] [COMMAND [ARGS...]]``

Theory of operation
-------------------
The command line is read the way ``supervisorctl`` reads it (``getopt``: options come
before the command). ``-c FILE`` names the config file; without it the default search
path of supervisord is tried (reference §4.1). Only ``[supervisorctl]`` is read from it
(``serverurl``, ``username``, ``password``; ``%(here)s`` and ``%(ENV_X)s`` expand) and
``[include]`` is *not* followed, as supervisorctl does. ``-s``/``-u``/``-p`` beat the
file, which beats ``http://localhost:9001``. ``SUPERVISOR_SERVER_URL`` is ignored, as
supervisorctl ignores it.

The words after the options are joined with spaces and run as *one* command by
:meth:`Controller.onecmd`, whose output (stdout) and exit status are supervisorctl
4.3's, line for line (reference §6.2, §6.3): the status table, ``<name>: started``,
``<name>: ERROR (no such process)``, ``Restarted supervisord``, ``Shut down``, the
LSB init exit codes (0/1/2/3/4/5/7) and the LSB status codes (3/4) of ``status``.

Differences from supervisorctl, all deliberate:

* No command (or ``-i``) starts supervisorctl's shell (:meth:`Controller.cmdloop`):
  ``status`` first, then one command per line after ``<prompt>> `` until ``quit``,
  ``exit`` or end of input, exit 0; readline history with ``-r`` / ``history_file``.
* ``fg`` follows ``/logtail`` over HTTP as supervisorctl does, but also ends by itself
  when the process stops (supervisorctl notices only at the next line typed) and
  returns at once (supervisorctl lingers up to 30 s); see :mod:`manager.ctl.foreground`.
* ``tail -f`` and ``maintail -f`` stream ``/logtail`` and ``/mainlogtail`` over HTTP as
  supervisorctl does, with its messages; a log truncated in place on vigild gets
  ``==> File truncated <==`` and is followed on (supervisord ends the stream there),
  and a closed stdout ends the command with supervisorctl's one-line message instead
  of a traceback. See :mod:`manager.ctl.logs` and :mod:`manager.ctl.stream`.
* Where supervisorctl prints a Python traceback summary (``error: <class ...>, ...:
  file: ... line: ...``) vigilctl prints one ``error: <what went wrong>`` line naming
  the server URL, with the same exit status (1). After ``Server requires
  authentication`` (HTTP 401) that ``error:`` line names the URL too.
* A server URL vigilctl cannot use (not ``unix:///abs/path`` or ``http://host[:port]``)
  is a usage error (exit 2) rather than a per-command error (exit 1).

Where things are (package :mod:`manager.ctl`)
---------------------------------------------
* :mod:`~manager.ctl.options`: the command line and ``[supervisorctl]``, ``USAGE``.
* :mod:`~manager.ctl.base`: the controller's plumbing: connection, exit statuses,
  the API check, dispatch of a command line to ``do_<command>``.
* :mod:`~manager.ctl.processes`, :mod:`~manager.ctl.logs`, :mod:`~manager.ctl.server`,
  :mod:`~manager.ctl.shell`: the commands, by topic, as mixins of
  :class:`~manager.ctl.controller.Controller`.
* :mod:`~manager.ctl.formatting`: help texts, the status table, result lines.
* :mod:`~manager.ctl.foreground` and :mod:`~manager.ctl.stream`: ``fg`` and its
  ``/logtail`` HTTP streams (imported only when ``fg`` runs).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from manager.ctl.base import InitExit as InitExit
from manager.ctl.base import StatusExit as StatusExit
from manager.ctl.controller import Controller as Controller
from manager.ctl.options import EXIT_USAGE as EXIT_USAGE
from manager.ctl.options import PROG
from manager.ctl.options import USAGE as USAGE
from manager.ctl.options import CtlOptions as CtlOptions
from manager.ctl.options import UsageError as UsageError
from manager.ctl.options import parse_args as parse_args
from manager.ctl.shell import setup_readline

__all__ = [
    "EXIT_USAGE",
    "USAGE",
    "Controller",
    "CtlOptions",
    "InitExit",
    "StatusExit",
    "UsageError",
    "main",
    "parse_args",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``vigilctl`` and return its exit status (see the module docstring)."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        options = parse_args(args, argv0=sys.argv[0] if sys.argv and sys.argv[0] else PROG)
    except UsageError as exc:
        sys.stderr.write(f"Error: {exc}\nFor help, use {PROG} -h\n")
        return EXIT_USAGE
    if options.help:
        sys.stdout.write(USAGE)
        return 0
    controller = Controller(options.serverurl, options.username, options.password, out=sys.stdout)
    if options.command:
        status = controller.onecmd(" ".join(options.command))
        sys.stdout.flush()
        return status
    setup_readline(options.history_file)
    try:
        return controller.cmdloop(f"{options.prompt}> ")
    except KeyboardInterrupt:
        controller.output("")
        return 0


if __name__ == "__main__":
    sys.exit(main())
