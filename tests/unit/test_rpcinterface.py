"""The XML-RPC API against a real Supervisor: real config file, real ``sleep`` children, real Loop.

Each test builds a :class:`Harness` from a temporary supervisord.conf; the test steps the
loop itself (``run_until``), so waits such as ``startProcess(wait=True)`` are observed
completing without anything blocking. Calls go through :class:`manager.rpcserver.Dispatcher`
(argument checking included); a few go over a real unix socket with supervisor's own
client transport, and one starts ``python -m manager.vigild`` and drives it with
``supervisorctl``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import email.utils
import itertools
import os
import signal
import stat
import subprocess
import threading
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from manager import rpcinterface, rpcserver
from manager.config import load_config
from manager.faults import Fault
from manager.loop import Loop
from manager.mainlog import close_logger, make_logger
from manager.rpcinterface import (
    Deferred,
    RPCError,
    SupervisorNamespace,
    gettags,
    split_namespec,
)
from manager.rpcserver import (
    BadRequest,
    Dispatcher,
    Servers,
    loads_request,
    marshal_fault,
    marshal_value,
)
from manager.states import ProcessState, SupervisorState
from manager.supervisor import Supervisor
from manager.xmlrpcwire import Marshalled
from tests.conftest import SupervisorFactory
from tests.support.net import short_dir
from tests.support.supervisor import PYTHON, UnixStreamHTTPConnection

_names = itertools.count()

HEADER = """\
[supervisord]
logfile = {tmp}/main.log
pidfile = {tmp}/vigild.pid
childlogdir = {tmp}
identifier = rpctest
"""

PROGRAMS = """
[program:sleeper]
command = sleep 1000
startsecs = 0.2

[program:echoer]
command = sh -c "echo hello; echo oops >&2; exec cat"
startsecs = 0.1

[program:a]
command = sleep 1000
startsecs = 0.1
autostart = false

[program:b]
command = sleep 1000
startsecs = 0.1
autostart = false

[group:grp]
programs = a,b

[program:quick]
command = sh -c "exit 3"
startsecs = 1
startretries = 0
autostart = false

[program:missing]
command = /nonexistent/prog
autostart = false

