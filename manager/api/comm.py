"""``supervisor.*`` that talk to processes and listeners: ``sendProcessStdin`` and
``sendRemoteCommEvent``.

``sendProcessStdin`` writes the text, UTF-8 encoded, to the child's stdin (NO_FILE
when the child closed it); ``sendRemoteCommEvent`` emits a REMOTE_COMMUNICATION
event to the listeners that subscribe to it and, as in supervisord, works whatever
the supervisor's state.
"""

from __future__ import annotations

from manager.api.answers import RPCError
from manager.api.base import NamespaceBase
from manager.events import RemoteCommunication
from manager.faults import Fault
from manager.states import ProcessState

__all__ = ["CommMethods"]


class CommMethods(NamespaceBase):
    """Data for a process's stdin; events for the listeners."""

    def sendProcessStdin(self, name: str, chars: str) -> bool:
        """Send a string of chars to the stdin of the process name.
        If non-7-bit data is sent (unicode), it is encoded to utf-8
        before being sent to the process' stdin.  If chars is not a
        string or is not unicode, raise INCORRECT_PARAMETERS.  If the
        process is not running, raise NOT_RUNNING.  If the process'
        stdin cannot accept input (e.g. it was closed by the child
        process), raise NO_FILE.

        @param string name        The process name to send to (or 'group:name')
        @param string chars       The character data to send to the process
        @return boolean result    Always return True unless error
        """
        self._require_running()
        process = self._process(name)
        if not process.pid or process.state is ProcessState.STOPPING:
            raise RPCError(Fault.NOT_RUNNING, name)
        if not self._sup.send_stdin(process, chars.encode("utf-8")):
            raise RPCError(Fault.NO_FILE, name)
        return True

    def sendRemoteCommEvent(self, type: str, data: str) -> bool:
        """Send an event that will be received by event listener
        subprocesses subscribing to the RemoteCommunicationEvent.

        @param  string  type  String for the "type" key in the event header
        @param  string  data  Data for the event body
        @return boolean       Always return True unless error
        """
        self._sup.emit(RemoteCommunication(type, data))
        return True
