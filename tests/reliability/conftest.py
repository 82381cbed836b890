"""Scale for the reliability suite.

CI runs the bounded form. ``VIGIL_RELIABILITY=full`` runs every scenario at the size the
issue names (10,000 cycles, 100 kills, ...); see RELIABILITY.md for the one command.
"""

from __future__ import annotations

import os

import pytest

FULL = os.environ.get("VIGIL_RELIABILITY", "").lower() == "full"


def scaled(bounded: int, full: int) -> int:
    """``full`` when ``VIGIL_RELIABILITY=full``, else ``bounded``."""
    return full if FULL else bounded


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/reliability carries the ``reliability`` marker."""
    for item in items:
        if "tests/reliability/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.reliability)
