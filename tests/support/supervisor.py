"""Run a real supervisord (or, later, vigild) in a temporary directory for integration tests.

``start_supervisor(tmp, body)`` writes ``tmp/supervisord.conf`` (a ``[supervisord]`` section,
a unix socket, ``[supervisorctl]`` and ``[rpcinterface:supervisor]`` followed by ``body``),
starts the core in the foreground and waits until ``supervisor.getState()`` says RUNNING.
The returned :class:`Supervisor` talks XML-RPC over the unix socket with its own small
transport (no dependency on the project's client) and :meth:`Supervisor.stop` only ever
signals the pid this module started (plus, if it has to SIGKILL the core, the child pids the
core reported, so nothing is orphaned).

The core command is pluggable: pass ``command=[..., "{conf}"]`` (``{conf}`` is replaced by the
config path), or set ``VIGIL_TEST_CORE=vigild`` in the environment to run every harness-based
test against ``vigild`` from the same virtualenv instead of supervisord.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from _typeshed import SizedBuffer

__all__ = [
    "PYTHON",
    "VIGIL_LISTENER",
    "RpcProxy",
    "Supervisor",
    "UnixStreamTransport",
    "core_command",
    "run_core",
    "start_supervisor",
    "unix_proxy",
]

#: The interpreter running the tests (has the project and its dependencies installed).
PYTHON: str = sys.executable
#: The ``vigil-listener`` console script of the same virtualenv, for ``command=`` lines.
VIGIL_LISTENER: str = str(Path(sys.executable).parent / "vigil-listener")

#: Longest unix socket path we accept (sun_path is 108 bytes including the NUL).
MAX_SOCKET_PATH = 100
START_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0
POLL = 0.02
RPC_TIMEOUT = 10.0


# ---------------------------------------------------------------------------------------------
# XML-RPC over a unix socket


class UnixStreamHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection whose transport is a unix stream socket."""

    def __init__(self, path: str, timeout: float = RPC_TIMEOUT) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.unix_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class UnixStreamTransport(xmlrpc.client.Transport):
    """xmlrpc transport to a unix socket; one connection per call, always closed afterwards.

    Closing after every request means a discarded ``ServerProxy`` never leaves an open socket
    behind (the test suite runs with ``filterwarnings = error``).
    """

    def __init__(self, path: str | os.PathLike[str], timeout: float = RPC_TIMEOUT) -> None:
        super().__init__()
        self.unix_path = os.fspath(path)
        self.timeout = timeout

    def make_connection(self, host: tuple[str, dict[str, str]] | str) -> http.client.HTTPConnection:
        conn = UnixStreamHTTPConnection(self.unix_path, self.timeout)
        self._connection = (host, conn)  # so that close() closes it
        return conn

    def request(
        self,
        host: tuple[str, dict[str, str]] | str,
        handler: str,
        request_body: SizedBuffer,
        verbose: bool = False,
    ) -> tuple[Any, ...]:
        try:
            return super().request(host, handler, request_body, verbose)
        finally:
            self.close()


class RpcProxy(xmlrpc.client.ServerProxy):
    """A ``ServerProxy`` typed loosely: results are ``Any`` (dicts, lists…) for test code."""

    def __getattr__(self, name: str) -> Any:
        return super().__getattr__(name)


def unix_proxy(sock: str | os.PathLike[str], timeout: float = RPC_TIMEOUT) -> RpcProxy:
    """A ``ServerProxy`` for ``/RPC2`` on the unix socket ``sock``."""
    return RpcProxy(
        "http://localhost/RPC2", transport=UnixStreamTransport(sock, timeout), allow_none=True
    )


