"""The global suppression list: normalised numbers, add/remove/import, and its log."""

from __future__ import annotations

import pytest


def test_numbers_in_any_format_are_one_entry(studio):
    result = studio.suppress(["06-12345678", "+31 6 1234 5678", "0031612345678", "onbekend"])
    assert result.added == ["+31612345678"]
    assert [raw for raw, _ in result.invalid] == ["onbekend"]
    assert studio.suppression_count() == 1
    again = studio.suppress(["0612345678"])
    assert again.already == ["+31612345678"] and not again.added
    assert studio.is_suppressed("+31612345678")


def test_remove_and_the_start_rule(studio):
    studio.suppress(["0612345678"], reason="stop_reply", source="reply")
    studio.suppress(["0612345679"], reason="manual")
    # START lifts only a STOP suppression, never a manual block
    result = studio.unsuppress(["0612345678", "0612345679"], only_reason="stop_reply")
    assert result.removed == ["+31612345678"] and result.not_found == ["+31612345679"]
    assert not studio.is_suppressed("0612345678") and studio.is_suppressed("0612345679")
    log = studio.storage.df("SELECT e164, action FROM suppression_log ORDER BY ts, action")
    assert list(log["action"]) == ["add", "add", "remove"]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("list.txt", "0612345678\n+32 470 12 34 56\nnot a number\n"),
        ("list.csv", "mobile,reason\n0612345678,x\n+32470123456,y\n"),
    ],
)
def test_import_a_list(studio, tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    result = studio.import_suppressions(path)
    assert sorted(result.added) == ["+31612345678", "+32470123456"]
    listed = studio.list_suppressions()
    assert set(listed["reason"]) == {"imported"}


def test_search_finds_a_suppressed_number(studio):
    studio.suppress(["0612345678", "0612345699"])
    assert list(studio.list_suppressions("5699")["e164"]) == ["+31612345699"]
