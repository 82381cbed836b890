"""supervisord's XML-RPC API: the ``supervisor.*`` and ``system.*`` namespaces (reference §5).

Theory of operation
-------------------
Each public method of :class:`SupervisorNamespace` and :class:`SystemNamespace`
is one wire method; its name is the wire name (camelCase is the wire contract,
house rule 18) and aliases are plain class attributes (``getVersion =
getAPIVersion``), as in supervisord. Docstrings keep supervisord's ``@param
type name`` / ``@return type`` lines: ``system.methodHelp`` returns them and
``system.methodSignature`` is computed from them. The Python annotations are
what :mod:`manager.rpcserver` checks arguments against (wrong type or count is
INCORRECT_PARAMETERS), resolved in the module that defines the method.

:class:`SupervisorNamespace` is assembled here from one mixin per topic (package
:mod:`manager.api`, below). A method is published when the namespace's class or
one of its bases other than :class:`object` defines it and its name does not
start with ``_`` (:func:`method_table`); helpers and the ``_wire_`` twins start
with ``_``, so splitting the class changes nothing that clients see.

A method answers at once with a value, raises :class:`RPCError` (a fault), or
returns a :class:`Deferred` when the answer has to wait for a state —
``startProcess(name, wait=True)`` waits for RUNNING. A wait never blocks: it
is a callback in ``Supervisor.watchers``, evaluated on every process state
change, which settles the Deferred on the next turn of the loop (never from
inside the state change that decided it, so a reply never re-enters the state
machine). ``rpcserver`` sends the response when the Deferred settles and
cancels it if the client goes away; :func:`abandon` fails the waits of a
namespace whose supervisor is gone (reload, shutdown).

Version strings: ``getAPIVersion`` is ``3.0`` and ``getSupervisorVersion`` is
``4.3.0`` — vigild presents itself as supervisord 4.3.0 because clients
(supervisorctl, superlance, our own listeners) compare these strings to decide
what the server can do; vigild's own version is in its log and ``--version``.

Differences from supervisord 4.3, on purpose:

* ``startProcess`` of a STOPPING process answers ABNORMAL_TERMINATION at once
  (4.3 silently does nothing, then answers ABNORMAL_TERMINATION after waiting);
* ``signalAllProcesses`` checks the supervisor state before signalling (4.3
  signals first, then faults);
* the result structs of group/all operations that wait come in process order,
  not in the order in which 4.3's 50 ms polls happened to see them finish;
* log text that is not valid UTF-8 is decoded with replacement characters
  instead of failing the call (rpcserver also replaces characters XML cannot
  carry).

Where things are (package :mod:`manager.api`)
---------------------------------------------
* :mod:`~manager.api.answers`: :class:`RPCError`, :class:`Deferred`, ``PENDING``.
* :mod:`~manager.api.names`: namespecs (``group:name``).
* :mod:`~manager.api.introspection`: which methods are published
  (:func:`method_table`, :func:`wire_table`) and :func:`gettags`.
* :mod:`~manager.api.base`: the namespace's state and helpers (lookups, waits,
  group/all operations), :func:`abandon`.
* The ``supervisor.*`` methods by topic, mixins of :class:`SupervisorNamespace`:
  :mod:`~manager.api.status` (versions, state, shutdown, restart),
  :mod:`~manager.api.control` (start, stop, signal),
  :mod:`~manager.api.info` (process info) and :mod:`~manager.api.wire` (its
  ``_wire_`` fast renderings), :mod:`~manager.api.configuration` (reload, add and
  remove groups, config info), :mod:`~manager.api.logs` (main and process logs),
  :mod:`~manager.api.comm` (stdin, remote communication events).
* :mod:`~manager.api.system`: :class:`SystemNamespace`.
"""

from __future__ import annotations

from manager.api.answers import PENDING as PENDING
from manager.api.answers import Deferred as Deferred
from manager.api.answers import RPCError as RPCError
from manager.api.answers import outcome as outcome
from manager.api.base import Result as Result
from manager.api.base import abandon as abandon
from manager.api.comm import CommMethods
from manager.api.configuration import ConfigurationMethods
from manager.api.configuration import supervisord_wording as supervisord_wording
from manager.api.control import STOP_REPORT_EVERY as STOP_REPORT_EVERY
from manager.api.control import ControlMethods
from manager.api.info import description
from manager.api.introspection import Tag as Tag
from manager.api.introspection import gettags as gettags
from manager.api.introspection import method_table as method_table
from manager.api.introspection import wire_table as wire_table
from manager.api.logs import LogMethods
from manager.api.names import make_namespec as make_namespec
from manager.api.names import split_namespec as split_namespec
from manager.api.status import API_VERSION as API_VERSION
from manager.api.status import SUPERVISOR_VERSION as SUPERVISOR_VERSION
from manager.api.status import StatusMethods
from manager.api.system import Caller as Caller
from manager.api.system import SystemNamespace as SystemNamespace
from manager.api.wire import WireInfoMethods

__all__ = [
    "API_VERSION",
    "PENDING",
    "SUPERVISOR_VERSION",
    "Deferred",
    "RPCError",
    "SupervisorNamespace",
    "SystemNamespace",
    "abandon",
    "gettags",
    "make_namespec",
    "method_table",
    "split_namespec",
    "wire_table",
]

#: the old private name, which the unit tests call
_description = description


class SupervisorNamespace(
    StatusMethods,
    ControlMethods,
    WireInfoMethods,
    ConfigurationMethods,
    LogMethods,
    CommMethods,
):
    """The ``supervisor.*`` methods, on one running :class:`~manager.supervisor.Supervisor`.

    Each method comes from the mixin for its topic (see the module docstring); all
    share :class:`~manager.api.base.NamespaceBase`'s state.
    """
