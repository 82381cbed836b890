"""supervisord's XML-RPC fault codes (reference §5.3).

The numbers are a wire contract: clients (supervisorctl, superlance, Vigil's own
listeners) compare ``faultCode`` against them, so they must never change. Fault
strings on the wire are ``NAME`` or ``NAME: detail`` where ``NAME`` is the member
name below. Nothing here does I/O.
"""

from __future__ import annotations

import enum

__all__ = ["Fault"]


class Fault(enum.IntEnum):
    """Every fault code supervisord 4.3 can answer; the value is ``faultCode``."""

    UNKNOWN_METHOD = 1
    INCORRECT_PARAMETERS = 2
    BAD_ARGUMENTS = 3
    SIGNATURE_UNSUPPORTED = 4
    SHUTDOWN_STATE = 6
    BAD_NAME = 10
    BAD_SIGNAL = 11
    NO_FILE = 20
    NOT_EXECUTABLE = 21
    FAILED = 30
    ABNORMAL_TERMINATION = 40
    SPAWN_ERROR = 50
    ALREADY_STARTED = 60
    NOT_RUNNING = 70
    SUCCESS = 80
    ALREADY_ADDED = 90
    STILL_RUNNING = 91
    CANT_REREAD = 92