[program:notexec]
command = {tmp}/notexec
autostart = false
"""


@dataclass
class Harness:
    sup: Supervisor
    loop: Loop
    dispatcher: Dispatcher
    namespace: SupervisorNamespace
    conf: Path
    tmp: Path

    def run_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {condition}")
            self.loop.run_once(0.02)

    def call(self, method: str, *params: object) -> Any:
        """Call and, if the answer is deferred, step the loop until it is settled."""
        value = self.dispatcher.call(method, list(params))
        if isinstance(value, Deferred):
            self.run_until(lambda: value.done)
            return value.result()
        return value

    def fault(self, method: str, *params: object) -> RPCError:
        with pytest.raises(RPCError) as info:
            self.call(method, *params)
        return info.value

    def state(self, name: str) -> str:
        return str(self.call("supervisor.getProcessInfo", name)["statename"])

    def wait_state(self, name: str, statename: str) -> None:
        self.run_until(lambda: self.state(name) == statename)


@pytest.fixture
def short_tmp(tmp_path: Path) -> Iterator[Path]:
    """A directory short enough for a unix socket path."""
    if len(os.fsencode(tmp_path / "s.sock")) <= 100:
        yield tmp_path
        return
    with short_dir("vr") as short:
        yield short


@pytest.fixture
def make(short_tmp: Path) -> Iterator[Callable[..., Harness]]:
    built: list[tuple[Harness, Any]] = []

    def factory(body: str = PROGRAMS, header: str = HEADER) -> Harness:
        tmp = short_tmp
        notexec = tmp / "notexec"
        notexec.write_text("#!/bin/sh\n")
        notexec.chmod(0o644)
        conf = tmp / "s.conf"
        conf.write_text((header + body).format(tmp=tmp))
        config = load_config(conf)
        log = make_logger(
            config.supervisord.logfile,
            level="debug",
            maxbytes=0,
            backups=0,
            stdout=False,
            name=f"test.rpc.{next(_names)}",
        )
        loop = Loop()
        sup = Supervisor(config, log=log, loop=loop, config_loader=lambda: load_config(conf))
        loop.install_signals([signal.SIGCHLD], sup.handle_signal)
        namespace = SupervisorNamespace(sup)
        h = Harness(sup, loop, Dispatcher({"supervisor": namespace}), namespace, conf, tmp)
        built.append((h, log))
        sup.start()
        return h

    yield factory
    for h, log in built:
        if h.sup.state is SupervisorState.RUNNING:
            h.sup.request_stop(SupervisorState.SHUTDOWN)
        h.sup.run()
        h.loop.close()
        close_logger(log)


# --- supervisor status -----------------------------------------------------------------------


def test_versions_identification_state_and_pid(make: Callable[..., Harness]) -> None:
    h = make()
    assert h.call("supervisor.getAPIVersion") == "3.0"
    assert h.call("supervisor.getVersion") == "3.0"
    assert h.call("supervisor.getSupervisorVersion") == "4.3.0"
    assert h.call("supervisor.getIdentification") == "rpctest"
    assert h.call("supervisor.getState") == {"statecode": 1, "statename": "RUNNING"}
    assert h.call("supervisor.getPID") == os.getpid()


def test_shutdown_state_fault_after_shutdown_except_remote_comm(
    make: Callable[..., Harness],
) -> None:
    h = make()
    assert h.call("supervisor.shutdown") is True
    assert h.fault("supervisor.getState").code is Fault.SHUTDOWN_STATE
    assert h.fault("supervisor.getState").text == "SHUTDOWN_STATE"
    assert h.call("supervisor.sendRemoteCommEvent", "t", "data") is True
    h.run_until(lambda: h.sup.done)


def test_restart_sets_restarting(make: Callable[..., Harness]) -> None:
    h = make()
    assert h.call("supervisor.restart") is True
    assert h.sup.state is SupervisorState.RESTARTING
    h.run_until(lambda: h.sup.done)


# --- process info ----------------------------------------------------------------------------

INFO_KEYS = {
    "name",
    "group",
    "start",
    "stop",
    "now",
    "state",
    "statename",
    "spawnerr",
    "exitstatus",
    "logfile",
    "stdout_logfile",
    "stderr_logfile",
    "pid",
    "description",
}


def test_get_all_process_info_sorted_by_group_then_name(make: Callable[..., Harness]) -> None:
    h = make()
    h.wait_state("sleeper", "RUNNING")
    infos = h.call("supervisor.getAllProcessInfo")
    assert [(i["group"], i["name"]) for i in infos] == [
        ("echoer", "echoer"),
        ("grp", "a"),
        ("grp", "b"),
        ("missing", "missing"),
        ("notexec", "notexec"),
        ("quick", "quick"),
        ("sleeper", "sleeper"),
    ]
    assert all(set(i) == INFO_KEYS for i in infos)
    by_name = {i["name"]: i for i in infos}
    sleeper = by_name["sleeper"]
    assert sleeper["statename"] == "RUNNING" and sleeper["state"] == 20
    assert sleeper["pid"] > 0
    assert sleeper["description"].startswith(f"pid {sleeper['pid']}, uptime 0:00:0")
    assert sleeper["stdout_logfile"] == sleeper["logfile"] != ""
    assert "sleeper-stdout---rpctest-" in sleeper["stdout_logfile"]
    a = by_name["a"]
    assert (a["statename"], a["description"], a["start"], a["pid"]) == (
        "STOPPED",
        "Not started",
        0,
        0,
    )


def _unmarshal(value: object) -> Any:
    return xmlrpc.client.loads(marshal_value(value))[0][0]


def test_wire_forms_unmarshal_to_the_plain_values_in_every_state(
    make: Callable[..., Harness],
) -> None:
    """HTTP clients get getAllProcessInfo/getProcessInfo rendered by a template; the same
    structs, member order included, as the dicts, for running, stopped, exited, fatal
    (with characters to escape in spawnerr) and never-started processes."""
    h = make(
        PROGRAMS
        + """
[program:escaped]
command = /nonexistent/<&>
startretries = 0
"""
    )
    h.wait_state("sleeper", "RUNNING")
    for name in ("grp:a", "quick"):
        with contextlib.suppress(RPCError):
            h.call("supervisor.startProcess", name)
    h.call("supervisor.stopProcess", "grp:a")
    h.run_until(lambda: h.state("quick") == "FATAL" and h.state("escaped") == "FATAL")
    h.wait_state("echoer", "RUNNING")

    def both(method: str, *params: object) -> tuple[Any, Any]:
        while True:  # retry if the wall clock's second turned between the two calls
            wire = h.dispatcher.call(method, list(params), wire=True)
            plain = h.dispatcher.call(method, list(params))
            again = h.dispatcher.call(method, list(params), wire=True)
            if wire == again:
                return _unmarshal(wire), _unmarshal(plain)

    assert isinstance(h.dispatcher.call("supervisor.getAllProcessInfo", [], wire=True), Marshalled)
    wire, plain = both("supervisor.getAllProcessInfo")
    assert wire == plain
    assert [list(w) for w in wire] == [list(p) for p in plain]  # member order
    states = {i["name"]: (i["statename"], i["description"]) for i in wire}
    assert states["a"][0] == "STOPPED" and states["b"] == ("STOPPED", "Not started")
    assert states["quick"] == ("FATAL", "Exited too quickly (process log may have details)")
    assert states["escaped"][0] == "FATAL" and "<&>" in states["escaped"][1]
    assert states["sleeper"][1].startswith("pid ")
    for name in ("sleeper", "grp:a", "escaped"):
        wire, plain = both("supervisor.getProcessInfo", name)
        assert wire == plain and list(wire) == list(plain)
    # the cached static members follow removals
    h.call("supervisor.stopProcessGroup", "grp")
    h.call("supervisor.removeProcessGroup", "grp")
    wire, plain = both("supervisor.getAllProcessInfo")
    assert wire == plain and "a" not in {i["name"] for i in wire}
    assert all(p.group != "grp" for p in h.namespace._statics)


def test_process_names_and_bad_names(make: Callable[..., Harness]) -> None:
    h = make()
    assert h.call("supervisor.getProcessInfo", "grp:a")["name"] == "a"
    assert h.fault("supervisor.getProcessInfo", "a").text == "BAD_NAME: a"
    assert h.fault("supervisor.getProcessInfo", "grp:*").code is Fault.BAD_NAME
    assert h.fault("supervisor.getProcessInfo", "grp:").code is Fault.BAD_NAME
    assert h.fault("supervisor.getProcessInfo", "nosuch").text == "BAD_NAME: nosuch"
    assert split_namespec("x") == ("x", "x")
    assert split_namespec("g:*") == ("g", None)


# --- starting and stopping -------------------------------------------------------------------


def test_start_with_wait_answers_when_running_without_blocking(
    make: Callable[..., Harness],
) -> None:
    h = make()
    value = h.dispatcher.call("supervisor.startProcess", ["grp:a"])
    assert isinstance(value, Deferred) and not value.done
    # other calls are served while the start is pending
    assert h.call("supervisor.getProcessInfo", "grp:a")["statename"] == "STARTING"
    started = time.monotonic()
    h.run_until(lambda: value.done)
    assert value.result() is True
    assert time.monotonic() - started < 1.0
    assert h.state("grp:a") == "RUNNING"
    assert h.sup.watchers == []


def test_a_stop_at_once_after_a_start_is_a_sigterm_stop(make: Callable[..., Harness]) -> None:
    """supervisord calls a ``startsecs = 0`` process RUNNING when it forks; a SIGTERM
    before the exec hits supervisord's handler in the fork and is lost, so the stop
    waits for the SIGKILL (bench/rpc.py: 8 of 10 such stops). vigild knows the pid
    only after the exec, so every stop is a SIGTERM stop."""
    h = make(
        """
