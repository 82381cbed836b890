"""The ``/metrics`` endpoint: a collector's exposition over HTTP(S), behind optional Basic auth.

Theory of operation
-------------------
:class:`MetricsServer` runs prometheus-client's ``start_http_server`` (its threading WSGI
server on a daemon thread; TLS through ``certfile=``/``keyfile=``) and replaces the default
app with :meth:`MetricsServer.app`. That app serves the Prometheus text format 0.0.4 on
``/metrics`` (GET and HEAD; gzip when asked) from the collector's ``exposition()``, a short
index on ``/``, 404 elsewhere and 405 for other methods, all behind HTTP Basic auth when the
config has credentials (compared in constant time; send them over TLS beyond loopback). The
collector is registered in the server's registry only once the app is installed, so a request
that races start-up gets an empty page, never an unauthenticated one.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hmac
import threading
from collections.abc import Iterable
from wsgiref.simple_server import WSGIServer
from wsgiref.types import StartResponse, WSGIEnvironment

from prometheus_client import CollectorRegistry, start_http_server

from listeners.metrics.collector import MetricsCollector
from listeners.metrics.config import MetricsConfig
from listeners.metrics.exposition import CONTENT_TYPE

__all__ = ["MetricsServer"]


class MetricsServer:
    """Serve a collector's exposition with prometheus-client's ``start_http_server``.

    The server starts on ``registry`` (empty until :meth:`start` has installed the app), so
    a request that races start-up gets an empty page, never an unauthenticated one.
    """

    def __init__(
        self, config: MetricsConfig, collector: MetricsCollector, registry: CollectorRegistry
    ) -> None:
        self.config = config
        self.collector = collector
        self.registry = registry
        self._credentials: tuple[bytes, bytes] | None = None
        if config.username is not None and config.password is not None:
            self._credentials = (config.username.encode(), config.password.encode())
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the kernel's choice for port 0)."""
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind and serve on a daemon thread; then register the collector.

        Raises:
            OSError: cannot bind (or TLS files unusable).
        """
        c = self.config
        server, thread = start_http_server(
            c.port,
            c.host,
            registry=self.registry,
            certfile=str(c.tls_cert) if c.tls_cert else None,
            keyfile=str(c.tls_key) if c.tls_key else None,
        )
        server.set_app(self.app)
        self._server, self._thread = server, thread
        self.registry.register(self.collector)

    def stop(self) -> None:
        """Stop serving and unregister the collector (nothing to do if not started)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self.registry.unregister(self.collector)
        self._server = self._thread = None

    def _authorized(self, header: str | None) -> bool:
        assert self._credentials is not None
        if header is None or header[:6].lower() != "basic ":
            return False
        try:
            raw = base64.b64decode(header[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = raw.partition(b":")
        same_user = hmac.compare_digest(user, self._credentials[0])
        same_password = hmac.compare_digest(password, self._credentials[1])
        return bool(sep) and same_user and same_password

    def app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI application: ``/metrics`` (GET, HEAD), behind Basic auth if configured."""
        plain = ("Content-Type", "text/plain; charset=utf-8")
        if self._credentials is not None and not self._authorized(
            environ.get("HTTP_AUTHORIZATION")
        ):
            start_response("401 Unauthorized", [plain, ("WWW-Authenticate", 'Basic realm="vigil"')])
            return [b"401 Unauthorized\n"]
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [plain, ("Allow", "GET, HEAD")])
            return [b"405 Method Not Allowed\n"]
        path = environ.get("PATH_INFO", "/")
        if path == "/":
            start_response("200 OK", [plain])
            return [b"vigil-listener metrics: /metrics\n"]
        if path != "/metrics":
            start_response("404 Not Found", [plain])
            return [b"404 Not Found\n"]
        body = self.collector.exposition()
        headers = [("Content-Type", CONTENT_TYPE)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [b"" if method == "HEAD" else body]
