"""vigilctl's command line and ``[supervisorctl]`` section, read as supervisorctl reads them.

``getopt``: options come before the command. ``-c FILE`` names the config file; without
it the default search path of supervisord is tried (reference §4.1). Only
``[supervisorctl]`` is read from it (``serverurl``, ``username``, ``password``,
``prompt``, ``history_file``; ``%(here)s`` and ``%(ENV_X)s`` expand) and ``[include]``
is *not* followed, as supervisorctl does. ``-s``/``-u``/``-p``/``-r`` beat the file,
which beats ``http://localhost:9001``. ``SUPERVISOR_SERVER_URL`` is ignored, as
supervisorctl ignores it.
"""

from __future__ import annotations

import getopt
import os
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from manager.ini import ConfigError, find_config_file, read_ini
from manager.rpcclient import DEFAULT_SERVER_URL, parse_server_url

__all__ = [
    "EXIT_USAGE",
    "PROG",
    "USAGE",
    "CtlOptions",
    "UsageError",
    "client_url",
    "parse_args",
]

PROG = "vigilctl"


USAGE = """\
vigilctl -- control a supervisord (or vigild): one command, or an interactive shell.

Usage: vigilctl [options] [action [arguments]]

Options:
-c/--configuration FILENAME -- configuration file path (searches if not given);
     only its [supervisorctl] section is read
-h/--help -- print usage message and exit
-i/--interactive -- start the interactive shell after executing commands
-s/--serverurl URL -- URL on which supervisord server is listening
     (default "http://localhost:9001").
-u/--username USERNAME -- username to use for authentication with server
-p/--password PASSWORD -- password to use for authentication with server
-r/--history_file FILE -- keep a readline history (if readline is available)

action [arguments] -- as supervisorctl: status, start, stop, restart, signal, pid,
tail, maintail, fg, clear, avail, reread, update, add, remove, reload, shutdown,
version, open, help.  Use the action "help" to list them.

Without an action vigilctl starts the interactive shell (exit status 0).
Otherwise the exit status is supervisorctl's: 0 success, 1 error, 2 invalid
arguments, 3 (status) not running, 4 (status) unknown or server unreachable,
7 not running / socket file missing.
"""


#: exit status for usage and configuration errors (as supervisorctl's ``usage()``)
EXIT_USAGE = 2


class UsageError(Exception):
    """A bad command line or config file: ``Error: <msg>`` on stderr, exit 2."""


@dataclass(frozen=True)
class CtlOptions:
    """The parsed command line, with ``[supervisorctl]`` and the defaults applied."""

    serverurl: str
    username: str | None
    password: str | None
    #: the command and its arguments (empty: none given)
    command: tuple[str, ...]
    #: the config file that was read, if any
    configfile: Path | None = None
    #: ``-h`` was given
    help: bool = False
    #: run the shell: ``-i``, or no command given
    interactive: bool = False
    #: ``[supervisorctl] prompt``; the shell shows ``<prompt>> ``
    prompt: str = "supervisor"
    #: ``-r`` or ``[supervisorctl] history_file``: the shell's readline history
    history_file: str | None = None


_SHORT = "h?ic:s:u:p:r:"


_LONG = [
    "help",
    "interactive",
    "configuration=",
    "serverurl=",
    "username=",
    "password=",
    "history_file=",
]


_OPTION_NAMES = {
    "-c": "configfile",
    "--configuration": "configfile",
    "-s": "serverurl",
    "--serverurl": "serverurl",
    "-u": "username",
    "--username": "username",
    "-r": "history_file",
    "--history_file": "history_file",
    "-p": "password",
    "--password": "password",
}


def _normalize_path(path: str) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(path)))


def _check_url(option: str, value: str) -> None:
    parts = urllib.parse.urlparse(value)
    if not (parts.scheme and (parts.netloc or parts.path)):
        raise UsageError(f"invalid value for {option} {value!r}: value {value!r} is not a URL")


def client_url(serverurl: str) -> str:
    """The URL to connect to: ``serverurl`` with a relative socket path made absolute."""
    if serverurl.startswith("unix://"):
        return "unix://" + _normalize_path(serverurl[len("unix://") :])
    return serverurl


def _read_ctl_section(path: Path, environ: Mapping[str, str]) -> dict[str, str | None]:
    if not path.exists():
        raise UsageError(f"could not find config file {path}")
    try:
        ini = read_ini(path, environ=environ, follow_includes=False)
        section = ini.section("supervisorctl")
        if section is None:
            raise UsageError(".ini file does not include supervisorctl section")
        keys = ("serverurl", "username", "password", "prompt", "history_file")
        values = {key: section.expand(key, {}, environ=environ) for key in keys}
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    serverurl = values["serverurl"]
    if serverurl is not None and serverurl.startswith("unix://"):
        values["serverurl"] = "unix://" + _normalize_path(serverurl[len("unix://") :])
    return values


def parse_args(
    argv: Sequence[str],
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    argv0: str = PROG,
) -> CtlOptions:
    """Parse ``vigilctl``'s arguments (without the program name) as supervisorctl does.

    Args:
        argv: options, then the command and its arguments.
        environ: for ``%(ENV_X)s`` in the config file (``os.environ`` if ``None``).
        cwd: where the default config search starts (the current directory if ``None``).
        argv0: the program path, for the ``<dir>/../etc/supervisord.conf`` candidate.

    Returns:
        The options; ``command`` is empty when none was given.

    Raises:
        UsageError: unknown or repeated option, a value that is not a URL, a config
            file that is missing, unparsable or without ``[supervisorctl]``, or a
            server URL vigilctl cannot connect to.
    """
    env = os.environ if environ is None else environ
    try:
        opts, args = getopt.getopt(list(argv), _SHORT, _LONG)
    except getopt.GetoptError as exc:
        raise UsageError(str(exc)) from None
    given: dict[str, str] = {}
    interactive = not args
    for opt, value in opts:
        if opt in ("-h", "-?", "--help"):
            return CtlOptions(DEFAULT_SERVER_URL, None, None, tuple(args), help=True)
        if opt in ("-i", "--interactive"):
            interactive = True
            continue
        name = _OPTION_NAMES[opt]
        if name == "serverurl":
            _check_url(opt, value)
        if name in given:
            raise UsageError(f"conflicting command line option {opt!r}")
        given[name] = value

    configfile: Path | None
    if "configfile" in given:
        configfile = Path(given["configfile"])
    else:
        configfile = find_config_file(argv0=argv0, cwd=Path.cwd() if cwd is None else cwd)
    from_file: dict[str, str | None] = {}
    if configfile is not None:
        from_file = _read_ctl_section(configfile, env)

    serverurl = given.get("serverurl") or from_file.get("serverurl") or DEFAULT_SERVER_URL
    try:
        parse_server_url(client_url(serverurl))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    username = given["username"] if "username" in given else from_file.get("username")
    password = given["password"] if "password" in given else from_file.get("password")
    return CtlOptions(
        serverurl,
        username,
        password,
        tuple(args),
        configfile,
        interactive=interactive,
        prompt=from_file.get("prompt") or "supervisor",
        history_file=given.get("history_file") or from_file.get("history_file"),
    )
