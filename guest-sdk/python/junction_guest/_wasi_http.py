"""Requests through `wasi:http/outgoing-handler`, inside a component.

Importable only where componentize-py's bindings exist (the `wit_world`
package); `http.default_transport` falls back to urllib elsewhere.
"""

from urllib.parse import urlsplit

from componentize_py_types import Err, Ok
from wit_world.imports import outgoing_handler, streams
from wit_world.imports import wasi_http_types as h

from .http import Request, Response, TransportError

_METHODS = {
    "GET": h.Method_Get(),
    "HEAD": h.Method_Head(),
    "POST": h.Method_Post(),
    "PUT": h.Method_Put(),
    "DELETE": h.Method_Delete(),
    "PATCH": h.Method_Patch(),
    "OPTIONS": h.Method_Options(),
}

# Codes by which the host says "not allowed", as opposed to "failed".
_DENIED = (h.ErrorCode_HttpRequestDenied, h.ErrorCode_DestinationIpProhibited, h.ErrorCode_DestinationIpUnroutable)


def _failure(host: str, code) -> TransportError:
    return TransportError(host, type(code).__name__.removeprefix("ErrorCode_"), isinstance(code, _DENIED))


def send(request: Request) -> Response:
    parts = urlsplit(request.url)
    host = parts.netloc
    if parts.scheme not in ("http", "https") or not host:
        raise TransportError(host or request.url, "invalid url: only absolute http and https urls are supported")
    headers = h.Fields.from_list([(k, v.encode()) for k, v in request.headers])
    outgoing = h.OutgoingRequest(headers)
    outgoing.set_method(_METHODS.get(request.method, h.Method_Other(request.method)))
    outgoing.set_scheme(h.Scheme_Https() if parts.scheme == "https" else h.Scheme_Http())
    outgoing.set_authority(host)
    path = parts.path or "/"
    outgoing.set_path_with_query(path + (f"?{parts.query}" if parts.query else ""))
    body = outgoing.body()
    try:
        future = outgoing_handler.handle(outgoing, None)
    except Err as e:
        raise _failure(host, e.value) from None
    if request.body:
        stream = body.write()
        data = request.body
        try:
            # blocking_write_and_flush takes at most 4096 bytes a call.
            for i in range(0, len(data), 4096):
                stream.blocking_write_and_flush(data[i : i + 4096])
        except Err as e:
            # The connection went away mid-body: a failed request, not a bug.
            stream.__exit__(None, None, None)
            body.__exit__(None, None, None)
            future.__exit__(None, None, None)
            raise TransportError(host, f"sending the request body failed ({type(e.value).__name__})") from None
        stream.__exit__(None, None, None)
    h.OutgoingBody.finish(body, None)
    future.subscribe().block()
    answer = future.get()
    if answer is None or isinstance(answer, Err):
        raise TransportError(host, "the response was lost")
    inner = answer.value
    if isinstance(inner, Err):
        raise _failure(host, inner.value)
    response = inner.value if isinstance(inner, Ok) else inner
    status = response.status()
    response_headers = [(k, v.decode("latin-1")) for k, v in response.headers().entries()]
    incoming = response.consume()
    stream = incoming.stream()
    chunks = []
    while True:
        try:
            chunks.append(stream.blocking_read(65536))
        except Err as e:
            if isinstance(e.value, streams.StreamError_Closed):
                break
            code = h.http_error_code(e.value.value)
            if code is None:
                raise TransportError(host, "reading the response failed") from None
            raise _failure(host, code) from None
    stream.__exit__(None, None, None)
    return Response(status, response_headers, b"".join(chunks))
