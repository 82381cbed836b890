"""HTTP Basic credentials: plain and ``{SHA}`` passwords, ``Authorization`` header parsing."""

from __future__ import annotations

import base64
import hashlib

from manager.httpauth import UNAUTHORIZED_HEADERS, Credentials
from tests.support.net import basic_authorization as basic


def test_credentials_plain_and_sha() -> None:
    plain = Credentials("user", "thepassword")
    assert plain.check("user", "thepassword")
    assert not plain.check("user", "wrong")
    assert not plain.check("other", "thepassword")
    sha = Credentials("user", "{SHA}82ab876d1387bfafe46cc1c8a2ef074eae50cb1d")
    assert sha.check("user", "thepassword")
    assert not sha.check("user", "{SHA}82ab876d1387bfafe46cc1c8a2ef074eae50cb1d")
    assert sha.authorizes(basic("user", "thepassword"))
    assert not sha.authorizes(None)
    assert not sha.authorizes("Basic !!!notbase64")
    assert not sha.authorizes("Digest abc")
    assert not sha.authorizes("Basic " + base64.b64encode(b"nocolon").decode())
    assert plain.authorizes(basic("user", "thepassword"))


def test_sha_password_is_compared_case_insensitively_and_trimmed() -> None:
    digest = hashlib.sha1(b"s3cret").hexdigest().upper()
    assert Credentials("user", "{SHA} " + digest + " ").check("user", "s3cret")


def test_authorization_header_parsing() -> None:
    creds = Credentials("user", "pa:ss wörd")
    assert creds.authorizes(basic("user", "pa:ss wörd"))  # only the first colon splits
    assert creds.authorizes("  basic " + basic("user", "pa:ss wörd")[6:] + " ")
    assert not creds.authorizes("Basic " + base64.b64encode(b"user:\xff").decode())
    assert not creds.authorizes("")


def test_password_is_not_in_the_repr() -> None:
    assert "hunter2" not in repr(Credentials("user", "hunter2"))


def test_unauthorized_challenge_is_supervisords_realm() -> None:
    assert UNAUTHORIZED_HEADERS == (("WWW-Authenticate", 'Basic realm="default"'),)
