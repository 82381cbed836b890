"""The listening socket of an ``[fcgi-program:x]``, shared by its processes as their fd 0.

Theory of operation
-------------------
vigild creates the socket and every child of the program inherits it as stdin;
the children ``accept()`` on it. :class:`SharedSocket` counts the children
holding it, with supervisord 4.3's timing (its ``socket_manager.py``):

* when the group is created (startup, reload, ``addProcessGroup``) the socket is
  created, bound, listened on and closed again at once (:meth:`SharedSocket.check`),
  so that a bad address fails early — between spawns nobody listens;
* each spawn takes a reference (:meth:`~SharedSocket.acquire`); the first one
  creates the socket again (a new one: connections queued on an earlier socket
  are gone);
* each reap of a child, or a spawn that failed, drops its reference
  (:meth:`~SharedSocket.release`); the last one closes the socket. A program that
  autorestarts after its only child died therefore gets a new socket.

supervisord logs ``Creating socket <url>`` and ``Closing socket <url>`` (INFO); so does vigild.

A unix socket file is handled like a unix HTTP server's: bound under umask
``0177`` and chown-ed / chmod-ed before ``listen()``, so nobody can connect while
the file is more open than ``socket_mode``; a socket file already at the path is
replaced.

Differences from supervisord 4.3, on purpose:

* the socket file is removed when the socket is closed (supervisord leaves it
  behind), if the file at the path is still the one bound;
* only a *socket* file is replaced: any other file at the path is an error
  (supervisord unlinks whatever is there);
* a socket that cannot be created when a child spawns is that spawn's error
  (BACKOFF, then FATAL); supervisord's main loop dies of the exception.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat

from manager.config import Config, InetSocketConfig, SocketConfig, UnixSocketConfig
from manager.httpbind import bind_private, file_identity

__all__ = ["FcgiSocketError", "SharedSocket", "check_sockets", "socket_configs"]


class FcgiSocketError(OSError):
    """The socket could not be created; the message is supervisord's
    ``Could not create FastCGI socket <url>: <why>``."""


class SharedSocket:
    """One fcgi-program's listening socket, open while at least one child holds it."""

    def __init__(self, config: SocketConfig, *, log: logging.Logger) -> None:
        self.config = config
        self._log = log
        #: children holding the socket (spawned and not reaped yet)
        self.refcount = 0
        self._sock: socket.socket | None = None
        #: ``(st_dev, st_ino)`` of the unix socket file we bound
        self._file: tuple[int, int] | None = None

    def __repr__(self) -> str:
        return f"<SharedSocket {self.config.url} refs={self.refcount}>"

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def acquire(self) -> int:
        """Take a reference for a child about to be spawned; the socket's fd for its stdin.

        Raises:
            FcgiSocketError: the socket had to be created and could not be.
        """
        if self._sock is None:
            self._open()
        self.refcount += 1
        assert self._sock is not None
        return self._sock.fileno()

    def release(self) -> None:
        """Drop a reference (a child was reaped, or failed to spawn); the last one closes."""
        if self.refcount <= 0:
            raise RuntimeError(f"{self!r}: released more often than acquired")
        self.refcount -= 1
        if self.refcount == 0:
            self._close()

    def check(self) -> None:
        """Create and close the socket, as supervisord does when it creates the group.

        Raises:
            FcgiSocketError: the socket cannot be created.
        """
        self.acquire()
        self.release()

    def close(self) -> None:
        """Close now whatever the count (the group is gone, or vigild stops)."""
        self.refcount = 0
        if self._sock is not None:
            self._close()

    # -- creating and closing

    def _open(self) -> None:
        config = self.config
        self._log.info("Creating socket %s", config.url)
        try:
            if isinstance(config, InetSocketConfig):
                sock = _bind_inet(config)
            else:
                sock, self._file = _bind_unix(config)
        except OSError as exc:
            raise FcgiSocketError(f"Could not create FastCGI socket {config.url}: {exc}") from None
        self._sock = sock

    def _close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        self._log.info("Closing socket %s", self.config.url)
        sock.close()
        if isinstance(self.config, UnixSocketConfig) and self._file is not None:
            if file_identity(self.config.path) == self._file:
                try:
                    os.unlink(self.config.path)
                except OSError as exc:
                    self._log.warning("could not remove %s: %s", self.config.path, exc)
            self._file = None


def _bind_inet(config: InetSocketConfig) -> socket.socket:
    """IPv4 only, as supervisord (``AF_INET``), with ``SO_REUSEADDR``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, config.port))
        sock.listen(config.backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_unix(config: UnixSocketConfig) -> tuple[socket.socket, tuple[int, int] | None]:
    """Bind under umask 0177, chown, chmod, then listen; a socket file in the way is replaced."""
    path = config.path
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(f"{path} exists and is not a socket")
        os.unlink(path)
    sock = bind_private(path)
    try:
        if config.owner is not None:
            try:
                os.chown(path, config.owner[0], config.owner[1])
            except OSError as exc:
                raise OSError(f"Could not change ownership of socket file: {exc}") from None
        try:
            os.chmod(path, config.mode)
        except OSError as exc:
            raise OSError(f"Could not change permissions of socket file: {exc}") from None
        sock.listen(config.backlog)
    except BaseException:
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return sock, file_identity(path)


def socket_configs(config: Config) -> list[SocketConfig]:
    """Every fcgi-program socket of ``config``, once each, in group order."""
    found: dict[str, SocketConfig] = {}
    for group in config.groups:
        for process in group.processes:
            if process.socket is not None:
                found.setdefault(process.socket.url, process.socket)
    return list(found.values())


def check_sockets(config: Config, *, log: logging.Logger) -> None:
    """Create and close every fcgi-program socket of ``config`` (before vigild starts).

    Raises:
        FcgiSocketError: the first socket that cannot be created.
    """
    for sc in socket_configs(config):
        SharedSocket(sc, log=log).check()
