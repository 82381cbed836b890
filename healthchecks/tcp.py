"""TCP check: the port accepts a connection (and answers ``expect`` to ``send``).

Without ``send``/``expect`` this is Kubernetes' ``tcpSocket``: a connection that
opens passes, even if the peer closes it at once. With ``expect`` the bytes must
appear somewhere in what the peer sends (before it closes, within the timeout,
within :data:`MAX_READ` bytes): ``send = PING\\r\\n`` / ``expect = +PONG`` checks
a Redis. ``expect`` without ``send`` checks a banner (``220`` for SMTP).
"""

from __future__ import annotations

import socket
import time

from healthchecks.result import CheckResult, Clock, run_guarded

__all__ = ["MAX_READ", "TcpCheck"]

#: Bytes read at most while waiting for ``expect``.
MAX_READ = 64 * 1024


class TcpCheck:
    """Connect to ``host:port`` within ``timeout`` seconds (the whole exchange).

    Raises:
        ValueError: port outside 1-65535 or a non-positive timeout.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        send: bytes | None = None,
        expect: bytes | None = None,
        timeout: float = 1.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if not 1 <= port <= 65535:
            raise ValueError(f"port must be within 1-65535, not {port}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.host = host
        self.port = port
        self.send = send
        self.expect = expect
        self.timeout = float(timeout)
        self._clock = clock

    @property
    def address(self) -> str:
        """``host:port`` (IPv6 hosts in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def check(self) -> CheckResult:
        """Open one connection; never raises."""
        return run_guarded(self._check, self._clock)

    def close(self) -> None:
        """Nothing is held between checks."""

    def __repr__(self) -> str:
        return f"TcpCheck({self.address}, send={self.send!r}, expect={self.expect!r})"

    def _remaining(self, deadline: float) -> float:
        left = deadline - self._clock()
        if left <= 0:
            raise TimeoutError
        return left

    def _check(self) -> tuple[bool, str]:
        deadline = self._clock() + self.timeout
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout) as sock:
                if self.send is not None:
                    sock.settimeout(self._remaining(deadline))
                    sock.sendall(self.send)
                if self.expect is None:
                    return True, f"connected to {self.address}"
                return self._expect(sock, self.expect, deadline)
        except TimeoutError:
            return False, f"timeout after {self.timeout}s"
        except ConnectionRefusedError:
            return False, "connection refused"
        except ConnectionResetError:
            return False, "connection reset"
        except socket.gaierror as exc:
            return False, f"cannot resolve host {self.host!r}: {exc.strerror or exc}"
        except OSError as exc:
            return False, f"cannot connect to {self.address}: {exc.strerror or exc}"

    def _expect(self, sock: socket.socket, expect: bytes, deadline: float) -> tuple[bool, str]:
        received = bytearray()
        while expect not in received:
            if len(received) >= MAX_READ:
                return False, f"{expect!r} not in the first {MAX_READ} bytes from {self.address}"
            try:
                sock.settimeout(self._remaining(deadline))
                chunk = sock.recv(MAX_READ - len(received))
            except TimeoutError:
                got = bytes(received[-100:])
                return False, f"timeout after {self.timeout}s waiting for {expect!r}, got {got!r}"
            if not chunk:
                got = bytes(received[-100:])
                return False, f"connection closed before {expect!r}, got {got!r}"
            received += chunk
        return True, f"got {expect!r} from {self.address}"
