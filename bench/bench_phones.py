"""Benchmark: normalising a column of messy phone numbers, and a whole contact import.

    .venv/bin/python bench/bench_phones.py            # 1,000,000 rows
    .venv/bin/python bench/bench_phones.py --quick    # 100,000 rows

The data: messy mobile numbers as exports hold them (see scripts/make_demo_data.py), about
20% of rows repeating another row's number and about 5% junk, plus landlines and empty
cells. Compared with the naive method, a pandas ``apply`` that runs ``phonenumbers.parse``,
``is_valid_number``, ``number_type`` and ``format_number`` on every row. The naive method
is timed on a sample (100,000 rows) and extrapolated linearly, which is fair: it does the
same work for every row. The import is CSV read (pyarrow) + normalise + write to a DuckDB
file; its naive twin is the same read and write around the naive normalisation.
Exits non-zero only on a crash, never on a missed target.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import phonenumbers  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402

from core import phones  # noqa: E402

TARGET_NORMALISE_S = 4.0  # per million rows
TARGET_IMPORT_S = 8.0  # per million rows
TARGET_RATIO = 8.0


def _demo_module():
    spec = importlib.util.spec_from_file_location(
        "make_demo_data", ROOT / "scripts" / "make_demo_data.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def naive_one(raw: object, region: str, pn=phonenumbers) -> tuple[str, str]:
    """What a first version would do for each row."""
    if not isinstance(raw, str) or not raw.strip():
        return "", "missing"
    try:
        num = pn.parse(raw, region)
    except pn.NumberParseException:
        return "", "invalid"
    if not pn.is_valid_number(num):
        return "", "invalid"
    ntype = pn.number_type(num)
    status = (
        "valid_mobile"
        if ntype in (pn.PhoneNumberType.MOBILE, pn.PhoneNumberType.FIXED_LINE_OR_MOBILE)
        else "not_mobile"
    )
    return pn.format_number(num, pn.PhoneNumberFormat.E164), status


def naive_normalize(column: pd.Series, region: str, pn=phonenumbers) -> pd.Series:
    return column.apply(naive_one, args=(region, pn))


_last_cpu = 0.0


def timed(fn, *args, **kwargs):
    """Run fn; return its result and wall seconds (CPU seconds of this process in _last_cpu)."""
    global _last_cpu
    cpu, start = time.process_time(), time.perf_counter()
    result = fn(*args, **kwargs)
    _last_cpu = time.process_time() - cpu
    return result, time.perf_counter() - start


def line(label: str, seconds: float, rows: int, note: str = "", cpu: float | None = None) -> None:
    rate = rows / seconds if seconds else float("inf")
    cpu_text = f"cpu {cpu:6.2f} s" if cpu is not None else " " * 12
    print(f"  {label:<44} {seconds:8.3f} s  {rate:>10,.0f} rows/s  {cpu_text}  {note}")


def load() -> str:
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def write_duckdb(table: pa.Table, path: Path) -> None:
    con = duckdb.connect(str(path))
    try:
        con.register("incoming", table)
        con.execute("CREATE OR REPLACE TABLE contacts AS SELECT * FROM incoming")
        con.unregister("incoming")
    finally:
        con.close()


def import_file(csv_path: Path, db_path: Path, region: str, normaliser) -> dict[str, float]:
    """Read the CSV, normalise its mobile column, write table + derived columns to DuckDB."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    table = pacsv.read_csv(
        csv_path,
        convert_options=pacsv.ConvertOptions(
            column_types={"customer_id": pa.string(), "mobile": pa.string()},
            strings_can_be_null=True,
        ),
    )
    t1 = time.perf_counter()
    derived = normaliser(table["mobile"].to_pandas(), region)
    for name in derived.columns:
        table = table.append_column(f"_{name}", pa.array(derived[name].array))
    t2 = time.perf_counter()
    write_duckdb(table, db_path)
    t3 = time.perf_counter()
    return {
        "read": t1 - t0,
        "normalise": t2 - t1,
        "write": t3 - t2,
        "total": t3 - t0,
        "cpu": time.process_time() - cpu0,
    }


