"""Benchmark: import 1,000,000 contacts (read CSV, normalise numbers, write DuckDB).

Target: the whole import in at most 8 s on a 2-core machine, and at least 8 times faster than
the naive method (pandas `apply` of phonenumbers parse + is_valid_number + number_type +
format_number per row). The naive method is timed on a random sample of the same rows in the
same run and extrapolated to the full size (running it on a million rows takes minutes); the
output says so.

    python bench/bench_import.py [--rows N] [--naive-sample N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def messy_numbers(rows: int, rng: np.random.Generator) -> np.ndarray:
    """Real-export shapes: national, +/00 international, separators; 20% dups, 5% junk."""
    distinct = int(rows * 0.8)
    nl = rng.integers(10_000_000, 99_999_999, distinct)
    kind = rng.integers(0, 10, distinct)
    out = np.empty(distinct, dtype=object)
    s = nl.astype(str)
    formats = [
        lambda d: "06-" + d,
        lambda d: "+31 6 " + d[:4] + " " + d[4:],
        lambda d: "00316" + d,
        lambda d: "06" + d,
        lambda d: "06." + d[:2] + "." + d[2:5] + "." + d[5:],
        lambda d: "+32 47" + d[:1] + " " + d[1:3] + " " + d[3:5] + " " + d[5:7],
        lambda d: "+49 151 " + d,
        lambda d: "+44 7700 " + d[:6],
        lambda d: "+1 (646) 2" + d[:2] + "-" + d[2:6],
        lambda d: "020-" + d[:7],
    ]
    for k, fmt in enumerate(formats):
        idx = np.flatnonzero(kind == k)
        out[idx] = [fmt(v) for v in s[idx]]
    numbers = np.concatenate([out, rng.choice(out, rows - distinct)])
    junk = rng.random(rows) < 0.05
    numbers[junk] = rng.choice(["onbekend", "n.v.t.", "06-123", "", "  ", "geen"], junk.sum())
    rng.shuffle(numbers)
    return numbers


def write_csv(path: Path, rows: int, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "customer_id": np.arange(1, rows + 1),
        "first_name": rng.choice(["Anna", "Bram", "Chloé", "Daan", "Eva", "Finn"], rows),
        "last_name": rng.choice(["de Vries", "Jansen", "Bakker", "Visser"], rows),
        "city": rng.choice(["Amsterdam", "Rotterdam", "Utrecht", "Gent"], rows),
        "birth_date": pd.to_datetime(rng.integers(0, 15_000, rows), unit="D").strftime("%Y-%m-%d"),
        "customer_type": rng.choice(["regular", "gold", "business"], rows),
        "consent": rng.choice(["yes", "no"], rows, p=[0.9, 0.1]),
        "mobile": messy_numbers(rows, rng),
    })
    frame.to_csv(path, index=False)


def naive_normalise(numbers: pd.Series) -> pd.Series:
    import phonenumbers

    def one(raw: object) -> tuple:
        try:
            num = phonenumbers.parse(str(raw), "NL")
        except phonenumbers.NumberParseException:
            return ("", "", "", "invalid")
        valid = phonenumbers.is_valid_number(num)
        kind = phonenumbers.number_type(num)
        e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
        return (e164 if valid else "", kind, valid, "ok")

    return numbers.apply(one)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--naive-sample", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="100,000 rows")
    args = parser.parse_args()
    rows = 100_000 if args.quick else args.rows
    sample = min(args.naive_sample, rows)

    from core import phones
    from core.studio import Studio

    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "contacts.csv"
        t0 = time.perf_counter()
        write_csv(csv_path, rows)
        print(f"generated {rows:,} rows x 8 columns ({csv_path.stat().st_size / 1e6:.0f} MB) "
              f"in {time.perf_counter() - t0:.1f} s")
        phones.normalize(pd.Series(["0612345678", "+32470123456"]), "NL")  # warm the backend
        studio = Studio(Path(tmp) / "bench.duckdb")
        stages: dict[str, float] = {}
        last = [time.perf_counter(), ""]

        def progress(_fraction: float, label: str) -> None:
            now = time.perf_counter()
            if last[1]:
                stages[last[1]] = now - last[0]
            last[0], last[1] = now, label

        t0 = time.perf_counter()
        report = studio.import_contacts(csv_path, database="bench", key_field="customer_id",
                                        consent_field="consent", consent_yes=["yes"],
                                        region="NL", progress=progress)
        total = time.perf_counter() - t0
        studio.close()
        print(f"import: {total:.2f} s for {report.rows:,} rows = {report.rows / total:,.0f} rows/s "
              f"(phones backend: {phones.backend_name()})")
        for label, seconds in stages.items():
            print(f"  {label:<45} {seconds:6.2f} s")
        print(f"  statuses: {report.status_counts}")
        run = phones.last_run()
        print(f"  distinct numbers: {run['distinct']:,}; classified column-at-once: "
              f"{run['vectorised']:,} ({run['vectorised'] / max(run['distinct'], 1):.1%}), "
              f"the rest one by one (worker processes: {run['workers']})")

        numbers = pd.read_csv(csv_path, usecols=["mobile"], dtype=str, keep_default_na=False)
        picked = numbers["mobile"].sample(sample, random_state=1)
        t0 = time.perf_counter()
        naive_normalise(picked)
        naive_sample = time.perf_counter() - t0
        naive_total = naive_sample * rows / sample
        print(f"naive (pandas apply of phonenumbers per row): {naive_sample:.2f} s on a "
              f"{sample:,}-row sample of the same data -> {naive_total:.1f} s extrapolated "
              f"to {rows:,} rows (normalisation only, no read or write)")
        other = total - stages.get(f"Normalising {report.rows:,} mobile numbers", 0.0)
        naive_import = naive_total + other
        print(f"naive import (the same read, typing and write, with the naive normalisation): "
              f"{naive_import:.1f} s")
        print(f"ratio: whole import is {naive_import / total:.1f}x faster than the naive import, "
              f"{naive_total / total:.1f}x faster than naive normalisation alone "
              f"(target >= 8x; target time <= 8 s: {'met' if total <= 8 else 'missed'}); "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
