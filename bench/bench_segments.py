"""Segment counting for a whole mailing: `core.segments.analyze_many` against a naive loop.

Targets: 1,000,000 mixed messages (about 120 characters; 90% GSM-7 with some extension and
accented characters, 10% UCS-2 with emoji) at 1,000,000 messages per second or more, and at
least 6 times the plain per-character Python loop on the same data. The naive loop is timed
on a sample and extrapolated (the output says so); its results are checked against
`analyze_many` on that sample.

    .venv/bin/python bench/bench_segments.py [--quick] [--messages N] [--sample N]
"""

from __future__ import annotations

import argparse
import codecs
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.gsm_tables import GSM_BASIC, GSM_EXTENSION  # noqa: E402
from core.segments import analyze, analyze_many  # noqa: E402

TARGET_RATE = 1_000_000
TARGET_RATIO = 6.0

LETTERS = "abcdefghijklmnopqrstuvwxyz" * 3 + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + "0123456789"
COMMON = LETTERS + " " * 20 + ".,!?:;'-()/%&+\n"
ACCENTED = "éèàüöäñÄÖÜßÉ"  # default alphabet, two UTF-8 bytes each
EXTENSION = "€[]{}^~|\\"
EMOJI = "😀🎉👍🙏🔥💬✨❤✅📦"  # mostly outside the BMP


def make_messages(n: int, seed: int = 7) -> list[str]:
    """`n` distinct random messages, built as one code point buffer and sliced."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(100, 141, n)
    starts = np.cumsum(lengths) - lengths
    total = int(lengths.sum())
    common = np.array([ord(c) for c in COMMON], dtype=np.uint32)
    cps = common[rng.integers(0, len(common), total, dtype=np.uint8)]
    ucs2 = rng.random(n) < 0.10

    def sprinkle(pool: str, rate: float, messages: np.ndarray) -> None:
        spots = rng.integers(0, total, int(total * rate))
        spots = spots[messages[np.searchsorted(starts, spots, side="right") - 1]]
        table = np.array([ord(c) for c in pool], dtype=np.uint32)
        cps[spots] = table[rng.integers(0, len(table), len(spots))]

    sprinkle(ACCENTED, 0.02, np.ones(n, dtype=bool))
    sprinkle(EXTENSION, 0.01, ~ucs2)
    sprinkle(EMOJI, 0.02, ucs2)
    cps[starts[ucs2] + rng.integers(0, 100, int(ucs2.sum()))] = ord("😀")  # at least one each
    big = codecs.utf_32_le_decode(cps)[0]
    return [big[a : a + k] for a, k in zip(starts.tolist(), lengths.tolist(), strict=True)]


BASIC, EXT = frozenset(GSM_BASIC), frozenset(GSM_EXTENSION)


def naive(text: str) -> tuple[str, int, int]:
    """The plain per-character loop: classify, count, split greedily."""
    costs = []
    gsm = True
    for ch in text:
        if ch in BASIC:
            costs.append(1)
        elif ch in EXT:
            costs.append(2)
        else:
            gsm = False
            break
    if not gsm:
        costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    units = sum(costs)
    single, multi = (160, 153) if gsm else (70, 67)
    if units <= single:
        return ("GSM-7" if gsm else "UCS-2"), units, 1
    parts, filled = 1, 0
    for cost in costs:
        if filled + cost > multi:
            parts, filled = parts + 1, 0
        filled += cost
    return ("GSM-7" if gsm else "UCS-2"), units, parts


def timed(fn, *args):
    started = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - started


def measure(fn, repeat: int):
    """Result, best wall-clock seconds and best CPU seconds of `repeat` runs of `fn()`."""
    best_wall = best_cpu = float("inf")
    result = None
    for _ in range(repeat):
        cpu = time.process_time()
        result, wall = timed(fn)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, wall)
    return result, best_wall, best_cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 messages")
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--sample", type=int, default=None, help="naive loop sample size")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    args = parser.parse_args()
    n = args.messages or (100_000 if args.quick else 1_000_000)
    sample = min(n, args.sample or (20_000 if args.quick else 100_000))

    texts, seconds = timed(make_messages, n)
    series = pd.Series(texts)  # pandas' default string dtype: Arrow memory
    mean_len = float(np.mean([len(t) for t in texts[:10_000]]))
    print(f"data: {n:,} messages, mean {mean_len:.0f} characters, built in {seconds:.1f} s")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")

    result, wall, cpu = measure(lambda: analyze_many(series), args.repeat)
    _, list_wall, _ = measure(lambda: analyze_many(texts), args.repeat)
    ucs2 = float((result["encoding"] == "UCS-2").mean())
    hist = result["segments"].value_counts().sort_index().to_dict()
    print(f"mix: {ucs2:.1%} UCS-2; segments per message {hist}")
    print(f"analyze_many(Series of str): {wall:.3f} s wall = {n / wall:,.0f} messages/s;"
          f" {cpu:.3f} s CPU = {n / cpu:,.0f} messages/s")  # fmt: skip
    print(f"analyze_many(list of str):   {list_wall:.3f} s wall = {n / list_wall:,.0f} messages/s"
          " (includes the conversion to Arrow)")  # fmt: skip

    sample_texts = texts[:sample]
    naive_rows, naive_wall, naive_cpu = measure(lambda: [naive(t) for t in sample_texts], 2)
    print(f"naive per-character loop:    {naive_wall:.3f} s wall, {naive_cpu:.3f} s CPU"
          f" on a {sample:,}-message sample = {sample / naive_wall:,.0f} messages/s")  # fmt: skip
    scale = n / sample
    print(f"  extrapolated to {n:,} messages: {naive_wall * scale:.1f} s wall,"
          f" {naive_cpu * scale:.1f} s CPU (timed on the sample only)")  # fmt: skip
    rate = n / wall
    ratio = naive_wall * scale / wall
    cpu_ratio = naive_cpu * scale / cpu
    print(f"ratio analyze_many / naive:  {ratio:.1f}x wall, {cpu_ratio:.1f}x CPU")

    head = result[["encoding", "units", "segments"]].head(sample)
    vector_rows = list(head.itertuples(index=False, name=None))
    if vector_rows != naive_rows:
        pairs = zip(vector_rows, naive_rows, strict=True)
        bad = next(i for i, (a, b) in enumerate(pairs) if a != b)
        raise SystemExit(f"mismatch at message {bad}: {vector_rows[bad]} != {naive_rows[bad]}")
    print(f"check: analyze_many equals the naive loop on all {sample:,} sampled messages")

    editor = "Hello Anna, your order #1234 ships today; track it at example.com/t/1234 " * 2
    _, one = timed(lambda: [analyze(editor) for _ in range(2_000)])
    print(f"analyze (editor meter, {len(editor)} characters): {one / 2_000 * 1e6:.0f} µs per call")

    if os.getloadavg()[0] > (os.cpu_count() or 1):
        print("note: the machine is busier than its CPU count; CPU-time figures are the fairer")
    rate_ok = "met" if rate >= TARGET_RATE else "MISSED"
    ratio_ok = "met" if ratio >= TARGET_RATIO else "MISSED"
    print(
        f"target >= {TARGET_RATE:,} messages/s: {rate_ok}; "
        f"target >= {TARGET_RATIO:.0f}x naive: {ratio_ok}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
