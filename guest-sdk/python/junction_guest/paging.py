"""Search helpers for cursor-paged APIs: the host calls `search` once per
page and passes back the cursor the previous page returned.

    found = api.json("POST", "/crm/v3/objects/deals/search", body={"limit": page_size(wanted, 200), ...})
    return cursor_page(found, to_record)
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from .errors import Permanent
from .units import RemoteRecord


def page_size(wanted: int, maximum: int) -> int:
    """The host's page size, within 1 and the backend's `maximum`."""
    return max(1, min(int(wanted), maximum))


def cursor_page(
    answer: Any,
    record: Callable[[Any], RemoteRecord],
    *,
    items: str = "results",
    next_cursor: Sequence[str] = ("paging", "next", "after"),
) -> tuple[list[RemoteRecord], Optional[str]]:
    """One page of a cursor-paged answer: its `items` made records by
    `record`, and the cursor at the `next_cursor` path (None on the last
    page). An answer of another shape is a permanent error naming it."""
    if not isinstance(answer, dict):
        raise Permanent(f"the search answered {type(answer).__name__}, not an object with {items!r}")
    found = answer.get(items, [])
    if not isinstance(found, list):
        raise Permanent(f"the search answer's {items!r} is not a list")
    cursor: Any = answer
    for key in next_cursor:
        cursor = cursor.get(key) if isinstance(cursor, dict) else None
    return [record(o) for o in found], (None if cursor is None else str(cursor))
