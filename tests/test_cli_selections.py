"""`python -m core selection|suppress|audience`, run as real subprocesses on a real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.studio import Studio
from tests.conftest import ROOT, import_csv, write_csv

# Like conftest's CONTACTS_CSV, but four contacts live in Amsterdam (Anna, Eva, Hugo, Iris):
# a selection on the city meets a valid number, a foreign one, no number and a duplicate.
CSV = """customer_id,first_name,city,age,consent,mobile
1,Anna,Amsterdam,34,yes,06-12345678
2,Bram,Rotterdam,41,no,+31 6 1234 5679
3,Chloé,Utrecht,29,ja,0031612345680
4,Dirk,Gent,52,yes,+32 470 12 34 56
5,Eva,Amsterdam,38,yes,+49 151 23456789
6,Finn,Den Haag,45,yes,020-1234567
7,Gina,Leiden,23,yes,onbekend
8,Hugo,Amsterdam,31,yes,
9,Iris,Amsterdam,27,yes,06-12345678
"""


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "cli.duckdb"
    with Studio(path) as app:
        import_csv(app, write_csv(tmp_path, CSV), database="main", consent_yes=("yes", "ja"))
    return path


def cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SMS_STUDIO_BACKGROUND": "0"}
    return subprocess.run([sys.executable, "-m", "core", "--db", str(db), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("args", [
    ["selection", "--help"], ["selection", "create", "--help"], ["selection", "list", "--help"],
    ["selection", "delete", "--help"], ["suppress", "--help"], ["suppress", "add", "--help"],
    ["suppress", "remove", "--help"], ["suppress", "import", "--help"],
    ["suppress", "list", "--help"], ["audience", "--help"],
])
def test_every_command_has_help(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main

    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 0
    assert "usage: python -m core " + args[0] in capsys.readouterr().out


def test_help_runs_as_a_subprocess(db: Path) -> None:
    done = cli(db, "selection", "create", "--help")
    assert done.returncode == 0 and "--parent SELECTION" in done.stdout


def test_create_selections_and_mini_selections_then_list_them(db: Path) -> None:
    spec = json.dumps({"field": "city", "op": "eq", "value": "Amsterdam"})
    done = cli(db, "selection", "create", "adam", "--database", "main", "--spec", spec, "--sms")
    assert done.returncode == 0, done.stderr
    assert "'adam'" in done.stdout and "4 contacts" in done.stdout
    mini = json.dumps({"field": "age", "op": "ge", "value": 30})
    done = cli(db, "selection", "create", "adam-30", "--parent", "adam", "--spec", mini)
    assert done.returncode == 0, done.stderr

    listed = cli(db, "selection", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json_lines(listed.stdout)
    assert [r["name"] for r in rows] == ["adam", "adam-30"]
    assert set(rows[0]) == {"id", "name", "database", "parent", "sms_enabled", "usable",
                            "last_count", "counted_at", "depth"}
    assert rows[0]["usable"] is True and rows[0]["last_count"] == 4 and rows[0]["depth"] == 0
    assert rows[1]["parent"] == "adam" and rows[1]["depth"] == 1
    assert rows[1]["sms_enabled"] is False and rows[1]["usable"] is False
    assert rows[1]["last_count"] == 3

    table = cli(db, "selection", "list")
    assert table.returncode == 0 and "adam-30" in table.stdout and "└" in table.stdout


def test_bad_input_is_one_line_and_a_non_zero_exit(db: Path) -> None:
    bad_field = json.dumps({"field": "town", "op": "eq", "value": "Gent"})
    done = cli(db, "selection", "create", "x", "--database", "main", "--spec", bad_field)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1 and "town" in done.stderr and "field" in done.stderr
    done = cli(db, "selection", "create", "x", "--database", "main", "--spec", "{not json")
    assert done.returncode != 0 and "not valid JSON" in done.stderr
    assert done.stderr.count("\n") == 1
    done = cli(db, "selection", "create", "x", "--parent", "ghost", "--spec", "{}")
    assert done.returncode != 0 and "ghost" in done.stderr and done.stderr.count("\n") == 1
    done = cli(db, "audience", "--selection", "ghost")
    assert done.returncode != 0 and done.stderr.startswith("error: ")
    with Studio(db) as app:
        assert app.list_selections().empty


def test_delete_refuses_a_selection_with_mini_selections(db: Path) -> None:
    with Studio(db) as app:
        app.create_selection("top", spec={"all": []}, database="main")
        app.create_selection("low", spec={"all": []}, parent="top")
    done = cli(db, "selection", "delete", "top")
    assert done.returncode != 0 and "mini-selections (low)" in done.stderr
    done = cli(db, "selection", "delete", "low")
    assert done.returncode == 0 and "'low'" in done.stdout
    assert [r["name"] for r in json_lines(cli(db, "selection", "list", "--json").stdout)] == [
        "top"]


def test_audience_json_has_exactly_the_documented_shape(db: Path) -> None:
    done = cli(db, "audience", "--database", "main", "--json")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1
    assert json.loads(done.stdout) == {
        "steps": [
            {"step": "in_selection", "count": 9},
            {"step": "no_number", "count": 1},
            {"step": "invalid_number", "count": 1},
            {"step": "not_mobile", "count": 1},
            {"step": "no_consent", "count": 1},
            {"step": "suppressed", "count": 0},
            {"step": "duplicate_number", "count": 1},
        ],
        "recipients": 4,
        "by_country": {"NL": 2, "BE": 1, "DE": 1},
    }


def test_audience_of_a_selection_as_a_table_and_after_suppressing(db: Path) -> None:
    with Studio(db) as app:
        app.create_selection("adam", spec={"field": "city", "op": "eq", "value": "Amsterdam"},
                             database="main")
    done = cli(db, "audience", "--selection", "adam")
    assert done.returncode == 0, done.stderr
    for label in ("In selection", "No mobile number", "Invalid number", "Not a mobile number",
                  "No consent", "Suppressed", "Duplicate number (kept once)", "Recipients",
                  "Recipients per country"):
        assert label in done.stdout
    assert cli(db, "suppress", "add", "+49 151 23456789").returncode == 0
    data = json.loads(cli(db, "audience", "--selection", "adam", "--json").stdout)
    assert data["steps"][5] == {"step": "suppressed", "count": 1}
    assert data["recipients"] == 1 and data["by_country"] == {"NL": 1}


def test_suppress_normalises_numbers_before_storing_and_matching(db: Path,
                                                                 tmp_path: Path) -> None:
    done = cli(db, "suppress", "add", "06-12345678", "0031 6 1234 5679", "--reason", "bounced")
    assert done.returncode == 0, done.stderr
    assert "Added 2" in done.stdout
    again = cli(db, "suppress", "add", "+31 6 1234 5678", "0470 12 34 56", "--region", "BE")
    assert again.returncode == 0 and "Added 1, already suppressed 1" in again.stdout
    rows = json_lines(cli(db, "suppress", "list", "--json").stdout)
    assert {r["e164"] for r in rows} == {"+31612345678", "+31612345679", "+32470123456"}
    assert {r["reason"] for r in rows if r["e164"] != "+32470123456"} == {"bounced"}

    removed = cli(db, "suppress", "remove", "06 1234 5678")
    assert removed.returncode == 0 and "Removed 1" in removed.stdout

    numbers = tmp_path / "numbers.csv"
    numbers.write_text("mobile\n06-12345680\n+49 151 23456789\nnot a number\n", encoding="utf-8")
    imported = cli(db, "suppress", "import", str(numbers))
    assert imported.returncode == 0, imported.stderr
    assert "Added 2" in imported.stdout and "invalid 1" in imported.stdout
    listing = cli(db, "suppress", "list")
    assert listing.returncode == 0
    for number in ("+31612345679", "+32470123456", "+31612345680", "+4915123456789"):
        assert number in listing.stdout
    assert "+31612345678" not in listing.stdout


def test_suppress_reports_invalid_numbers_and_exits_non_zero(db: Path) -> None:
    done = cli(db, "suppress", "add", "onbekend")
    assert done.returncode != 0 and done.stderr.count("\n") == 1
    assert "onbekend" in done.stderr
    mixed = cli(db, "suppress", "add", "0612345678", "12")
    assert mixed.returncode == 1 and "Added 1" in mixed.stdout and "'12'" in mixed.stderr
