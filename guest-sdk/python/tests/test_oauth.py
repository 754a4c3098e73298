"""OAuth2 client credentials: the token is fetched once, kept in state
until shortly before it expires, renewed once on a 401."""

import json

import pytest

from junction_guest.errors import ConfigError
from junction_guest.oauth import TOKEN_MARGIN_SECONDS, TOKEN_STATE, OAuthClient
from junction_guest.testing import FakeHost, ScriptedTransport

TOKEN = (200, {"access_token": "tok-1", "expires_in": 1800})


def client(script, host, now=1000.0, **kw):
    return OAuthClient(host, "/oauth/token", transport=script, clock=lambda: now, **kw)


def test_the_token_is_fetched_once_and_kept_in_state():
    host = FakeHost()
    script = ScriptedTransport(TOKEN, (200, {"n": 1}), (200, {"n": 2}))
    assert client(script, host).json("GET", "/a") == {"n": 1}
    # Another call (a fresh instance in the sandbox) reuses the kept token.
    assert client(script, host).json("GET", "/b") == {"n": 2}
    assert [r.url for r in script.sent] == [
        "http://127.0.0.1/oauth/token",
        "http://127.0.0.1/a",
        "http://127.0.0.1/b",
    ]
    # The token request carries no Authorization: the host adds the client's.
    assert script.header(0, "authorization") is None
    assert script.sent[0].body == b"grant_type=client_credentials"
    assert script.header(2, "authorization") == "Bearer tok-1"
    saved = json.loads(host.state[TOKEN_STATE])
    assert saved == {"token": "tok-1", "expires": 1000 + 1800 - TOKEN_MARGIN_SECONDS}


def test_an_expired_token_is_renewed_before_the_request():
    host = FakeHost(state={TOKEN_STATE: json.dumps({"token": "old", "expires": 999})})
    script = ScriptedTransport(TOKEN, (200, {}))
    client(script, host, scope="crm.read").json("GET", "/a")
    assert script.sent[0].body == b"grant_type=client_credentials&scope=crm.read"
    assert script.header(1, "authorization") == "Bearer tok-1"


def test_a_refused_token_is_renewed_once_then_the_refusal_stands():
    host = FakeHost(state={TOKEN_STATE: json.dumps({"token": "revoked", "expires": 5000})})
    refused = (401, {"message": "expired"})
    script = ScriptedTransport(refused, (200, {"access_token": "tok-2", "expires_in": 60}), (200, {"ok": 1}))
    assert client(script, host).json("GET", "/a") == {"ok": 1}
    assert script.header(2, "authorization") == "Bearer tok-2"
    assert any("new one" in m for _, m in host.logs)
    script = ScriptedTransport(refused, TOKEN, refused)
    with pytest.raises(ConfigError):
        client(script, FakeHost(state={TOKEN_STATE: json.dumps({"token": "x", "expires": 5000})})).json("GET", "/a")
    assert len(script.sent) == 3


def test_a_token_answer_without_a_token_is_a_config_error():
    script = ScriptedTransport((200, {"token_type": "bearer"}))
    with pytest.raises(ConfigError, match="without an access_token"):
        client(script, FakeHost()).json("GET", "/a")


def test_the_scripted_transport_names_an_unexpected_request():
    script = ScriptedTransport()
    with pytest.raises(AssertionError, match="unexpected request GET http://127.0.0.1/a"):
        client(script, FakeHost(state={TOKEN_STATE: json.dumps({"token": "t", "expires": 5000})})).json("GET", "/a")
