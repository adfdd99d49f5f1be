"""Render a whole selection: the column-wise fast path against Jinja2 row by row.

The mailing wizard renders every message of a selection (to count segments and show the
cost) before a mailing starts, so a million contacts must render in seconds. This prints:

* the fast path (`CompiledTemplate.render_many` on a plain-substitution template),
* fast path plus segment counting (`core.segments.analyze_many`) when that module exists,
  against a target of 3 seconds for the two together,
* Jinja2 row by row, measured on 50,000 rows and extrapolated (the naive method).

Usage: .venv/bin/python bench/bench_render.py [--quick] [--rows N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _timing import best_of

from core.templates import prepare

TEMPLATE = "Hi {{ first_name }}, your order in {{ city }} is ready. Reply STOP to opt out."
TARGET_SECONDS = 3.0
JINJA_SAMPLE = 50_000


def make_contacts(n: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = np.array(["Anna", "Bram", "Chloë", "Daan", "Eva", "Fatima", "Gijs", "Hüseyin", ""])
    cities = np.array(["Amsterdam", "Rotterdam", "Den Haag", "Utrecht", "Gent", "Zwolle"])
    first = pd.Series(names[rng.integers(0, len(names), n)], dtype="str")
    first = first.mask(rng.random(n) < 0.05)  # some missing names
    return pd.DataFrame(
        {
            "first_name": first,
            "city": pd.Series(cities[rng.integers(0, len(cities), n)], dtype="str"),
            "customer_id": np.arange(n),
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 contacts instead of 1M")
    parser.add_argument("--rows", type=int, default=None)
    args = parser.parse_args()
    n = args.rows or (20_000 if args.quick else 1_000_000)

    df = make_contacts(n)
    compiled = prepare(TEMPLATE, list(df.columns))
    print(f"contacts: {n:,}   template: {TEMPLATE!r}   plain: {compiled.is_plain}")

    fast_s, texts = best_of(lambda: compiled.render_many(df), 3)
    print(f"render_many (fast path)      {fast_s:8.3f} s   {n / fast_s:14,.0f} rows/s")

    try:
        from core.segments import analyze_many
    except ImportError:
        analyze_many = None
    if analyze_many is None:
        print("render + analyze_many         skipped (core.segments.analyze_many not available)")
        total_s = fast_s
    else:
        seg_s, segments = best_of(lambda: analyze_many(texts), 3)
        total_s = fast_s + seg_s
        print(f"analyze_many                 {seg_s:8.3f} s   {n / seg_s:14,.0f} rows/s")
        print(
            f"render + analyze_many        {total_s:8.3f} s   {n / total_s:14,.0f} rows/s"
            f"   ({int(segments['segments'].sum()):,} segments)"
        )
    verdict = "met" if total_s <= TARGET_SECONDS else "NOT met"
    print(f"target {TARGET_SECONDS:.0f} s for the whole view: {verdict}")

    sample = df.iloc[: min(JINJA_SAMPLE, n)]
    jinja_s, slow = best_of(lambda: compiled.render_many(sample, engine="jinja"), 1)
    per_row = jinja_s / len(sample)
    print(
        f"Jinja2 row by row            {jinja_s:8.3f} s on {len(sample):,} rows "
        f"({len(sample) / jinja_s:,.0f} rows/s); extrapolated to {n:,}: {per_row * n:.1f} s"
    )
    print(f"fast path speed-up over Jinja2 row by row: {per_row * n / fast_s:,.0f}x")

    if not slow.equals(texts.iloc[: len(sample)]):
        print("WARNING: fast path and Jinja2 disagree on the sample")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
