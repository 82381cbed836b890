"""Splitting one child output channel into log data and captured (PROCESS_COMMUNICATION) text.

Theory of operation
-------------------
:class:`OutputChannel` is sans-I/O: the driver reads a child's stdout (or stderr)
pipe and calls :meth:`OutputChannel.feed` with whatever the read returned; it gets
back a list of chunks and acts on each. At EOF it calls :meth:`OutputChannel.flush`.

What supervisord 4.3 does (``POutputDispatcher.record_output`` / ``_log`` /
``toggle_capturemode`` in ``dispatchers.py``), and so what the chunks mean:

* With ``capture_maxbytes == 0`` capture mode is off: there is no token detection
  at all, every byte (tokens included) is :class:`LogData`.
* Otherwise the text between ``<!--XSUPERVISOR:BEGIN-->`` and
  ``<!--XSUPERVISOR:END-->`` is *captured*. The tokens themselves vanish.
* Text outside a capture block is :class:`LogData` with ``in_capture=False``: it
  goes to the child log file, to the main log at DEBG, and becomes one
  PROCESS_LOG_* event when ``*_events_enabled``.
* Text inside a capture block is **also** passed to ``_log``: 4.3 swaps the child
  log file for an in-memory buffer while capturing, but still logs the text to the
  main log at DEBG and still emits it as PROCESS_LOG_* events (reference §2.3,
  confirmed by experiment). It is therefore :class:`LogData` with
  ``in_capture=True`` — the driver must *not* write it to the child log file, but
  must treat it like any other log data otherwise.
* At the end token, one :class:`Captured` carries the capture buffer: the driver
  emits it as one PROCESS_COMMUNICATION_* event (always; ``events_enabled`` only
  governs PROCESS_LOG). An empty block gives ``Captured(b"")``, as in 4.3. The
  buffer keeps the most recent ``capture_maxbytes`` bytes of the block.
* ``strip_ansi`` removes escape sequences with 4.3's ``stripEscapes`` rule: from
  ``ESC [`` up to and including the first of ``HfABCDRsuJKhlpm``; an unterminated
  sequence swallows the rest of the text. Tokens are found in the raw bytes; the
  stripping applies to the text between them (so captured text is stripped too).

So: concatenating every :class:`LogData` gives the input minus the tokens (minus
ANSI escapes when stripping); concatenating the ``in_capture=False`` ones and the
:class:`Captured` ones, in order, gives the same thing, as long as no capture block
overflowed or was left open at EOF.

Where we differ from 4.3, on purpose — only in *when* bytes come out, or at EOF:

* 4.3 holds back the whole buffer while it is no longer than the token it looks
  for (so a lone ``"ok\\n"`` waits for more output), and keeps back the longest
  suffix that is a token prefix. We only keep back that suffix.
* 4.3 strips escapes per read, so a sequence split across two reads leaks its
  tail; we strip the text between tokens as one stream (a trailing ``ESC`` is
  kept back until the next byte shows whether ``[`` follows). The result equals
  4.3's whenever the text between two tokens arrives in one read, and does not
  depend on how the input is cut into reads at all.
* 4.3's capture buffer (``BoundIO``) drops as many old bytes as each write
  brings, so its content depends on read sizes and a single large read can
  exceed the cap; we keep exactly the last ``capture_maxbytes`` bytes.
* 4.3 emits a PROCESS_LOG event with empty data when a read was all escape
  sequences; we never produce empty :class:`LogData`.
* At EOF 4.3 drops whatever it held back; :meth:`OutputChannel.flush` returns it.
  A capture block still open at EOF gives no :class:`Captured` (as in 4.3).

Nothing here does I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "BEGIN_TOKEN",
    "END_TOKEN",
    "Captured",
    "Chunk",
    "LogData",
    "OutputChannel",
    "decode_output",
    "strip_escapes",
]

BEGIN_TOKEN = b"<!--XSUPERVISOR:BEGIN-->"
END_TOKEN = b"<!--XSUPERVISOR:END-->"

_ESC = b"\x1b"
_ESCAPE_BEGIN = b"\x1b["
#: supervisord's ``ANSI_TERMINATORS``: the first of these ends an escape sequence.
_TERMINATOR = re.compile(rb"[HfABCDRsuJKhlpm]")


@dataclass(frozen=True, slots=True)
class LogData:
    """Child output that supervisord passes to ``_log``.

    ``in_capture`` is True for text read inside a capture block: 4.3 does not write
    it to the child log file, but still logs it to the main log at DEBG and emits
    it as PROCESS_LOG_* events.
    """

    data: bytes
    in_capture: bool = False


@dataclass(frozen=True, slots=True)
class Captured:
    """The text of one complete capture block: one PROCESS_COMMUNICATION_* event."""

    data: bytes


Chunk = LogData | Captured


def decode_output(data: bytes) -> str:
    """Child output as supervisord puts it in an event payload or the main log.

    UTF-8 if the bytes decode, otherwise ``Undecodable: b'...'`` (the ``repr`` of the
    bytes). Each chunk is decoded on its own, so a multibyte character cut by a pipe
    read makes that whole chunk undecodable — as in supervisord.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return f"Undecodable: {data!r}"


