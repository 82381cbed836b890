"""Loopback helpers for tests."""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def unix_socket_path(tmp_path: Path) -> Iterator[str]:
    """``tmp_path/s.sock``, or one in a short private /tmp directory if that is too long.

    sun_path is short (108 bytes); the private directory is removed afterwards.
    """
    path = tmp_path / "s.sock"
    if len(os.fsencode(path)) <= 100:
        yield str(path)
        return
    short = Path(tempfile.mkdtemp(prefix="vh", dir="/tmp"))
    try:
        yield str(short / "s.sock")
    finally:
        with contextlib.suppress(OSError):
            os.unlink(short / "s.sock")
        short.rmdir()


@contextlib.contextmanager
def short_dir(prefix: str = "vs") -> Iterator[Path]:
    """A private directory in /tmp, short enough for unix socket paths; removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def basic_authorization(user: str, password: str) -> str:
    """The ``Authorization`` header value for HTTP Basic credentials."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
