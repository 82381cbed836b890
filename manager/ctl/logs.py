"""The commands about logs: ``clear``, ``tail`` and ``maintail`` (with ``-f``).

Following (``tail -f <name> [stdout|stderr]``, ``maintail -f``)
----------------------------------------------------------------
As supervisorctl does, after the API check: ``==> Press Ctrl-C to exit <==``, then one
HTTP ``GET /logtail/<name>/<channel>`` or ``GET /mainlogtail``
(:class:`~manager.ctl.stream.LogStream`) whose body is printed as it arrives: the last
1024 bytes of the log, then whatever is appended. The server follows a log that is
cleared or rotated from its start; vigild says ``==> File truncated <==`` when one is
truncated in place (supervisord 4.3 fails there, with a ``TypeError`` in its log, and
ends the stream). How it ends, exactly as supervisorctl 4.3 (measured against
supervisord 4.3 and vigild):

* Ctrl-C: a blank line, exit 0;
* the server ends the stream (shutdown, crash, restart): nothing more, exit 0;
* no such process or no log file (``stdout_logfile = NONE``, a main log that was
  removed): the server answers 404, and ``<url><path> Cannot read, status code 404``
  goes to stderr, exit 0;
* wrong credentials: the API check fails first (``Server requires authentication`` and
  an ``error:`` line, exit 1); a 401 on the stream itself would be ``... Cannot read,
  status code 401`` on stderr, exit 0;
* the stream's connection fails (the server went away after the API check): over a
  unix socket an ``error:`` line, exit 1 (supervisorctl prints a traceback summary
  there); over TCP ``<url><path> Cannot connect, error: <class
  'ConnectionRefusedError'> ([Errno 111] Connection refused)`` on stderr, exit 0;
* stdout goes away (``| head``): ``... Cannot connect, error: <class
  'BrokenPipeError'> ([Errno 32] Broken pipe)`` on stderr, exit 0.

Where supervisorctl misbehaves vigilctl does not copy it: it decodes UTF-8 across reads
(supervisorctl prints ``Undecodable: b'...'`` for a read that splits a character) and
sends an empty password on the stream too (supervisorctl's stream then gets 401 from
a server whose password is empty, although its XML-RPC calls got in).
"""

from __future__ import annotations

from manager.ctl.base import ControllerBase, InitExit
from manager.ctl.formatting import clear_result
from manager.ctl.options import client_url
from manager.faults import Fault
from manager.rpcclient import RPCFault, Unreachable, parse_server_url

__all__ = ["CONNECT_TIMEOUT", "FOLLOW_BANNER", "TAIL_BYTES", "LogCommands"]

#: bytes shown by ``tail``/``maintail`` without ``-N``
TAIL_BYTES = 1600
#: the first line of ``tail -f``/``maintail -f``
FOLLOW_BANNER = "==> Press Ctrl-C to exit <=="
#: seconds allowed for connecting the stream (supervisorctl waits for the kernel)
CONNECT_TIMEOUT = 10.0


