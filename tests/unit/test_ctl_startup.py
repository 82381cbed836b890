"""vigilctl starts lean: what it must not import, and the constants it keeps for that."""

from __future__ import annotations

import json
import subprocess
import sys

from manager import states
from manager.ctl import processes


def test_stopped_states_match_the_state_tables() -> None:
    assert {int(s) for s in states.STOPPED_STATES} == processes.STOPPED_STATES


def test_importing_vigilctl_leaves_out_tenacity_and_the_state_machine() -> None:
    code = "import sys, json, manager.vigilctl; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert "manager.vigilctl" in loaded
    heavy = {"tenacity", "manager.events", "manager.states", "manager.supervisor", "asyncio"}
    assert loaded & heavy == set()


def test_fg_keeps_the_running_state_code_of_the_state_tables() -> None:
    from manager.ctl import foreground

    assert foreground.RUNNING == states.ProcessState.RUNNING


def test_importing_vigilctl_leaves_out_what_only_fg_needs() -> None:
    code = "import sys, json, manager.vigilctl; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    fg_only = {"threading", "signal", "manager.ctl.foreground", "manager.ctl.stream"}
    assert loaded & fg_only == set()


def test_following_a_log_leaves_out_tenacity_and_the_state_machine() -> None:
    """``tail -f``/``maintail -f`` import the stream client; it stays as lean as vigilctl."""
    code = (
        "import sys, json, manager.vigilctl, manager.ctl.stream; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert "manager.ctl.stream" in loaded
    heavy = {"tenacity", "manager.events", "manager.states", "manager.supervisor", "asyncio"}
    assert loaded & heavy == set()
    assert "manager.ctl.foreground" not in loaded  # nor what only fg needs
