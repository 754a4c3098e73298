"""Statuses and transport failures become the contract's errors; the
native transport talks to a real local server."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from junction_guest import (
    Client,
    ConfigError,
    NotFound,
    Permanent,
    RateLimited,
    Response,
    Retryable,
    TransportError,
)


def answer(status, headers=(), body=b""):
    return Client("http://backend.test", transport=lambda r: Response(status, list(headers), body))


def test_success_passes_through_with_json():
    assert answer(200, body=b'{"a": 1}').get_json("/x") == {"a": 1}


@pytest.mark.parametrize(
    "status,headers,kind,seconds",
    [
        (429, [("Retry-After", "17")], RateLimited, 17),
        (429, [], RateLimited, 60),
        (503, [("retry-after", " 5 ")], Retryable, 5),
        (503, [], Retryable, 30),
        (500, [], Retryable, 30),
    ],
)
def test_throttling_and_server_errors_wait(status, headers, kind, seconds):
    with pytest.raises(kind) as e:
        answer(status, headers).get_json("/x")
    assert e.value.seconds == seconds
    assert e.value.message.startswith(f"HTTP {status}")


def test_client_errors():
    with pytest.raises(NotFound):
        answer(404).get_json("/x")
    with pytest.raises(ConfigError, match="credentials"):
        answer(401).get_json("/x")
    with pytest.raises(Permanent, match="sku is required"):
        answer(400, body=b'{"message": "sku is required"}').get_json("/x")


def test_retry_after_reads_http_dates():
    r = Response(429, [("Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT")])
    assert r.retry_after(now=784_111_777 - 10) == 10
    assert Response(429, [("Retry-After", "soon")]).retry_after() is None


def test_a_message_keeps_its_description():
    tryton = b'{"status": 400, "message": "A value is required.", "description": "sale line 3"}'
    assert Response(400, body=tryton).message() == "A value is required.: sale line 3"
    problem = b'{"title": "Out of stock", "detail": "MB-1 has 0 left"}'
    assert Response(409, body=problem).message() == "Out of stock: MB-1 has 0 left"
    assert Response(400, body=b'{"message": "same", "description": "same"}').message() == "same"


def test_long_messages_are_cut():
    r = Response(400, body=("x" * 1000).encode())
    assert len(r.message()) == 301


def test_transport_failures_are_told_apart():
    def denied(_request):
        raise TransportError("evil.example:443", "HttpRequestDenied", denied=True)

    with pytest.raises(ConfigError, match="evil.example.*allowlist"):
        Client("https://evil.example", transport=denied).get_json("/")

    def internal(_request):
        raise TransportError("10.0.0.5:80", "DestinationIpProhibited", denied=True)

    with pytest.raises(ConfigError, match="internal address.*allow_internal"):
        Client("http://10.0.0.5", transport=internal).get_json("/")

    def refused(_request):
        raise TransportError("shop:80", "ConnectionRefused")

    with pytest.raises(Retryable, match="shop:80"):
        Client("http://shop", transport=refused).get_json("/")


def test_not_json_is_permanent():
    with pytest.raises(Permanent, match="not JSON"):
        answer(200, body=b"<html>").get_json("/x")


class Echo(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        out = json.dumps(
            {"path": self.path, "type": self.headers["Content-Type"], "body": body.decode(), "auth": self.headers["Authorization"]}
        ).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def do_GET(self):
        self.send_response(429)
        self.send_header("Retry-After", "3")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = HTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_native_transport_against_a_real_server(server):
    client = Client(server, headers={"Authorization": "Bearer t"})
    got = client.post_json("/crm/v3/objects/contacts", {"properties": {"email": "a@b.c"}}, query={"x": "1 2"})
    assert got["path"] == "/crm/v3/objects/contacts?x=1+2"
    assert got["type"] == "application/json"
    assert json.loads(got["body"]) == {"properties": {"email": "a@b.c"}}
    assert got["auth"] == "Bearer t"
    form = client.request("POST", "/oauth", form={"grant_type": "client_credentials"}).json()
    assert form["body"] == "grant_type=client_credentials"
    with pytest.raises(RateLimited) as e:
        client.get_json("/anything")
    assert e.value.seconds == 3


def test_native_transport_connection_refused_is_retryable():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(Retryable, match=f"127.0.0.1:{port}"):
        Client(f"http://127.0.0.1:{port}").get_json("/")
