"""``vigil-listener``: run Vigil's plugins as a supervisord ``[eventlistener:x]``.

Usage::

    vigil-listener [-c FILE] [--plugins NAME,...] [--queue-size N] [--log-level LEVEL]

``-c`` is the supervisord config file (Vigil's own sections live there too);
without it the supervisord search order is tried, and running with no file is
allowed. ``--plugins`` takes entry-point names or dotted paths; without it the
built-in plugins whose sections appear in the config are loaded (``health`` for
``[healthcheck:x]``, ``alerts`` for ``[alert:x]``, ``metrics`` for ``[metrics]``).

Exit status: 0 on EOF or SIGTERM; 2 for a protocol violation on stdin or a
configuration error; 1 when a plugin cannot be loaded or set up.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

from listeners.bus import Bus
from listeners.plugin import PluginContext, PluginError, Subscription, load_plugin
from listeners.runtime import EXIT_OK, EXIT_PROTOCOL, Runtime, Terminate
from manager.ini import ConfigError, IniFile, find_config_file, read_ini
from manager.rpcclient import SupervisorClient

__all__ = ["main"]

EXIT_PLUGIN = 1
EXIT_CONFIG = 2
#: Built-in plugin -> the section prefix that switches it on when --plugins is not given.
AUTO_PLUGINS: Mapping[str, str] = {
    "health": "healthcheck:",
    "metrics": "metrics",
    "alerts": "alert:",
}
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vigil-listener",
        description="Vigil event listener for supervisord and vigild.",
    )
    p.add_argument("-c", "--configuration", type=Path, help="supervisord config file")
    p.add_argument("--plugins", help="comma-separated plugin names or dotted paths")
    p.add_argument("--queue-size", type=int, default=10000, help="per-plugin queue capacity")
    p.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error", "critical"],
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=3.0,
        help="seconds to let plugins finish queued work at exit",
    )
    return p


def _auto_plugins(config: IniFile | None) -> list[str]:
    from importlib.metadata import entry_points

    if config is None:
        return []
    installed = {ep.name for ep in entry_points(group="vigil.plugins")}
    names = config.names()
    return [
        plugin
        for plugin, prefix in AUTO_PLUGINS.items()
        if plugin in installed and any(n == prefix or n.startswith(prefix) for n in names)
    ]


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise Terminate(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = os.environ if environ is None else environ
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level.upper(), format=LOG_FORMAT, force=True
    )
    log = logging.getLogger("vigil")
    name = env.get("SUPERVISOR_PROCESS_NAME", "vigil-listener")

    path = args.configuration or find_config_file(argv0=sys.argv[0], cwd=Path.cwd())
    config: IniFile | None = None
    if path is not None:
        try:
            config = read_ini(path, environ=env)
        except ConfigError as exc:
            log.error("configuration error: %s", exc)
            return EXIT_CONFIG
        for warning in config.warnings:
            log.warning("%s", warning)

    if args.plugins is None:
        specs = _auto_plugins(config)
    else:
        specs = [s.strip() for s in args.plugins.split(",") if s.strip()]
    if not specs:
        log.warning("no plugins loaded: acknowledging events only")

    stopping = threading.Event()
    client: list[SupervisorClient] = []

    def client_factory() -> SupervisorClient:
        if not client:
            client.append(SupervisorClient.from_config(config, env))
        return client[0]

    bus = Bus(logging.getLogger("vigil.bus"))
    contexts: list[PluginContext] = []
    subscriptions: list[Subscription] = []
    for spec in specs:
        ctx = PluginContext(
            name=spec,
            config=config,
            log=logging.getLogger(f"vigil.{spec}"),
            stopping=stopping,
            environ=env,
            _client_factory=client_factory,
            bus=bus,
        )
        try:
            load_plugin(spec)(ctx)
        except ConfigError as exc:
            log.error("plugin %s: configuration error: %s", spec, exc)
            return EXIT_CONFIG
        except PluginError as exc:
            log.error("%s", exc)
            return EXIT_PLUGIN
        except Exception:
            log.exception("plugin %s failed to set up", spec)
            return EXIT_PLUGIN
        contexts.append(ctx)
        subscriptions.extend(ctx.subscriptions)

    runtime = Runtime(
        subscriptions, log=logging.getLogger("vigil.runtime"), queue_size=args.queue_size
    )
    for ctx in contexts:
        ctx._statistics = runtime.statistics
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    log.info(
        "%s started (pid %d) with plugins: %s",
        name,
        os.getpid(),
        ", ".join(specs) or "none",
    )
    try:
        status = runtime.run()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    stopping.set()
    for ctx in reversed(contexts):
        for callback in reversed(ctx._on_stop):
            try:
                callback()
            except Exception:
                log.exception("plugin %s: stop callback failed", ctx.name)
    runtime.drain(args.drain_timeout)
    assert status in (EXIT_OK, EXIT_PROTOCOL)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
