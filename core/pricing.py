"""What a mailing will cost: a price per SMS segment per destination country.

Operators bill per segment (part), and the price depends on the recipient's country, so an
estimate is `segments × price` summed per country. The table is a small CSV
(`data/prices.csv`: country, price_per_segment, currency) that users edit on the Settings
page; its row `*` prices every country the table does not name, so every recipient is
priced. One currency per table: a total in mixed currencies would be meaningless.

Pure functions plus CSV reading/writing; no database, no UI.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import pandas as pd
import phonenumbers

from core.errors import InvalidInput

__all__ = [
    "COLUMNS",
    "DEFAULT_COUNTRY",
    "DEFAULT_PRICES_PATH",
    "estimate_cost",
    "load_prices",
    "prices_path",
    "save_prices",
    "validate_prices",
]

DEFAULT_PRICES_PATH = "data/prices.csv"
ENV_PRICES = "SMS_STUDIO_PRICES"
DEFAULT_COUNTRY = "*"
COLUMNS = ("country", "price_per_segment", "currency")
# Used only when no price file exists at all, so an estimate is never silently zero.
FALLBACK = pd.DataFrame({"country": ["*"], "price_per_segment": [0.09], "currency": ["EUR"]})
# Codes people type that are not ISO 3166 alpha-2 codes, with the code they mean.
_COMMON_SLIPS = {"UK": "GB", "EN": "GB", "SP": "ES"}


def prices_path() -> Path:
    """The price file in use: `$SMS_STUDIO_PRICES`, else data/prices.csv."""
    return Path(os.environ.get(ENV_PRICES, "").strip() or DEFAULT_PRICES_PATH)


def validate_prices(frame: pd.DataFrame, *, where: str = "the price table") -> pd.DataFrame:
    """The table cleaned up (codes upper-cased, sorted, `*` first), or InvalidInput saying
    which row is wrong and why.

    Rules: columns country and price_per_segment (currency optional, default EUR); a country
    is `*` or an ISO 3166 alpha-2 code phonenumbers knows; a price is a finite number >= 0;
    no country twice; exactly one `*` row; one currency for the whole table.
    """
    missing = [c for c in ("country", "price_per_segment") if c not in frame.columns]
    if missing:
        raise InvalidInput(
            f"{where} needs the columns country, price_per_segment and currency; "
            f"missing: {', '.join(missing)}."
        )
    # Rows left completely empty (a fresh row in an editor) are dropped, not refused.
    rows = frame.dropna(how="all", subset=[c for c in COLUMNS if c in frame.columns])
    countries, prices, currencies = [], [], []
    for pos, (_, row) in enumerate(rows.iterrows(), start=1):
        label = f"{where}, row {pos}"
        raw_country = row.get("country")
        country = "" if _blank(raw_country) else str(raw_country).strip().upper()
        if not country:
            raise InvalidInput(f"{label}: the country is empty; use an ISO code such as NL, or *.")
        if country != DEFAULT_COUNTRY and country not in phonenumbers.SUPPORTED_REGIONS:
            hint = _COMMON_SLIPS.get(country)
            raise InvalidInput(
                f"{label}: {country!r} is not an ISO 3166 country code"
                + (f"; did you mean {hint}?" if hint else " (use two letters such as NL, GB, US).")
            )
        price = _number(row.get("price_per_segment"))
        if price is None or price < 0:
            raise InvalidInput(
                f"{label} ({country}): the price per segment must be a number of 0 or more, "
                f"not {row.get('price_per_segment')!r}."
            )
        raw_currency = row.get("currency", "EUR")
        currency = "EUR" if _blank(raw_currency) else str(raw_currency).strip().upper()
        if len(currency) != 3 or not currency.isalpha():
            raise InvalidInput(
                f"{label} ({country}): the currency must be a three-letter code such as EUR, "
                f"not {raw_currency!r}."
            )
        countries.append(country)
        prices.append(price)
        currencies.append(currency)
    clean = pd.DataFrame(
        {"country": countries, "price_per_segment": prices, "currency": currencies},
        columns=list(COLUMNS),
    ).astype({"country": "str", "price_per_segment": "float64", "currency": "str"})
    repeated = sorted(set(clean.loc[clean["country"].duplicated(), "country"]))
    if repeated:
        raise InvalidInput(f"{where} names {', '.join(repeated)} more than once.")
    if (clean["country"] == DEFAULT_COUNTRY).sum() != 1:
        raise InvalidInput(
            f"{where} needs exactly one row with country * (the price for every other "
            "country)."
        )
    used = sorted(set(clean["currency"]))
    if len(used) > 1:
        raise InvalidInput(
            f"{where} mixes currencies ({', '.join(used)}); use one currency for every row."
        )
    order = (clean["country"] != DEFAULT_COUNTRY).astype(int)
    return (
        clean.assign(_o=order).sort_values(["_o", "country"]).drop(columns="_o")
        .reset_index(drop=True)
    )


def load_prices(path: str | Path | None = DEFAULT_PRICES_PATH) -> pd.DataFrame:
    """The price table [country, price_per_segment, currency], validated.

    `path=None` reads the file in use (`prices_path()`). A missing file gives a one-row
    table (every country at 0.09 EUR) so estimates still work on a fresh checkout.
    """
    file = prices_path() if path is None else Path(path)
    if not file.exists():
        return FALLBACK.copy()
    try:
        frame = pd.read_csv(file, dtype={"country": "str", "currency": "str"},
                            keep_default_na=False, na_values=[""])
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InvalidInput(f"Cannot read the price table {file}: {exc}") from None
    return validate_prices(frame, where=str(file))


def save_prices(frame: pd.DataFrame, path: str | Path | None = DEFAULT_PRICES_PATH
                ) -> pd.DataFrame:
    """Validate and write the table (atomically: a failed write leaves the old file)."""
    file = prices_path() if path is None else Path(path)
    clean = validate_prices(frame)
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".prices-", suffix=".csv", dir=file.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            clean.to_csv(handle, index=False, float_format="%.6g")
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return clean


def estimate_cost(segments_by_country: pd.DataFrame, prices: pd.DataFrame | None = None
                  ) -> pd.DataFrame:
    """Cost per country: [country, recipients, segments, price, cost, priced_by].

    `segments_by_country` has a `country` and a `segments` column (and optionally
    `recipients`), one row per country. Countries the table does not name, and unknown
    countries (empty or None), take the `*` price; `priced_by` says which applied.
    `prices` defaults to the table in use (`load_prices(None)`).
    """
    table = validate_prices(prices) if prices is not None else load_prices(None)
    if "country" not in segments_by_country or "segments" not in segments_by_country:
        raise ValueError("estimate_cost needs the columns country and segments")
    frame = segments_by_country.copy()
    if "recipients" not in frame:
        frame["recipients"] = pd.NA
    by_country = table.set_index("country")["price_per_segment"]
    default = float(by_country[DEFAULT_COUNTRY])
    lookup = frame["country"].astype("str").fillna("").str.strip().str.upper()
    named = lookup.map(by_country.drop(DEFAULT_COUNTRY))
    frame["price"] = named.fillna(default).astype("float64")
    frame["priced_by"] = named.notna().map({True: "country", False: "default"}).astype("str")
    frame["cost"] = frame["segments"].astype("float64") * frame["price"]
    out = frame[["country", "recipients", "segments", "price", "cost", "priced_by"]]
    return out.sort_values("cost", ascending=False, kind="stable").reset_index(drop=True)


def currency_of(prices: pd.DataFrame) -> str:
    """The table's one currency."""
    return str(prices["currency"].iloc[0]) if len(prices) else "EUR"


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or \
        value is pd.NA or (isinstance(value, str) and not value.strip())


def _number(value: object) -> float | None:
    if _blank(value) or isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip().replace(",", ".")) if isinstance(value, str) \
            else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
