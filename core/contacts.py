"""Contact databases: import with E.164 normalisation, re-import by key, browsing.

A contact database is one DuckDB table (`contacts_<id>`) with the uploaded columns as they
were, plus derived columns: `_row_id`, `_e164`, `_country`, `_number_type`, `_phone_status`,
`_phone_reason`, `_imported_at`. Nothing the user uploaded is dropped: rows with bad numbers
are stored and flagged. Everything is written in one transaction, so a failed import leaves
the database as it was.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core import importer, phones
from core.errors import InvalidInput, NotFound
from core.storage import Storage, quote_ident
from core.values import plain

Progress = Callable[[float, str], None]

DERIVED_COLUMNS = (
    "_row_id", "_e164", "_country", "_number_type", "_phone_status", "_phone_reason",
    "_imported_at",
)
PHONE_FIELDS = ("_country", "_number_type", "_phone_status")


@dataclass
class DatabaseInfo:
    id: int
    name: str
    table: str
    mobile_field: str | None
    key_field: str | None
    consent_field: str | None
    consent_values: list[str]
    default_region: str
    default_destination: dict[str, Any] | None
    columns: dict[str, str] = field(default_factory=dict)

    @property
    def user_columns(self) -> list[str]:
        return [c for c in self.columns if c not in DERIVED_COLUMNS]

    @property
    def has_opt_in_rule(self) -> bool:
        return bool(self.consent_field and self.consent_values)


@dataclass
class FilePreview:
    """What the mapping step shows: a few rows and the guessed roles of the columns."""

    file_name: str
    file_format: str
    encoding: str | None
    delimiter: str | None
    rows: int
    columns: list[str]
    head: pd.DataFrame
    mobile_field: str | None
    key_field: str | None
    consent_field: str | None
    consent_values_seen: list[str]
    renamed_columns: dict[str, str]


@dataclass
class ImportReport:
    database: str
    file_name: str
    file_format: str
    encoding: str | None
    delimiter: str | None
    rows: int
    inserted: int
    updated: int
    mobile_field: str
    key_field: str | None
    region: str
    status_counts: dict[str, int]
    country_counts: dict[str, int]
    duplicate_numbers: int
    duplicate_contacts: int
    cannot_receive: int
    duplicate_keys_in_file: int = 0
    renamed_columns: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ContactsMixin:
    """Contact databases and their import; mixed into `core.studio.Studio`."""

    storage: Storage
    _import_lock: threading.Lock

    # -- databases ----------------------------------------------------------------------
    def list_databases(self) -> pd.DataFrame:
        frame = self.storage.df(
            "SELECT id, name, table_name, mobile_field, key_field, consent_field, "
            "consent_values, default_region, created_at, updated_at FROM databases ORDER BY name"
        )
        counts = []
        for table in frame["table_name"]:
            counts.append(
                self.storage.one(f"SELECT count(*) FROM {quote_ident(table)}")
                if self.storage.table_exists(table)
                else 0
            )
        frame["contacts"] = counts
        return frame

    def database_names(self) -> list[str]:
        return [r[0] for r in self.storage.rows("SELECT name FROM databases ORDER BY name")]

    def get_database(self, name: str) -> DatabaseInfo:
        row = self.storage.rows(
            "SELECT id, name, table_name, mobile_field, key_field, consent_field, "
            "consent_values, default_region, default_destination FROM databases WHERE name = ?",
            [name],
        )
        if not row:
            known = ", ".join(self.database_names()) or "none yet"
            raise NotFound(f"There is no contact database named {name!r} (databases: {known}).")
        (db_id, db_name, table, mobile, key, consent, values, region, dest) = row[0]
        columns = self.storage.columns(table) if self.storage.table_exists(table) else {}
        return DatabaseInfo(
            id=db_id, name=db_name, table=table, mobile_field=mobile, key_field=key,
            consent_field=consent, consent_values=list(values or []), default_region=region,
            default_destination=json.loads(dest) if dest else None, columns=columns,
        )

    def get_database_by_id(self, database_id: int) -> DatabaseInfo:
        name = self.storage.one("SELECT name FROM databases WHERE id = ?", [database_id])
        if name is None:
            raise NotFound(f"There is no contact database with id {database_id}.")
        return self.get_database(name)

    def delete_database(self, name: str) -> None:
        info = self.get_database(name)
        in_use = self.storage.one(
            "SELECT count(*) FROM mailings WHERE database_id = ? AND state IN "
            "('scheduled', 'sending')",
            [info.id],
        )
        if in_use:
            raise InvalidInput(
                f"Database {name!r} has scheduled or sending mailings; cancel them first."
            )
        with self.storage.transaction() as tx:
            tx.execute(f"DROP TABLE IF EXISTS {quote_ident(info.table)}")
            tx.execute("DELETE FROM selections WHERE database_id = ?", [info.id])
            tx.execute("DELETE FROM databases WHERE id = ?", [info.id])

    def set_opt_in_rule(self, database: str, consent_field: str | None,
                        consent_values: Sequence[str] | None) -> None:
        """The opt-in rule: contacts whose `consent_field` is one of the values may be sent to."""
        info = self.get_database(database)
        values = [str(v).strip() for v in (consent_values or []) if str(v).strip()]
        if consent_field:
            if consent_field not in info.user_columns:
                raise InvalidInput(
                    f"Database {database!r} has no column {consent_field!r} for consent "
                    f"(columns: {', '.join(info.user_columns)})."
                )
            if not values:
                raise InvalidInput(
                    "Name the values of the consent column that mean yes (for example: yes, ja, 1)."
                )
        self.storage.execute(
            "UPDATE databases SET consent_field = ?, consent_values = ?, updated_at = now() "
            "WHERE id = ?",
            [consent_field or None, values or None, info.id],
        )

    def consent_values_seen(self, database: str, consent_field: str, limit: int = 20) -> list[str]:
        info = self.get_database(database)
        col = quote_ident(consent_field)
        return [
            str(r[0])
            for r in self.storage.rows(
                f"SELECT {col}, count(*) AS n FROM {quote_ident(info.table)} GROUP BY 1 "
                f"ORDER BY n DESC LIMIT {int(limit)}"
            )
            if r[0] is not None
        ]

    # -- default destination --------------------------------------------------------------
    def set_default_destination(self, database: str, *, contact_key: str | None = None,
                                row_id: int | None = None, number: str | None = None) -> dict:
        """The test contact used for previews and test sends: a stored contact or a number."""
        info = self.get_database(database)
        if number:
            norm = phones.normalize_one(number, info.default_region)
            if norm.status != "valid_mobile":
                raise InvalidInput(
                    f"{number!r} cannot be a test destination: {norm.reason or norm.status}."
                )
            dest: dict[str, Any] = {"number": norm.e164}
        else:
            contact = self._find_contact(info, contact_key=contact_key, row_id=row_id)
            if contact is None:
                raise NotFound(f"No contact {contact_key or row_id!r} in database {database!r}.")
            if contact.get("_phone_status") != "valid_mobile":
                raise InvalidInput(
                    "That contact has no valid mobile number "
                    f"({contact.get('_phone_reason') or contact.get('_phone_status')})."
                )
            dest = {"row_id": int(contact["_row_id"])}
        self.storage.execute(
            "UPDATE databases SET default_destination = ?, updated_at = now() WHERE id = ?",
            [json.dumps(dest), info.id],
        )
        return dest

    def default_destination(self, database: str) -> dict[str, Any] | None:
        """The test contact as a dict of fields (a typed number gets empty fields)."""
        info = self.get_database(database)
        dest = info.default_destination
        if not dest:
            return None
        if "number" in dest:
            record = dict.fromkeys(info.user_columns, None)
            record.update({"_e164": dest["number"], "_phone_status": "valid_mobile",
                           "_row_id": None})
            return record
        return self._find_contact(info, row_id=dest.get("row_id"))

    def _find_contact(self, info: DatabaseInfo, *, contact_key: str | None = None,
                      row_id: int | None = None) -> dict[str, Any] | None:
        table = quote_ident(info.table)
        if row_id is not None:
            frame = self.storage.df(f"SELECT * FROM {table} WHERE _row_id = ?", [int(row_id)])
        elif contact_key is not None and info.key_field:
            frame = self.storage.df(
                f"SELECT * FROM {table} WHERE CAST({quote_ident(info.key_field)} AS VARCHAR) = ?",
                [str(contact_key)],
            )
        else:
            return None
        if frame.empty:
            return None
        return {k: plain(v) for k, v in frame.iloc[0].to_dict().items()}

    def get_contact(self, database: str, row_id: int) -> dict[str, Any] | None:
        return self._find_contact(self.get_database(database), row_id=row_id)

    # -- import ---------------------------------------------------------------------------
    def preview_file(self, source: str | Path | bytes, file_name: str | None = None,
                     rows: int = 20) -> FilePreview:
        read = importer.read_contacts_file(source, file_name)
        cols = read.columns
        consent = importer.guess_consent_field(cols)
        seen: list[str] = []
        if consent:
            counts = pc.value_counts(read.table[consent]).to_pylist()
            seen = [c["values"] for c in sorted(counts, key=lambda c: -c["counts"])][:20]
        return FilePreview(
            file_name=file_name or (Path(source).name if isinstance(source, (str, Path))
                                    else "upload"),
            file_format=read.file_format, encoding=read.encoding, delimiter=read.delimiter,
            rows=read.table.num_rows, columns=cols, head=read.table.slice(0, rows).to_pandas(),
            mobile_field=importer.guess_mobile_field(cols),
            key_field=importer.guess_key_field(cols),
            consent_field=consent, consent_values_seen=seen,
            renamed_columns=read.renamed_columns,
        )

    def import_contacts(
        self,
        source: str | Path | bytes,
        *,
        database: str,
        file_name: str | None = None,
        mobile_field: str | None = None,
        key_field: str | None = None,
        consent_field: str | None = None,
        consent_yes: Sequence[str] | None = None,
        region: str | None = None,
        progress: Progress | None = None,
    ) -> ImportReport:
        """Import a file into a database (created if new); re-import updates by key."""
        started = datetime.now(UTC)
        step = progress or (lambda fraction, label: None)
        name = (database or "").strip()
        if not name:
            raise InvalidInput("Give the contact database a name.")
        if isinstance(source, (str, Path)):
            file_name = file_name or Path(source).name
        step(0.05, "Reading the file")
        read = importer.read_contacts_file(source, file_name)
        file_name = file_name or "upload"
        columns = read.columns
        existing = self._existing_database(name)
        mobile = mobile_field or (existing.mobile_field if existing else None) \
            or importer.guess_mobile_field(columns)
        _require_column(mobile, columns, "mobile", file_name, required=True)
        key = key_field or (existing.key_field if existing else None)
        if key_field is None and existing is None:
            key = None
        _require_column(key, columns, "key", file_name)
        _require_column(consent_field, columns, "consent", file_name)
        if consent_field and not consent_yes:
            raise InvalidInput(
                f"Name the values of {consent_field!r} that mean yes (for example: yes,ja,1)."
            )
        region_code = (region or (existing.default_region if existing else None) or "NL").upper()
        if not is_known_region(region_code):
            raise InvalidInput(
                f"{region_code!r} is not a country code phonenumbers knows; use an ISO code "
                "such as NL, BE, DE, GB or US."
            )
        warnings: list[str] = []
        table = read.table
        duplicate_keys = 0
        if key:
            table, duplicate_keys = _last_row_per_key(table, key)
            if duplicate_keys:
                warnings.append(
                    f"{duplicate_keys} rows repeat a {key!r} value of a later row; "
                    "the later row was kept."
                )
        step(0.15, "Inferring column types")
        table = importer.infer_types(table, keep_text=[mobile, key or ""])
        step(0.25, f"Normalising {table.num_rows:,} mobile numbers")
        norm = phones.normalize_arrow(table[mobile], region_code)
        step(0.7, "Writing to the database")
        now = datetime.now(UTC).replace(tzinfo=None)
        derived = {
            "_e164": "e164", "_country": "country", "_number_type": "number_type",
            "_phone_status": "status", "_phone_reason": "reason",
        }
        for col, source in derived.items():
            table = table.append_column(col, pc.cast(norm[source], pa.string()))
        table = table.append_column(
            "_imported_at", pa.repeat(pa.scalar(now, pa.timestamp("us")), table.num_rows)
        )
        with self._import_lock:
            inserted, updated, info = self._write_import(
                name, table, mobile=mobile, key=key, consent_field=consent_field,
                consent_yes=consent_yes, region=region_code, existing=existing,
            )
        step(0.9, "Counting")
        report = self._build_report(
            info, read, file_name=file_name, rows=table.num_rows, inserted=inserted,
            updated=updated, mobile=mobile, key=key, region=region_code,
            duplicate_keys=duplicate_keys, warnings=warnings, started=started,
        )
        self.storage.execute(
            "INSERT INTO imports (database_id, file_name, rows, inserted, updated, report) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [info.id, file_name, report.rows, inserted, updated, json.dumps(report.to_dict())],
        )
        step(1.0, "Done")
        return report

    def _existing_database(self, name: str) -> DatabaseInfo | None:
        try:
            return self.get_database(name)
        except NotFound:
            return None

    def _write_import(self, name: str, table: pa.Table, *, mobile: str, key: str | None,
                      consent_field: str | None, consent_yes: Sequence[str] | None,
                      region: str, existing: DatabaseInfo | None
                      ) -> tuple[int, int, DatabaseInfo]:
        store = self.storage
        with store.transaction() as tx:
            if existing is None:
                db_id = tx.execute(
                    "INSERT INTO databases (name, table_name, mobile_field, key_field, "
                    "default_region) VALUES (?, 'pending', ?, ?, ?) RETURNING id",
                    [name, mobile, key, region],
                ).fetchall()[0][0]
                table_name = f"contacts_{db_id}"
                tx.execute("UPDATE databases SET table_name = ? WHERE id = ?", [table_name, db_id])
            else:
                db_id, table_name = existing.id, existing.table
                tx.execute(
                    "UPDATE databases SET mobile_field = ?, key_field = ?, default_region = ?, "
                    "updated_at = now() WHERE id = ?",
                    [mobile, key, region, db_id],
                )
            if consent_field:
                tx.execute(
                    "UPDATE databases SET consent_field = ?, consent_values = ? WHERE id = ?",
                    [consent_field, [str(v).strip() for v in consent_yes or []], db_id],
                )
            inserted, updated = _upsert(tx, table_name, table, key)
        info = self.get_database(name)
        return inserted, updated, info

    def _build_report(self, info: DatabaseInfo, read: importer.ReadResult, *, file_name: str,
                      rows: int, inserted: int, updated: int, mobile: str, key: str | None,
                      region: str, duplicate_keys: int, warnings: list[str],
                      started: datetime) -> ImportReport:
        table = quote_ident(info.table)
        status_counts = {s: 0 for s in phones.STATUSES}
        for status, count in self.storage.rows(
            f"SELECT _phone_status, count(*) FROM {table} GROUP BY 1"
        ):
            status_counts[status] = int(count)
        country_counts = {
            (c or "unknown"): int(n)
            for c, n in self.storage.rows(
                f"SELECT _country, count(*) AS n FROM {table} WHERE _e164 <> '' "
                "GROUP BY 1 ORDER BY n DESC"
            )
        }
        dup_numbers, dup_contacts = self.storage.rows(
            f"SELECT count(*), coalesce(sum(n), 0) FROM (SELECT _e164, count(*) AS n FROM {table} "
            "WHERE _e164 <> '' GROUP BY 1 HAVING count(*) > 1)"
        )[0]
        cannot = status_counts["invalid"] + status_counts["missing"] + status_counts["not_mobile"]
        if rows and status_counts["valid_mobile"] == 0:
            warnings.append(
                f"No row has a valid mobile number in {mobile!r}: is that the right column, and "
                f"is {region} the right default country?"
            )
        return ImportReport(
            database=info.name, file_name=file_name, file_format=read.file_format,
            encoding=read.encoding, delimiter=read.delimiter, rows=rows, inserted=inserted,
            updated=updated, mobile_field=mobile, key_field=key, region=region,
            status_counts=status_counts, country_counts=country_counts,
            duplicate_numbers=int(dup_numbers), duplicate_contacts=int(dup_contacts),
            cannot_receive=cannot, duplicate_keys_in_file=duplicate_keys,
            renamed_columns=read.renamed_columns, warnings=warnings,
            seconds=round((datetime.now(UTC) - started).total_seconds(), 3),
        )

    def phone_report(self, database: str) -> dict[str, Any]:
        """The import report's figures for the database as it is now."""
        info = self.get_database(database)
        table = quote_ident(info.table)
        status = dict(self.storage.rows(f"SELECT _phone_status, count(*) FROM {table} GROUP BY 1"))
        countries = self.storage.df(
            f"SELECT _country AS country, _phone_status AS status, count(*) AS contacts "
            f"FROM {table} GROUP BY 1, 2 ORDER BY 3 DESC"
        )
        return {"status_counts": {s: int(status.get(s, 0)) for s in phones.STATUSES},
                "by_country": countries}

    def duplicate_numbers(self, database: str, limit: int = 1000) -> pd.DataFrame:
        """Numbers shared by several contacts (at send time each gets one message)."""
        info = self.get_database(database)
        key = quote_ident(info.key_field) if info.key_field else "_row_id"
        return self.storage.df(
            f"SELECT _e164 AS number, count(*) AS contacts, "
            f"string_agg(CAST({key} AS VARCHAR), ', ') AS keys FROM {quote_ident(info.table)} "
            f"WHERE _e164 <> '' GROUP BY 1 HAVING count(*) > 1 ORDER BY 2 DESC, 1 LIMIT {limit}"
        )

    def unsendable_contacts(self, database: str) -> pd.DataFrame:
        """Rows that cannot receive SMS, with the reason (the report's download)."""
        info = self.get_database(database)
        cols = ", ".join(quote_ident(c) for c in info.user_columns)
        return self.storage.df(
            f"SELECT {cols}, _phone_status AS phone_status, "
            f"CASE WHEN _phone_status = 'missing' THEN 'no mobile number' ELSE _phone_reason END "
            f"AS reason FROM {quote_ident(info.table)} WHERE _phone_status <> 'valid_mobile' "
            "ORDER BY _row_id"
        )

    # -- browsing -------------------------------------------------------------------------
    def browse_contacts(self, database: str, *, search: str | None = None, page: int = 0,
                        page_size: int = 50) -> tuple[pd.DataFrame, int]:
        """One page of contacts (never the whole table), optionally filtered by a search."""
        info = self.get_database(database)
        table = quote_ident(info.table)
        where, params = "", []
        if search and search.strip():
            term = search.strip()
            user_cols = [quote_ident(c) for c in info.user_columns]
            clauses = [f"contains(lower(concat_ws(' ', {', '.join(user_cols)})), ?)"]
            params.append(term.lower())
            norm = phones.normalize_one(term, info.default_region)
            if norm.e164:
                clauses.append("_e164 = ?")
                params.append(norm.e164)
            where = "WHERE " + " OR ".join(clauses)
        total = int(self.storage.one(f"SELECT count(*) FROM {table} {where}", params))
        page_size = max(1, min(int(page_size), 500))
        offset = max(0, int(page)) * page_size
        frame = self.storage.df(
            f"SELECT t.*, s.reason AS _suppressed FROM {table} t "
            f"LEFT JOIN suppressions s ON s.e164 = t._e164 AND t._e164 <> '' {where} "
            f"ORDER BY t._row_id LIMIT {page_size} OFFSET {offset}",
            params,
        )
        return frame, total

    def database_summary(self, database: str) -> pd.DataFrame:
        """Per column: type, filled values and distinct values (the 'columns and sizes' view)."""
        info = self.get_database(database)
        table = quote_ident(info.table)
        rows = []
        total = int(self.storage.one(f"SELECT count(*) FROM {table}"))
        parts = [
            f"SELECT {i} AS i, count({quote_ident(c)}) AS filled, "
            f"approx_count_distinct({quote_ident(c)}) AS distinct_values FROM {table}"
            for i, c in enumerate(info.user_columns)
        ]
        stats = {r[0]: r[1:] for r in self.storage.rows(" UNION ALL ".join(parts))} if parts else {}
        for i, col in enumerate(info.user_columns):
            filled, distinct = stats.get(i, (0, 0))
            rows.append({"column": col, "type": info.columns[col], "filled": int(filled),
                         "empty": total - int(filled), "distinct (approx.)": int(distinct)})
        return pd.DataFrame(rows)