[program:zero]
command = sleep 1000
startsecs = 0
stopwaitsecs = 30
autostart = false
"""
    )
    for _ in range(10):
        assert h.call("supervisor.startProcess", "zero") is True
        started = time.monotonic()
        assert h.call("supervisor.stopProcess", "zero") is True
        assert time.monotonic() - started < 5.0  # the SIGKILL would take 30 s
    log = (h.tmp / "main.log").read_text()
    assert log.count("stopped: zero (terminated by SIGTERM)") == 10
    assert "SIGKILL" not in log


def test_start_without_wait_returns_at_once(make: Callable[..., Harness]) -> None:
    h = make()
    assert h.call("supervisor.startProcess", "grp:b", False) is True
    assert h.state("grp:b") == "STARTING"
    h.wait_state("grp:b", "RUNNING")


def test_start_faults(make: Callable[..., Harness]) -> None:
    h = make()
    h.wait_state("sleeper", "RUNNING")
    assert h.fault("supervisor.startProcess", "sleeper").text == "ALREADY_STARTED: sleeper"
    assert h.fault("supervisor.startProcess", "nosuch").code is Fault.BAD_NAME
    missing = h.fault("supervisor.startProcess", "missing")
    assert missing.code is Fault.NO_FILE
    assert missing.text == "NO_FILE: can't find command '/nonexistent/prog'"
    notexec = h.fault("supervisor.startProcess", "notexec")
    assert notexec.code is Fault.NOT_EXECUTABLE
    assert "is not executable" in notexec.text
    assert h.state("missing") == "STOPPED"  # nothing was spawned


def test_start_of_a_process_that_exits_too_quickly_is_spawn_error(
    make: Callable[..., Harness],
) -> None:
    h = make()
    err = h.fault("supervisor.startProcess", "quick")
    assert err.code is Fault.SPAWN_ERROR and err.text == "SPAWN_ERROR: quick"
    info = h.call("supervisor.getProcessInfo", "quick")
    assert info["statename"] in ("BACKOFF", "FATAL")
    assert info["description"] == "Exited too quickly (process log may have details)"
    assert h.sup.watchers == []


def test_stop_with_wait_answers_when_stopped(make: Callable[..., Harness]) -> None:
    h = make()
    h.wait_state("sleeper", "RUNNING")
    value = h.dispatcher.call("supervisor.stopProcess", ["sleeper"])
    assert isinstance(value, Deferred)
    h.run_until(lambda: value.done)
    assert value.result() is True
    info = h.call("supervisor.getProcessInfo", "sleeper")
    assert info["statename"] == "STOPPED" and info["pid"] == 0
    assert info["description"] != "Not started"  # the stop time
    assert h.fault("supervisor.stopProcess", "sleeper").text == "NOT_RUNNING: sleeper"


def test_group_start_and_stop_give_result_structs(make: Callable[..., Harness]) -> None:
    h = make()
    results = h.call("supervisor.startProcessGroup", "grp")
    assert [(r["name"], r["group"], r["status"], r["description"]) for r in results] == [
        ("a", "grp", 80, "OK"),
        ("b", "grp", 80, "OK"),
    ]
    assert h.state("grp:a") == h.state("grp:b") == "RUNNING"
    assert h.call("supervisor.startProcessGroup", "grp") == []  # only not-running ones
    results = h.call("supervisor.stopProcess", "grp:*")
    assert [r["name"] for r in results] == ["a", "b"]  # process order, whoever stops first
    assert h.state("grp:a") == "STOPPED"
    assert h.fault("supervisor.startProcessGroup", "nosuch").code is Fault.BAD_NAME


def test_start_all_reports_failures_per_process(make: Callable[..., Harness]) -> None:
    h = make()
    results = h.call("supervisor.startAllProcesses", False)
    by_name = {r["name"]: (r["status"], r["description"]) for r in results}
    assert by_name["a"] == (80, "OK")
    assert by_name["missing"] == (20, "NO_FILE: can't find command '/nonexistent/prog'")
    assert by_name["notexec"][0] == 21
    assert "sleeper" not in by_name or by_name["sleeper"][0] == 60
    results = h.call("supervisor.stopAllProcesses")
    assert all(r["status"] == 80 for r in results)
    assert all(
        i["statename"] in ("STOPPED", "EXITED", "FATAL", "BACKOFF")
        for i in h.call("supervisor.getAllProcessInfo")
    )


def test_signals(make: Callable[..., Harness]) -> None:
    h = make()
    h.wait_state("sleeper", "RUNNING")
    assert h.fault("supervisor.signalProcess", "sleeper", "NOPE").text == "BAD_SIGNAL: NOPE"
    assert h.fault("supervisor.signalProcess", "grp:a", "HUP").text == "NOT_RUNNING: grp:a"
    pid = h.call("supervisor.getProcessInfo", "sleeper")["pid"]
    assert h.call("supervisor.signalProcess", "sleeper", "USR1") is True  # kills sleep
    # killed by a signal = unexpected, so autorestart respawns it (and clears exitstatus)
    h.run_until(lambda: h.call("supervisor.getProcessInfo", "sleeper")["pid"] not in (0, pid))
    h.wait_state("sleeper", "RUNNING")
    h.call("supervisor.startProcessGroup", "grp")
    results = h.call("supervisor.signalProcessGroup", "grp", "STOP")
    assert [(r["name"], r["status"]) for r in results] == [("a", 80), ("b", 80)]
    results = h.call("supervisor.signalAllProcesses", "CONT")
    assert {r["name"] for r in results} >= {"a", "b", "sleeper"}


# --- logs ------------------------------------------------------------------------------------


def test_read_tail_and_clear_process_logs(make: Callable[..., Harness]) -> None:
    h = make()
    h.wait_state("echoer", "RUNNING")
    h.run_until(lambda: h.call("supervisor.readProcessStdoutLog", "echoer", 0, 0) == "hello\n")
    assert h.call("supervisor.readProcessLog", "echoer", 0, 3) == "hel"
    assert h.call("supervisor.readProcessStdoutLog", "echoer", -3, 0) == "lo\n"
    h.run_until(lambda: h.call("supervisor.readProcessStderrLog", "echoer", 0, 0) == "oops\n")
    assert h.call("supervisor.tailProcessStdoutLog", "echoer", 0, 100) == ["hello\n", 6, False]
    assert h.call("supervisor.tailProcessLog", "echoer", 0, 2) == ["o\n", 6, True]
    assert h.fault("supervisor.readProcessStdoutLog", "echoer", -1, 5).text == "BAD_ARGUMENTS"
    assert h.fault("supervisor.readProcessStdoutLog", "nosuch", 0, 0).code is Fault.BAD_NAME
    assert h.call("supervisor.clearProcessLogs", "echoer") is True
    assert h.call("supervisor.readProcessStdoutLog", "echoer", 0, 0) == ""
    assert h.call("supervisor.clearProcessLog", "echoer") is True
    results = h.call("supervisor.clearAllProcessLogs")
    assert len(results) == 7 and all(r["status"] == 80 for r in results)


def test_send_process_stdin(make: Callable[..., Harness]) -> None:
    h = make()
    h.wait_state("echoer", "RUNNING")
    assert h.call("supervisor.sendProcessStdin", "echoer", "ping é\n") is True
    h.run_until(
        lambda: h.call("supervisor.readProcessStdoutLog", "echoer", 0, 0) == "hello\nping é\n"
    )
    assert h.fault("supervisor.sendProcessStdin", "grp:a", "x").text == "NOT_RUNNING: grp:a"
    assert h.fault("supervisor.sendProcessStdin", "echoer", 5).code is Fault.INCORRECT_PARAMETERS


def test_main_log_read_and_clear(make: Callable[..., Harness]) -> None:
    h = make()
    h.sup.log.info("a line for readLog")
    text = h.call("supervisor.readLog", 0, 0)
    assert "a line for readLog" in text
    assert h.call("supervisor.readMainLog", -10, 0) == text[-10:]
    assert h.fault("supervisor.readLog", 0, -1).text == "BAD_ARGUMENTS"
    assert h.call("supervisor.clearLog") is True
    # as supervisord, "reopening log file" goes to the old file, just before the reopen
    assert h.call("supervisor.readLog", 0, 0) == ""
    h.sup.log.info("after the clear")
    assert h.call("supervisor.readLog", 0, 0).endswith("after the clear\n")


# --- configuration ---------------------------------------------------------------------------


def test_reload_config_add_and_remove_groups(make: Callable[..., Harness]) -> None:
    h = make()
    h.conf.write_text(
        h.conf.read_text()
        .replace(
            "[program:quick]",
            "[program:new]\ncommand = sleep 1000\nstartsecs = 0\n\n[program:quick]",
        )
        .replace("startretries = 0", "startretries = 1")
    )
    assert h.call("supervisor.reloadConfig") == [[["new"], ["quick"], []]]
    assert h.fault("supervisor.addProcessGroup", "nosuch").text == "BAD_NAME: nosuch"
    assert h.call("supervisor.addProcessGroup", "new") is True
    assert h.fault("supervisor.addProcessGroup", "new").text == "ALREADY_ADDED: new"
    h.wait_state("new", "RUNNING")  # autostart applies
    assert h.fault("supervisor.removeProcessGroup", "new").text == "STILL_RUNNING: new"
    h.call("supervisor.stopProcess", "new")
    assert h.call("supervisor.removeProcessGroup", "new") is True
    assert h.fault("supervisor.removeProcessGroup", "new").code is Fault.BAD_NAME
    assert h.fault("supervisor.getProcessInfo", "new").code is Fault.BAD_NAME
    assert h.call("supervisor.reloadConfig") == [[["new"], ["quick"], []]]

    h.conf.write_text("[supervisord]\nnot a valid line\n")
    assert h.fault("supervisor.reloadConfig").code is Fault.CANT_REREAD


def test_get_all_config_info(make: Callable[..., Harness]) -> None:
    h = make()
    infos = h.call("supervisor.getAllConfigInfo")
    assert [i["name"] for i in infos] == sorted(i["name"] for i in infos)
    sleeper = next(i for i in infos if i["name"] == "sleeper")
    assert sleeper["inuse"] is True and sleeper["autostart"] is True
    assert sleeper["command"] == "sleep 1000"
    assert sleeper["group"] == "sleeper" and sleeper["group_prio"] == 999
    assert sleeper["stopsignal"] == signal.SIGTERM and sleeper["exitcodes"] == [0]
    assert sleeper["startsecs"] == 0.2 and sleeper["stopwaitsecs"] == 10
    assert sleeper["directory"] == "none" and sleeper["uid"] == "none"
    assert sleeper["serverurl"] == "auto"
    assert "sleeper-stdout---rpctest-" in sleeper["stdout_logfile"]
    assert {"stdout_capture_maxbytes", "stderr_syslog", "redirect_stderr"} <= set(sleeper)
    assert "autorestart" not in sleeper  # as 4.3.0


# --- dispatch and system.* -------------------------------------------------------------------


def test_unknown_methods_and_bad_parameters(make: Callable[..., Harness]) -> None:
    h = make()
    for name in ("supervisor._require_running", "supervisor", "a.b.c", "nope.x", "supervisor.x"):
        assert h.fault(name).text == "UNKNOWN_METHOD", name
    assert h.fault("supervisor.getState", 1).code is Fault.INCORRECT_PARAMETERS
    assert h.fault("supervisor.startProcess").code is Fault.INCORRECT_PARAMETERS
    assert h.fault("supervisor.readLog", "0", 0).code is Fault.INCORRECT_PARAMETERS
    assert h.fault("supervisor.getProcessInfo", ["x"]).code is Fault.INCORRECT_PARAMETERS
    # 0/1 for a boolean is accepted, as supervisord only looks at its truth
    assert h.call("supervisor.startProcess", "grp:a", 0) is True


def test_system_introspection(make: Callable[..., Harness]) -> None:
    h = make()
    methods = h.call("system.listMethods")
    assert methods == sorted(methods)
    for name in (
        "supervisor.getVersion",
        "supervisor.readMainLog",
        "supervisor.tailProcessLog",
        "supervisor.clearProcessLog",
        "system.multicall",
        "system.methodHelp",
    ):
        assert name in methods
    assert not any(m.split(".")[1].startswith("_") for m in methods)
    assert h.call("system.methodSignature", "supervisor.startProcess") == [
        "boolean",
        "string",
        "boolean",
    ]
    assert h.call("system.methodSignature", "supervisor.readLog") == ["string", "int", "int"]
    assert h.call("system.methodSignature", "supervisor.getState") == ["struct"]
    assert "@param string name" in h.call("system.methodHelp", "supervisor.startProcess")
    assert h.fault("system.methodHelp", "nope.x").code is Fault.SIGNATURE_UNSUPPORTED
    assert h.fault("system.methodSignature", "nope.x").code is Fault.SIGNATURE_UNSUPPORTED
    assert gettags("x\n@return int y")[1][1:4] == ("return", "int", "y")


def test_multicall_returns_bare_values_and_fault_structs(make: Callable[..., Harness]) -> None:
    h = make()
    results = h.call(
        "system.multicall",
        [
            {"methodName": "supervisor.getAPIVersion", "params": []},
            {"methodName": "supervisor.getProcessInfo", "params": ["nosuch"]},
            {"methodName": "supervisor.startProcess", "params": ["grp:a"]},
            {"methodName": "supervisor.getProcessInfo", "params": ["grp:a"]},
            {"methodName": "system.multicall", "params": [[]]},
            {"params": []},
            {"methodName": "supervisor.getState"},
        ],
    )
    assert results[0] == "3.0"
    assert results[1] == {"faultCode": 10, "faultString": "BAD_NAME: nosuch"}
    assert results[2] is True
    assert results[3]["statename"] == "RUNNING"  # the waited start completed first
    assert results[4] == {
        "faultCode": 2,
        "faultString": "INCORRECT_PARAMETERS: Recursive system.multicall forbidden",
    }
    assert results[5] == {"faultCode": 2, "faultString": "INCORRECT_PARAMETERS: No methodName"}
    assert results[6] == {"statecode": 1, "statename": "RUNNING"}


# --- marshalling -----------------------------------------------------------------------------


def test_marshal_clamps_ints_and_replaces_characters_xml_cannot_carry() -> None:
    (value,), _ = xmlrpc.client.loads(
        marshal_value({"big": 2**40, "small": -(2**40), "log": "a\x1b[31mred\x00", "ok": True})
    )
    assert value == {
        "big": 2**31 - 1,
        "small": -(2**31),
        "log": "a\ufffd[31mred\ufffd",
        "ok": True,
    }
    with pytest.raises(xmlrpc.client.Fault) as info:
        xmlrpc.client.loads(marshal_fault(Fault.BAD_NAME, "BAD_NAME: x"))
    assert (info.value.faultCode, info.value.faultString) == (10, "BAD_NAME: x")
    with pytest.raises(TypeError):
        marshal_value(None)
    (enums,), _ = xmlrpc.client.loads(marshal_value([Fault.BAD_NAME, SupervisorState.RUNNING]))
    assert enums == [10, 1]


@pytest.mark.parametrize("text", ["BAD_NAME: x", "FAILED: <a & b> \x1b", "", "é\u2603"])
def test_marshal_fault_writes_what_xmlrpc_client_writes(text: str) -> None:
    want = xmlrpc.client.dumps(
        xmlrpc.client.Fault(10, text.replace("\x1b", "\ufffd")), methodresponse=True
    )
    assert marshal_fault(Fault.BAD_NAME, text) == want.encode("utf-8")


def test_odd_values_marshal_as_xmlrpc_client_reads_them_or_are_refused() -> None:
    class Text(str):
        pass

    value = [Text("t"), {"k": [1.5, (2, 3)]}, 0.1, -0.0]
    (back,), _ = xmlrpc.client.loads(marshal_value(value))
    assert back == ["t", {"k": [1.5, [2, 3]]}, 0.1, -0.0]
    for bad in (None, b"bytes", object(), [None]):
        with pytest.raises(TypeError):
            marshal_value(bad)


@pytest.mark.parametrize("t", [0, 1_700_000_000.5, 951_782_400, 4_102_444_799])
def test_logtail_dates_are_email_utils_dates(t: float) -> None:
    assert rpcserver._http_date(t) == email.utils.formatdate(t, usegmt=True)


def test_loads_request_accepts_calls_and_refuses_dtds() -> None:
    body = xmlrpc.client.dumps(("a", 1, True), "supervisor.x").encode()
    assert loads_request(body) == (("a", 1, True), "supervisor.x")
    no_params = b"<?xml version='1.0'?><methodCall><methodName>m.x</methodName></methodCall>"
    assert loads_request(no_params) == ((), "m.x")
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        b"<methodCall><methodName>&lol2;</methodName></methodCall>"
    )
    with pytest.raises(BadRequest):
        loads_request(laughs)
    # the same in UTF-16, where the raw bytes do not match a pattern: the parser refuses
    with pytest.raises(BadRequest):
        loads_request(
            laughs.decode().replace('1.0"?>', '1.0" encoding="utf-16"?>').encode("utf-16")
        )
    for garbage in (b"", b"<methodCall>", b"not xml", b"<a><b></a>"):
        with pytest.raises(BadRequest):
            loads_request(garbage)


# --- over the wire ---------------------------------------------------------------------------


def in_thread(h: Harness, fn: Callable[[], Any], timeout: float = 10) -> Any:
    """Run a blocking client call in a thread while this thread steps the loop."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    h.run_until(lambda: not t.is_alive(), timeout)
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


