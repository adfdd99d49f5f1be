"""Selections and the audience reconciliation on a large contact database.

Targets: on 1,000,000 contacts, the count and the full reconciliation of a selection with
five conditions in at most 1 second; a mini-selection three levels deep in at most 1.5
seconds. The pandas filter (`core.selections.filter_frame`, the oracle) is timed beside it.

The database is built synthetically in SQL (a small import creates the table, then one
INSERT … SELECT FROM range(n) fills it), so the bench measures selections, not the importer.

    .venv/bin/python bench/bench_selections.py [--quick] [--rows N] [--keep PATH]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _timing import best_of  # noqa: E402

from core import selections  # noqa: E402
from core.storage import quote_ident  # noqa: E402
from core.studio import Studio  # noqa: E402

SEED_CSV = (
    "customer_id,first_name,city,age,consent,signup,mobile\n"
    "1,Anna,Amsterdam,34,yes,2024-05-01,06-12345678\n"
)
CITIES = ["Amsterdam", "Rotterdam", "Utrecht", "Den Haag", "Eindhoven", "Groningen", "Tilburg",
          "Almere", "Breda", "Nijmegen", "Gent", "Antwerpen", "Berlin", "Köln", "Leiden"]
NAMES = ["Anna", "Bram", "Chloé", "Dirk", "Eva", "Finn", "Gina", "Hugo", "Iris", "Jan",
         "Karin", "Lars", "Maud", "Niels", "Olga", "Piet", "Roos", "Sem", "Tess", "Victor"]

FIVE = {"all": [
    {"field": "age", "op": "between", "value": [25, 70]},
    {"field": "city", "op": "in", "value": ["Amsterdam", "Rotterdam", "Utrecht", "Den Haag",
                                            "Leiden", "Gent"]},
    {"field": "first_name", "op": "not_empty"},
    {"field": "signup", "op": "ge", "value": "2019-01-01"},
    {"any": [{"field": "_country", "op": "eq", "value": "NL"},
             {"field": "first_name", "op": "starts_with", "value": "a"}]},
]}
CHAIN = [
    {"field": "age", "op": "ge", "value": 21},
    {"all": [{"field": "city", "op": "ne", "value": "Berlin"},
             {"field": "signup", "op": "ge", "value": "2018-01-01"}]},
    {"field": "first_name", "op": "contains", "value": "a"},
    {"field": "_country", "op": "in", "value": ["NL", "BE"]},
]


def build(studio: Studio, rows: int, workdir: Path) -> None:
    """A small import creates the database; SQL fills it with `rows` synthetic contacts."""
    seed = workdir / "seed.csv"
    seed.write_text(SEED_CSV, encoding="utf-8")
    studio.import_contacts(seed, database="big", key_field="customer_id",
                           consent_field="consent", consent_yes=["yes", "ja"], region="NL")
    info = studio.get_database("big")
    table = quote_ident(info.table)
    cities = "[" + ", ".join(f"'{c}'" for c in CITIES) + "]"
    names = "[" + ", ".join(f"'{n}'" for n in NAMES) + "]"
    # Phone mix: ~88% valid mobile (5% of them shared by two contacts), 4% missing,
    # 3% invalid, 5% fixed line; consent yes for ~80%; numbers are NL, BE or DE.
    studio.storage.execute(f"DELETE FROM {table}")
    studio.storage.execute(f"""
        INSERT INTO {table} (_row_id, customer_id, first_name, city, age, consent, signup,
                             mobile, _e164, _country, _number_type, _phone_status,
                             _phone_reason, _imported_at)
        SELECT i + 1, CAST(i + 1 AS VARCHAR),
               CASE WHEN h % 97 = 0 THEN NULL ELSE {names}[1 + (h % 20)] END,
               {cities}[1 + ((h // 20) % 15)],
               18 + (h // 300) % 70,
               CASE WHEN (h // 7) % 5 = 0 THEN 'no' WHEN (h // 7) % 5 = 1 THEN ' JA '
                    ELSE 'yes' END,
               DATE '2015-01-01' + CAST((h // 11) % 3650 AS INTEGER),
               '', e164, country, ntype, status, '', now()
        FROM (
            SELECT i, h,
                   CASE WHEN b < 4 THEN '' WHEN b < 7 THEN ''
                        ELSE prefix || lpad(CAST(CASE WHEN b >= 95 THEN i - 1 ELSE i END
                                                 AS VARCHAR), 8, '0') END AS e164,
                   CASE WHEN b < 7 THEN '' ELSE country END AS country,
                   CASE WHEN b < 7 THEN '' WHEN b < 12 THEN 'fixed_line' ELSE 'mobile' END
                       AS ntype,
                   CASE WHEN b < 4 THEN 'missing' WHEN b < 7 THEN 'invalid'
                        WHEN b < 12 THEN 'not_mobile' ELSE 'valid_mobile' END AS status
            FROM (
                SELECT i, CAST(hash(i) % 1000000007 AS BIGINT) AS h,
                       CAST(hash(i * 7 + 3) % 100 AS BIGINT) AS b,
                       ['+316', '+32470', '+49151'][1 + CAST(i % 10 >= 8 AS INTEGER)
                                                    + CAST(i % 10 = 9 AS INTEGER)] AS prefix,
                       ['NL', 'BE', 'DE'][1 + CAST(i % 10 >= 8 AS INTEGER)
                                          + CAST(i % 10 = 9 AS INTEGER)] AS country
                FROM range({int(rows)}) t(i)
            )
        )
    """)
    # A realistic suppression list: 1% of the numbers.
    studio.storage.execute(
        f"INSERT INTO suppressions (e164, reason, source) SELECT DISTINCT _e164, 'manual', "
        f"'bench' FROM {table} WHERE _e164 <> '' AND hash(_row_id) % 100 = 0"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 contacts")
    parser.add_argument("--rows", type=int, help="number of contacts (default 1,000,000)")
    parser.add_argument("--keep", metavar="PATH", help="build the database at PATH and keep it")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = args.rows or (100_000 if args.quick else 1_000_000)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        path = Path(args.keep) if args.keep else workdir / "bench.duckdb"
        with Studio(path) as studio:
            start = time.perf_counter()
            build(studio, rows, workdir)
            print(f"built {rows:,} contacts in {time.perf_counter() - start:.2f} s")

            studio.create_selection("five", spec=FIVE, database="big", sms=True)
            parent = None
            for level, spec in enumerate(CHAIN):
                name = f"level{level}"
                studio.create_selection(name, spec=spec, database=None if parent else "big",
                                        parent=parent)
                parent = name
            deepest = parent
            assert deepest is not None

            print(f"\n{'what':<44}{'seconds':>9}{'contacts/s':>14}{'target':>9}")
            results: list[tuple[str, float, float | None]] = []

            def report(label: str, seconds: float, target: float | None) -> None:
                rate = rows / seconds if seconds else float("inf")
                mark = "" if target is None else f"{target:.1f} s" + (
                    " ok" if seconds <= target else " MISSED")
                print(f"{label:<44}{seconds:>9.3f}{rate:>14,.0f}{mark:>9}")
                results.append((label, seconds, target))

            t_count, (count, _) = best_of(lambda: studio.count_selection("five"), args.repeat)
            report("count, five conditions", t_count, None)
            t_aud, aud = best_of(lambda: studio.audience(selection="five"), args.repeat)
            report("reconciliation, five conditions", t_aud, None)
            report("count + reconciliation, five conditions", t_count + t_aud, 1.0)

            t_dcount, (dcount, _) = best_of(lambda: studio.count_selection(deepest),
                                            args.repeat)
            t_daud, daud = best_of(lambda: studio.audience(selection=deepest), args.repeat)
            report("count + reconciliation, mini 3 levels deep", t_dcount + t_daud, 1.5)

            t_whole, whole = best_of(lambda: studio.audience(database="big"), args.repeat)
            report("reconciliation, whole database", t_whole, None)
            t_frame, frame = best_of(lambda: studio.audience_frame(selection="five"), 1)
            report("recipients frame (mailing snapshot)", t_frame, None)

            # The pandas oracle on the same data, loaded once (loading is not timed).
            info = studio.get_database("big")
            df = studio.storage.df(f"SELECT * FROM {quote_ident(info.table)}")
            today = studio._today()
            t_pd, mask = best_of(
                lambda: selections.filter_frame(df, FIVE, info.columns, today=today), 1)
            t_pd_chain, chain_mask = best_of(
                lambda: _chain_mask(df, info.columns, today), 1)
            print(f"\npandas filter_frame, five conditions: {t_pd:.3f} s "
                  f"(DuckDB count {t_count:.3f} s, ratio {t_pd / t_count:.1f}x)")
            print(f"pandas filter_frame, chain of four:   {t_pd_chain:.3f} s "
                  f"(DuckDB count {t_dcount:.3f} s, ratio {t_pd_chain / t_dcount:.1f}x)")
            agree = int(mask.sum()) == count and int(chain_mask.sum()) == dcount
            print(f"counts agree with pandas: {agree} ({count:,} and {dcount:,} contacts)")
            print(f"\nfive conditions: {count:,} in selection → {aud.recipients:,} recipients")
            print("  " + ", ".join(f"{s} {n:,}" for s, n in aud.steps))
            print(f"mini-selection: {dcount:,} in selection → {daud.recipients:,} recipients")
            print(f"whole database: {rows:,} contacts → {whole.recipients:,} recipients")
            print(f"recipients frame: {len(frame):,} rows × {frame.shape[1]} columns")
            missed = [label for label, s, t in results if t is not None and s > t]
            if missed:
                print(f"\ntargets missed on this machine: {', '.join(missed)}")
    return 0


def _chain_mask(df: Any, columns: dict[str, str], today: Any) -> Any:
    mask = None
    for spec in CHAIN:
        part = selections.filter_frame(df, spec, columns, today=today)
        mask = part if mask is None else mask & part
    return mask


if __name__ == "__main__":
    sys.exit(main())
