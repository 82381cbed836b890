"""supervisorctl's interactive shell, and the commands that belong to it: ``help``,
``quit``/``exit`` (and end of input), ``open``.

No command on the command line (or ``-i``) runs :meth:`ShellCommands.cmdloop`:
``status`` first, then one command per line after ``<prompt>> `` until ``quit``,
``exit`` or end of input; the exit status is 0 whatever the commands did. On a
terminal, :func:`setup_readline` gives line editing and, with ``-r`` or
``history_file``, a history kept across runs.
"""

from __future__ import annotations

import atexit
import cmd
import contextlib
import sys
import urllib.parse
from collections.abc import Callable

from manager.ctl.base import ControllerBase, InitExit
from manager.ctl.formatting import HELP
from manager.ctl.options import client_url
from manager.rpcclient import parse_server_url

__all__ = ["ShellCommands", "setup_readline"]


class ShellCommands(ControllerBase):
    """The shell's loop, ``help``, ``quit``, ``exit``, ``EOF`` and ``open``."""

    def cmdloop(self, prompt: str, read: Callable[[str], str] = input) -> int:
        """supervisorctl's shell: ``status`` first, then a command per line read with
        ``read(prompt)`` until ``quit``, ``exit`` or end of input; always returns 0."""
        line = "status"
        while True:
            if line.strip().split(" ", 1)[0] in ("EOF", "quit", "exit"):
                self.onecmd(line)
                return 0
            self.onecmd(line)
            self._out.flush()
            try:
                line = read(prompt)
            except EOFError:
                line = "EOF"

    def do_help(self, arg: str) -> None:
        if arg == "help":
            self._help("help")
        elif arg:
            if arg in HELP:
                self._help(arg)
            else:
                self.output(f"*** No help on {arg}")
        else:
            self.output("")
            header = "default commands (type help <topic>):"
            self.output(header)
            self.output("=" * len(header))
            topics = sorted(name for name in HELP if name != "help")
            cmd.Cmd(stdout=self._out).columnize(topics, 79)
            self.output("")

    def do_EOF(self, arg: str) -> None:
        self.output("")

    def do_quit(self, arg: str) -> None:
        self.do_EOF(arg)

    do_exit = do_quit

    def do_open(self, arg: str) -> None:
        url = arg.strip()
        scheme = urllib.parse.urlparse(url).scheme
        if scheme not in ("unix", "http"):
            self.output("ERROR: url must be http:// or unix://")
            self.exitstatus = InitExit.GENERIC
            return
        try:
            parse_server_url(client_url(url))
        except ValueError as exc:
            self.output(f"ERROR: {exc}")
            self.exitstatus = InitExit.GENERIC
            return
        self.serverurl = url
        self._client = None
        old = self.exitstatus
        status = self._handler("status")
        if status is not None:  # always: every Controller has ProcessCommands
            status("")
        self.exitstatus = old


def setup_readline(history_file: str | None) -> None:
    """Line editing and history for the shell, as supervisorctl sets them up."""
    if not sys.stdin.isatty():
        return
    try:
        import readline
    except ImportError:
        return
    delims = readline.get_completer_delims()
    for c in ":*-":  # "group:process", "group:*" and "a-b" are one word
        delims = delims.replace(c, "")
    readline.set_completer_delims(delims)
    if history_file:
        with contextlib.suppress(OSError):
            readline.read_history_file(history_file)
        atexit.register(_save_history, readline.write_history_file, history_file)


def _save_history(write: Callable[[str], None], path: str) -> None:
    with contextlib.suppress(OSError):
        write(path)