# ---------------------------------------------------------------------------------------------
# The running core


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(text.splitlines()[-lines:])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Supervisor:
    """A core started by :func:`start_supervisor`; stop it with :meth:`stop` (idempotent)."""

    dir: Path
    conf: Path
    sock: Path
    proc: subprocess.Popen[bytes]
    logfile: Path
    #: The core's own stdout/stderr (config errors are printed there, not to ``logfile``).
    output: Path | None = None
    #: A private short directory holding ``sock`` when ``dir`` was too long; removed by stop().
    sockdir: Path | None = None
    _stopped: bool = field(default=False, init=False, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    # -- RPC --------------------------------------------------------------------------------
    def rpc(self, timeout: float = RPC_TIMEOUT) -> RpcProxy:
        """A fresh XML-RPC proxy over the unix socket (each call uses and closes a connection)."""
        return unix_proxy(self.sock, timeout)

    def process_info(self, name: str) -> dict[str, Any]:
        info: dict[str, Any] = self.rpc().supervisor.getProcessInfo(name)
        return info

    # -- waiting ----------------------------------------------------------------------------
    def wait_state(self, name: str, statename: str, timeout: float = 10) -> dict[str, Any]:
        """Poll ``getProcessInfo(name)`` every 20 ms until its ``statename``; return the info."""
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            try:
                info = self.process_info(name)
            except (OSError, xmlrpc.client.Error) as e:
                last = e
            else:
                if info.get("statename") == statename:
                    return info
                last = info
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{name} did not reach {statename} within {timeout}s; last: {last!r}\n"
                    + self.diagnostics()
                )
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"core exited ({self.proc.returncode}) while waiting for {name} to reach "
                    f"{statename}; last: {last!r}\n" + self.diagnostics()
                )
            time.sleep(POLL)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10, what: str = "") -> None:
        """Poll ``predicate`` every 20 ms until true, else AssertionError naming ``what``."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what or predicate!r}\n"
                    + self.diagnostics()
                )
            time.sleep(POLL)

    def wait_running(self, timeout: float = START_TIMEOUT) -> None:
        """Poll ``supervisor.getState()`` until RUNNING, else RuntimeError with the log tails."""
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.proc.args!r} exited with status {self.proc.returncode} before "
                    "RUNNING\n" + self.diagnostics()
                )
            if self.sock.exists():
                try:
                    state = self.rpc(timeout=2).supervisor.getState()
                except (OSError, xmlrpc.client.Error) as e:
                    last = e
                else:
                    if state.get("statename") == "RUNNING":
                        return
                    last = state
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"core did not answer RUNNING within {timeout}s; last: {last!r}\n"
                    + self.diagnostics()
                )
            time.sleep(POLL)

    # -- logs -------------------------------------------------------------------------------
    def log_text(self) -> str:
        """The core's main log file ('' before it exists)."""
        try:
            return self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def child_log(self, name: str, channel: Literal["stdout", "stderr"] = "stdout") -> str:
        """The whole captured stdout/stderr log of process ``name`` via XML-RPC."""
        proxy = self.rpc().supervisor
        reader = proxy.readProcessStdoutLog if channel == "stdout" else proxy.readProcessStderrLog
        text: str = reader(name, 0, 0)
        return text

    def diagnostics(self, lines: int = 40) -> str:
        out = f"--- tail of {self.logfile} ---\n{_tail(self.logfile, lines)}"
        if self.output is not None:
            out += f"\n--- tail of {self.output} ---\n{_tail(self.output, lines)}"
        return out

    # -- teardown ---------------------------------------------------------------------------
    def _child_pids(self) -> list[int]:
        try:
            infos = self.rpc(timeout=2).supervisor.getAllProcessInfo()
        except (OSError, xmlrpc.client.Error):
            return []
        return [int(i["pid"]) for i in infos if i.get("pid")]

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM the core, wait up to ``timeout`` s, then SIGKILL it. Idempotent.

        If the core had to be SIGKILLed, the child pids it last reported are SIGKILLed too so
        no process outlives the test. Returns the core's exit status.
        """
        if self._stopped:
            return self.proc.returncode
        self._stopped = True
        try:
            if self.proc.poll() is None:
                children = self._child_pids()
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        self.proc.kill()
                    self.proc.wait()
                    for pid in children:
                        if _alive(pid):
                            with contextlib.suppress(ProcessLookupError, PermissionError):
                                os.kill(pid, signal.SIGKILL)
            return self.proc.returncode
        finally:
            if self.sockdir is not None:
                shutil.rmtree(self.sockdir, ignore_errors=True)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# Starting


CORES = ("supervisord", "vigild")


def core_command(conf: Path, core: str | None = None) -> list[str]:
    """The core command line: ``core``, else supervisord (or ``$VIGIL_TEST_CORE``)."""
    core = core or os.environ.get("VIGIL_TEST_CORE", "supervisord")
    if core == "supervisord":
        return [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(conf)]
    if core == "vigild":
        return [str(Path(sys.executable).parent / "vigild"), "-n", "-c", str(conf)]
    raise ValueError(f"VIGIL_TEST_CORE must be 'supervisord' or 'vigild', not {core!r}")


def _ini_path(p: Path) -> str:
    """A path for a config value: ``%`` is the expansion character there."""
    return str(p).replace("%", "%%")


def _socket_path(tmp: Path) -> tuple[Path, Path | None]:
    sock = tmp / "sv.sock"
    if len(os.fsencode(sock)) <= MAX_SOCKET_PATH:
        return sock, None
    sockdir = Path(tempfile.mkdtemp(prefix="vt", dir="/tmp"))
    return sockdir / "sv.sock", sockdir


def render_config(tmp: Path, sock: Path, body: str, loglevel: str = "debug") -> str:
    t = _ini_path(tmp)
    s = _ini_path(sock)
    return f"""\
