"""The parts of vigild's XML-RPC API (:mod:`manager.rpcinterface`), supervisord's twin.

:mod:`manager.rpcinterface` assembles ``SupervisorNamespace`` from the mixins here and
re-exports the public names; import from there.
"""