SERVER = "\n[unix_http_server]\nfile = {tmp}/s.sock\nusername = u\npassword = p\n"

STUBBORN = """
[program:stubborn]
command = sh -c "trap '' TERM; exec sleep 1000"
startsecs = 0.1
stopwaitsecs = 1
"""


@pytest.fixture
def serve(make: Callable[..., Harness]) -> Iterator[Callable[..., tuple[Harness, Servers, str]]]:
    opened: list[Servers] = []

    def factory(body: str = PROGRAMS) -> tuple[Harness, Servers, str]:
        h = make(body, HEADER + SERVER)
        servers = Servers(h.loop)
        opened.append(servers)
        servers.bind(h.sup.config)
        servers.attach(h.sup)
        return h, servers, f"unix://{h.tmp}/s.sock"

    yield factory
    for servers in opened:
        servers.close()


@pytest.fixture
def served(serve: Callable[..., tuple[Harness, Servers, str]]) -> tuple[Harness, Servers, str]:
    return serve()


def proxy(url: str, user: str | None = "u", password: str | None = "p") -> Any:
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(user, password, url)
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport), transport


def test_supervisor_client_over_the_unix_socket_with_keep_alive(
    served: tuple[Harness, Servers, str],
) -> None:
    h, servers, url = served
    sock = url.removeprefix("unix://")
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o700
    server, transport = proxy(url)
    try:
        assert in_thread(h, server.supervisor.getState) == {"statecode": 1, "statename": "RUNNING"}
        assert in_thread(h, lambda: server.supervisor.startProcess("grp:a")) is True
        assert in_thread(h, lambda: server.supervisor.getProcessInfo("grp:a"))["statename"] == (
            "RUNNING"
        )
        with pytest.raises(xmlrpc.client.Fault) as info:
            in_thread(h, lambda: server.supervisor.getProcessInfo("nosuch"))
        assert info.value.faultCode == 10 and info.value.faultString == "BAD_NAME: nosuch"
        assert sum(len(s.connections) for s in servers.servers.values()) == 1  # one connection
    finally:
        transport.close()


