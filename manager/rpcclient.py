"""XML-RPC client for supervisord (or vigild), over a unix socket or HTTP.

Theory of operation
-------------------
Every :meth:`SupervisorClient.call` opens a *new* connection, sends one
``POST <handler>`` and closes it, so one client may be shared between threads.
Only failures to reach the server (connection refused/reset/aborted, socket
file missing, server hung up without answering) are retried, by one tenacity
policy (``stop_after_delay(retry_for)``, exponential wait plus jitter); after
``retry_for`` seconds they become :class:`Unreachable`. Timeouts, faults and
HTTP errors are answers, not outages, and are never retried.

Errors map as follows: ``xmlrpc.client.Fault`` → :class:`RPCFault` (with the
fault name from :class:`manager.faults.Fault`), HTTP 401 →
:class:`AuthenticationError`, other HTTP statuses and garbled replies →
:class:`RPCError`. The password never appears in a message or ``repr``.
"""

from __future__ import annotations

import base64
import http.client
import os
import socket
import time
import urllib.parse
import xml.parsers.expat
import xmlrpc.client
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from manager.fastloads import loads_value
from manager.faults import Fault
from manager.ini import IniFile

if TYPE_CHECKING:
    from _typeshed import SizedBuffer

__all__ = [
    "DEFAULT_SERVER_URL",
    "RETRYABLE_ERRORS",
    "AuthenticationError",
    "MethodProxy",
    "RPCError",
    "RPCFault",
    "ServerURL",
    "SupervisorClient",
    "Unreachable",
    "parse_server_url",
]

#: supervisorctl's default ``serverurl``.
DEFAULT_SERVER_URL = "http://localhost:9001"
#: HTTP path of the XML-RPC endpoint when the URL does not give one.
DEFAULT_HANDLER = "/RPC2"
#: transport errors meaning "the server is not there (yet)"; the only ones retried.
#: ``RemoteDisconnected`` is a ``ConnectionResetError`` too; listed for clarity.
RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionRefusedError,
    ConnectionResetError,
    ConnectionAbortedError,
    FileNotFoundError,
    http.client.RemoteDisconnected,
)


class RPCError(Exception):
    """Any failure of an XML-RPC call."""


class RPCFault(RPCError):
    """The server answered with an XML-RPC fault.

    ``name`` is the :class:`~manager.faults.Fault` member name (``UNKNOWN`` for a
    code supervisord does not define); ``detail`` is the text after ``NAME: ``.
    """

    def __init__(self, method: str, code: int, fault_string: str) -> None:
        #: the XML-RPC method that failed
        self.method = method
        #: ``faultCode``
        self.code = code
        #: ``faultString`` as received
        self.fault_string = fault_string
        try:
            #: fault name such as ``BAD_NAME``
            self.name = Fault(code).name
        except ValueError:
            self.name = "UNKNOWN"
        #: text after ``NAME: `` (empty if the string is just ``NAME``)
        self.detail = _fault_detail(self.name, fault_string)
        super().__init__(f"{method}: {fault_string} (fault {code})")


class AuthenticationError(RPCError):
    """The server answered HTTP 401: missing or refused credentials."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(f"supervisor at {url} refused the credentials (HTTP 401 Unauthorized)")


class Unreachable(RPCError):
    """No connection could be made (after retrying for ``retry_for`` seconds)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"cannot reach supervisor at {url}: {reason}")


def _fault_detail(name: str, fault_string: str) -> str:
    if fault_string == name:
        return ""
    prefix = f"{name}: "
    if fault_string.startswith(prefix):
        return fault_string[len(prefix) :]
    return fault_string


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


# --- URLs --------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerURL:
    """A parsed ``serverurl``: where to connect and which HTTP path to POST to."""

    url: str
    scheme: Literal["unix", "http"]
    #: socket file (unix) or host name (http)
    host: str
    #: TCP port; ``None`` for unix
    port: int | None
    #: HTTP request path
    handler: str


def parse_server_url(url: str) -> ServerURL:
    """Parse ``unix:///abs/path.sock`` or ``http://host[:port][/path]``.

    The unix handler is always ``/RPC2``; an http URL without a path (or ``/``)
    also gets ``/RPC2``, and a missing port means 80.

    Raises:
        ValueError: other schemes, a relative socket path, a missing host, a
            bad port, or credentials embedded in the URL.
    """
    expected = "expected unix:///path/to/socket or http://host:port"
    if url.startswith("unix://"):
        path = url[len("unix://") :]
        if not path.startswith("/"):
            raise ValueError(f"server URL {url!r} needs an absolute socket path ({expected})")
        return ServerURL(url, "unix", path, None, DEFAULT_HANDLER)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"unsupported server URL {url!r}: {expected}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "server URL must not contain credentials; set username and password instead"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"server URL {url!r} has an invalid port") from None
    if not parts.hostname:
        raise ValueError(f"server URL {url!r} has no host ({expected})")
    handler = parts.path if parts.path not in ("", "/") else DEFAULT_HANDLER
    if parts.query:
        handler += "?" + parts.query
    return ServerURL(url, "http", parts.hostname, 80 if port is None else port, handler)


