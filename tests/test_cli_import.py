"""`python -m core import`, run as a user would, in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, db: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", "--db", str(db), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_import_prints_the_report(tmp_path, contacts_csv):
    db = tmp_path / "cli.duckdb"
    result = cli("import", str(contacts_csv), "--database", "klanten", "--key-field",
                 "customer_id", "--consent-field", "consent", "--consent-yes", "yes,ja",
                 "--region", "NL", db=db)
    assert result.returncode == 0, result.stderr
    assert "valid mobile" in result.stdout and "inserted" in result.stdout
    result = cli("import", str(contacts_csv), "--database", "klanten", "--json", db=db)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["updated"] == 9 and report["inserted"] == 0
    assert report["status_counts"]["valid_mobile"] == 6


def test_errors_are_one_line_and_non_zero(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    result = cli("import", str(empty), "--database", "x", db=tmp_path / "e.duckdb")
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "0 bytes" in result.stderr
    missing = cli("import", str(tmp_path / "nope.csv"), "--database", "x",
                  db=tmp_path / "e.duckdb")
    assert missing.returncode != 0 and "Cannot open" in missing.stderr


def test_every_command_has_help(tmp_path):
    result = cli("import", "--help", db=tmp_path / "h.duckdb")
    assert result.returncode == 0 and "--mobile-field" in result.stdout