# -- helpers ------------------------------------------------------------------------------
def is_known_region(region: str) -> bool:
    """Whether phonenumbers knows this ISO country code (NL, BE, ...)."""
    import phonenumbers

    return phonenumbers.country_code_for_region(region.upper()) != 0




def _require_column(column: str | None, columns: Sequence[str], role: str, file_name: str,
                    required: bool = False) -> None:
    if column is None or column == "":
        if required:
            raise InvalidInput(
                f"{file_name}: no column looks like a {role} number; choose the {role} field "
                f"(columns: {', '.join(columns)})."
            )
        return
    if column not in columns:
        raise InvalidInput(
            f"{file_name} has no column {column!r} for the {role} field "
            f"(columns: {', '.join(columns)})."
        )


def _last_row_per_key(table: pa.Table, key: str) -> tuple[pa.Table, int]:
    """Keep the last row of each non-empty key value; rows with an empty key all stay."""
    keys = pc.utf8_trim_whitespace(table[key])
    if len(keys.unique()) == len(keys):
        return table, 0  # the usual case, decided without leaving Arrow
    frame = pd.DataFrame({"k": keys.to_pandas()})
    empty = frame["k"] == ""
    dup = frame["k"].duplicated(keep="last") & ~empty
    n = int(dup.sum())
    if n == 0:
        return table, 0
    return table.filter(pa.array((~dup).to_numpy())), n