def test_wrong_credentials_get_401(served: tuple[Harness, Servers, str]) -> None:
    h, _servers, url = served

    def call() -> tuple[int, str | None]:
        # supervisor's own transport leaves the unread 401 response (and its socket) open,
        # so this uses a plain connection that is closed properly
        conn = UnixStreamHTTPConnection(url.removeprefix("unix://"))
        try:
            body = xmlrpc.client.dumps((), "supervisor.getState")
            auth = "Basic " + base64.b64encode(b"u:wrong").decode()
            conn.request("POST", "/RPC2", body, {"Authorization": auth})
            response = conn.getresponse()
            response.read()
            return response.status, response.getheader("WWW-Authenticate")
        finally:
            conn.close()

    assert in_thread(h, call) == (401, 'Basic realm="default"')


def test_pending_wait_is_answered_when_the_supervisor_goes_away(
    serve: Callable[..., tuple[Harness, Servers, str]],
) -> None:
    h, servers, url = serve(STUBBORN)
    server, transport = proxy(url)
    box: dict[str, Any] = {}

    def stop() -> None:
        try:
            box["value"] = server.supervisor.stopProcess("stubborn")
        except xmlrpc.client.Fault as exc:
            box["fault"] = (exc.faultCode, exc.faultString)

    try:
        h.wait_state("stubborn", "RUNNING")
        t = threading.Thread(target=stop)
        t.start()
        h.run_until(lambda: h.sup.watchers != [])  # the wait is registered: it ignores TERM
        servers.attach(h.sup)  # what a reload does: the old supervisor's waits fail
        h.run_until(lambda: not t.is_alive())
        t.join()
        assert box == {"fault": (Fault.SHUTDOWN_STATE, "SHUTDOWN_STATE")}
        assert h.sup.watchers == []
    finally:
        transport.close()