# --- transport ---------------------------------------------------------------------


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over an AF_UNIX stream socket; ``Host:`` is ``localhost``."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class _OneShotTransport(xmlrpc.client.Transport):
    """One connection, one request, no internal retry; ``close()`` releases it."""

    def __init__(self, target: ServerURL, timeout: float, headers: list[tuple[str, str]]) -> None:
        super().__init__(headers=headers)
        self._target = target
        self._timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self._target.scheme == "unix":
            conn = _UnixHTTPConnection(self._target.host, self._timeout)
        else:
            conn = http.client.HTTPConnection(
                self._target.host, self._target.port, timeout=self._timeout
            )
        self._connection = (host, conn)  # so that Transport.close() closes it
        return conn

    def request(
        self, host: Any, handler: str, request_body: SizedBuffer, verbose: bool = False
    ) -> tuple[Any, ...]:
        # xmlrpc.client.Transport retries once on a reset "cached" connection;
        # retrying is the client's policy alone.
        return self.single_request(host, handler, request_body, verbose)

    def parse_response(self, response: http.client.HTTPResponse) -> tuple[Any, ...]:
        """The reply's params, read by :func:`manager.fastloads.loads_value`."""
        data = response.read()
        if response.getheader("Content-Encoding", "") == "gzip":
            data = xmlrpc.client.gzip_decode(data)
        value = loads_value(data)
        return value if type(value) is tuple else (value,)


# --- client ------------------------------------------------------------------------


class MethodProxy:
    """``client.supervisor.getState()``: attribute access builds the dotted method name."""

    def __init__(self, client: SupervisorClient, name: str) -> None:
        self._client = client
        self._name = name

    def __getattr__(self, attr: str) -> MethodProxy:
        if attr.startswith("_"):
            raise AttributeError(attr)
        return MethodProxy(self._client, f"{self._name}.{attr}")

    def __call__(self, *params: Any) -> Any:
        return self._client.call(self._name, *params)

    def __repr__(self) -> str:
        return f"<MethodProxy {self._name} of {self._client!r}>"


