"""``supervisor.*`` about supervisord itself: versions, identification, state, pid,
``shutdown`` and ``restart``.

Version strings: ``getAPIVersion`` is ``3.0`` and ``getSupervisorVersion`` is
``4.3.0`` — vigild presents itself as supervisord 4.3.0 because clients
(supervisorctl, superlance, our own listeners) compare these strings to decide
what the server can do; vigild's own version is in its log and ``--version``.
"""

from __future__ import annotations

import os

from manager.api.base import NamespaceBase
from manager.states import SupervisorState

__all__ = ["API_VERSION", "SUPERVISOR_VERSION", "StatusMethods"]

API_VERSION = "3.0"
#: the supervisord release whose API and behaviour vigild reproduces
SUPERVISOR_VERSION = "4.3.0"


class StatusMethods(NamespaceBase):
    """Versions, identification, state and pid of the supervisor; shutdown and restart."""

    def getAPIVersion(self) -> str:
        """Return the version of the RPC API used by supervisord

        @return string version id
        """
        self._require_running()
        return API_VERSION

    getVersion = getAPIVersion  # b/w compatibility with releases before 3.0

    def getSupervisorVersion(self) -> str:
        """Return the version of the supervisor package in use by supervisord

        @return string version id
        """
        self._require_running()
        return SUPERVISOR_VERSION

    def getIdentification(self) -> str:
        """Return identifying string of supervisord

        @return string identifier identifying string
        """
        self._require_running()
        return self._sup.config.supervisord.identifier

    def getState(self) -> dict[str, object]:
        """Return current state of supervisord as a struct

        @return struct A struct with keys int statecode, string statename
        """
        self._require_running()
        state = self._sup.state
        return {"statecode": int(state), "statename": state.name}

    def getPID(self) -> int:
        """Return the PID of supervisord

        @return int PID
        """
        self._require_running()
        return os.getpid()

    def shutdown(self) -> bool:
        """Shut down the supervisor process

        @return boolean result always returns True unless error
        """
        self._require_running()
        self._sup.request_stop(SupervisorState.SHUTDOWN)
        return True

    def restart(self) -> bool:
        """Restart the supervisor process

        @return boolean result  always return True unless error
        """
        self._require_running()
        self._sup.request_stop(SupervisorState.RESTARTING)
        return True
