"""Reading uploaded contact files into a table of text columns, and guessing column roles.

Everything is read as text first, so leading zeros in phone numbers and keys survive; column
types are inferred afterwards from the values (`infer_types`), never for phone-like columns.
A file that cannot be read raises `FileReadError` saying which line, which column and which
encoding was tried, and nothing is written.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from core.errors import InvalidInput

PHONE_HINTS = (
    "mobile", "mobiel", "gsm", "msisdn", "cell", "handy", "portable", "phone", "telefoon",
    "telephone", "tel", "nummer", "number",
)
KEY_HINTS = ("customer_id", "contact_id", "klantnummer", "id", "key", "relatienummer", "email")
CONSENT_HINTS = ("consent", "opt_in", "optin", "opt-in", "toestemming", "sms_ok", "permission")
YES_VALUES = ("yes", "y", "ja", "j", "true", "1", "opt-in", "optin", "x", "oui", "si", "sí")

CSV_DELIMITERS = ",;\t|"
SAMPLE_BYTES = 256 * 1024


class FileReadError(InvalidInput):
    """The file could not be read at all; nothing was stored."""


@dataclass
class ReadResult:
    """A file read as text columns, plus how it was read (shown in the import report)."""

    table: pa.Table
    file_format: str
    encoding: str | None = None
    delimiter: str | None = None
    renamed_columns: dict[str, str] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return list(self.table.column_names)


# -- format detection -----------------------------------------------------------------------
def detect_format(name: str, head: bytes) -> str:
    suffix = Path(name).suffix.lower()
    if head.startswith(b"PAR1") or suffix in (".parquet", ".pq"):
        return "parquet"
    if head.startswith(b"PK\x03\x04") or suffix in (".xlsx", ".xlsm"):
        return "excel"
    if suffix == ".xls" or head.startswith(b"\xd0\xcf\x11\xe0"):
        raise FileReadError(
            f"{name}: old Excel .xls files are not supported; save it as .xlsx or CSV."
        )
    return "csv"


def read_contacts_file(source: str | Path | bytes, name: str | None = None) -> ReadResult:
    """Read a CSV, Excel .xlsx or Parquet file (a path or its bytes) into text columns."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = name or path.name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise FileReadError(f"Cannot open {path}: {exc.strerror or exc}.") from None
    else:
        data = bytes(source)
        name = name or "upload"
    if not data:
        raise FileReadError(f"{name} is empty (0 bytes): there is nothing to import.")
    kind = detect_format(name, data[:8])
    if kind == "parquet":
        result = _read_parquet(data, name)
    elif kind == "excel":
        result = _read_excel(data, name)
    else:
        result = _read_csv(data, name)
    if result.table.num_rows == 0:
        raise FileReadError(
            f"{name} has a header ({', '.join(result.columns[:6])}) but no rows of contacts."
        )
    return result


# -- CSV ------------------------------------------------------------------------------------
def _decode(data: bytes, name: str) -> tuple[str, str]:
    """Decode text: UTF-8 (with or without BOM), UTF-16 with BOM, else cp1252, else Latin-1."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise FileReadError(f"{name}: not valid UTF-16 at byte {exc.start}.") from None
    sample = data[:8192]
    if sample.count(b"\x00") > 0:
        raise FileReadError(
            f"{name} looks like a binary file, not CSV text (it contains NUL bytes near the "
            "start; tried UTF-8). Upload a CSV, .xlsx or Parquet file."
        )
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _sniff_delimiter(text: str) -> str:
    sample = text[:SAMPLE_BYTES]
    # csv.Sniffer is slow on long samples: use whole lines from the first 32 KB.
    if len(sample) > 32_768:
        sample = sample[:32_768].rsplit("\n", 1)[0]
    try:
        return csv.Sniffer().sniff(sample, delimiters=CSV_DELIMITERS).delimiter
    except csv.Error:
        header = sample.splitlines()[0] if sample else ""
        counts = {d: header.count(d) for d in CSV_DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def _clean_header(names: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Blank, duplicate and reserved (leading '_') names get a usable, unique name."""
    cleaned: list[str] = []
    renamed: dict[str, str] = {}
    seen: set[str] = set()
    for index, raw in enumerate(names, start=1):
        base = str(raw).strip().replace("\n", " ") if raw is not None else ""
        new = base or f"column_{index}"
        if new.startswith("_"):
            new = new.lstrip("_") or f"column_{index}"
        candidate, n = new, 2
        while candidate.lower() in seen:
            candidate = f"{new}_{n}"
            n += 1
        seen.add(candidate.lower())
        cleaned.append(candidate)
        if candidate != str(raw):
            renamed[str(raw)] = candidate
    return cleaned, renamed


