"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support.net import short_dir
from tests.support.supervisor import CORES, Supervisor, core_command, start_supervisor

# Property tests and fuzzers explore the same examples on every run (a red CI is a finding
# that reproduces); VIGIL_RELIABILITY=full explores new random ones each time.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("explore" if os.environ.get("VIGIL_RELIABILITY") == "full" else "repeatable")

SupervisorFactory = Callable[..., Supervisor]


@pytest.fixture
def supervisor_factory(tmp_path: Path) -> Iterator[SupervisorFactory]:
    """``factory(body, **kw) -> Supervisor``: start real cores; all are stopped at teardown.

    The first core lives in ``tmp_path`` itself (so ``%(here)s`` in ``body`` is ``tmp_path``),
    later ones in ``tmp_path/sv2``, ``tmp_path/sv3``…; ``tmp=`` overrides the directory.
    Other keywords go to :func:`tests.support.supervisor.start_supervisor`.
    """
    started: list[Supervisor] = []

    def factory(
        body: str,
        *,
        tmp: Path | None = None,
        command: Sequence[str] | None = None,
        loglevel: str = "debug",
        timeout: float = 10.0,
        env: dict[str, str] | None = None,
    ) -> Supervisor:
        if tmp is None:
            tmp = tmp_path if not started else tmp_path / f"sv{len(started) + 1}"
        sv = start_supervisor(
            tmp, body, command=command, loglevel=loglevel, timeout=timeout, env=env
        )
        started.append(sv)
        return sv

    try:
        yield factory
    finally:
        errors: list[BaseException] = []
        for sv in reversed(started):
            try:
                sv.stop()
            except BaseException as e:  # keep stopping the others
                errors.append(e)
        if errors:
            raise errors[0]


@pytest.fixture(params=CORES)
def core(request: pytest.FixtureRequest) -> str:
    """The supervisor under test: real supervisord 4.3, then vigild — same assertions."""
    return str(request.param)


@pytest.fixture
def any_core(supervisor_factory: SupervisorFactory, core: str) -> SupervisorFactory:
    """Like ``supervisor_factory``, parametrized over supervisord and vigild."""

    def start(body: str, **kw: object) -> Supervisor:
        return supervisor_factory(body, command=core_command(Path("{conf}"), core), **kw)

    return start


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short private directory for unix sockets (sun_path is 108 bytes); removed after."""
    with short_dir() as path:
        yield path
