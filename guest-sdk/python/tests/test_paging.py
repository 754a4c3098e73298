import pytest

from junction_guest.errors import Permanent
from junction_guest.paging import cursor_page, page_size
from junction_guest.units import RemoteRecord


def rec(o):
    return RemoteRecord(str(o["id"]), o)


def test_a_page_gives_its_records_and_the_next_cursor():
    records, after = cursor_page({"results": [{"id": 1}, {"id": 2}], "paging": {"next": {"after": 2}}}, rec)
    assert [r.external_id for r in records] == ["1", "2"]
    assert after == "2"


def test_the_last_page_has_no_cursor_and_other_shapes_are_named():
    assert cursor_page({"results": []}, rec) == ([], None)
    assert cursor_page({"data": [{"id": 3}], "next": "n"}, rec, items="data", next_cursor=["next"])[1] == "n"
    with pytest.raises(Permanent, match="NoneType"):
        cursor_page(None, rec)
    with pytest.raises(Permanent, match="not a list"):
        cursor_page({"results": {"id": 1}}, rec)


def test_the_page_size_stays_within_the_backends_maximum():
    assert (page_size(500, 200), page_size(0, 200), page_size(25, 200)) == (200, 1, 25)
