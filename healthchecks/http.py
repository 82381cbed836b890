"""HTTP(S) check: one request through a pooled ``requests.Session``.

The check passes when the status is in ``expect_status`` (a set of codes and
ranges, ``200-399`` by default, as Kubernetes' ``httpGet``) and, if given,
``body_regex`` matches the body. Decisions:

* Redirects are not followed: a ``3xx`` is judged by its own status (it passes
  with the default ``200-399``). A health endpoint that redirects elsewhere
  would otherwise test another server.
* The body is matched as **bytes** (the pattern is UTF-8 encoded), so any
  response can be tested without guessing its charset; at most
  :data:`MAX_BODY` bytes are read.
* ``timeout`` bounds the connect, every read, and the whole exchange: a server
  that trickles its body fails with ``timeout after 1.0s`` too. (Headers are
  bounded per read only.) Needs urllib3 2 (``read1``), as requests 2.32 has.
* An owned session ignores the environment (``trust_env = False``): no
  ``HTTP_PROXY``, no ``.netrc``, no ``REQUESTS_CA_BUNDLE``. A health check must
  reach the local program directly. Pass ``session=`` to override; a session
  passed in is not closed by :meth:`HttpCheck.close`.
* TLS is verified by default (``verify=True``); ``verify`` may be a CA bundle
  path, or ``False`` (urllib3 then warns on every request, as it should).
* Plain ``http://`` URLs go through :mod:`healthchecks.plainhttp` (one
  keep-alive connection on stdlib sockets, ~20× less CPU per probe than
  ``requests``) with the same rules: status set, body regex, no redirects, the
  timeout bounding the whole exchange (headers too), no proxy. ``requests`` is
  kept for ``https://``, a ``session=`` passed in, ``lean=False``, and URLs the
  lean client does not take (user info, a target that needs quoting, headers
  that are not Latin-1). When the host is an IP address the check can also run
  without blocking on a :class:`~healthchecks.reactor.HttpReactor`
  (:attr:`HttpCheck.nonblocking`, :meth:`HttpCheck.start_async`).
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import requests
import requests.adapters
import urllib3.exceptions
from requests.utils import requote_uri

from healthchecks.plainhttp import HttpFailure, PlainConnection, build_request
from healthchecks.result import CheckResult, Clock, run_guarded, short

__all__ = ["MAX_BODY", "USER_AGENT", "HttpCheck", "StatusSet", "parse_expect_status"]

#: Bytes of body read at most (monit inspects up to 1 MB too).
MAX_BODY = 1024 * 1024
USER_AGENT = "vigil-healthcheck/0.1"


@dataclass(frozen=True)
class StatusSet:
    """A set of HTTP status codes as inclusive ranges: ``200,204,300-399``."""

    ranges: tuple[tuple[int, int], ...]

    def __contains__(self, status: object) -> bool:
        return isinstance(status, int) and any(lo <= status <= hi for lo, hi in self.ranges)

    def __str__(self) -> str:
        return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ranges)


def parse_expect_status(text: str) -> StatusSet:
    """Parse ``200``, ``200,204`` or ``200-299,304`` into a :class:`StatusSet`.

    Raises:
        ValueError: an item is not a code or range of codes within 100-599.
    """
    ranges: list[tuple[int, int]] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        lo_text, sep, hi_text = item.partition("-")
        try:
            lo = int(lo_text)
            hi = int(hi_text) if sep else lo
        except ValueError:
            raise ValueError(f"not a status code or range: {item!r}") from None
        if not (100 <= lo <= hi <= 599):
            raise ValueError(f"not a status code or range within 100-599: {item!r}")
        ranges.append((lo, hi))
    if not ranges:
        raise ValueError("no status codes given")
    return StatusSet(tuple(ranges))


class HttpCheck:
    """``method url`` must answer a status in ``expect_status`` (and match ``body_regex``).

    Args:
        url: ``http://`` or ``https://`` URL.
        method: HTTP method, upper-cased.
        headers: extra request headers; ``User-Agent: vigil-healthcheck/0.1``
            and ``Accept: */*`` are sent unless overridden.
        expect_status: passing statuses, e.g. ``"200,204,300-399"``.
        body_regex: a regular expression searched in the body (bytes, UTF-8).
        timeout: seconds for the whole request (connect, every read, total).
        verify: verify TLS against the system CAs (``True``), a CA bundle
            path, or not at all (``False``).
        cert, key: client certificate and key files for mutual TLS.
        session: use this session (not closed by :meth:`close`) instead of an
            owned one.
        lean: use the lean client for plain ``http://`` URLs it can take
            (``False``: always ``requests``).
        clock: measures ``duration`` and the total deadline.

    Raises:
        ValueError: bad URL, status set, regex, timeout, or ``key`` without ``cert``.
    """

    def __init__(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        expect_status: str = "200-399",
        body_regex: str | None = None,
        timeout: float = 1.0,
        verify: bool | str | os.PathLike[str] = True,
        cert: str | os.PathLike[str] | None = None,
        key: str | os.PathLike[str] | None = None,
        session: requests.Session | None = None,
        lean: bool = True,
        clock: Clock = time.monotonic,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http:// or https:// URL: {url!r}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if key is not None and cert is None:
            raise ValueError("a client key needs a client cert")
        self.url = url
        self.method = method.upper()
        self.headers = {"User-Agent": USER_AGENT, "Accept": "*/*", **(headers or {})}
        self.expect_status = parse_expect_status(expect_status)
        self.body_regex = None if body_regex is None else re.compile(body_regex.encode())
        self.timeout = float(timeout)
        self.verify: bool | str = verify if isinstance(verify, bool) else os.fspath(verify)
        self.cert: str | tuple[str, str] | None = None
        if cert is not None:
            self.cert = os.fspath(cert) if key is None else (os.fspath(cert), os.fspath(key))
        self._clock = clock
        self._owns_session = session is None
        #: the lean client's connection and request, when it serves this URL
        self.plain: PlainConnection | None = None
        self._request = b""
        if lean and session is None and parts.scheme == "http":
            self._request_plain(parts.hostname or "", parts)
        self.session: requests.Session | None = None
        if self.plain is None:
            self.session = session if session is not None else self._new_session()

    def _request_plain(self, host: str, parts: SplitResult) -> None:
        """Set up the lean client if it can serve ``parts`` exactly as ``requests`` would."""
        if parts.username is not None or parts.password is not None or not host:
            return
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        if requote_uri(target) != target or not target.isascii():
            return
        try:
            port = parts.port or 80
        except ValueError:
            return
        host_header = f"[{host}]" if ":" in host else host
        if port != 80:
            host_header += f":{port}"
        merged: dict[str, tuple[str, str]] = {}
        for name, value in self.headers.items():
            merged[name.lower()] = (name, value)
        if "host" in merged:
            host_header = merged.pop("host")[1]
        merged.setdefault("connection", ("Connection", "keep-alive"))
        try:
            self._request = build_request(self.method, target, host_header, list(merged.values()))
        except (UnicodeEncodeError, ValueError):
            return
        self.plain = PlainConnection(host, port, timeout=self.timeout, clock=self._clock)

    @staticmethod
    def _new_session() -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def check(self) -> CheckResult:
        """Send one request; never raises."""
        return run_guarded(self._check, self._clock)

    # -- non-blocking use, by healthchecks.reactor ----------------------------------------

    @property
    def nonblocking(self) -> bool:
        """The check can run on a :class:`~healthchecks.reactor.HttpReactor`: the lean
        client serves it and its host is an IP address (nothing to resolve)."""
        return self.plain is not None and self.plain.literal_address is not None

    def start_async(self) -> float:
        """Begin one request without blocking; the deadline (on the check's clock).

        Raises:
            HttpFailure: the connection could not even be begun.
        """
        assert self.plain is not None
        deadline = self._clock() + self.timeout
        self.plain.start(
            self._request,
            method=self.method,
            deadline=deadline,
            max_body=MAX_BODY,
            decode=self.body_regex is not None,
        )
        return deadline

    def result_async(self, outcome: tuple[int, bytes] | str, started: float) -> CheckResult:
        """The result of a non-blocking request: its ``(status, body)`` or failure text."""
        ok, detail = (False, outcome) if isinstance(outcome, str) else self._judge(*outcome)
        return CheckResult(ok, short(detail), self._clock() - started)

    def close(self) -> None:
        """Close the lean connection, or the owned session's pooled connections."""
        if self.plain is not None:
            self.plain.close()
        if self._owns_session and self.session is not None:
            self.session.close()

    def __enter__(self) -> HttpCheck:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HttpCheck({self.method} {self.url}, expect_status={self.expect_status})"

    def _check(self) -> tuple[bool, str]:
        deadline = self._clock() + self.timeout
        if self.plain is not None:
            try:
                status, got = self.plain.exchange(
                    self._request,
                    method=self.method,
                    deadline=deadline,
                    max_body=MAX_BODY,
                    decode=self.body_regex is not None,
                )
            except HttpFailure as exc:
                return False, exc.detail
            return self._judge(status, got)
        assert self.session is not None
        try:
            with self.session.request(
                self.method,
                self.url,
                headers=self.headers,
                timeout=(self.timeout, self.timeout),
                verify=self.verify,
                cert=self.cert,
                allow_redirects=False,
                stream=True,
            ) as response:
                body = self._read_body(response, deadline)
                status = response.status_code
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            return False, describe_request_error(exc, self.timeout, self.url)
        if body is None:
            return False, f"timeout after {self.timeout}s"
        return self._judge(status, body)

    def _judge(self, status: int, body: bytes) -> tuple[bool, str]:
        said = f"HTTP {status} from {self.url}"
        if status not in self.expect_status:
            return False, f"{said} (expected {self.expect_status})"
        if self.body_regex is not None and not self.body_regex.search(body):
            pattern = self.body_regex.pattern.decode(errors="replace")
            return False, f"{said}: body does not match {pattern!r}"
        return True, said

    def _read_body(self, response: requests.Response, deadline: float) -> bytes | None:
        """Up to :data:`MAX_BODY` bytes of body, or ``None`` past the deadline.

        Each read waits at most until the deadline (the socket's timeout is cut
        to what is left) and returns what has arrived, so a trickling server
        cannot stretch the check.
        """
        raw = response.raw
        body = bytearray()
        while len(body) < MAX_BODY:
            left = deadline - self._clock()
            if left <= 0:
                return None
            sock = getattr(getattr(raw, "connection", None), "sock", None)
            if isinstance(sock, socket.socket):
                sock.settimeout(left)
            chunk = raw.read1(MAX_BODY - len(body), decode_content=True)
            if not chunk:
                break
            body += chunk
        return bytes(body[:MAX_BODY])


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps (cause, context, urllib3's ``reason``, args)."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += list(current.args)
        todo += [e for e in linked if isinstance(e, BaseException)]
    return seen


def describe_request_error(exc: Exception, timeout: float, url: str) -> str:
    """One line for a failed request: ``connection refused``, ``timeout after 1.0s``…"""
    chain = _causes(exc)
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connection refused"
    if any(isinstance(e, ConnectionResetError) for e in chain):
        return "connection reset"
    for e in chain:
        if isinstance(e, socket.gaierror):
            return f"cannot resolve host {urlsplit(url).hostname!r}: {e.strerror or e}"
    if any(isinstance(e, requests.exceptions.SSLError | ssl.SSLError) for e in chain):
        return f"TLS error: {_innermost(chain)}"
    if any(_is_timeout(e) for e in chain):
        return f"timeout after {timeout}s"
    return f"request failed: {_innermost(chain)}"


def _is_timeout(exc: BaseException) -> bool:
    # urllib3's NewConnectionError subclasses ConnectTimeoutError for history's sake
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return False
    return isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError)


def _innermost(chain: list[BaseException]) -> str:
    """The message of the deepest exception in the chain that has one."""
    for e in reversed(chain):
        text = str(e)
        if text:
            return text
    return type(chain[-1]).__name__