class SupervisorClient:
    """Calls supervisord's XML-RPC API; thread-safe (a new connection per call).

    Args:
        url: ``unix:///abs/path.sock`` or ``http://host:port[/path]``.
        username, password: HTTP Basic credentials, sent when either is set
            (a missing half is sent as empty).
        timeout: socket timeout per connect/read, seconds.
        retry_for: how long connection failures are retried, seconds.
        sleep: how to wait between retries (injectable for tests).

    Raises:
        ValueError: ``url`` is not a supported server URL.
    """

    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        timeout: float = 10.0,
        retry_for: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = parse_server_url(url)
        self.username = username
        self.__password = password
        self.timeout = timeout
        self.retry_for = retry_for
        self._sleep = sleep
        self._headers: list[tuple[str, str]] = []
        if username is not None or password is not None:
            token = f"{username or ''}:{password or ''}".encode()
            self._headers.append(("Authorization", "Basic " + base64.b64encode(token).decode()))

    @property
    def url(self) -> str:
        """The server URL as given."""
        return self.target.url

    @property
    def has_password(self) -> bool:
        """Whether a password is configured (the password itself is not exposed)."""
        return self.__password is not None

    def __repr__(self) -> str:
        password = None if self.__password is None else "'***'"
        return (
            f"SupervisorClient(url={self.url!r}, username={self.username!r}, "
            f"password={password}, timeout={self.timeout!r}, retry_for={self.retry_for!r})"
        )

    @classmethod
    def from_config(
        cls,
        ini: IniFile | None,
        environ: Mapping[str, str] | None = None,
        **kw: Any,
    ) -> SupervisorClient:
        """Build a client the way supervisorctl/childutils find the server.

        URL: ``SUPERVISOR_SERVER_URL``, else ``[supervisorctl] serverurl``
        (expanded with ``here``/``ENV_*``), else ``http://localhost:9001``.
        Username and password: ``SUPERVISOR_USERNAME``/``SUPERVISOR_PASSWORD``
        when set, else ``[supervisorctl] username``/``password``, each on its own.
        ``kw`` goes to the constructor (``timeout``, ``retry_for``, ``sleep``).

        Raises:
            ConfigError: a ``[supervisorctl]`` value cannot be expanded, or its
                ``serverurl`` is not a supported URL.
            ValueError: ``SUPERVISOR_SERVER_URL`` is not a supported URL.
        """
        env = os.environ if environ is None else environ
        ctl = ini.section("supervisorctl") if ini is not None else None

        def from_ini(key: str) -> str | None:
            return ctl.expand(key, {}, environ=environ) if ctl is not None else None

        username = env.get("SUPERVISOR_USERNAME")
        if username is None:
            username = from_ini("username")
        password = env.get("SUPERVISOR_PASSWORD")
        if password is None:
            password = from_ini("password")
        url = env.get("SUPERVISOR_SERVER_URL")
        if url is not None:
            return cls(url, username, password, **kw)
        url = from_ini("serverurl")
        if url is None:
            return cls(DEFAULT_SERVER_URL, username, password, **kw)
        try:
            return cls(url, username, password, **kw)
        except ValueError as exc:
            assert ctl is not None
            raise ctl.error("serverurl", str(exc)) from None

    # -- calling

    @property
    def supervisor(self) -> MethodProxy:
        """The ``supervisor.*`` namespace."""
        return MethodProxy(self, "supervisor")

    @property
    def system(self) -> MethodProxy:
        """The ``system.*`` namespace (``listMethods``, ``multicall``...)."""
        return MethodProxy(self, "system")

    def namespace(self, name: str) -> MethodProxy:
        """Any other namespace, e.g. ``client.namespace("twiddler").getGroupNames()``."""
        return MethodProxy(self, name)

    def call(self, method: str, *params: Any) -> Any:
        """Call ``method`` with ``params`` and return the unmarshalled result.

        Raises:
            RPCFault: the server answered with a fault.
            AuthenticationError: HTTP 401.
            Unreachable: no connection within ``retry_for`` seconds (or a
                non-transient OS error such as permission denied on the socket).
            RPCError: timeout, other HTTP status, or an unparsable reply.
        """
        try:
            try:
                return self._call_once(method, params)
            except RETRYABLE_ERRORS as exc:
                failed: BaseException | None = exc
            # tenacity is imported only now: a short-lived vigilctl saves ~7 ms of start-up
            from tenacity import (
                Retrying,
                retry_if_exception_type,
                stop_after_delay,
                wait_exponential,
                wait_random,
            )

            def attempt() -> Any:
                nonlocal failed
                if failed is not None:  # the first attempt, made above
                    exc, failed = failed, None
                    raise exc
                return self._call_once(method, params)

            retrying = Retrying(
                stop=stop_after_delay(self.retry_for),
                wait=wait_exponential(multiplier=0.05, max=1) + wait_random(0, 0.05),
                retry=retry_if_exception_type(RETRYABLE_ERRORS),
                sleep=self._sleep,
                reraise=True,
            )
            return retrying(attempt)
        except xmlrpc.client.Fault as exc:
            raise RPCFault(method, exc.faultCode, exc.faultString) from None
        except xmlrpc.client.ProtocolError as exc:
            if exc.errcode == 401:
                raise AuthenticationError(self.url) from None
            raise RPCError(
                f"supervisor at {self.url} answered HTTP {exc.errcode} {exc.errmsg} to {method}"
            ) from None
        except RETRYABLE_ERRORS as exc:
            raise Unreachable(self.url, _reason(exc)) from exc
        except TimeoutError:
            raise RPCError(
                f"timed out after {self.timeout:g}s waiting for supervisor at {self.url} ({method})"
            ) from None
        except OSError as exc:
            raise Unreachable(self.url, _reason(exc)) from exc
        except (
            http.client.HTTPException,
            xmlrpc.client.ResponseError,
            xml.parsers.expat.ExpatError,
        ) as exc:
            raise RPCError(
                f"invalid reply from supervisor at {self.url} to {method}: {_reason(exc)}"
            ) from None

    def _call_once(self, method: str, params: tuple[Any, ...]) -> Any:
        body = xmlrpc.client.dumps(params, method).encode("utf-8", "xmlcharrefreplace")
        transport = _OneShotTransport(self.target, self.timeout, self._headers)
        try:
            response = transport.request("localhost", self.target.handler, body)
        finally:
            transport.close()
        return response[0] if len(response) == 1 else response