def test_a_client_that_goes_away_cancels_its_wait(
    serve: Callable[..., tuple[Harness, Servers, str]],
) -> None:
    import socket

    h, _servers, url = serve(STUBBORN)
    h.wait_state("stubborn", "RUNNING")
    body = xmlrpc.client.dumps(("stubborn",), "supervisor.stopProcess").encode()
    auth = base64.b64encode(b"u:p").decode()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with s:
        s.connect(url.removeprefix("unix://"))
        s.sendall(
            f"POST /RPC2 HTTP/1.1\r\nAuthorization: Basic {auth}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        h.run_until(lambda: h.sup.watchers != [])
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    h.run_until(lambda: h.sup.watchers == [])  # reset seen, watcher removed
    assert h.state("stubborn") == "STOPPING"


def test_http_errors_on_the_rpc_path(served: tuple[Harness, Servers, str]) -> None:
    import socket

    h, _servers, url = served
    auth = base64.b64encode(b"u:p").decode()

    def raw(data: bytes) -> bytes:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with s:
            s.settimeout(5)
            s.connect(url.removeprefix("unix://"))
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            out = b""
            while chunk := s.recv(65536):
                out += chunk
            return out

    def post(body: bytes, method: str = "POST") -> bytes:
        head = (
            f"{method} /RPC2 HTTP/1.1\r\nAuthorization: Basic {auth}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        return in_thread(h, lambda: raw(head + body))  # type: ignore[no-any-return]

    assert post(b"", "GET").startswith(b"HTTP/1.1 400")
    assert post(b"<?xml version='1.0'?><!DOCTYPE x []><methodCall/>").startswith(b"HTTP/1.1 400")
    assert post(b"<methodCall><params/></methodCall>").startswith(b"HTTP/1.1 400")
    ok = post(xmlrpc.client.dumps((), "supervisor.getPID").encode())
    assert ok.startswith(b"HTTP/1.1 200") and b"text/xml" in ok


def test_logtail_streams_a_process_log_and_follows_it(
    served: tuple[Harness, Servers, str],
) -> None:
    import socket

    h, servers, url = served
    h.wait_state("echoer", "RUNNING")
    h.run_until(lambda: h.call("supervisor.readProcessStdoutLog", "echoer", 0, 0) == "hello\n")
    auth = base64.b64encode(b"u:p").decode()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with s:
        s.settimeout(5)
        s.connect(url.removeprefix("unix://"))
        s.sendall(f"GET /logtail/echoer HTTP/1.1\r\nAuthorization: Basic {auth}\r\n\r\n".encode())
        s.setblocking(False)  # this thread runs the loop: never block it
        received = b""

        def got(text: bytes) -> Callable[[], bool]:
            def check() -> bool:
                nonlocal received
                with contextlib.suppress(BlockingIOError):
                    received += s.recv(65536)
                return text in received

            return check

        h.run_until(got(b"6\r\nhello\n\r\n"))
        assert received.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Transfer-Encoding: chunked" in received
        h.call("supervisor.sendProcessStdin", "echoer", "more\n")
        h.run_until(got(b"more\n"))
    h.run_until(lambda: sum(len(x.connections) for x in servers.servers.values()) == 0)

    def status(path: str) -> int:
        def get() -> int:
            conn = UnixStreamHTTPConnection(url.removeprefix("unix://"))
            try:
                conn.request("GET", path, headers={"Authorization": f"Basic {auth}"})
                response = conn.getresponse()
                response.close()
                return response.status
            finally:
                conn.close()

        return int(in_thread(h, get))

    assert status("/logtail/nosuch") == 404
    assert status("/logtail/echoer/nochannel") == 404
    assert status("/logtail/grp:a/stderr") == 200  # AUTO logs exist before the first start
    assert status("/mainlogtail") == 200
    h.run_until(lambda: sum(len(x.connections) for x in servers.servers.values()) == 0)


def test_rebind_keeps_unchanged_servers_and_replaces_the_others(
    served: tuple[Harness, Servers, str],
) -> None:
    h, servers, url = served
    before = dict(servers.servers)
    same = load_config(h.conf)
    servers.rebind(same)
    assert servers.servers == before  # same socket: same server (and connections)
    moved = h.conf.read_text().replace("s.sock", "t.sock").replace("password = p", "password = q")
    h.conf.write_text(moved)
    servers.rebind(load_config(h.conf))
    assert not os.path.exists(url.removeprefix("unix://"))
    assert servers.addresses == [f"{h.tmp}/t.sock"]
    (server,) = servers.servers.values()
    assert server.credentials is not None and server.credentials.check("u", "q")


# --- vigild end to end -----------------------------------------------------------------------


@pytest.mark.integration
def test_vigild_end_to_end_with_supervisorctl(supervisor_factory: SupervisorFactory) -> None:
    sv = supervisor_factory(
        "[program:sleeper]\ncommand = sleep 1000\nstartsecs = 0.2\n\n"
        "[program:idle]\ncommand = sleep 1000\nautostart = false\n",
        command=[PYTHON, "-m", "manager.vigild", "-n", "-c", "{conf}"],
    )
    sv.wait_state("sleeper", "RUNNING")
    ctl = [PYTHON, "-m", "supervisor.supervisorctl", "-c", str(sv.conf)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*ctl, *args], capture_output=True, text=True, timeout=20, check=False
        )

    status = run("status")
    assert status.returncode == 3  # idle is STOPPED
    assert "sleeper                          RUNNING   pid" in status.stdout
    assert "idle                             STOPPED   Not started" in status.stdout
    assert run("start", "idle").stdout.strip() == "idle: started"
    assert run("status").returncode == 0
    assert run("stop", "all").returncode == 0
    assert run("start", "nosuch").stdout.strip() == "nosuch: ERROR (no such process)"
    assert run("pid").stdout.strip() == str(sv.pid)
    assert run("shutdown").stdout.strip() == "Shut down"
    sv.proc.wait(10)
    assert sv.proc.returncode == 0
    assert not sv.sock.exists()
    with contextlib.suppress(Exception):
        sv.stop()


@pytest.mark.parametrize("up", [0, 59, 3600, 86399, 86400, 90061, 10 * 86400 + 5, -5])
def test_running_description_is_supervisords_uptime(up: int) -> None:
    start = 1_700_000_000
    a = datetime.datetime(*time.gmtime(start + up)[:6])
    b = datetime.datetime(*time.gmtime(start)[:6])
    want = f"pid 42, uptime {max(a - b, datetime.timedelta(0))}"  # supervisord's arithmetic
    got = rpcinterface._description(ProcessState.RUNNING, "x", start, 0, start + up, 42, "")
    assert got == want
