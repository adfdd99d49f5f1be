"""Whole-selection view of a document: render and measure every recipient's message.

Target: 1,000,000 contacts with a plain-substitution template rendered and analysed
(segments, encoding) in at most 3 seconds. Beside it: the same render with Jinja2 row by row
(timed on a sample and extrapolated, unless --full-jinja), the naive method.

    .venv/bin/python bench/bench_selection_view.py            # 1,000,000 contacts
    .venv/bin/python bench/bench_selection_view.py --quick    # 100,000 contacts

The database is built synthetically: a tiny CSV is imported (so the contact table and its
`databases` row are made the normal way), then rows are generated with DuckDB SQL.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from time import perf_counter

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core import templates  # noqa: E402
from core.studio import Studio  # noqa: E402

TEMPLATE = (
    "Hi {{ first_name }}, your order is ready for pick-up at our {{ city }} store until "
    "Saturday. Show code {{ code }} at the desk. Reply STOP to opt out."
)
SEED_CSV = "customer_id,first_name,city,code,consent,mobile\n1,Anna,Amsterdam,A1,yes,0612345678\n"
# Ten names, one of them not GSM-7 (ë), so about a tenth of the messages go UCS-2.
NAMES = ["Anna", "Bram", "Chloé", "Daan", "Eva", "Finn", "Zoë", "Hugo", "Iris", "Jens"]
CITIES = ["Amsterdam", "Rotterdam", "Utrecht", "Gent", "Berlin", "London", "Den Haag"]
COUNTRIES = [("NL", "+316"), ("BE", "+324"), ("DE", "+4915"), ("GB", "+447"), ("FR", "+336")]


def build(studio: Studio, rows: int, work: Path) -> None:
    seed = work / "seed.csv"
    seed.write_text(SEED_CSV, encoding="utf-8")
    studio.import_contacts(seed, database="bench", key_field="customer_id",
                           consent_field="consent", consent_yes=["yes"], region="NL")
    table = studio.get_database("bench").table
    names = "[" + ", ".join(f"'{n}'" for n in NAMES) + "]"
    cities = "[" + ", ".join(f"'{c}'" for c in CITIES) + "]"
    codes = "[" + ", ".join(f"'{c}'" for c, _ in COUNTRIES) + "]"
    prefixes = "[" + ", ".join(f"'{p}'" for _, p in COUNTRIES) + "]"
    k = len(COUNTRIES)
    studio.storage.execute(f"DELETE FROM {table}")
    studio.storage.execute(
        f"""
        INSERT INTO {table} (_row_id, customer_id, first_name, city, code, consent, mobile,
            _e164, _country, _number_type, _phone_status, _phone_reason, _imported_at)
        SELECT i, CAST(i AS VARCHAR), {names}[1 + (i * 7) % {len(NAMES)}],
               {cities}[1 + (i * 13) % {len(CITIES)}], 'C' || CAST(i * 31 % 100000 AS VARCHAR),
               'yes', '', {prefixes}[1 + i % {k}] || lpad(CAST(i AS VARCHAR), 8, '0'),
               {codes}[1 + i % {k}], 'mobile', 'valid_mobile', '', now()
        FROM range(1, {rows} + 1) t(i)
        """
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 contacts")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--jinja-sample", type=int, default=50_000,
                        help="rows rendered with Jinja2 to extrapolate its time")
    parser.add_argument("--full-jinja", action="store_true",
                        help="render every row with Jinja2 instead of extrapolating")
    args = parser.parse_args()
    rows = args.rows or (100_000 if args.quick else 1_000_000)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        studio = Studio(work / "bench.duckdb")
        studio.prices_path = ROOT / "data" / "prices.csv"
        try:
            started = perf_counter()
            build(studio, rows, work)
            print(f"built {rows:,} contacts in {perf_counter() - started:.1f} s")
            studio.create_document("bench", sender="Shop", body=TEMPLATE)

            started = perf_counter()
            view = studio.selection_view("bench", database="bench")
            total = perf_counter() - started
            work_s = view.render_seconds + view.analyse_seconds
            verdict = "OK" if work_s <= 3.0 * rows / 1_000_000 else "SLOWER THAN TARGET"
            print(f"recipients            {view.recipients:,}")
            print(f"fast path             {view.fast_path}")
            print(f"load (audience query) {view.load_seconds:.2f} s")
            print(f"render (vectorised)   {view.render_seconds:.2f} s "
                  f"({rows / max(view.render_seconds, 1e-9):,.0f} rows/s)")
            print(f"analyse (segments)    {view.analyse_seconds:.2f} s "
                  f"({rows / max(view.analyse_seconds, 1e-9):,.0f} rows/s)")
            print(f"render + analyse      {work_s:.2f} s  [target <= 3 s per 1M: {verdict}]")
            print(f"whole selection_view  {total:.2f} s (incl. query, aggregates, cost)")
            print(f"segments              {view.total_segments:,}; UCS-2 recipients "
                  f"{view.ucs2_recipients:,}; cost {view.total_cost:,.2f} {view.currency}")
            print(view.segments_histogram.to_string(index=False))

            # The naive method: Jinja2 per row on the same recipients.
            frame = studio.audience_frame(database="bench",
                                          columns=["first_name", "city", "code"])
            compiled = templates.prepare(TEMPLATE, ["first_name", "city", "code"])
            sample = frame if args.full_jinja else frame.head(min(args.jinja_sample, rows))
            started = perf_counter()
            texts = compiled.render_many(sample, engine="jinja")
            jinja_s = perf_counter() - started
            per_million = jinja_s * rows / len(sample)
            assert len(texts) == len(sample)
            how = "all rows" if args.full_jinja else f"{len(sample):,}-row sample, extrapolated"
            print(f"Jinja2 per row        {per_million:.2f} s for {rows:,} ({how}; "
                  f"{len(sample) / jinja_s:,.0f} rows/s) = "
                  f"{per_million / max(view.render_seconds, 1e-9):.0f}x the vectorised render")
        finally:
            studio.close()


if __name__ == "__main__":
    main()
