"""Listening sockets for vigild's HTTP servers: bind, secure, and clear stale socket files.

Theory of operation
-------------------
These are the only blocking calls of the HTTP side, made once at startup (or
reload) before :class:`~manager.httpserver.HTTPServer` takes the socket over.

* :func:`bind_unix` binds under umask ``0177``, then chmods and chowns the socket
  file, and only then listens: no client can connect while the file is more open
  than its configured mode. A socket file left behind by a dead server is removed
  first (nobody answers on it); one that answers, or a path that is not a socket,
  is left alone and is a :class:`BindError`.
* :func:`bind_tcp` binds ``host:port`` with ``SO_REUSEADDR``, IPv4 first as
  supervisord (which only speaks ``AF_INET``).
* :func:`file_identity` lets the server remove its socket file at close only if the
  file at that path is still the one it bound.

Every failure is a :class:`BindError` whose message is for the operator; a taken
socket or port is supervisord's exact :data:`IN_USE_MESSAGE`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat

__all__ = ["IN_USE_MESSAGE", "BindError", "bind_private", "bind_tcp", "bind_unix", "file_identity"]

log = logging.getLogger("vigild.http")

#: supervisord's exact message when a socket or port is taken (its ``openhttpservers``).
IN_USE_MESSAGE = (
    "Another program is already listening on a port that one of our HTTP servers is "
    "configured to use.  Shut this program down first before starting supervisord."
)


class BindError(Exception):
    """A listening socket could not be created; the message is for the operator."""


def file_identity(path: str) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of ``path`` itself (a link is not followed); None if unreadable."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


# --- listening sockets -----------------------------------------------------------------------

_BACKLOG = 1024


def bind_unix(
    path: str, *, chmod: int = 0o700, chown: tuple[int, int] | None = None
) -> socket.socket:
    """A listening unix socket at ``path`` whose mode is right before anyone can connect.

    The socket is bound under umask ``0177`` (so the file starts as ``0600``), then
    chmod-ed to ``chmod`` and chown-ed to ``chown`` (uid, gid; -1 = unchanged), and only
    then does it listen — until ``listen()`` every connection attempt is refused.
    An existing socket file is removed if nothing answers on it; if something does,
    :data:`IN_USE_MESSAGE`.

    Raises:
        BindError: the path is in use, is not a socket, or cannot be bound or prepared.
    """
    _remove_stale(path)
    try:
        sock = bind_private(path)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise BindError(IN_USE_MESSAGE) from None
        raise BindError(f"Cannot open an HTTP server on {path}: {exc}") from None
    try:
        os.chmod(path, chmod)
        if chown is not None:
            try:
                os.chown(path, chown[0], chown[1])
            except PermissionError:
                raise BindError(
                    f"Not permitted to chown {path} to uid/gid {chown!r}; adjust the "
                    '"chown" value in the config file to one the current user can use'
                ) from None
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except BindError:
        sock.close()
        _unlink_quietly(path)
        raise
    except OSError as exc:
        sock.close()
        _unlink_quietly(path)
        raise BindError(f"Cannot open an HTTP server on {path}: {exc}") from None
    return sock


def bind_private(path: str) -> socket.socket:
    """A unix stream socket bound at ``path`` under umask ``0177``, not listening yet.

    The file starts as ``0600`` and nobody can connect before ``listen()``, so the
    caller sets the mode and owner it wants first. The socket is closed on failure.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # umask is process-wide: vigild is single-threaded
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
    except BaseException:
        sock.close()
        raise
    return sock


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _remove_stale(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise BindError(f"Cannot open an HTTP server on {path}: {exc}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise BindError(f"Cannot open an HTTP server on {path}: it exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        pass  # stale: nobody listens
    except OSError as exc:
        # a full backlog (timeout / EAGAIN) means somebody is listening
        if isinstance(exc, TimeoutError) or exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
            raise BindError(IN_USE_MESSAGE) from None
    else:
        raise BindError(IN_USE_MESSAGE)
    finally:
        probe.close()
    log.warning("Unlinking stale socket %s", path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise BindError(f"Cannot remove the stale socket {path}: {exc}") from None


def bind_tcp(host: str, port: int) -> socket.socket:
    """A listening TCP socket; ``host`` ``""`` or ``"*"`` means every IPv4 interface.

    Raises:
        BindError: the port is taken (:data:`IN_USE_MESSAGE`), or the address is unusable.
    """
    if host in ("", "*"):
        family, address = socket.AF_INET, ("", port)
    else:
        family, address = _resolve(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise BindError(IN_USE_MESSAGE) from None
        raise BindError(f"Cannot open an HTTP server on {host}:{port}: {exc}") from None
    return sock


def _resolve(host: str, port: int) -> tuple[socket.AddressFamily, tuple[str, int]]:
    """IPv4 first, as supervisord (which only speaks AF_INET); IPv6 if that is all there is."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
        except socket.gaierror:
            continue
        if infos:
            sockaddr = infos[0][4]
            return family, (str(sockaddr[0]), int(sockaddr[1]))
    raise BindError(f"Cannot open an HTTP server on {host}:{port}: cannot resolve {host!r}")
