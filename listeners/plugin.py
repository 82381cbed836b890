"""The plugin API of ``vigil-listener``.

A plugin is a callable ``setup(ctx: PluginContext) -> None``. It is found by
name in the entry-point group ``vigil.plugins`` (``log``, ``health``, ...) or by
dotted path (``package.module:setup`` or ``package.module.setup``). In ``setup``
it subscribes handlers to event types and may start background threads::

    def setup(ctx: PluginContext) -> None:
        @ctx.on(EventType.PROCESS_STATE_FATAL)
        def fatal(n: Notification) -> None:
            ...

Contracts:

* A subscription to a type matches it and all its descendants
  (``PROCESS_STATE`` matches ``PROCESS_STATE_EXITED``; ``EVENT`` matches all).
  One handler sees an event once, however many of its types match.
* By default a handler runs on the plugin's own worker thread, in event order,
  after the event has been acknowledged; the protocol loop never waits for it.
* ``inline=True`` handlers run in the protocol loop *before* the event is
  acknowledged. They must be fast (they are timed, and a slow one is logged):
  use them to make an event durable (e.g. spool it) so that a crash before the
  acknowledgement gets it redelivered by the supervisor.
* A handler that raises is logged to stderr with the event; the listener goes on.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from listeners.bus import Bus
from manager.events import EventType
from manager.protocol import Notification

if TYPE_CHECKING:
    from manager.ini import IniFile
    from manager.rpcclient import SupervisorClient

__all__ = [
    "ENTRY_POINT_GROUP",
    "Handler",
    "PluginContext",
    "PluginError",
    "Setup",
    "Subscription",
    "load_plugin",
]

ENTRY_POINT_GROUP = "vigil.plugins"

Handler = Callable[[Notification], None]


class PluginError(Exception):
    """A plugin could not be found, loaded or set up."""


@dataclass(frozen=True)
class Subscription:
    plugin: str
    types: tuple[EventType, ...]
    handler: Handler
    inline: bool

    def matches(self, t: EventType) -> bool:
        return any(t.is_a(s) for s in self.types)

    @property
    def label(self) -> str:
        return f"{self.plugin}:{getattr(self.handler, '__qualname__', repr(self.handler))}"


@dataclass
class PluginContext:
    """What a plugin's ``setup`` gets: configuration, subscriptions, the supervisor, lifecycle."""

    name: str
    #: The parsed config file given with ``-c`` (None when there is none).
    config: IniFile | None
    #: Logger named ``vigil.<plugin>``; it writes to stderr.
    log: logging.Logger
    #: Set when the listener is shutting down; background threads should watch it.
    stopping: threading.Event
    environ: Mapping[str, str]
    _client_factory: Callable[[], SupervisorClient]
    #: Shared by all plugins of this listener (health publishes, metrics/alerts subscribe).
    bus: Bus = field(default_factory=Bus)
    subscriptions: list[Subscription] = field(default_factory=list)
    _on_stop: list[Callable[[], None]] = field(default_factory=list)
    _statistics: Callable[[], Any] | None = None

    @property
    def config_path(self) -> Path | None:
        return None if self.config is None else self.config.path

    def subscribe(self, handler: Handler, *types: EventType, inline: bool = False) -> Handler:
        if not types:
            raise PluginError(f"plugin {self.name}: subscribe needs at least one event type")
        self.subscriptions.append(Subscription(self.name, tuple(types), handler, inline))
        return handler

    def on(self, *types: EventType, inline: bool = False) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`subscribe`."""

        def register(handler: Handler) -> Handler:
            return self.subscribe(handler, *types, inline=inline)

        return register

    def supervisor(self) -> SupervisorClient:
        """An XML-RPC client for the supervisor this listener runs under."""
        return self._client_factory()

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` at shutdown (after ``stopping`` is set), in reverse order."""
        self._on_stop.append(callback)

    def statistics(self) -> Any:
        """The runtime's :class:`listeners.runtime.RuntimeStatistics` right now."""
        if self._statistics is None:
            raise PluginError("statistics are only available once the runtime runs")
        return self._statistics()


Setup = Callable[[PluginContext], None]


def load_plugin(spec: str) -> Setup:
    """Resolve a plugin name (entry point) or dotted path to its ``setup`` callable.

    Raises:
        PluginError: naming the spec and what failed.
    """
    spec = spec.strip()
    if not spec:
        raise PluginError("empty plugin name")
    if ":" not in spec and "." not in spec:
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == spec]
        if not found:
            known = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
            raise PluginError(
                f"no plugin named {spec!r} (entry-point group {ENTRY_POINT_GROUP}: "
                f"{', '.join(known) or 'none installed'})"
            )
        try:
            obj = found[0].load()
        except Exception as exc:
            raise PluginError(f"plugin {spec!r} failed to import: {exc!r}") from exc
    else:
        module_name, sep, attr = spec.partition(":")
        if not sep:
            module_name, _, attr = spec.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise PluginError(f"plugin {spec!r}: cannot import {module_name!r}: {exc!r}") from exc
        try:
            obj = getattr(module, attr)
        except AttributeError:
            raise PluginError(f"plugin {spec!r}: module {module_name!r} has no {attr!r}") from None
    if not callable(obj):
        raise PluginError(f"plugin {spec!r} is not callable")
    setup: Setup = obj
    return setup
