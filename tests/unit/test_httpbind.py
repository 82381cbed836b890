"""Listening sockets: unix socket modes, stale and foreign socket files, TCP binding errors."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from manager.httpbind import IN_USE_MESSAGE, BindError, bind_tcp, bind_unix, file_identity
from tests.support.net import unix_socket_path


@pytest.fixture
def sock_path(tmp_path: Path) -> Iterator[str]:
    with unix_socket_path(tmp_path) as path:
        yield path


def test_unix_socket_is_never_more_open_than_its_mode(
    sock_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    modes_before_chmod: list[int] = []
    real_chmod = os.chmod

    def spy(path: str, mode: int) -> None:
        modes_before_chmod.append(stat.S_IMODE(os.stat(path).st_mode))
        real_chmod(path, mode)

    monkeypatch.setattr(os, "chmod", spy)
    sock = bind_unix(sock_path)
    try:
        # bound under umask 0177: no group/other access even before chmod
        assert modes_before_chmod == [0o600]
        assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o700
    finally:
        sock.close()
        os.unlink(sock_path)


def test_unix_socket_chmod_setting_is_applied(sock_path: str) -> None:
    sock = bind_unix(sock_path, chmod=0o770)
    try:
        assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o770
    finally:
        sock.close()
        os.unlink(sock_path)


def test_stale_socket_file_is_removed(sock_path: str) -> None:
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(sock_path)
    dead.close()  # the file stays, nobody listens
    assert os.path.exists(sock_path)
    sock = bind_unix(sock_path)
    try:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with probe:
            probe.connect(sock_path)
    finally:
        sock.close()
        os.unlink(sock_path)


def test_socket_in_use_is_a_bind_error_and_is_left_alone(sock_path: str) -> None:
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(sock_path)
    live.listen(1)
    try:
        with pytest.raises(BindError) as info:
            bind_unix(sock_path)
        assert str(info.value) == IN_USE_MESSAGE
        assert IN_USE_MESSAGE.startswith("Another program is already listening on a port")
        assert os.path.exists(sock_path)
    finally:
        live.close()
        os.unlink(sock_path)


def test_a_regular_file_at_the_socket_path_is_not_deleted(sock_path: str) -> None:
    Path(sock_path).write_text("precious")
    try:
        with pytest.raises(BindError, match="not a socket"):
            bind_unix(sock_path)
        assert Path(sock_path).read_text() == "precious"
    finally:
        os.unlink(sock_path)


def test_unix_socket_in_a_missing_directory_is_a_bind_error(tmp_path: Path) -> None:
    with pytest.raises(BindError, match="Cannot open an HTTP server"):
        bind_unix(str(tmp_path / "missing" / "s.sock"))


def test_tcp_port_in_use_is_a_bind_error() -> None:
    first = bind_tcp("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        with pytest.raises(BindError) as info:
            bind_tcp("127.0.0.1", port)
        assert str(info.value) == IN_USE_MESSAGE
    finally:
        first.close()


def test_tcp_bind_to_all_interfaces_and_unresolvable_host() -> None:
    sock = bind_tcp("*", 0)
    try:
        assert sock.getsockname()[0] == "0.0.0.0"
    finally:
        sock.close()
    with pytest.raises(BindError):
        bind_tcp("no-such-host.invalid", 0)


def test_file_identity_tells_a_replaced_file_apart(tmp_path: Path) -> None:
    path = tmp_path / "f"
    assert file_identity(str(path)) is None
    path.write_text("one")
    first = file_identity(str(path))
    assert first is not None and file_identity(str(path)) == first
    keep = tmp_path / "keep"
    path.rename(keep)  # keep the inode alive so it cannot be reused at once
    path.write_text("two")
    assert file_identity(str(path)) not in (None, first)