def naive_frame(column: pd.Series, region: str) -> pd.DataFrame:
    pairs = naive_normalize(column, region)
    return pd.DataFrame(pairs.tolist(), columns=["e164", "status"], index=column.index)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows")
    parser.add_argument("--rows", type=int, help="rows (default 1,000,000; --quick 100,000)")
    parser.add_argument("--sample", type=int, help="rows the naive method really runs on")
    parser.add_argument("--region", default="NL")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    sample = min(rows, args.sample or (10_000 if args.quick else 100_000))
    scale = rows / 1_000_000

    print(
        f"bench_phones: {rows:,} rows, default region {args.region}, "
        f"backend {phones.backend_name()}, {phones.default_workers()} worker process(es), "
        f"{os.cpu_count()} cores, {load()}"
    )
    print("  (cpu = CPU seconds of this process; on a busy machine wall time exceeds it)")
    demo = _demo_module()
    values, gen_s = timed(
        demo.messy_numbers,
        np.random.default_rng(args.seed),
        rows,
        duplicate_share=0.2,
        junk_share=0.05,
    )
    column = pd.Series(values, dtype="str")
    distinct = column.nunique(dropna=False)
    print(
        f"  generated in {gen_s:.1f} s: {distinct:,} distinct raw values "
        f"({1 - distinct / rows:.0%} repeats)"
    )

    print("normalise:")
    phones.normalize(column.iloc[:1000], args.region, workers=0)  # imports, first parse
    n_workers = max(1, phones.default_workers())
    cold, cold_s = timed(phones.normalize, column, args.region, workers=n_workers)
    info = phones.last_run()
    line(
        f"normalize, {n_workers} worker(s), first call",
        cold_s,
        rows,
        f"{info['distinct']:,} distinct cleaned, {info['worker_chunks']}/{info['chunks']} "
        "chunks by the worker (its start included)",
        _last_cpu,
    )
    _, warm_s = timed(phones.normalize, column, args.region, workers=n_workers)
    info = phones.last_run()
    line(
        f"normalize, {n_workers} worker(s) running",
        warm_s,
        rows,
        f"{info['worker_chunks']}/{info['chunks']} chunks by the worker",
        _last_cpu,
    )
    _, serial_s = timed(phones.normalize, column, args.region, workers=0)
    serial_cpu = _last_cpu
    line("normalize, this process only (workers=0)", serial_s, rows, "", serial_cpu)
    _, auto_s = timed(phones.normalize, column, args.region)
    line(
        "normalize, as the app calls it (auto)",
        auto_s,
        rows,
        f"{load()} -> {phones.last_run()['workers']} worker(s)",
        _last_cpu,
    )
    best_s = min(cold_s, warm_s, serial_s, auto_s)
    counts = phones.status_counts(cold)
    print("  statuses: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))

    part = column.iloc[:sample]
    naive_res, naive_sample_s = timed(naive_frame, part, args.region)
    naive_s, naive_cpu = naive_sample_s * rows / sample, _last_cpu * rows / sample
    line(
        f"naive apply, phonenumbers ({sample:,} rows x{rows / sample:g})",
        naive_s,
        rows,
        "extrapolated",
        naive_cpu,
    )
    fast_pn = phones._module("rphonenumbers")
    if fast_pn is not None:
        _, naive_r_sample_s = timed(naive_normalize, part, args.region, fast_pn)
        line(
            f"naive apply, rphonenumbers ({sample:,} rows x{rows / sample:g})",
            naive_r_sample_s * rows / sample,
            rows,
            "extrapolated",
            _last_cpu * rows / sample,
        )
    ours = cold.iloc[:sample]
    agree = (ours["e164"] == naive_res["e164"]).mean()
    print(
        f"  same E.164 as the naive method on the sample: {agree:.2%} of rows "
        "(the rest: documented rules such as '31612345678.0' and two numbers in a cell)"
    )

    print("import (read CSV + normalise + write DuckDB):")
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "contacts.csv"
        frame = pd.DataFrame(
            {
                "customer_id": [f"C{i}" for i in range(rows)],
                "first_name": np.resize(
                    np.array(["Daan", "Emma", "Zoë", "Sem"], dtype=object), rows
                ),
                "city": np.resize(np.array(["Utrecht", "Amsterdam", "Gent"], dtype=object), rows),
                "mobile": values,
            }
        )
        frame.to_csv(csv_path, index=False)
        del frame
        ours_t = import_file(csv_path, Path(tmp) / "fast.duckdb", args.region, phones.normalize)
        line(
            "import with normalize",
            ours_t["total"],
            rows,
            f"read {ours_t['read']:.2f} s, normalise {ours_t['normalise']:.2f} s, "
            f"write {ours_t['write']:.2f} s",
            ours_t["cpu"],
        )
        naive_import_s = ours_t["read"] + ours_t["write"] + naive_s
        line(
            "import with the naive method",
            naive_import_s,
            rows,
            "same read and write + the extrapolated naive normalise",
        )

    ratio_norm = naive_s / best_s
    ratio_import = naive_import_s / ours_t["total"]
    print("summary:")
    print(
        f"  normalize: {best_s:.2f} s best of the runs above ({rows / best_s:,.0f} rows/s), "
        f"{ratio_norm:.1f}x the naive method; first call {cold_s:.2f} s "
        f"({naive_s / cold_s:.1f}x)"
    )
    print(f"  import:    {ours_t['total']:.2f} s, {ratio_import:.1f}x the naive import")
    print(
        f"  CPU only:  normalize in this process {serial_cpu:.2f} s vs naive {naive_cpu:.1f} s "
        f"({naive_cpu / serial_cpu:.1f}x); {load()}"
    )
    checks = [
        (f"normalize <= {TARGET_NORMALISE_S * scale:.2f} s", best_s <= TARGET_NORMALISE_S * scale),
        (f"import <= {TARGET_IMPORT_S * scale:.2f} s", ours_t["total"] <= TARGET_IMPORT_S * scale),
        (f"import >= {TARGET_RATIO:g}x naive", ratio_import >= TARGET_RATIO),
    ]
    for label, ok in checks:
        print(f"  target {label}: {'met' if ok else 'MISSED'}")
    phones.shutdown_workers()
    return 0


if __name__ == "__main__":
    sys.exit(main())
