"""manager.rpcclient against tiny real XML-RPC servers on loopback and unix sockets."""

from __future__ import annotations

import base64
import socket
import socketserver
import threading
import xmlrpc.client
from collections.abc import Callable, Iterator
from pathlib import Path
from textwrap import dedent
from typing import Any
from xmlrpc.server import SimpleXMLRPCDispatcher, SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import pytest

from manager.faults import Fault
from manager.ini import ConfigError, read_ini
from manager.rpcclient import (
    DEFAULT_SERVER_URL,
    AuthenticationError,
    RPCError,
    RPCFault,
    SupervisorClient,
    Unreachable,
    parse_server_url,
)

USER, PASSWORD = "alice", "s3cret-pw"


# --- a small fake supervisord: real HTTP, Basic auth, faults ---------------------------


class Recorder:
    """What the fake server saw, plus the credentials it demands (None = no auth)."""

    def __init__(self, auth: tuple[str, str] | None) -> None:
        self.expected = None
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self.expected = f"Basic {token}"
        self.paths: list[str] = []
        self.lock = threading.Lock()


class Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = ()  # accept any path; the recorder notes which one was used
    recorder: Recorder

    def do_POST(self) -> None:
        with self.recorder.lock:
            self.recorder.paths.append(self.path)
        if self.path == "/boom":
            self.send_error(500, "Internal Server Error")
            return
        expected = self.recorder.expected
        if expected is not None and self.headers.get("Authorization") != expected:
            length = int(self.headers.get("Content-Length", "0"))
            self.rfile.read(length)
            self.send_response(401, "Unauthorized")
            self.send_header("WWW-Authenticate", 'Basic realm="default"')
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            return
        super().do_POST()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def address_string(self) -> str:
        return "test"


def register_api(dispatcher: SimpleXMLRPCDispatcher) -> None:
    def get_state() -> dict[str, Any]:
        return {"statecode": 1, "statename": "RUNNING"}

    def get_process_info(name: Any) -> dict[str, Any]:
        if name != "web":
            raise xmlrpc.client.Fault(int(Fault.BAD_NAME), f"BAD_NAME: {name}")
        return {"name": "web", "pid": 42}

    def shutdown_fault() -> bool:
        raise xmlrpc.client.Fault(int(Fault.SHUTDOWN_STATE), "SHUTDOWN_STATE")

    def odd_fault() -> bool:
        raise xmlrpc.client.Fault(777, "WEIRD: thing")

    def echo(*args: Any) -> list[Any]:
        return list(args)

    dispatcher.register_function(get_state, "supervisor.getState")
    dispatcher.register_function(get_process_info, "supervisor.getProcessInfo")
    dispatcher.register_function(shutdown_fault, "supervisor.shutdown")
    dispatcher.register_function(odd_fault, "supervisor.odd")
    dispatcher.register_function(echo, "test.echo")
    dispatcher.register_introspection_functions()


class TCPXMLRPCServer(SimpleXMLRPCServer):
    request_queue_size = 64  # concurrent clients must not hit SYN retransmits


class UnixXMLRPCServer(socketserver.UnixStreamServer, SimpleXMLRPCDispatcher):
    logRequests = False
    request_queue_size = 64

    def __init__(self, path: str, handler: type[SimpleXMLRPCRequestHandler]) -> None:
        SimpleXMLRPCDispatcher.__init__(self, allow_none=False, encoding=None)
        socketserver.UnixStreamServer.__init__(self, path, handler)


Serve = Callable[..., tuple[str, Recorder]]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """``serve(auth=None, unix_path=None)`` starts a server and returns (url, recorder)."""
    servers: list[tuple[socketserver.BaseServer, threading.Thread]] = []

    def start(
        auth: tuple[str, str] | None = None, unix_path: Path | None = None
    ) -> tuple[str, Recorder]:
        recorder = Recorder(auth)
        attrs = {"recorder": recorder, "disable_nagle_algorithm": unix_path is None}
        handler = type("BoundHandler", (Handler,), attrs)
        server: socketserver.BaseServer
        if unix_path is None:
            tcp = TCPXMLRPCServer(("127.0.0.1", 0), requestHandler=handler, logRequests=False)
            register_api(tcp)
            url = f"http://127.0.0.1:{tcp.server_address[1]}"
            server = tcp
        else:
            unix = UnixXMLRPCServer(str(unix_path), handler)
            register_api(unix)
            url = f"unix://{unix_path}"
            server = unix
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
        thread.start()
        servers.append((server, thread))
        return url, recorder

    try:
        yield start
    finally:
        for server, thread in servers:
            server.shutdown()
            server.server_close()
            thread.join()