class LogCommands(ControllerBase):
    """``clear``, ``tail``, ``maintail``."""

    def do_clear(self, arg: str) -> None:
        names = self._names(arg, "clear", InitExit.GENERIC)
        if names is None:
            return
        if "all" in names:
            self._results(self._rpc("clearAllProcessLogs"), clear_result, None)
            return
        self._per_name(
            names,
            one=lambda name: self._rpc("clearProcessLogs", name),
            group=None,  # "g:*" goes to clearProcessLogs as is (and is a bad name)
            fmt=clear_result,
            success="cleared",
        )

    def do_tail(self, arg: str) -> None:
        if not self.upcheck():
            return
        args = arg.split()
        if not args or len(args) > 3:
            self.output("Error: too few arguments" if not args else "Error: too many arguments")
            self.exitstatus = InitExit.GENERIC
            self._help("tail")
            return
        modifier = args.pop(0) if args[0].startswith("-") else None
        if len(args) == 1:
            name, channel = args[-1], "stdout"
        elif args:
            name, channel = args[0], args[-1].lower()
            if channel not in ("stderr", "stdout"):
                self.output(f"Error: bad channel {channel!r}")
                self.exitstatus = InitExit.GENERIC
                return
        else:
            self.output("Error: tail requires process name")
            self.exitstatus = InitExit.GENERIC
            return
        nbytes: int | None = TAIL_BYTES
        if modifier is not None:
            if modifier[1:] == "f":
                nbytes = None
            else:
                try:
                    nbytes = int(modifier[1:])
                except ValueError:
                    self.output(f"Error: bad argument {modifier}")
                    self.exitstatus = InitExit.GENERIC
                    return
        if nbytes is None:
            self._follow(f"/logtail/{name}/{channel}")
            return
        self._check_encoding()
        method = "readProcessStdoutLog" if channel == "stdout" else "readProcessStderrLog"
        try:
            text = self._rpc(method, name, -nbytes, 0)
        except RPCFault as exc:
            self.exitstatus = InitExit.GENERIC
            reasons: dict[int, str] = {
                Fault.NO_FILE: "no log file",
                Fault.FAILED: "unknown error reading log",
                Fault.BAD_NAME: "no such process name",
            }
            why = reasons.get(exc.code)
            if why is None:
                raise
            self.output(f"{name}: ERROR ({why})")
        else:
            self.output(text)

    def do_maintail(self, arg: str) -> None:
        if not self.upcheck():
            return
        args = arg.split()
        if len(args) > 1:
            self.output("Error: too many arguments")
            self.exitstatus = InitExit.GENERIC
            self._help("maintail")
            return
        nbytes = TAIL_BYTES
        if args:
            if not args[0].startswith("-"):
                self.output(f"Error: bad argument {args[0]}")
                self.exitstatus = InitExit.GENERIC
                return
            if args[0][1:] == "f":
                self._follow("/mainlogtail")
                return
            try:
                nbytes = int(args[0][1:])
            except ValueError:
                self.output(f"Error: bad argument {args[0]}")
                self.exitstatus = InitExit.GENERIC
                return
        try:
            text = self._rpc("readLog", -nbytes, 0)
        except RPCFault as exc:
            self.exitstatus = InitExit.GENERIC
            if exc.code == Fault.NO_FILE:
                self.output("supervisord: ERROR (no log file)")
            elif exc.code == Fault.FAILED:
                self.output("supervisord: ERROR (unknown error reading log)")
            else:
                raise
        else:
            self.output(text)

    # -- following

    def _follow(self, path: str) -> None:
        """``tail -f``/``maintail -f``: stream ``GET <path>`` until the server ends it or Ctrl-C.

        See the module docstring for what is printed and how it ends.

        Raises:
            Unreachable: the stream's connection failed as supervisorctl's fails at once.
        """
        self._check_encoding()
        self.output(FOLLOW_BANNER)
        # imported here: vigilctl starts without the HTTP client and threading
        from manager.ctl.stream import LogStream

        stream = LogStream(
            parse_server_url(client_url(self.serverurl)),
            path,
            url=self.serverurl,
            username=self.username,
            password=self.password,
            write=self._write_followed,
            error=self._stream_error,
            timeout=CONNECT_TIMEOUT,
        )
        try:
            self._out.flush()  # the banner before any stream error on stderr
            stream.run(raise_immediate=True)
        except KeyboardInterrupt:
            self.output("")
        except OSError as exc:
            raise Unreachable(stream.target.url, exc.strerror or str(exc)) from exc

    def _write_followed(self, text: str) -> None:
        try:
            self._write(text)
        except UnicodeEncodeError:  # as supervisorctl words it (its stream then ends)
            encoding = getattr(self._out, "encoding", None)
            raise ValueError(
                f"Unable to write Unicode to stdout because it has encoding {encoding}"
            ) from None

    def _stream_error(self, message: str) -> None:
        self._err.write(message + "\n")
        self._err.flush()
