"""Mapping helpers in the spirit of OCA's `Mapper`, as the Rust SDK has them:
direct copies, converters, relations through the binder, children (order
lines), fields only on create, constants, and on export of an update only
the fields that changed (OCA's `@changed_by`).

Records are plain dicts, so mappers run and are unit-tested natively with
pytest; inside a component the binder is the host's. Source fields may be
dotted paths (`properties.email`) for nested objects.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional, Protocol

from .errors import ConnectorError, Permanent, Retryable

IMPORT = "import"
EXPORT = "export"

_MISSING = object()


class Binder(Protocol):
    """External id ↔ local id, as the host's `binder` import provides it."""

    def to_local(self, model: str, external_id: str) -> Optional[str]: ...

    def to_external(self, model: str, local_id: str) -> Optional[str]: ...


def _get(source: dict, path: str) -> Any:
    value: Any = source
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


class Mapping:
    """Builds one output record from one source record."""

    def __init__(self, source: Any):
        if not isinstance(source, dict):
            raise Permanent("a record to map must be a JSON object")
        self.source = source
        self.out: dict[str, Any] = {}
        self.creating = True
        self.changed: Optional[set[str]] = None
        self._binder: Optional[Binder] = None
        self._direction = IMPORT
        self._problem: Optional[ConnectorError] = None

    def update(self, changed: Optional[Iterable[str]] = None) -> "Mapping":
        """An update: `on_create` fields are skipped, and with `changed` only
        fields whose source (first path segment) changed are mapped."""
        self.creating = False
        self.changed = None if changed is None else set(changed)
        return self

    def binder(self, binder: Binder, direction: str = IMPORT) -> "Mapping":
        if direction not in (IMPORT, EXPORT):
            raise ValueError(f"direction must be {IMPORT!r} or {EXPORT!r}, not {direction!r}")
        self._binder, self._direction = binder, direction
        return self

    def _fail(self, error: ConnectorError) -> None:
        if self._problem is None:
            self._problem = error

    def _wanted(self, path: str) -> bool:
        return self.changed is None or path.split(".")[0] in self.changed

    def convert(self, source: str, to: str, f: Callable[[Any], Any]) -> "Mapping":
        """Copy `source` to `to` through `f` (absent stays absent)."""
        if self._wanted(source):
            value = _get(self.source, source)
            if value is not _MISSING:
                try:
                    self.out[to] = f(value)
                except ConnectorError as e:
                    self._fail(e)
                except (TypeError, ValueError) as e:
                    self._fail(Permanent(f"field {source}: {e}"))
        return self

    def direct(self, source: str, to: str) -> "Mapping":
        return self.convert(source, to, lambda v: v)

    def on_create(self, source: str, to: str) -> "Mapping":
        """Like `direct`, but only when creating."""
        return self.direct(source, to) if self.creating else self

    def constant(self, to: str, value: Any) -> "Mapping":
        if self.creating or self.changed is None:
            self.out[to] = value
        return self

    def relation(self, source: str, to: str, model: str) -> "Mapping":
        """Map an id of a `model` record through the binder. A missing
        binding is retryable: the related record is not synced yet."""
        if not self._wanted(source):
            return self
        value = _get(self.source, source)
        if value is _MISSING or value is None or value == "":
            return self
        if self._binder is None:
            self._fail(Permanent(f"relation {source}: no binder given to the mapping"))
            return self
        key = value if isinstance(value, str) else str(value)
        found = (
            self._binder.to_local(model, key)
            if self._direction == IMPORT
            else self._binder.to_external(model, key)
        )
        if found is None:
            self._fail(Retryable(f"{model} {key} is not bound yet"))
        else:
            self.out[to] = found
        return self

    def children(self, source: str, to: str, child: Callable[["Mapping"], "Mapping"]) -> "Mapping":
        """Map each element of the list `source` with `child` into `to`."""
        if not self._wanted(source):
            return self
        items = _get(self.source, source)
        if items is _MISSING or items is None:
            return self
        if not isinstance(items, list):
            self._fail(Permanent(f"{source} is not a list"))
            return self
        mapped = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                self._fail(Permanent(f"{source}[{i}] is not an object"))
                return self
            inner = Mapping(item)
            inner._binder, inner._direction = self._binder, self._direction
            try:
                mapped.append(child(inner).finish())
            except ConnectorError as e:
                self._fail(e)
                return self
        self.out[to] = mapped
        return self

    def finish(self) -> dict[str, Any]:
        """The mapped record, or the first error met on the way."""
        if self._problem is not None:
            raise self._problem
        return self.out
