"""vigild's control API: the HTTP servers of the config and XML-RPC on ``POST /RPC2``.

Theory of operation
-------------------
:class:`Servers` owns one :class:`~manager.httpserver.HTTPServer` per
``[unix_http_server]`` / ``[inet_http_server]`` section. vigild binds them
before daemonizing (so a taken port is reported on the terminal, exit 2),
attaches each new :class:`~manager.supervisor.Supervisor` (the first and every
one after a reload), rebinds after a reload when the sections changed, and
closes them at shutdown. Connections survive a reload.

:class:`Dispatcher` turns ``(method name, params)`` into a call of
:mod:`manager.rpcinterface`, with supervisord's rules (reference §5.1):
names are exactly ``namespace.method`` and never start with ``_``
(UNKNOWN_METHOD); a wrong number or type of arguments — checked against the
method's annotations — is INCORRECT_PARAMETERS. :class:`RPCHandler` is the
HTTP side: parse the body, dispatch, marshal the value or the fault, or wait
for a :class:`~manager.rpcinterface.Deferred` without blocking the loop. It
also serves supervisord's ``/logtail/…`` and ``/mainlogtail`` streams, which
``supervisorctl tail -f`` / ``fg`` / ``maintail -f`` read (reference §5.6).

Parsing and marshalling are :mod:`manager.xmlrpcwire`. A namespace may offer a
``_wire_<method>`` twin that returns the reply already marshalled (a
:class:`~manager.xmlrpcwire.Marshalled`); requests over HTTP get that form, and
it must unmarshal to exactly what ``<method>`` returns.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
import types
import typing
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from manager import __version__
from manager.config import Config
from manager.faults import Fault
from manager.httpserver import (
    BindError,
    Credentials,
    HTTPServer,
    Limits,
    Request,
    Responder,
    Response,
    Stream,
    bind_tcp,
    bind_unix,
)
from manager.loop import Loop, Timer
from manager.rpcinterface import (
    Deferred,
    RPCError,
    SupervisorNamespace,
    SystemNamespace,
    abandon,
    method_table,
    split_namespec,
    wire_table,
)
from manager.supervisor import Supervisor
from manager.xmlrpcwire import BadRequest, loads_request, marshal_fault, marshal_value

__all__ = [
    "BadRequest",
    "BindError",
    "Dispatcher",
    "RPCHandler",
    "Servers",
    "loads_request",
    "marshal_fault",
    "marshal_value",
]

log = logging.getLogger("vigild.rpc")
TRACE = 5


# --- dispatching -----------------------------------------------------------------------------


def _accepts(hint: object, value: object) -> tuple[bool, object]:
    """Whether ``value`` fits the annotation ``hint``, and the value to pass on."""
    if hint is Any or hint is object:
        return True, value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(hint):
            ok, converted = _accepts(member, value)
            if ok:
                return True, converted
        return False, value
    if origin is not None:
        hint = origin
    if hint is bool:
        # some clients send 0/1 for booleans; supervisord only looks at the truth value
        if isinstance(value, bool | int):
            return True, bool(value)
        return False, value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool), value
    if isinstance(hint, type):
        return isinstance(value, hint), value
    return True, value


@dataclass(frozen=True)
class _Signature:
    signature: inspect.Signature
    hints: Mapping[str, object]


class Dispatcher:
    """Calls by name on a set of namespaces; ``system`` is added.

    Args:
        namespaces: e.g. ``{"supervisor": SupervisorNamespace(sup)}``.
    """

    def __init__(self, namespaces: Mapping[str, object]) -> None:
        self.namespaces: dict[str, object] = dict(namespaces)
        self.namespaces["system"] = SystemNamespace(self.namespaces, self.call)
        self._table = method_table(self.namespaces)
        self._wire = wire_table(self.namespaces)
        self._signatures: dict[str, _Signature] = {}

    def call(self, method: str, params: object, *, wire: bool = False) -> object:
        """Call ``method`` with ``params``; a value or a Deferred.

        With ``wire``, a method that has a ``_wire_`` twin answers through it: the
        value comes marshalled already.

        Raises:
            RPCError: UNKNOWN_METHOD, INCORRECT_PARAMETERS, or the method's own fault.
        """
        parts = method.split(".")
        # exactly namespace.method: no traversal to other attributes (CVE-2017-11610)
        if len(parts) != 2 or parts[1].startswith("_"):
            raise RPCError(Fault.UNKNOWN_METHOD)
        func = self._table.get(method)
        if func is None:
            raise RPCError(Fault.UNKNOWN_METHOD)
        if not isinstance(params, list | tuple):
            raise RPCError(Fault.INCORRECT_PARAMETERS)
        args = self._check(method, func, params)
        if wire:
            func = self._wire.get(method, func)
        return func(*args)

    def _check(
        self, method: str, func: Callable[..., object], params: Sequence[object]
    ) -> list[object]:
        sig = self._signatures.get(method)
        if sig is None:
            sig = _Signature(inspect.signature(func), typing.get_type_hints(func))
            self._signatures[method] = sig
        try:
            bound = sig.signature.bind(*params)
        except TypeError:
            raise RPCError(Fault.INCORRECT_PARAMETERS) from None
        args: list[object] = []
        for name, value in bound.arguments.items():
            ok, converted = _accepts(sig.hints.get(name, Any), value)
            if not ok:
                raise RPCError(Fault.INCORRECT_PARAMETERS)
            args.append(converted)
        return args


class RPCHandler:
    """The HTTP handler of every server.

    ``POST /RPC2…``: XML-RPC. ``GET /logtail/<namespec>[/stdout|/stderr]`` and
    ``GET /mainlogtail``: the last 1024 bytes of a log, then whatever is appended,
    until the client leaves (``supervisorctl tail -f``, ``fg``, ``maintail -f``).
    ``/``: a line of text. Anything else: 404.
    """

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self.dispatcher: Dispatcher | None = None
        self.sup: Supervisor | None = None

    def __call__(self, request: Request, responder: Responder) -> None:
        path = request.path
        if path.startswith("/logtail") or path.startswith("/mainlogtail"):
            self._logtail(request, responder)
            return
        if not path.startswith("/RPC2"):
            if path == "/" and request.method in ("GET", "HEAD"):
                text = f"vigild {__version__}: XML-RPC at POST /RPC2\n"
                responder.send(Response(200, text.encode()))
            else:
                responder.send(Response(404, b"404 Not Found\n"))
            return
        if request.method != "POST":
            responder.send(Response(400, b"400 Bad Request: XML-RPC needs POST\n", close=True))
            return
        try:
            params, method = loads_request(request.body)
        except BadRequest as exc:
            log.error("XML-RPC request data %r is invalid: %s", request.body[:200], exc)
            responder.send(Response(400, f"400 Bad Request: {exc}\n".encode(), close=True))
            return
        if not method:
            log.error("XML-RPC request data %r is invalid: no method name", request.body[:200])
            responder.send(Response(400, b"400 Bad Request: no method name\n", close=True))
            return
        log.log(TRACE, "XML-RPC method called: %s()", method)
        dispatcher = self.dispatcher
        try:
            if dispatcher is None:
                raise RPCError(Fault.SHUTDOWN_STATE)
            value = dispatcher.call(method, params, wire=True)
        except RPCError as exc:
            log.log(
                TRACE, "XML-RPC method %s() returned fault: [%d] %s", method, exc.code, exc.text
            )
            _send_xml(responder, marshal_fault(exc.code, exc.text))
            return
        except Exception:
            log.critical(
                "Handling XML-RPC request %s() raised an unexpected exception",
                method,
                exc_info=True,
            )
            responder.send(Response(500, b"500 Internal Server Error\n", close=True))
            return
        if isinstance(value, Deferred):
            responder.on_close(value.cancel)
            value.add_done_callback(lambda d: _answer(responder, method, d))
            return
        _answer_value(responder, method, value)

    def _logtail(self, request: Request, responder: Responder) -> None:
        if request.method not in ("GET", "HEAD"):
            responder.send(Response(400, b"400 Bad Request\n", close=True))
            return
        path = self._log_file(urllib.parse.unquote(request.path))
        if path is None or not os.path.exists(path):
            # as supervisord: missing is temporary (never started, config reloadable)
            responder.send(Response(404, b"404 Not Found\n"))
            return
        try:
            mtime = os.stat(path).st_mtime
            tail = _Tail(self.loop, path)
        except OSError:
            responder.send(Response(404, b"404 Not Found\n"))
            return
        headers = (
            ("Last-Modified", _http_date(mtime)),
            ("X-Accel-Buffering", "no"),
        )
        tail.start(responder.stream(200, "text/plain;charset=utf-8", headers))

    def _log_file(self, path: str) -> str | None:
        sup = self.sup
        if sup is None:
            return None
        parts = path.strip("/").split("/")
        if parts[0] == "mainlogtail":
            logfile = sup.config.supervisord.logfile
            return None if logfile == "syslog" else logfile
        if parts[0] != "logtail" or len(parts) < 2:
            return None
        channel = parts[2] if len(parts) > 2 else "stdout"
        if channel not in ("stdout", "stderr"):
            return None
        group_name, process_name = split_namespec(parts[1])
        group = sup.groups.get(group_name)
        process = group.processes.get(process_name or "") if group is not None else None
        if process is None:
            return None
        log_path = sup.log_path(process, channel)
        return None if log_path is None else str(log_path)


class _Tail:
    """``tail -f`` of one file into a streamed response, polled on the loop.

    Like supervisord's ``tail_f_producer``: starts 1024 bytes before the end,
    reopens the file when it is replaced (rotation), says ``==> File truncated <==``
    when it shrinks. Stops when the client leaves; pauses while the client is
    slower than the file grows.
    """

    HEAD = 1024
    INTERVAL = 0.1
    CHUNK = 65536
    MAX_BUFFERED = 1024 * 1024

    def __init__(self, loop: Loop, path: str) -> None:
        self.loop = loop
        self.path = path
        self.file = open(path, "rb")  # noqa: SIM115 - closed by stop()
        st = os.fstat(self.file.fileno())
        self.ino = st.st_ino
        self.pos = max(0, st.st_size - self.HEAD)
        self.stream: Stream | None = None
        self.timer: Timer | None = None

    def start(self, stream: Stream) -> None:
        self.stream = stream
        if stream.closed:
            self.stop()
            return
        stream.on_close(self.stop)
        self.tick()

    def tick(self) -> None:
        self.timer = None
        stream = self.stream
        if stream is None or stream.closed:
            self.stop()
            return
        try:
            self._follow()
            if stream.buffered < self.MAX_BUFFERED:
                size = os.fstat(self.file.fileno()).st_size
                if size < self.pos:
                    stream.write(b"==> File truncated <==\n")
                    self.pos = 0
                if size > self.pos:
                    self.file.seek(self.pos)
                    data = self.file.read(min(size - self.pos, self.CHUNK))
                    self.pos += len(data)
                    stream.write(data)
        except (OSError, ValueError):
            log.warning("stopped following %s", self.path, exc_info=True)
            self.stop()
            stream.end()
            return
        if not stream.closed:
            self.timer = self.loop.call_later(self.INTERVAL, self.tick)

    def _follow(self) -> None:
        try:
            ino = os.stat(self.path).st_ino
        except OSError:
            return  # unlinked: keep reading what we have open
        if ino != self.ino:  # replaced (rotated): follow the new file from its start
            self.file.close()
            self.file = open(self.path, "rb")  # noqa: SIM115 - closed by stop()
            self.ino = os.fstat(self.file.fileno()).st_ino
            self.pos = 0

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.file.close()


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _http_date(t: float) -> str:
    """An RFC 9110 date, as ``email.utils.formatdate(t, usegmt=True)`` (whose import is 2 MB)."""
    g = time.gmtime(t)
    return (
        f"{_DAYS[g.tm_wday]}, {g.tm_mday:02d} {_MONTHS[g.tm_mon - 1]} {g.tm_year:04d} "
        f"{g.tm_hour:02d}:{g.tm_min:02d}:{g.tm_sec:02d} GMT"
    )


def _answer(responder: Responder, method: str, deferred: Deferred) -> None:
    try:
        value = deferred.result()
    except RPCError as exc:
        _send_xml(responder, marshal_fault(exc.code, exc.text))
        return
    except Exception:
        log.critical("XML-RPC response callback error for %s()", method, exc_info=True)
        responder.send(Response(500, b"500 Internal Server Error\n", close=True))
        return
    _answer_value(responder, method, value)


def _answer_value(responder: Responder, method: str, value: object) -> None:
    try:
        body = marshal_value(value)
    except Exception:
        log.critical("XML-RPC method %s() returned an unmarshallable value", method, exc_info=True)
        responder.send(Response(500, b"500 Internal Server Error\n", close=True))
        return
    _send_xml(responder, body)


def _send_xml(responder: Responder, body: bytes) -> None:
    responder.send(Response(200, body, content_type="text/xml"))


# --- the servers of a config -----------------------------------------------------------------


@dataclass(frozen=True)
class _Endpoint:
    """Where a server listens: a unix socket path, or (host, port)."""

    unix: str | None = None
    host: str = ""
    port: int = 0


@dataclass(frozen=True)
class _Wanted:
    endpoint: _Endpoint
    section: str
    credentials: Credentials | None
    chmod: int = 0o700
    chown: tuple[int, int] | None = None


def _credentials(username: str | None, password: str | None) -> Credentials | None:
    if username is None or password is None:
        return None
    return Credentials(username, password)


def _wanted(config: Config) -> list[_Wanted]:
    wanted: list[_Wanted] = []
    unix = config.unix_http_server
    if unix is not None:
        wanted.append(
            _Wanted(
                _Endpoint(unix=unix.file),
                unix.section,
                _credentials(unix.username, unix.password),
                unix.chmod,
                unix.chown,
            )
        )
    for inet in config.inet_http_servers:
        wanted.append(
            _Wanted(
                _Endpoint(host=inet.host, port=inet.port),
                inet.section,
                _credentials(inet.username, inet.password),
            )
        )
    return wanted


class Servers:
    """The HTTP servers of a configuration, serving XML-RPC to the attached supervisor.

    Args:
        loop: vigild's loop.
        limits: request limits for every server.
    """

    def __init__(self, loop: Loop, *, limits: Limits | None = None) -> None:
        self.loop = loop
        self.limits = limits
        self.handler = RPCHandler(loop)
        self.servers: dict[_Endpoint, HTTPServer] = {}
        self._wanted: dict[_Endpoint, _Wanted] = {}
        self._interface: SupervisorNamespace | None = None

    @property
    def addresses(self) -> list[str | tuple[str, int]]:
        """Where each server listens (the real port when a config asks for port 0)."""
        return [s.address for s in self.servers.values()]

    def bind(self, config: Config) -> None:
        """Open every server of ``config`` (all or none).

        Raises:
            BindError: one could not be opened; those opened so far are closed again.
        """
        opened: dict[_Endpoint, HTTPServer] = {}
        try:
            for w in _wanted(config):
                opened[w.endpoint] = self._open(w)
        except BindError:
            for server in opened.values():
                server.close()
            raise
        for server in self.servers.values():
            server.close()
        self.servers = opened
        self._wanted = {w.endpoint: w for w in _wanted(config)}

    def _open(self, w: _Wanted) -> HTTPServer:
        if w.endpoint.unix is not None:
            sock = bind_unix(w.endpoint.unix, chmod=w.chmod, chown=w.chown)
            unlink: str | None = w.endpoint.unix
        else:
            sock = bind_tcp(w.endpoint.host, w.endpoint.port)
            unlink = None
        return HTTPServer(
            self.loop,
            sock,
            self.handler,
            credentials=w.credentials,
            limits=self.limits,
            unlink=unlink,
        )

    def attach(self, sup: Supervisor) -> None:
        """Serve ``sup`` from now on; waits still pending on the previous one fail."""
        if self._interface is not None:
            abandon(self._interface)
        self._interface = SupervisorNamespace(sup)
        self.handler.dispatcher = Dispatcher({"supervisor": self._interface})
        self.handler.sup = sup
        for w in self._wanted.values():
            if w.credentials is None:
                sup.log.critical(
                    "Server %r running without any HTTP authentication checking", w.section
                )

    def rebind(self, config: Config) -> None:
        """After a reload: keep unchanged servers (and their connections), adapt the rest.

        Never raises: a server that cannot be opened is logged and left out, so
        the supervisor keeps running with whatever servers it has.
        """
        wanted = {w.endpoint: w for w in _wanted(config)}
        for endpoint in list(self.servers):
            if endpoint not in wanted:
                self.servers.pop(endpoint).close()
        for endpoint, w in wanted.items():
            server = self.servers.get(endpoint)
            if server is None:
                try:
                    self.servers[endpoint] = self._open(w)
                except BindError as exc:
                    logging.getLogger("vigild").critical("cannot open %s: %s", w.section, exc)
                continue
            server.credentials = w.credentials
            old = self._wanted.get(endpoint)
            if (
                endpoint.unix is not None
                and old is not None
                and (old.chmod, old.chown)
                != (
                    w.chmod,
                    w.chown,
                )
            ):
                _reapply_mode(endpoint.unix, w)
        self._wanted = {e: w for e, w in wanted.items() if e in self.servers}

    def close(self) -> None:
        """Close every server and connection; pending waits fail with SHUTDOWN_STATE."""
        if self._interface is not None:
            abandon(self._interface)
            self._interface = None
        self.handler.dispatcher = None
        self.handler.sup = None
        for server in self.servers.values():
            server.close()
        self.servers.clear()


def _reapply_mode(path: str, w: _Wanted) -> None:
    try:
        os.chmod(path, w.chmod)
        if w.chown is not None:
            os.chown(path, w.chown[0], w.chown[1])
    except OSError as exc:
        logging.getLogger("vigild").critical("cannot change %s: %s", path, exc)