[supervisord]
nodaemon = true
logfile = {t}/supervisord.log
logfile_maxbytes = 0
pidfile = {t}/supervisord.pid
childlogdir = {t}
loglevel = {loglevel}
identifier = vigiltest

[unix_http_server]
file = {s}
chmod = 0700

[supervisorctl]
serverurl = unix://{s}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

{body}
"""


def start_supervisor(
    tmp: Path,
    body: str,
    *,
    command: Sequence[str] | None = None,
    loglevel: str = "debug",
    timeout: float = START_TIMEOUT,
    env: dict[str, str] | None = None,
) -> Supervisor:
    """Write ``tmp/supervisord.conf`` with ``body`` appended, start the core, wait for RUNNING.

    ``command`` replaces the default core command line; ``{conf}`` in any of its items is
    replaced by the config path. ``env`` (default: a copy of ``os.environ``) is the core's
    environment. On failure the core is stopped and RuntimeError carries the log tails.
    """
    tmp = Path(tmp).resolve()
    tmp.mkdir(parents=True, exist_ok=True)
    sock, sockdir = _socket_path(tmp)
    conf = tmp / "supervisord.conf"
    try:
        conf.write_text(render_config(tmp, sock, body, loglevel))
    except BaseException:
        if sockdir is not None:
            shutil.rmtree(sockdir, ignore_errors=True)
        raise
    return run_core(
        conf,
        sock=sock,
        logfile=tmp / "supervisord.log",
        command=command,
        timeout=timeout,
        env=env,
        sockdir=sockdir,
    )


def run_core(
    conf: Path,
    *,
    sock: Path,
    logfile: Path,
    command: Sequence[str] | None = None,
    timeout: float = START_TIMEOUT,
    env: dict[str, str] | None = None,
    sockdir: Path | None = None,
) -> Supervisor:
    """Start the core on an existing config file and wait until ``getState()`` is RUNNING.

    ``sock`` and ``logfile`` must be what the config says. The core runs in the config's
    directory with its stdout/stderr in ``<that dir>/supervisord.out``. ``sockdir`` (if given)
    is removed by :meth:`Supervisor.stop`, also when starting fails.
    """
    conf = Path(conf).resolve()
    workdir = conf.parent
    argv = (
        core_command(conf) if command is None else [c.replace("{conf}", str(conf)) for c in command]
    )
    output = workdir / "supervisord.out"
    try:
        with output.open("wb") as out:
            proc = subprocess.Popen(
                argv,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(os.environ) if env is None else env,
            )
    except BaseException:
        if sockdir is not None:
            shutil.rmtree(sockdir, ignore_errors=True)
        raise
    sv = Supervisor(
        dir=workdir,
        conf=conf,
        sock=sock,
        proc=proc,
        logfile=logfile,
        output=output,
        sockdir=sockdir,
    )
    try:
        sv.wait_running(timeout)
    except BaseException:
        sv.stop()
        raise
    return sv
