"""The ``system.*`` namespace: introspection (``listMethods``, ``methodHelp``,
``methodSignature``) and ``multicall``.

Theory of operation
-------------------
Introspection reads the method table of every namespace
(:func:`~manager.api.introspection.method_table`): ``methodHelp`` is the method's
docstring and ``methodSignature`` is computed from its ``@return``/``@param`` lines.
``multicall`` makes each call through the server's dispatcher (so arguments are
checked as for a single call), in order; a call that answers with a
:class:`~manager.api.answers.Deferred` suspends the rest until it settles, and the
whole multicall then answers with a Deferred too. As in supervisord 4.3 (reference
§5.5) each entry is the bare value or a fault struct.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from manager.api.answers import Deferred, RPCError, failed_struct, outcome
from manager.api.introspection import gettags, method_table
from manager.faults import Fault

__all__ = ["Caller", "SystemNamespace"]

#: ``call(method, params)``: dispatch one call as the XML-RPC server does.
Caller = Callable[[str, object], object]


class SystemNamespace:
    """The ``system.*`` methods: introspection and ``multicall``.

    Args:
        namespaces: the other namespaces by name (``system`` is added).
        call: how :meth:`multicall` makes each call (the server's dispatcher, so
            arguments are checked the same way).
    """

    def __init__(self, namespaces: Mapping[str, object], call: Caller) -> None:
        self._namespaces: dict[str, object] = {**namespaces, "system": self}
        self._call = call

    def _methods(self) -> dict[str, Callable[..., object]]:
        return method_table(self._namespaces)

    def listMethods(self) -> list[str]:
        """Return an array listing the available method names

        @return array result  An array of method names available (strings).
        """
        return sorted(self._methods())

    def methodHelp(self, name: str) -> str:
        """Return a string showing the method's documentation

        @param string name   The name of the method.
        @return string result The documentation for the method name.
        """
        method = self._methods().get(name)
        if method is None:
            raise RPCError(Fault.SIGNATURE_UNSUPPORTED)
        return str(method.__doc__)

    def methodSignature(self, name: str) -> list[str]:
        """Return an array describing the method signature in the
        form [rtype, ptype, ptype...] where rtype is the return data type
        of the method, and ptypes are the parameter data types that the
        method accepts in method argument order.

        @param string name  The name of the method.
        @return array result  The result.
        """
        method = self._methods().get(name)
        if method is None:
            raise RPCError(Fault.SIGNATURE_UNSUPPORTED)
        rtype: str | None = None
        ptypes: list[str] = []
        for _line, tag, datatype, _name, _text in gettags(str(method.__doc__)):
            if tag == "return":
                rtype = datatype or ""
            elif tag == "param":
                ptypes.append(datatype or "")
        if rtype is None:
            raise RPCError(Fault.SIGNATURE_UNSUPPORTED)
        return [rtype, *ptypes]

    def multicall(self, calls: list[Any]) -> list[object] | Deferred:
        """Process an array of calls, and return an array of
        results. Calls should be structs of the form {'methodName':
        string, 'params': array}. Each result will either be a
        single-item array containing the result value, or a struct of
        the form {'faultCode': int, 'faultString': string}. This is
        useful when you need to make lots of small calls without lots
        of round trips.

        @param array calls  An array of call requests
        @return array result  An array of results
        """
        # As supervisord 4.3 (reference §5.5): each entry is the bare value, not a
        # one-element array as the docstring above (supervisord's own) says.
        results: list[object] = []
        remaining = list(calls)
        overall = Deferred()

        def step() -> None:
            while remaining:
                value = self._one(remaining.pop(0))
                if isinstance(value, Deferred):
                    if not value.done:
                        overall.on_cancel(value.cancel)
                        value.add_done_callback(resume)
                        return
                    value = outcome(value)
                results.append(value)
            overall.resolve(results)

        def resume(d: Deferred) -> None:
            results.append(outcome(d))
            step()

        step()
        return results if overall.done else overall

    def _one(self, call: object) -> object:
        try:
            if not isinstance(call, dict):
                raise RPCError(Fault.INCORRECT_PARAMETERS, "a call must be a struct")
            name = call.get("methodName")
            params = call.get("params", [])
            if name is None:
                raise RPCError(Fault.INCORRECT_PARAMETERS, "No methodName")
            if name == "system.multicall":
                raise RPCError(Fault.INCORRECT_PARAMETERS, "Recursive system.multicall forbidden")
            if not isinstance(name, str):
                raise RPCError(Fault.INCORRECT_PARAMETERS, "methodName must be a string")
            return self._call(name, params)
        except RPCError as exc:
            return {"faultCode": int(exc.code), "faultString": exc.text}
        except Exception as exc:
            return failed_struct(exc)
