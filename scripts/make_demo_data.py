"""Generate a repeatable demo contact file: ``data/demo/contacts.csv``.

The file looks like a real customer export, warts included, so every screen of the studio
has something to show: mobile numbers in the many shapes people and spreadsheets write
them (``06-12345678``, ``+31 6 1234 5678``, ``0031612345678``, ``31612345678.0``),
Belgian, German, British and American numbers, landlines, junk, empty cells and numbers
shared by several contacts; consent in several spellings; and first names with characters
outside the GSM alphabet (``Şebnem``, ``Łukasz``, ``Zoë``) that force UCS-2 messages.

    python scripts/make_demo_data.py [--rows 10000] [--seed 42] [--output PATH]

Only the standard library, numpy and pandas; the same seed always gives the same file.
`messy_numbers` is also used by the phone-number benchmark.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "data" / "demo" / "contacts.csv"

# --- phone numbers ------------------------------------------------------------------------
# National significant number prefixes that libphonenumber classifies as mobile, and the
# length of the whole national number. Every generated mobile number is valid.
_MOBILE_RANGES: dict[str, tuple[list[str], int]] = {
    "NL": (["61", "62", "63", "64", "65", "68"], 9),
    "BE": (
        [
            "460",
            "470",
            "471",
            "472",
            "473",
            "475",
            "476",
            "477",
            "478",
            "479",
            "483",
            "484",
            "485",
            "486",
            "487",
            "488",
            "489",
            "490",
            "491",
            "492",
            "493",
            "494",
            "495",
            "496",
            "497",
            "498",
            "499",
        ],
        9,
    ),
    "DE": (
        [
            "151",
            "152",
            "157",
            "160",
            "162",
            "163",
            "170",
            "171",
            "172",
            "173",
            "174",
            "175",
            "176",
            "177",
            "178",
            "179",
        ],
        11,
    ),
    "GB": (
        [
            "740",
            "741",
            "742",
            "743",
            "744",
            "745",
            "746",
            "747",
            "748",
            "749",
            "790",
            "792",
            "795",
            "796",
            "797",
            "798",
            "799",
        ],
        10,
    ),
    "US": (
        ["212", "213", "312", "415", "617", "646", "702", "713", "305", "404", "206", "503"],
        10,
    ),
}
_COUNTRY_CODES = {"NL": "31", "BE": "32", "DE": "49", "GB": "44", "US": "1"}
_COUNTRY_SHARE = {"NL": 0.86, "BE": 0.05, "DE": 0.04, "GB": 0.03, "US": 0.02}

# How a Dutch mobile (n = the 9 digits after +31, "612345678") shows up in exports.
_NL_FORMATS = [
    (0.22, lambda n: f"06-{n[1:]}"),
    (0.18, lambda n: f"0{n}"),
    (0.10, lambda n: f"06 {n[1:5]} {n[5:]}"),
    (0.10, lambda n: f"+31 6 {n[1:5]} {n[5:]}"),
    (0.08, lambda n: f"+31{n}"),
    (0.06, lambda n: f"0031{n}"),
    (0.05, lambda n: f"06 {n[1:]}"),
    (0.04, lambda n: f"+31 (0)6 {n[1:]}"),
    (0.04, lambda n: f"06.{n[1:3]}.{n[3:5]}.{n[5:7]}.{n[7:]}"),
    (0.03, lambda n: f"(06) {n[1:]}"),
    (0.03, lambda n: f"31{n}"),
    (0.03, lambda n: f"31{n}.0"),  # went through a float in a spreadsheet
    (0.02, lambda n: n),  # the leading 0 lost the same way
    (0.02, lambda n: f"+31-6-{n[1:]}"),
]


def _foreign_format(country: str, n: str, pick: float) -> str:
    cc = _COUNTRY_CODES[country]
    if country == "US":
        local = f"({n[:3]}) {n[3:6]}-{n[6:]}"
        return f"+1 {local}" if pick < 0.5 else f"+1 {n[:3]}-{n[3:6]}-{n[6:]}"
    if country == "BE":
        spaced = f"{n[:3]} {n[3:5]} {n[5:7]} {n[7:]}"
    elif country == "DE":
        spaced = f"{n[:3]} {n[3:]}"
    else:
        spaced = f"{n[:4]} {n[4:]}"
    if pick < 0.55:
        return f"+{cc} {spaced}"
    if pick < 0.8:
        return f"00{cc}{n}"
    return f"+{cc}{n}"


_LANDLINES = [
    "020-1234567",
    "010 123 45 67",
    "+31 30 123 4567",
    "0800-1234",
    "0900-1234567",
    "+32 2 512 34 56",
    "+49 30 12345678",
    "070-3456789",
    "+44 20 7946 0000",
]
_JUNK = [
    "onbekend",
    "n.v.t.",
    "-",
    "06-123",
    "0612",
    "geen",
    "?",
    "3.16123E+10",
    "12345",
    "+31 6 1234 567",
    "0612345678, 0687654321",
    "06-12345678901",
    "nvt",
    "+999 123456",
    "tel",
    "6.12345E+08",
]


def _digits(rng: np.random.Generator, count: int, width: int) -> list[str]:
    """`count` random digit strings of `width` digits (leading zeros kept)."""
    if width <= 0:
        return [""] * count
    values = rng.integers(0, 10**width, size=count, dtype=np.int64)
    return [f"{v:0{width}d}" for v in values.tolist()]


def _mobile(rng: np.random.Generator, country: str, count: int) -> list[str]:
    """`count` valid national significant mobile numbers of `country`."""
    prefixes, length = _MOBILE_RANGES[country]
    chosen = rng.choice(prefixes, size=count).tolist()
    if country != "US":
        return [
            p + d
            for p, d in zip(chosen, _digits(rng, count, length - len(prefixes[0])), strict=True)
        ]
    # NANP exchange codes start 2-9 and are never N11; 555 is reserved for fiction.
    exchange = rng.integers(200, 1000, size=count)
    bad = (exchange % 100 == 11) | (exchange == 555)
    exchange[bad] += 1
    lines = _digits(rng, count, 4)
    return [f"{a}{e}{ln}" for a, e, ln in zip(chosen, exchange.tolist(), lines, strict=True)]


def messy_numbers(
    rng: np.random.Generator,
    count: int,
    *,
    duplicate_share: float = 0.03,
    junk_share: float = 0.015,
    landline_share: float = 0.01,
    missing_share: float = 0.01,
) -> list[str | None]:
    """`count` raw mobile-number cells as a messy export holds them.

    The rest after the given shares are valid mobiles; ``duplicate_share`` of the rows
    repeat the number of another row (written in that row's format or a new one).
    """
    countries = rng.choice(list(_COUNTRY_SHARE), size=count, p=list(_COUNTRY_SHARE.values()))
    out: list[str | None] = [None] * count
    picks = rng.random(count).tolist()
    nl_weights = np.array([w for w, _ in _NL_FORMATS])
    nl_format = rng.choice(len(_NL_FORMATS), size=count, p=nl_weights / nl_weights.sum())
    for country in _COUNTRY_SHARE:
        rows = np.flatnonzero(countries == country)
        numbers = _mobile(rng, country, len(rows))
        for row, n in zip(rows.tolist(), numbers, strict=True):
            if country == "NL":
                out[row] = _NL_FORMATS[nl_format[row]][1](n)
            else:
                out[row] = _foreign_format(country, n, picks[row])
    kind = rng.random(count)
    edges = np.cumsum([missing_share, junk_share, landline_share, duplicate_share])
    missing_rows = np.flatnonzero(kind < edges[0])
    junk_rows = np.flatnonzero((kind >= edges[0]) & (kind < edges[1]))
    land_rows = np.flatnonzero((kind >= edges[1]) & (kind < edges[2]))
    dup_rows = np.flatnonzero((kind >= edges[2]) & (kind < edges[3]))
    blanks = ["", " ", None]
    for row, b in zip(
        missing_rows.tolist(), rng.integers(0, 3, len(missing_rows)).tolist(), strict=True
    ):
        out[row] = blanks[b]
    for row, j in zip(
        junk_rows.tolist(), rng.integers(0, len(_JUNK), len(junk_rows)).tolist(), strict=True
    ):
        out[row] = _JUNK[j]
    for row, j in zip(
        land_rows.tolist(), rng.integers(0, len(_LANDLINES), len(land_rows)).tolist(), strict=True
    ):
        out[row] = _LANDLINES[j]
    # Shared numbers: a household or a company sharing one phone; same number, any format.
    sources = rng.integers(0, count, size=len(dup_rows)).tolist()
    for row, src in zip(dup_rows.tolist(), sources, strict=True):
        out[row] = out[src]
    return out


# --- the rest of a contact ----------------------------------------------------------------
_FIRST_NAMES = [
    "Daan",
    "Sem",
    "Lucas",
    "Levi",
    "Finn",
    "Milan",
    "Noah",
    "Jesse",
    "Bram",
    "Thomas",
    "Ruben",
    "Lars",
    "Sven",
    "Jan",
    "Pieter",
    "Kees",
    "Willem",
    "Henk",
    "Gerrit",
    "Joost",
    "Emma",
    "Julia",
    "Mila",
    "Sophie",
    "Tess",
    "Sara",
    "Anna",
    "Nora",
    "Fleur",
    "Lotte",
    "Eva",
    "Lisa",
    "Sanne",
    "Ingrid",
    "Marieke",
    "Anouk",
    "Femke",
    "Maaike",
    "Ilse",
    "Roos",
    "Mohamed",
    "Fatima",
    "Yusuf",
    "Ayoub",
    "Noor",
    "Priya",
    "Wei",
    "Mei",
    "Bart",
    "Jeroen",
]
# Names whose letters are not all in the GSM 03.38 alphabet, plus a few that are (é, ö).
_SPECIAL_FIRST_NAMES = [
    "Zoë",
    "Şebnem",
    "Łukasz",
    "Ayşe",
    "Dušan",
    "Chloé",
    "Björn",
    "Ángel",
    "Çağla",
    "Anaïs",
]
_LAST_NAMES = [
    "de Jong",
    "Jansen",
    "de Vries",
    "van den Berg",
    "van Dijk",
    "Bakker",
    "Janssen",
    "Visser",
    "Smit",
    "Meijer",
    "de Boer",
    "Mulder",
    "de Groot",
    "Bos",
    "Vos",
    "Peters",
    "Hendriks",
    "van Leeuwen",
    "Dekker",
    "Brouwer",
    "de Wit",
    "Dijkstra",
    "Smits",
    "de Graaf",
    "van der Meer",
    "van der Linden",
    "Kok",
    "Jacobs",
    "de Haan",
    "Vermeulen",
    "El Amrani",
    "Yilmaz",
    "Nowak",
    "Öztürk",
    "Müller",
]
_CITIES = [
    "Amsterdam",
    "Rotterdam",
    "Den Haag",
    "Utrecht",
    "Eindhoven",
    "Groningen",
    "Tilburg",
    "Almere",
    "Breda",
    "Nijmegen",
    "Apeldoorn",
    "Haarlem",
    "Arnhem",
    "Enschede",
    "Amersfoort",
    "Zaanstad",
    "'s-Hertogenbosch",
    "Zwolle",
    "Leiden",
    "Maastricht",
    "Antwerpen",
    "Gent",
    "Düsseldorf",
]
_CITY_WEIGHTS = np.array(
    [60, 40, 35, 30, 20, 15, 14, 13, 12, 12, 11, 11, 10, 10, 10, 9, 9, 8, 8, 7, 5, 4, 3],
    dtype=float,
)
_CUSTOMER_TYPES = (["regular", "gold", "business"], [0.72, 0.18, 0.10])
_CONSENT = (
    ["yes", "ja", "1", "Yes", "no", "nee", "0", ""],
    [0.50, 0.15, 0.10, 0.03, 0.10, 0.05, 0.04, 0.03],
)


def _dates(rng: np.random.Generator, count: int, start: date, end: date) -> list[str]:
    days = rng.integers(0, (end - start).days + 1, size=count)
    base = np.datetime64(start.isoformat())
    return np.datetime_as_string(base + days.astype("timedelta64[D]"), unit="D").tolist()


def make_contacts(rows: int = 10_000, seed: int = 42) -> pd.DataFrame:
    """The demo contacts as a DataFrame (all columns text, as a CSV export would be)."""
    rng = np.random.default_rng(seed)
    first = rng.choice(_FIRST_NAMES, size=rows).astype(object)
    special = rng.random(rows) < 0.03
    first[special] = rng.choice(_SPECIAL_FIRST_NAMES, size=int(special.sum()))
    today = date(2025, 6, 30)
    last_order = np.array(_dates(rng, rows, today - timedelta(days=3 * 365), today), dtype=object)
    last_order[rng.random(rows) < 0.08] = ""  # never ordered
    return pd.DataFrame(
        {
            "customer_id": [f"C{100000 + i}" for i in range(rows)],
            "first_name": first,
            "last_name": rng.choice(_LAST_NAMES, size=rows),
            "city": rng.choice(_CITIES, size=rows, p=_CITY_WEIGHTS / _CITY_WEIGHTS.sum()),
            "birth_date": _dates(rng, rows, date(1940, 1, 1), date(2007, 12, 31)),
            "customer_type": rng.choice(_CUSTOMER_TYPES[0], size=rows, p=_CUSTOMER_TYPES[1]),
            "last_order_date": last_order,
            "consent": rng.choice(_CONSENT[0], size=rows, p=_CONSENT[1]),
            "mobile": messy_numbers(rng, rows),
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000, help="contacts (default 10000)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"CSV to write (default {DEFAULT_OUTPUT})",
    )
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    frame = make_contacts(args.rows, args.seed)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.output, index=False, encoding="utf-8")
    print(f"wrote {len(frame):,} contacts to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