def strip_escapes(data: bytes) -> bytes:
    """supervisord's ``stripEscapes`` applied to one complete piece of text."""
    stripper = _EscapeStripper()
    return stripper.feed(data) + stripper.finish()


def _prefix_at_end(data: bytes | bytearray, token: bytes) -> int:
    """Length of the longest proper prefix of ``token`` that ``data`` ends with."""
    for n in range(min(len(token) - 1, len(data)), 0, -1):
        if data.endswith(token[:n]):
            return n
    return 0


class _EscapeStripper:
    """``stripEscapes`` as a stream: same output for any cutting of the input."""

    def __init__(self) -> None:
        #: inside ``ESC [ ...``: dropping bytes up to and including a terminator
        self._in_escape = False
        #: the last byte seen was an ``ESC`` that might start ``ESC [``
        self._esc_pending = False

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        i = 0
        if self._esc_pending and data:
            self._esc_pending = False
            if data[:1] == b"[":
                self._in_escape = True
                i = 1
            else:
                out += _ESC
        n = len(data)
        while i < n:
            if self._in_escape:
                m = _TERMINATOR.search(data, i)
                if m is None:
                    break
                self._in_escape = False
                i = m.end()
                continue
            j = data.find(_ESCAPE_BEGIN, i)
            if j < 0:
                if data.endswith(_ESC):
                    out += data[i:-1]
                    self._esc_pending = True
                else:
                    out += data[i:]
                break
            out += data[i:j]
            self._in_escape = True
            i = j + len(_ESCAPE_BEGIN)
        return bytes(out)

    def finish(self) -> bytes:
        """End of one piece of text: an unterminated sequence is dropped, a lone ESC kept."""
        pending = self._esc_pending
        self._in_escape = self._esc_pending = False
        return _ESC if pending else b""


class OutputChannel:
    """Splits the output of one channel (stdout or stderr) of one child.

    Args:
        capture_maxbytes: ``stdout_capture_maxbytes`` / ``stderr_capture_maxbytes``;
            0 turns capture mode off.
        strip_ansi: ``[supervisord] strip_ansi``.

    Make a new one for every spawn, as supervisord makes new dispatchers; after
    :meth:`flush` it is back in its initial state anyway.
    """

    def __init__(self, capture_maxbytes: int, strip_ansi: bool = False) -> None:
        self.capture_maxbytes = capture_maxbytes
        self.strip_ansi = strip_ansi
        #: between a begin token and its end token
        self.capturing = False
        self._held = b""  # raw bytes that may be the start of the token looked for
        self._capture = bytearray()  # the current block, at most capture_maxbytes
        self._stripper = _EscapeStripper()
        self._run = bytearray()  # text of the current mode not yet made into a chunk
        self._chunks: list[Chunk] = []

    def feed(self, data: bytes) -> list[Chunk]:
        """Process one read; returns the chunks it completes, in order.

        A possible token prefix at the end of ``data`` is kept back and comes out
        with a later :meth:`feed` or :meth:`flush`.
        """
        if self.capture_maxbytes <= 0:
            if not self.strip_ansi:  # the common case: no copies
                return [LogData(data)] if data else []
            self._text(data)
            return self._take()
        buf = self._held + data
        self._held = b""
        while buf:
            token = END_TOKEN if self.capturing else BEGIN_TOKEN
            at = buf.find(token)
            if at < 0:
                keep = _prefix_at_end(buf, token)
                self._text(buf[: len(buf) - keep])
                self._held = buf[len(buf) - keep :]
                break
            self._text(buf[:at])
            self._toggle()
            buf = buf[at + len(token) :]
        return self._take()

    def flush(self) -> list[Chunk]:
        """End of file: returns what was kept back and resets the channel.

        A capture block left open gives no :class:`Captured`; its text has already
        come out as ``LogData(in_capture=True)``.
        """
        held, self._held = self._held, b""
        self._text(held)
        self._end_text()
        chunks = self._take()
        self.capturing = False
        self._capture.clear()
        return chunks

    # -- internals ---------------------------------------------------------------------

    def _text(self, raw: bytes) -> None:
        text = self._stripper.feed(raw) if self.strip_ansi else raw
        self._run += text

    def _end_text(self) -> None:
        """The text of the current mode ends (at a token or EOF)."""
        if self.strip_ansi:
            self._run += self._stripper.finish()
        self._emit_run()

    def _emit_run(self) -> None:
        if not self._run:
            return
        text = bytes(self._run)
        self._run.clear()
        self._chunks.append(LogData(text, in_capture=self.capturing))
        if self.capturing:
            self._capture += text
            excess = len(self._capture) - self.capture_maxbytes
            if excess > 0:
                del self._capture[:excess]

    def _toggle(self) -> None:
        self._end_text()
        if self.capturing:
            self._chunks.append(Captured(bytes(self._capture)))
            self._capture.clear()
        self.capturing = not self.capturing

    def _take(self) -> list[Chunk]:
        """Hand out the chunks completed so far, text of the current mode included."""
        self._emit_run()
        chunks, self._chunks = self._chunks, []
        return chunks
