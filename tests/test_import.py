"""Importing contacts: every file format, every malformed case, update by key."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.errors import InvalidInput
from core.importer import FileReadError, guess_mobile_field, read_contacts_file
from tests.conftest import CONTACTS_CSV


def table_of(studio, name: str) -> pd.DataFrame:
    info = studio.get_database(name)
    return studio.storage.df(f'SELECT * FROM "{info.table}" ORDER BY _row_id')


def test_csv_import_normalises_numbers_and_reports_statuses(studio, contacts_csv):
    report = studio.import_contacts(
        contacts_csv, database="klanten", key_field="customer_id",
        consent_field="consent", consent_yes=["yes", "ja"], region="NL",
    )
    assert report.rows == 9 and report.inserted == 9 and report.updated == 0
    assert report.mobile_field == "mobile"  # guessed from the header
    assert report.status_counts == {"valid_mobile": 6, "not_mobile": 1, "invalid": 1,
                                    "missing": 1}
    assert report.country_counts["NL"] == 5
    assert report.duplicate_numbers == 1 and report.duplicate_contacts == 2
    rows = table_of(studio, "klanten")
    assert rows.loc[0, "_e164"] == "+31612345678"
    assert rows.loc[3, "_country"] == "BE"
    assert rows.loc[5, "_phone_status"] == "not_mobile"
    assert rows.loc[6, "_phone_status"] == "invalid" and rows.loc[6, "_phone_reason"]
    assert rows.loc[7, "_phone_status"] == "missing"
    # nothing the user uploaded is lost: bad rows are stored, flagged
    assert len(rows) == 9
    assert rows.loc[2, "first_name"] == "Chloé"


def test_phone_like_columns_keep_leading_zeros_and_other_columns_get_types(studio, tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("id,telefoon,postcode,score,born\n007,0612345678,0123,1.5,1990-01-31\n"
                    "008,0612345679,1234,2.0,1985-12-01\n", encoding="utf-8")
    studio.import_contacts(path, database="d", key_field="id")
    info = studio.get_database("d")
    assert info.columns["telefoon"] == "VARCHAR"
    assert info.columns["postcode"] == "VARCHAR"  # "0123": a leading zero is data
    assert info.columns["id"] == "VARCHAR"
    assert info.columns["score"] == "DOUBLE"
    assert info.columns["born"] == "DATE"
    rows = table_of(studio, "d")
    assert list(rows["telefoon"]) == ["0612345678", "0612345679"]
    assert list(rows["id"]) == ["007", "008"]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_any_delimiter(studio, tmp_path, delimiter):
    path = tmp_path / "c.csv"
    path.write_text(CONTACTS_CSV.replace(",", delimiter), encoding="utf-8")
    assert studio.import_contacts(path, database="d").rows == 9


def test_utf8_bom_and_cp1252_and_quoted_newlines(studio, tmp_path):
    text = 'naam;mobiel;notitie\n"Zoë";0612345678;"twee\nregels"\nRenée;0612345679;x\n'
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    report = studio.import_contacts(bom, database="bom")
    assert report.encoding == "utf-8"
    rows = table_of(studio, "bom")
    assert list(rows.columns[:3]) == ["_row_id", "naam", "mobiel"]  # BOM not in the header
    assert rows.loc[0, "notitie"] == "twee\nregels"
    latin = tmp_path / "latin.csv"
    latin.write_bytes(text.encode("cp1252"))
    report = studio.import_contacts(latin, database="latin")
    assert report.encoding == "cp1252"
    assert table_of(studio, "latin").loc[1, "naam"] == "Renée"


def test_excel_and_parquet(studio, tmp_path):
    frame = pd.read_csv(io.StringIO(CONTACTS_CSV), dtype=str, keep_default_na=False)
    xlsx = tmp_path / "c.xlsx"
    frame.to_excel(xlsx, index=False)
    assert studio.import_contacts(xlsx, database="x").status_counts["valid_mobile"] == 6
    parquet = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), parquet)
    assert studio.import_contacts(parquet, database="p").status_counts["valid_mobile"] == 6


def test_parquet_with_numeric_phone_column_keeps_digits(tmp_path):
    path = tmp_path / "n.parquet"
    pq.write_table(pa.table({"mobile": [31612345678.0, None], "n": [1, 2]}), path)
    read = read_contacts_file(path)
    assert read.table["mobile"].to_pylist() == ["31612345678", ""]


def test_update_by_key_updates_and_inserts(studio, tmp_path, contacts_csv):
    studio.import_contacts(contacts_csv, database="k", key_field="customer_id")
    second = tmp_path / "second.csv"
    second.write_text("customer_id,first_name,mobile,segment\n1,Anna-Maria,0612345699,gold\n"
                      "10,Jan,0612345698,silver\n", encoding="utf-8")
    report = studio.import_contacts(second, database="k")  # key field remembered
    assert (report.inserted, report.updated) == (1, 1)
    rows = table_of(studio, "k")
    assert len(rows) == 10
    anna = rows[rows["customer_id"].astype(str) == "1"].iloc[0]
    assert anna["first_name"] == "Anna-Maria"
    assert anna["_e164"] == "+31612345699"
    assert anna["city"] == "Amsterdam"  # a column absent from the new file keeps its value
    assert anna["segment"] == "gold"  # a new column is added


def test_duplicate_keys_in_one_file_keep_the_last_row(studio, tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,mobile\n1,0612345678\n1,0612345679\n2,0612345670\n", encoding="utf-8")
    report = studio.import_contacts(path, database="d", key_field="id")
    assert report.duplicate_keys_in_file == 1 and report.rows == 2
    assert report.warnings


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "0 bytes"),
        (b"first_name,mobile\n", "no rows"),
        (b"\x00\x01\x02\x03binary\x00junk" * 50, "binary"),
        (b"   \n\n  \n", "blank"),
        (b"name,mobile\nAnna,0612345678\nBram,0612345679,extra,fields\n", "line 3"),
    ],
    ids=["empty", "header-only", "binary", "blank", "ragged"],
)
def test_malformed_files_write_nothing_and_say_why(studio, tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(FileReadError, match=message):
        studio.import_contacts(path, database="bad")
    assert studio.database_names() == []


def test_zero_byte_upload(studio):
    with pytest.raises(FileReadError, match="0 bytes"):
        studio.import_contacts(b"", file_name="upload.csv", database="bad")


def test_a_failed_reimport_leaves_the_database_unchanged(studio, tmp_path, contacts_csv):
    studio.import_contacts(contacts_csv, database="keep", key_field="customer_id")
    before = table_of(studio, "keep")
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,first_name\n1,X\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="mobile"):
        studio.import_contacts(bad, database="keep", mobile_field="telefoon")
    pd.testing.assert_frame_equal(before, table_of(studio, "keep"))


def test_file_with_no_valid_number_is_stored_with_a_warning(studio, tmp_path):
    path = tmp_path / "none.csv"
    path.write_text("name,mobile\nA,onbekend\nB,n.v.t.\nC,06-123\n", encoding="utf-8")
    report = studio.import_contacts(path, database="none")
    assert report.status_counts["invalid"] == 3
    assert any("No row has a valid mobile number" in w for w in report.warnings)


def test_unknown_region_is_refused(studio, contacts_csv):
    with pytest.raises(InvalidInput, match="XX"):
        studio.import_contacts(contacts_csv, database="r", region="XX")
    assert studio.database_names() == []


def test_mobile_field_guess():
    assert guess_mobile_field(["naam", "Mobiel nummer", "stad"]) == "Mobiel nummer"
    assert guess_mobile_field(["name", "GSM"]) == "GSM"
    assert guess_mobile_field(["name", "msisdn"]) == "msisdn"
    assert guess_mobile_field(["name", "city"]) is None


def test_browse_pages_and_searches_by_number(studio, contacts_csv):
    studio.import_contacts(contacts_csv, database="b", key_field="customer_id")
    page, total = studio.browse_contacts("b", page=0, page_size=4)
    assert total == 9 and len(page) == 4
    found, total = studio.browse_contacts("b", search="+31 6 1234 5678")
    assert total == 2  # Anna and Iris share the number
    found, total = studio.browse_contacts("b", search="utrecht")
    assert total == 1 and found.iloc[0]["first_name"] == "Chloé"


def test_suppressed_contacts_are_marked_when_browsing(studio, contacts_csv):
    studio.import_contacts(contacts_csv, database="s")
    studio.suppress(["0612345678"], reason="manual")
    page, _ = studio.browse_contacts("s", page_size=10)
    marked = page[page["_suppressed"].notna()]
    assert sorted(marked["first_name"]) == ["Anna", "Iris"]


def test_unsendable_contacts_have_reasons(studio, contacts_csv):
    studio.import_contacts(contacts_csv, database="u")
    frame = studio.unsendable_contacts("u")
    assert sorted(frame["first_name"]) == ["Finn", "Gina", "Hugo"]
    assert frame["reason"].str.len().min() > 0


def test_opt_in_rule_and_default_destination(studio, contacts_csv):
    studio.import_contacts(contacts_csv, database="o", key_field="customer_id")
    studio.set_opt_in_rule("o", "consent", ["yes"])
    assert studio.get_database("o").consent_values == ["yes"]
    with pytest.raises(InvalidInput):
        studio.set_opt_in_rule("o", "nope", ["yes"])
    studio.set_default_destination("o", contact_key="4")
    assert studio.default_destination("o")["_e164"] == "+32470123456"
    with pytest.raises(InvalidInput):
        studio.set_default_destination("o", contact_key="6")  # a landline
    studio.set_default_destination("o", number="06 2345 6789")
    assert studio.default_destination("o")["_e164"] == "+31623456789"


def test_demo_file_imports(studio):
    demo = Path(__file__).resolve().parent.parent / "data" / "demo" / "contacts.csv"
    if not demo.exists():
        import subprocess
        import sys

        subprocess.run([sys.executable, "scripts/make_demo_data.py"], check=True,
                       cwd=demo.parent.parent.parent)
    report = studio.import_contacts(demo, database="demo", key_field="customer_id")
    assert report.rows == 10_000
    assert all(report.status_counts[s] > 0 for s in report.status_counts)
    assert report.duplicate_numbers > 0