def _first_ragged_line(text: str, delimiter: str) -> tuple[int, int, int] | None:
    """(line number, fields found, fields expected) of the first row with a wrong field count."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    expected = None
    for row in reader:
        if not row:
            continue
        if expected is None:
            expected = len(row)
            continue
        if len(row) != expected:
            return reader.line_num, len(row), expected
    return None


def _read_csv(data: bytes, name: str) -> ReadResult:
    text, encoding = _decode(data, name)
    if not text[:SAMPLE_BYTES].strip() and not text.strip():
        raise FileReadError(f"{name} contains only blank lines: there is nothing to import.")
    delimiter = _sniff_delimiter(text)
    header_row = next(csv.reader(io.StringIO(text[:SAMPLE_BYTES]), delimiter=delimiter))
    names, renamed = _clean_header(header_row)
    utf8 = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    if encoding != "utf-8":
        utf8 = text.encode("utf-8")
    try:
        table = pacsv.read_csv(
            io.BytesIO(utf8),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=1 << 24),
            # Quoted newlines need the slower single-threaded parser; no quote, no newlines.
            parse_options=pacsv.ParseOptions(delimiter=delimiter,
                                             newlines_in_values=b'"' in utf8),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowException) as exc:
        ragged = _first_ragged_line(text, delimiter)
        if ragged:
            line, found, expected = ragged
            raise FileReadError(
                f"{name}, line {line}: {found} fields where the header has {expected} "
                f"(delimiter {delimiter!r}, encoding {encoding}). Fix that line and upload again."
            ) from None
        raise FileReadError(
            f"{name} could not be read as CSV (delimiter {delimiter!r}, encoding {encoding}): "
            f"{str(exc).splitlines()[0]}"
        ) from None
    return ReadResult(table, "csv", encoding=encoding, delimiter=delimiter, renamed_columns=renamed)


# -- Excel and Parquet ----------------------------------------------------------------------
def _read_excel(data: bytes, name: str) -> ReadResult:
    import pandas as pd

    try:
        frame = pd.read_excel(io.BytesIO(data), dtype=str, engine="openpyxl", keep_default_na=False)
    except Exception as exc:  # openpyxl raises many types for damaged files
        raise FileReadError(f"{name} could not be read as an Excel .xlsx workbook: {exc}") from None
    names, renamed = _clean_header([str(c) if not str(c).startswith("Unnamed:") else "" for c in
                                    frame.columns])
    frame.columns = names
    frame = frame.fillna("").astype(str)
    for col in frame.columns:  # Excel stores whole numbers as floats: 612345678.0
        frame[col] = frame[col].str.replace(r"^(\d+)\.0$", r"\1", regex=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return ReadResult(table, "excel", renamed_columns=renamed)


def _read_parquet(data: bytes, name: str) -> ReadResult:
    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for damaged files
        raise FileReadError(f"{name} could not be read as Parquet: {exc}") from None
    names, renamed = _clean_header(table.column_names)
    table = table.rename_columns(names)
    columns = []
    for col in table.columns:
        if pa.types.is_floating(col.type):
            # A whole-number float column (e.g. phone numbers) must not print as "6.12e8".
            as_int = pc.cast(col, pa.int64(), safe=False)
            whole = pc.all(pc.or_kleene(pc.is_null(col), pc.equal(col, pc.cast(as_int, col.type))))
            if whole.as_py():
                col = as_int
        text = pc.cast(col, pa.string()) if not pa.types.is_string(col.type) else col
        columns.append(pc.fill_null(text, ""))
    return ReadResult(pa.table(columns, names=names), "parquet", renamed_columns=renamed)


# -- roles and types ------------------------------------------------------------------------
def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def guess_mobile_field(columns: Sequence[str]) -> str | None:
    """The column whose header most looks like a mobile number (mobile, mobiel, gsm, ...)."""
    for hint in PHONE_HINTS:
        for col in columns:
            parts = _norm(col).split("_")
            if hint in parts or _norm(col).startswith(hint):
                return col
    return None


def guess_key_field(columns: Sequence[str]) -> str | None:
    normalised = {_norm(c): c for c in columns}
    for hint in KEY_HINTS:
        if hint in normalised:
            return normalised[hint]
    for col in columns:
        if _norm(col).endswith("_id"):
            return col
    return None


def guess_consent_field(columns: Sequence[str]) -> str | None:
    for col in columns:
        norm = _norm(col)
        if any(h.replace("-", "_") in norm for h in CONSENT_HINTS):
            return col
    return None


def is_phone_like(name: str) -> bool:
    parts = set(_norm(name).split("_"))
    return bool(parts & set(PHONE_HINTS)) or "phone" in _norm(name) or "mobi" in _norm(name)


_INT = r"^-?(0|[1-9][0-9]{0,17})$"
_FLOAT = r"^-?(0|[1-9][0-9]*)\.[0-9]+$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}(:[0-9]{2})?$"


def infer_types(table: pa.Table, keep_text: Sequence[str] = ()) -> pa.Table:
    """Give columns whose every non-empty value is a number or ISO date a real type.

    Columns in `keep_text` (the mobile field, the key) and phone-like columns stay text, and
    so does any column with a value like "0612": leading zeros are data, not formatting.
    Empty strings become NULL in typed columns only.
    """
    keep = {c for c in keep_text if c}
    arrays = []
    for name, col in zip(table.column_names, table.columns, strict=True):
        arrays.append(col if name in keep or is_phone_like(name) else _typed(col))
    return pa.table(arrays, names=table.column_names)


def _typed(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
        return col
    stripped = pc.utf8_trim_whitespace(col)
    present = pc.not_equal(stripped, "")
    n_present = pc.sum(present).as_py() or 0
    if n_present == 0:
        return col
    values = pc.filter(stripped, present)
    head = values.slice(0, 1000)

    def all_match(pattern: str) -> bool:
        # Most text columns fail on their first values: check those before the whole column.
        if not pc.all(pc.match_substring_regex(head, pattern)).as_py():
            return False
        return bool(pc.all(pc.match_substring_regex(values, pattern)).as_py())

    nullable = pc.if_else(present, stripped, pa.scalar(None, pa.string()))
    try:
        if all_match(_INT):
            return pc.cast(nullable, pa.int64())
        if all_match(_FLOAT):
            return pc.cast(nullable, pa.float64())
        if all_match(_DATE):
            return pc.cast(nullable, pa.date32())
        if all_match(_TIMESTAMP):
            return pc.cast(pc.replace_substring(nullable, "T", " "), pa.timestamp("s"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return col  # e.g. 2024-02-30: looks like a date but is not; keep the text
    return col