def _duck_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_integer(arrow_type):
        return "BIGINT"
    if pa.types.is_floating(arrow_type):
        return "DOUBLE"
    if pa.types.is_date(arrow_type):
        return "DATE"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP"
    if pa.types.is_boolean(arrow_type):
        return "BOOLEAN"
    return "VARCHAR"


def _upsert(tx: Any, table_name: str, table: pa.Table, key: str | None) -> tuple[int, int]:
    """Create or extend the contacts table and write the rows; returns (inserted, updated)."""
    target = quote_ident(table_name)
    exists = tx.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table_name]
    ).fetchall()[0][0]
    view = f"_import_{threading.get_ident()}"
    if not exists:
        ids = pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64))
        tx.register(view, table.add_column(0, "_row_id", ids))
        try:
            tx.execute(f"CREATE TABLE {target} AS SELECT * FROM {view}")
        finally:
            tx.unregister(view)
        return table.num_rows, 0

    current = dict(tx.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?",
        [table_name],
    ).fetchall())
    incoming = {name: _duck_type(t) for name, t in zip(table.column_names, table.schema.types,
                                                       strict=True)}
    for col, dtype in incoming.items():
        if col not in current:
            tx.execute(f"ALTER TABLE {target} ADD COLUMN {quote_ident(col)} {dtype}")
            current[col] = dtype
        elif current[col] != dtype and current[col] != "VARCHAR" and not col.startswith("_"):
            # Two imports disagree about a column's type: keep every value as text.
            tx.execute(f"ALTER TABLE {target} ALTER {quote_ident(col)} TYPE VARCHAR")
            current[col] = "VARCHAR"
    casts = ", ".join(
        f"CAST({quote_ident(c)} AS {current[c]}) AS {quote_ident(c)}" for c in table.column_names
    )
    tx.register(view, table)
    try:
        tx.execute(f"CREATE TEMP TABLE _incoming AS SELECT {casts} FROM {view}")
    finally:
        tx.unregister(view)
    try:
        updated = 0
        if key:
            k = quote_ident(key)
            sets = ", ".join(
                f"{quote_ident(c)} = i.{quote_ident(c)}" for c in table.column_names if c != key
            )
            updated = tx.execute(
                f"UPDATE {target} AS t SET {sets} FROM _incoming AS i "
                f"WHERE CAST(t.{k} AS VARCHAR) = CAST(i.{k} AS VARCHAR) "
                f"AND trim(CAST(i.{k} AS VARCHAR)) <> ''"
            ).fetchall()[0][0]
            new_rows = (
                f"SELECT * FROM _incoming i WHERE trim(CAST(i.{k} AS VARCHAR)) = '' OR NOT EXISTS "
                f"(SELECT 1 FROM {target} t WHERE CAST(t.{k} AS VARCHAR) = CAST(i.{k} AS VARCHAR))"
            )
        else:
            new_rows = "SELECT * FROM _incoming"
        start = tx.execute(f"SELECT coalesce(max(_row_id), 0) FROM {target}").fetchall()[0][0]
        cols = ", ".join(quote_ident(c) for c in table.column_names)
        inserted = tx.execute(
            f"INSERT INTO {target} (_row_id, {cols}) "
            f"SELECT {int(start)} + row_number() OVER (), {cols} FROM ({new_rows})"
        ).fetchall()[0][0]
    finally:
        tx.execute("DROP TABLE IF EXISTS _incoming")
    return int(inserted), int(updated)