@pytest.fixture
def sock_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short directory for AF_UNIX paths (108-byte limit)."""
    return tmp_path_factory.mktemp("s")


class Sleeps:
    """An injected sleep that records instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# --- URLs ----------------------------------------------------------------------------


def test_parse_unix_url_posts_to_rpc2_over_the_socket() -> None:
    u = parse_server_url("unix:///run/supervisor.sock")
    assert (u.scheme, u.host, u.port, u.handler) == ("unix", "/run/supervisor.sock", None, "/RPC2")


@pytest.mark.parametrize(
    ("url", "host", "port", "handler"),
    [
        ("http://localhost:9001", "localhost", 9001, "/RPC2"),
        ("http://127.0.0.1:9001/", "127.0.0.1", 9001, "/RPC2"),
        ("http://example.org", "example.org", 80, "/RPC2"),
        ("http://h:1/custom/RPC2", "h", 1, "/custom/RPC2"),
        ("http://[::1]:9001", "::1", 9001, "/RPC2"),
    ],
)
def test_parse_http_url_defaults_port_80_and_path_rpc2(
    url: str, host: str, port: int, handler: str
) -> None:
    u = parse_server_url(url)
    assert (u.scheme, u.host, u.port, u.handler) == ("http", host, port, handler)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://h:9001", "unsupported server URL 'https://h:9001'"),
        ("ftp://h", "unsupported server URL 'ftp://h'"),
        ("localhost:9001", "unsupported server URL 'localhost:9001'"),
        ("unix://relative.sock", "needs an absolute socket path"),
        ("http://:9001", "has no host"),
        ("http://h:abc", "invalid port"),
        ("http://u:pw@h:9001", "must not contain credentials"),
    ],
)
def test_bad_server_url_is_a_clear_value_error(url: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        SupervisorClient(url)
    assert message in str(info.value)


# --- repr and from_config ------------------------------------------------------------


def test_repr_hides_the_password() -> None:
    client = SupervisorClient("http://h:1", USER, PASSWORD)
    text = repr(client)
    assert PASSWORD not in text
    assert text == (
        "SupervisorClient(url='http://h:1', username='alice', password='***', "
        "timeout=10.0, retry_for=5.0)"
    )
    assert PASSWORD not in repr(client.supervisor.getState)
    assert "password=None" in repr(SupervisorClient("http://h:1"))


def test_from_config_defaults_to_localhost_9001_without_credentials() -> None:
    client = SupervisorClient.from_config(None, environ={})
    assert client.url == DEFAULT_SERVER_URL == "http://localhost:9001"
    assert client.username is None
    assert not client.has_password


def write_ctl(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "supervisord.conf"
    path.write_text("[supervisorctl]\n" + dedent(body))
    return path


def test_from_config_reads_supervisorctl_section_with_expansion(tmp_path: Path) -> None:
    conf = write_ctl(
        tmp_path,
        """
        serverurl = unix://%(here)s/run/%(ENV_NAME)s.sock
        username = %(ENV_WHO)s
        password = pw
        """,
    )
    env = {"NAME": "sv", "WHO": "bob"}
    client = SupervisorClient.from_config(read_ini(conf, environ=env), environ=env)
    assert client.url == f"unix://{tmp_path}/run/sv.sock"
    assert client.username == "bob"
    assert client.has_password


def test_from_config_environment_beats_the_ini_file(tmp_path: Path) -> None:
    conf = write_ctl(tmp_path, "serverurl = http://ini:1\nusername = ini-user\npassword = ini-pw\n")
    env = {"SUPERVISOR_SERVER_URL": "unix:///env.sock", "SUPERVISOR_USERNAME": "env-user"}
    client = SupervisorClient.from_config(read_ini(conf, environ={}), environ=env)
    assert client.url == "unix:///env.sock"
    assert client.username == "env-user"
    assert client.has_password  # from the ini: each credential falls back on its own


def test_from_config_without_supervisorctl_section_uses_defaults(tmp_path: Path) -> None:
    conf = tmp_path / "x.conf"
    conf.write_text("[supervisord]\n")
    client = SupervisorClient.from_config(read_ini(conf, environ={}), environ={})
    assert client.url == DEFAULT_SERVER_URL


def test_from_config_passes_keywords_to_the_constructor() -> None:
    client = SupervisorClient.from_config(None, environ={}, timeout=2.5, retry_for=0.0)
    assert (client.timeout, client.retry_for) == (2.5, 0.0)


def test_from_config_bad_serverurl_names_file_section_and_key(tmp_path: Path) -> None:
    conf = write_ctl(tmp_path, "serverurl = ftp://nope\n")
    with pytest.raises(ConfigError) as info:
        SupervisorClient.from_config(read_ini(conf, environ={}), environ={})
    assert str(info.value).startswith(
        f"{conf}: [supervisorctl] serverurl = 'ftp://nope': unsupported server URL"
    )


def test_from_config_credentials_authenticate_against_a_real_server(
    serve: Serve, tmp_path: Path
) -> None:
    url, _ = serve(auth=(USER, PASSWORD))
    conf = write_ctl(tmp_path, f"serverurl = {url}\nusername = {USER}\npassword = {PASSWORD}\n")
    client = SupervisorClient.from_config(read_ini(conf, environ={}), environ={})
    assert client.supervisor.getState()["statename"] == "RUNNING"


# --- calls ---------------------------------------------------------------------------


def test_call_over_http_returns_the_unmarshalled_result(serve: Serve) -> None:
    url, rec = serve()
    client = SupervisorClient(url)
    assert client.call("supervisor.getState") == {"statecode": 1, "statename": "RUNNING"}
    assert client.supervisor.getProcessInfo("web") == {"name": "web", "pid": 42}
    assert "supervisor.getState" in client.system.listMethods()
    assert client.namespace("test").echo(1, "two", [3]) == [1, "two", [3]]
    assert rec.paths == ["/RPC2"] * 4


def test_call_over_http_honours_the_url_path(serve: Serve) -> None:
    url, rec = serve()
    SupervisorClient(url + "/custom/RPC2").supervisor.getState()
    assert rec.paths == ["/custom/RPC2"]


def test_call_over_unix_socket_sends_basic_auth(serve: Serve, sock_dir: Path) -> None:
    url, rec = serve(auth=(USER, PASSWORD), unix_path=sock_dir / "sv.sock")
    client = SupervisorClient(url, USER, PASSWORD)
    assert client.supervisor.getState()["statecode"] == 1
    assert rec.paths == ["/RPC2"]


def test_call_over_http_sends_basic_auth(serve: Serve) -> None:
    url, _ = serve(auth=(USER, PASSWORD))
    assert SupervisorClient(url, USER, PASSWORD).supervisor.getState()["statecode"] == 1


def test_calls_from_many_threads_each_use_their_own_connection(serve: Serve) -> None:
    url, rec = serve(auth=(USER, PASSWORD))
    client = SupervisorClient(url, USER, PASSWORD)
    results: list[Any] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(5):
            value = client.namespace("test").echo(n, i)
            with lock:
                results.append(tuple(value))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [(n, i) for n in range(8) for i in range(5)]
    assert len(rec.paths) == 40


# --- faults and HTTP errors: answers, never retried --------------------------------


def test_fault_maps_to_rpcfault_with_name_and_detail(serve: Serve) -> None:
    url, rec = serve()
    sleeps = Sleeps()
    client = SupervisorClient(url, sleep=sleeps)
    with pytest.raises(RPCFault) as info:
        client.supervisor.getProcessInfo("nosuch")
    fault = info.value
    assert (fault.code, fault.name, fault.detail) == (10, "BAD_NAME", "nosuch")
    assert fault.method == "supervisor.getProcessInfo"
    assert str(fault) == "supervisor.getProcessInfo: BAD_NAME: nosuch (fault 10)"
    assert isinstance(fault, RPCError)
    assert rec.paths == ["/RPC2"]
    assert sleeps.calls == []


def test_fault_without_detail_has_empty_detail(serve: Serve) -> None:
    url, _ = serve()
    with pytest.raises(RPCFault) as info:
        SupervisorClient(url).supervisor.shutdown()
    assert (info.value.code, info.value.name, info.value.detail) == (6, "SHUTDOWN_STATE", "")


def test_fault_with_unknown_code_is_named_unknown(serve: Serve) -> None:
    url, _ = serve()
    with pytest.raises(RPCFault) as info:
        SupervisorClient(url).supervisor.odd()
    assert (info.value.code, info.value.name, info.value.detail) == (777, "UNKNOWN", "WEIRD: thing")


def test_unknown_method_fault_from_the_server(serve: Serve) -> None:
    url, _ = serve()
    with pytest.raises(RPCFault) as info:
        SupervisorClient(url).supervisor.nosuchMethod()
    assert (info.value.code, info.value.name) == (1, "UNKNOWN_METHOD")


@pytest.mark.parametrize("creds", [(USER, "wrong"), (None, None)])
def test_http_401_is_an_authentication_error_without_the_password(
    serve: Serve, creds: tuple[str | None, str | None]
) -> None:
    url, rec = serve(auth=(USER, PASSWORD))
    sleeps = Sleeps()
    client = SupervisorClient(url, creds[0], creds[1], sleep=sleeps)
    with pytest.raises(AuthenticationError) as info:
        client.supervisor.getState()
    message = str(info.value)
    assert message == f"supervisor at {url} refused the credentials (HTTP 401 Unauthorized)"
    assert "wrong" not in message and PASSWORD not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert rec.paths == ["/RPC2"]
    assert sleeps.calls == []


def test_401_over_unix_socket_is_an_authentication_error(serve: Serve, sock_dir: Path) -> None:
    url, _ = serve(auth=(USER, PASSWORD), unix_path=sock_dir / "sv.sock")
    with pytest.raises(AuthenticationError, match="refused the credentials"):
        SupervisorClient(url, USER, "wrong").supervisor.getState()


def test_other_http_status_is_an_rpc_error_with_status_and_url(serve: Serve) -> None:
    url, rec = serve()
    sleeps = Sleeps()
    with pytest.raises(RPCError) as info:
        SupervisorClient(url + "/boom", sleep=sleeps).supervisor.getState()
    assert type(info.value) is RPCError
    assert str(info.value) == (
        f"supervisor at {url}/boom answered HTTP 500 Internal Server Error to supervisor.getState"
    )
    assert rec.paths == ["/boom"]
    assert sleeps.calls == []


def test_timeout_is_not_retried(tmp_path: Path) -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        sleeps = Sleeps()
        client = SupervisorClient(url, timeout=0.2, retry_for=5.0, sleep=sleeps)
        with pytest.raises(RPCError) as info:
            client.supervisor.getState()
    assert not isinstance(info.value, Unreachable)
    assert (
        str(info.value)
        == f"timed out after 0.2s waiting for supervisor at {url} (supervisor.getState)"
    )
    assert sleeps.calls == []


# --- connection failures: retried, then Unreachable ----------------------------------


def test_connection_refused_is_retried_then_unreachable() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    sleeps = Sleeps()
    client = SupervisorClient(url, retry_for=0.05, sleep=sleeps)
    with pytest.raises(Unreachable) as info:
        client.supervisor.getState()
    assert str(info.value) == f"cannot reach supervisor at {url}: Connection refused"
    assert info.value.url == url
    assert len(sleeps.calls) >= 1
    # exponential from 0.05 s plus up to 0.05 s of jitter, capped at 1 s (+ jitter)
    assert 0.05 <= sleeps.calls[0] <= 0.1
    assert all(0.05 <= s <= 1.05 for s in sleeps.calls)
    if len(sleeps.calls) >= 3:
        assert 0.2 <= sleeps.calls[2] <= 0.25


def test_missing_unix_socket_is_retried_then_unreachable(sock_dir: Path) -> None:
    url = f"unix://{sock_dir}/missing.sock"
    sleeps = Sleeps()
    with pytest.raises(Unreachable) as info:
        SupervisorClient(url, retry_for=0.05, sleep=sleeps).supervisor.getState()
    assert str(info.value) == f"cannot reach supervisor at {url}: No such file or directory"
    assert len(sleeps.calls) >= 1


def test_stale_unix_socket_file_is_refused_then_unreachable(sock_dir: Path) -> None:
    path = sock_dir / "stale.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))  # the file stays behind; nobody listens
    sleeps = Sleeps()
    with pytest.raises(Unreachable, match="Connection refused"):
        SupervisorClient(f"unix://{path}", retry_for=0.05, sleep=sleeps).supervisor.getState()
    assert len(sleeps.calls) >= 1


def test_retry_for_zero_makes_a_single_attempt() -> None:
    sleeps = Sleeps()
    with pytest.raises(Unreachable):
        SupervisorClient(f"http://127.0.0.1:{closed_port()}", retry_for=0, sleep=sleeps).call(
            "supervisor.getState"
        )
    assert sleeps.calls == []


def test_retry_reaches_a_server_that_starts_late(serve: Serve, sock_dir: Path) -> None:
    path = sock_dir / "late.sock"

    def sleep(seconds: float) -> None:
        if not path.exists():
            serve(unix_path=path)

    client = SupervisorClient(f"unix://{path}", retry_for=5.0, sleep=sleep)
    assert client.supervisor.getState()["statename"] == "RUNNING"
