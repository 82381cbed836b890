"""HTTP Basic authentication for vigild's HTTP servers (supervisord's medusa ``auth_handler``).

Theory of operation
-------------------
One :class:`Credentials` per ``[unix_http_server]`` / ``[inet_http_server]`` section
that sets ``username``. When a server has credentials, every request, whatever its
path, must carry an ``Authorization: Basic ...`` header that :meth:`Credentials.authorizes`;
otherwise the connection answers ``401`` with :data:`UNAUTHORIZED_HEADERS` and
closes. Usernames and passwords are compared with :func:`hmac.compare_digest`, both
of them always, so the time taken does not tell which one (or where) they differ.
Pure: no I/O, no logging.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

__all__ = ["UNAUTHORIZED_HEADERS", "Credentials"]

#: the challenge sent with every ``401`` (supervisord's realm)
UNAUTHORIZED_HEADERS = (("WWW-Authenticate", 'Basic realm="default"'),)


@dataclass(frozen=True)
class Credentials:
    """``username`` / ``password`` of one server section.

    ``password`` may be ``{SHA}`` followed by the hex SHA-1 of the password;
    clients always send the password itself (reference §4.9).
    """

    username: str
    password: str = field(repr=False)

    def check(self, username: str, password: str) -> bool:
        """Whether the pair matches, in time independent of where they differ."""
        # imported here: hashlib loads OpenSSL (~2 MB of RSS), which a daemon without
        # credentials never needs
        import hashlib
        import hmac

        stored = self.password
        if stored.startswith("{SHA}"):
            given = hashlib.sha1(password.encode("utf-8")).hexdigest().encode("ascii")
            expected = stored[5:].strip().lower().encode("utf-8")
        else:
            given = password.encode("utf-8")
            expected = stored.encode("utf-8")
        # both comparisons always run, so the time does not tell which one failed
        user_ok = hmac.compare_digest(username.encode("utf-8"), self.username.encode("utf-8"))
        password_ok = hmac.compare_digest(given, expected)
        return user_ok & password_ok

    def authorizes(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value carries these credentials."""
        if authorization is None:
            return False
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        username, sep, password = decoded.partition(":")
        return bool(sep) and self.check(username, password)
