"""``vigild``: the supervisord-compatible daemon.

Usage: ``vigild [-c FILE] [-n] [-u USER] [-m UMASK] [-d DIR] [-l LOGFILE] [-y BYTES] [-z N]
[-e LEVEL] [-j PIDFILE] [-i IDENT] [-q DIR] [-k] [-t] [-s] [-v]`` — supervisord's flags;
the command line beats the config file. Exit status: 0 after a clean shutdown,
2 for a usage or configuration error (one line naming file, section, key and value),
a taken HTTP port or an fcgi-program socket that cannot be created.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from manager import __version__, rpcserver
from manager.config import Config, load_config, parse_identifier
from manager.fcgisocket import FcgiSocketError, check_sockets
from manager.filemodes import check_not_world_writable, config_files
from manager.ini import ConfigError, find_config_file
from manager.loop import Loop
from manager.mainlog import make_logger
from manager.osfacade import RealOS
from manager.states import SupervisorState
from manager.supervisor import Supervisor
from manager.watchdog import Watchdog

__all__ = ["main"]

EXIT_USAGE = 2
SIGNALS = (
    signal.SIGCHLD,
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGUSR2,
    signal.SIGUSR1,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vigild", description="supervisord-compatible process supervisor"
    )
    p.add_argument("-c", "--configuration")
    p.add_argument("-n", "--nodaemon", action="store_true", default=None)
    p.add_argument("-s", "--silent", action="store_true", default=None)
    p.add_argument("-u", "--user")
    p.add_argument("-m", "--umask")
    p.add_argument("-d", "--directory")
    p.add_argument("-l", "--logfile")
    p.add_argument("-y", "--logfile_maxbytes")
    p.add_argument("-z", "--logfile_backups", type=int)
    p.add_argument("-e", "--loglevel")
    p.add_argument("-j", "--pidfile")
    p.add_argument("-i", "--identifier")
    p.add_argument("-q", "--childlogdir")
    p.add_argument("-k", "--nocleanup", action="store_true", default=None)
    p.add_argument("-t", "--strip_ansi", action="store_true", default=None)
    p.add_argument("-a", "--minfds", type=int)
    p.add_argument("--minprocs", type=int)
    p.add_argument("-v", "--version", action="version", version=__version__)
    return p


def _overrides(config: Config, args: argparse.Namespace) -> Config:
    """Apply command-line options over ``[supervisord]``."""
    sd = config.supervisord
    changes: dict[str, Any] = {}
    for key in (
        "nodaemon",
        "silent",
        "user",
        "directory",
        "logfile",
        "logfile_backups",
        "loglevel",
        "pidfile",
        "identifier",
        "childlogdir",
        "nocleanup",
        "strip_ansi",
        "minfds",
        "minprocs",
    ):
        value = getattr(args, key)
        if value is not None:
            changes[key] = value
    if args.identifier is not None:
        try:
            parse_identifier(args.identifier)
        except ValueError as exc:
            raise ValueError(f"-i/--identifier {args.identifier!r}: {exc}") from None
    if args.umask is not None:
        changes["umask"] = int(args.umask, 8)
    if args.logfile_maxbytes is not None:
        from manager.ini import Section

        changes["logfile_maxbytes"] = Section(
            "command line", Path("."), {"logfile_maxbytes": args.logfile_maxbytes}
        ).get_byte_size("logfile_maxbytes", 0)
    if args.logfile is not None:
        changes["logfile"] = str(Path(args.logfile).resolve())
    if args.pidfile is not None:
        changes["pidfile"] = str(Path(args.pidfile).resolve())
    return replace(config, supervisord=replace(sd, **changes)) if changes else config


def _write_pidfile(path: Path) -> None:
    """Write our pid; a new file is 0644 whatever the umask (never world-writable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    with open(fd, "w") as f:
        f.write(f"{os.getpid()}\n")


def _daemonize(directory: str | None, umask: int) -> None:
    if os.fork() != 0:
        os._exit(0)
    os.setsid()
    if directory:
        os.chdir(directory)
    os.umask(umask)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def _log_and_go_on(what: str, exc: Exception) -> None:
    """vigild's loop error policy: a bug in one callback is logged, not fatal to every child."""
    logging.getLogger("vigild").critical(
        "uncaught exception in the %s; vigild carries on (please report this)",
        what,
        exc_info=exc,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path = args.configuration or find_config_file(argv0=sys.argv[0], cwd=Path.cwd())
    if path is None:
        print(
            "Error: No config file found at default paths; "
            "use the -c option to specify a config file",
            file=sys.stderr,
        )
        print("For help, use vigild -h", file=sys.stderr)
        return EXIT_USAGE
    path = Path(path).resolve()

    def load() -> Config:
        config = _overrides(load_config(path), args)
        check_not_world_writable(config_files(config))
        return config

    try:
        config = load()
    except (ConfigError, ValueError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        print("For help, use vigild -h", file=sys.stderr)
        return EXIT_USAGE

    loop = Loop(on_error=_log_and_go_on)
    servers = rpcserver.Servers(loop)
    try:
        servers.bind(config)
    except rpcserver.BindError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        # supervisord creates (and closes) them before daemonizing too; it dies of a traceback
        check_sockets(config, log=logging.getLogger("vigild"))
    except FcgiSocketError as exc:
        servers.close()
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    sd = config.supervisord
    if not sd.nodaemon:
        _daemonize(sd.directory, sd.umask)
    log = make_logger(
        sd.logfile,
        level=sd.loglevel,
        maxbytes=sd.logfile_maxbytes,
        backups=sd.logfile_backups,
        stdout=sd.nodaemon and not sd.silent,
    )
    watchdog = Watchdog.start()
    pidfile = Path(sd.pidfile)
    try:
        _write_pidfile(pidfile)
    except OSError as exc:
        log.critical("could not write pidfile %s: %s", pidfile, exc)
    try:
        status = run(config, load, loop=loop, servers=servers, log=log, watchdog=watchdog)
    finally:
        watchdog.close()
    with contextlib.suppress(OSError):
        pidfile.unlink()
    return status


def run(
    config: Config,
    load: Callable[[], Config],
    *,
    loop: Loop,
    servers: rpcserver.Servers,
    log: logging.Logger,
    watchdog: Watchdog | None = None,
) -> int:
    """Run supervisors until shutdown; a reload re-reads the config and starts over."""
    current = config
    while True:
        sup = Supervisor(
            current,
            log=log,
            loop=loop,
            config_loader=load,
            os_facade=RealOS(watchdog=watchdog),
        )
        servers.attach(sup)
        loop.install_signals(SIGNALS, sup.handle_signal)
        log.info("vigild %s started with pid %d", __version__, os.getpid())
        try:
            sup.start()
            outcome = sup.run()
        finally:
            loop.restore_signals()
        if outcome is not SupervisorState.RESTARTING:
            servers.close()
            log.info("exiting")
            return 0
        try:
            current = load()
        except (ConfigError, ValueError) as exc:
            log.critical("cannot reload: %s; keeping the previous configuration", exc)
        servers.rebind(current)
        log.info("restarting with %s", current.path)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
