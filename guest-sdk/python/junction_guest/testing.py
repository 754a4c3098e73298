"""The host's imports, in memory, so units run natively under pytest.

`FakeHost` records what a unit did (log lines, bindings, jobs, state) and
answers from what a test put in. Its methods and properties are exactly
those of the host a unit gets inside the sandbox
(`junction_guest.component.SandboxHost`; `tests/test_parity.py` fails when
they diverge); the fields in `INSPECTION` are for tests to read and set,
and a unit must not touch them: the real host has none of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional


#: FakeHost's fields for tests only; the sandbox's host has none of them.
INSPECTION = ("bindings", "records", "state", "jobs", "logs")


@dataclass
class FakeHost:
    name: str = "test-backend"
    kind: str = "test"
    version: str = "1.0.0"
    base_url: str = "http://127.0.0.1"
    settings: dict[str, Any] = field(default_factory=dict)
    bindings: dict[tuple[str, str], str] = field(default_factory=dict)
    records: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    state: dict[str, str] = field(default_factory=dict)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    logs: list[tuple[str, str]] = field(default_factory=list)

    def bind(self, model: str, external_id: str, local_id: str, sync_date: Optional[str] = None) -> None:
        self.bindings[(model, external_id)] = local_id

    def to_local(self, model: str, external_id: str) -> Optional[str]:
        return self.bindings.get((model, external_id))

    def to_external(self, model: str, local_id: str) -> Optional[str]:
        return next((e for (m, e), l in self.bindings.items() if m == model and l == local_id), None)

    def record(self, model: str, local_id: str) -> Optional[dict[str, Any]]:
        return self.records.get((model, local_id))

    def get_state(self, key: str) -> Optional[str]:
        return self.state.get(key)

    def set_state(self, key: str, value: str) -> None:
        self.state[key] = value

    def enqueue(self, function: str, args: dict[str, Any], **options: Any) -> str:
        self.jobs.append({"function": function, "args": json.loads(json.dumps(args)), **options})
        return str(len(self.jobs))

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))


class ScriptedTransport:
    """A fake HTTP transport for native adapter tests: answers requests in
    order from `(status, json_body[, headers])` tuples and keeps what was
    sent. Pass it as an adapter's (or `Client`'s) `transport`. A request
    past the script fails the test, naming it."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.sent = []

    def __call__(self, request):
        from .http import Response

        self.sent.append(request)
        if not self.answers:
            raise AssertionError(f"unexpected request {request.method} {request.url}: the script is used up")
        status, body, *headers = self.answers.pop(0)
        data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
        return Response(status, list(headers[0]) if headers else [], data)

    def header(self, i: int, name: str) -> Optional[str]:
        """Header `name` of the `i`-th request sent."""
        return dict((k.lower(), v) for k, v in self.sent[i].headers).get(name.lower())

    def body(self, i: int) -> Any:
        """The `i`-th request's body as JSON."""
        return json.loads(self.sent[i].body)
