"""Process groups and listener pools: which sections make which group.

:meth:`GroupSections.process_groups` makes one
:class:`~manager.config_model.GroupConfig` per ``[group:x]`` (of the
``[program:x]`` and ``[fcgi-program:x]`` sections it lists), one per remaining
``[program:x]`` and ``[fcgi-program:x]``, and one
:class:`~manager.config_model.PoolConfig` per ``[eventlistener:x]`` with its pool
keys (``events``, ``buffer_size``, ``result_handler``). Group and pool names share
one namespace; both lists, and each group's processes, are sorted by
(priority, name). The processes themselves come from :mod:`manager.config_programs`.

Differences from supervisord 4.3, on purpose:

* Two process groups with the same name (``[program:x]`` and
  ``[eventlistener:x]``, or ``[group:x]``), and two processes with the same
  name in one group, are errors; supervisord silently keeps one of them.
* ``result_handler`` is imported to check it (see manager/results.py).
* An ``[fcgi-program:x]`` listed in a ``[group:x]`` keeps its socket (supervisord
  4.3 spawns it as a plain program with a pipe as fd 0, and ignores its socket
  keys), so there too ``socket`` is required.
"""

from __future__ import annotations

from manager import results
from manager.config_model import DEFAULT_RESULT_HANDLER, GroupConfig, PoolConfig, ProcessConfig
from manager.config_programs import ProgramSections, section_name
from manager.config_reader import parse_int
from manager.events import EventType, parse_event_names
from manager.ini import ConfigError, Section, parse_bool

__all__ = ["GroupSections"]


class GroupSections(ProgramSections):
    """The parsers of ``[group:x]`` and of the pool keys of ``[eventlistener:x]``."""

    def process_groups(self) -> tuple[tuple[GroupConfig, ...], tuple[PoolConfig, ...]]:
        """Every group and every pool, each sorted by (priority, name)."""
        owners: dict[str, Section] = {}  # group name -> the section that defined it

        def claim(name: str, section: Section) -> None:
            if name in owners:
                raise ConfigError(
                    f"group name {name!r} is already used by [{owners[name].name}]",
                    file=section.file,
                    section=section.name,
                )
            owners[name] = section

        groups: list[GroupConfig] = []
        grouped: set[str] = set()  # program sections that belong to a [group:x]
        for s in self.ini.sections_with_prefix("group:"):
            name = section_name(s)
            claim(name, s)
            programs: list[str] = self.value(s, "programs", _list, [], {})
            processes: list[ProcessConfig] = []
            for program in programs:
                plain = self.ini.section(f"program:{program}")
                fcgi = self.ini.section(f"fcgi-program:{program}")
                if plain is not None and fcgi is not None:
                    raise s.error(
                        "programs",
                        f"[{s.name}] name {program} is ambiguous "
                        "(exists as program and fcgi-program)",
                    )
                member = plain or fcgi
                if member is None:
                    raise s.error(
                        "programs", f"[{s.name}] names unknown program or fcgi-program {program}"
                    )
                grouped.add(member.name)
                processes.extend(self.processes(member, name, listener=False, fcgi=member is fcgi))
            priority = self.value(s, "priority", parse_int, 999, {})
            groups.append(GroupConfig(name, priority, _checked(processes, s)))

        for prefix in ("program:", "fcgi-program:"):
            for s in self.ini.sections_with_prefix(prefix):
                if s.name in grouped:
                    continue
                name = section_name(s)
                claim(name, s)
                priority = self.value(s, "priority", parse_int, 999, {})
                processes = self.processes(s, name, listener=False, fcgi=prefix != "program:")
                groups.append(GroupConfig(name, priority, _checked(processes, s)))

        pools: list[PoolConfig] = []
        for s in self.ini.sections_with_prefix("eventlistener:"):
            name = section_name(s)
            claim(name, s)
            pools.append(self.pool(s, name))

        groups.sort(key=lambda g: (g.priority, g.name))
        pools.sort(key=lambda p: (p.priority, p.name))
        return tuple(groups), tuple(pools)

    def pool(self, s: Section, name: str) -> PoolConfig:
        """One ``[eventlistener:x]``: its pool keys and its processes."""
        priority = self.value(s, "priority", parse_int, -1, {})
        buffer_size = self.value(s, "buffer_size", parse_int, 10, {})
        if buffer_size < 1:
            raise s.error(
                "buffer_size", f"[{s.name}] section sets invalid buffer_size ({buffer_size})"
            )
        result_handler = self.value(s, "result_handler", str, DEFAULT_RESULT_HANDLER, {})
        try:
            results.resolve(result_handler)
        except ValueError as exc:
            raise s.error(
                "result_handler", f"{result_handler} cannot be resolved within [{s.name}]: {exc}"
            ) from None
        events: tuple[EventType, ...] = self.value(
            s, "events", lambda text: _events(text, s.name), (), {}
        )
        if not events:
            raise s.error("events", f'[{s.name}] section requires an "events" line')
        if self.value(s, "redirect_stderr", parse_bool, False, {}):
            raise s.error(
                "redirect_stderr",
                f"[{s.name}] section sets redirect_stderr=true but this is not allowed "
                "because it will interfere with the eventlistener protocol",
            )
        processes = self.processes(s, name, listener=True)
        return PoolConfig(
            name, priority, _checked(processes, s), events, buffer_size, result_handler
        )


def _list(text: str) -> list[str]:
    """A comma-separated list, items stripped, empty items dropped."""
    return [item.strip() for item in text.split(",") if item.strip()]


def _events(text: str, section: str) -> tuple[EventType, ...]:
    """An ``events`` line; an unknown name is a ``ValueError`` in supervisord's words."""
    try:
        return parse_event_names(text)
    except ValueError:
        pass
    for item in text.split(","):
        if item.strip():
            try:
                EventType.from_name(item)
            except ValueError:
                raise ValueError(
                    f"Unknown event type {item.strip().upper()} in [{section}] events"
                ) from None
    return ()


def _checked(processes: list[ProcessConfig], s: Section) -> tuple[ProcessConfig, ...]:
    """Sort a group's processes by (priority, name); two with one name is an error."""
    seen: set[str] = set()
    for p in processes:
        if p.name in seen:
            raise ConfigError(
                f"duplicate process name {p.name!r} in group {p.group!r}",
                file=s.file,
                section=s.name,
            )
        seen.add(p.name)
    return tuple(sorted(processes, key=lambda p: (p.priority, p.name)))
