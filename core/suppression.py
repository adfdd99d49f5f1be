"""The global suppression list: numbers that no mailing ever reaches.

Numbers are normalised exactly like contact numbers before they are stored or matched, so
`06-12345678` and `+31 6 1234 5678` are one entry. Every add and remove is also logged, so the
list's growth can be charted and a removal audited.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core import importer, phones
from core.errors import InvalidInput
from core.storage import Storage

REASONS = ("stop_reply", "manual", "bounced", "imported")


@dataclass
class SuppressionResult:
    added: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (raw, reason)


class SuppressionMixin:
    """Suppression list operations; mixed into `core.studio.Studio`."""

    storage: Storage

    def _normalise_numbers(self, numbers: Iterable[str], region: str
                           ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        raw = [str(n) for n in numbers]
        if not raw:
            return [], []
        norm = phones.normalize(pd.Series(raw, dtype=object), region.upper())
        good, bad = [], []
        for value, e164, reason in zip(raw, norm["e164"], norm["reason"], strict=True):
            if isinstance(e164, str) and e164:
                good.append((value, e164))
            else:
                bad.append((value, str(reason or "not a phone number")))
        return good, bad

    def suppress(self, numbers: Iterable[str], *, reason: str = "manual", source: str = "manual",
                 region: str = "NL", mailing_id: int | None = None) -> SuppressionResult:
        """Add numbers (any format) to the suppression list; invalid ones are reported."""
        if reason not in REASONS and not reason.strip():
            raise InvalidInput("Give a reason for the suppression.")
        good, bad = self._normalise_numbers(numbers, region)
        result = SuppressionResult(invalid=bad)
        unique = list(dict.fromkeys(e for _, e in good))
        if not unique:
            return result
        existing = {
            r[0] for r in self.storage.rows(
                "SELECT e164 FROM suppressions WHERE e164 IN (SELECT unnest(?))", [unique]
            )
        }
        new = [e for e in unique if e not in existing]
        result.already = [e for e in unique if e in existing]
        result.added = new
        if new:
            frame = pd.DataFrame({"e164": new, "reason": reason, "source": source,
                                  "mailing_id": pd.array([mailing_id] * len(new), dtype="Int64")})
            log = frame.assign(action="add")
            with self.storage.transaction():
                self.storage.append_df("suppressions", frame)
                self.storage.append_df("suppression_log", log)
        return result

    def unsuppress(self, numbers: Iterable[str], *, region: str = "NL",
                   source: str = "manual", only_reason: str | None = None) -> SuppressionResult:
        """Remove numbers from the list (START replies remove only STOP suppressions)."""
        good, bad = self._normalise_numbers(numbers, region)
        result = SuppressionResult(invalid=bad)
        unique = list(dict.fromkeys(e for _, e in good))
        if not unique:
            return result
        sql = "SELECT e164 FROM suppressions WHERE e164 IN (SELECT unnest(?))"
        params: list = [unique]
        if only_reason:
            sql += " AND reason = ?"
            params.append(only_reason)
        present = {r[0] for r in self.storage.rows(sql, params)}
        result.removed = [e for e in unique if e in present]
        result.not_found = [e for e in unique if e not in present]
        if result.removed:
            with self.storage.transaction() as tx:
                tx.execute("DELETE FROM suppressions WHERE e164 IN (SELECT unnest(?))",
                           [result.removed])
                self.storage.append_df("suppression_log", pd.DataFrame(
                    {"e164": result.removed, "action": "remove", "source": source}))
        return result

    def import_suppressions(self, source: str | Path | bytes, *, file_name: str | None = None,
                            column: str | None = None, reason: str = "imported",
                            region: str = "NL") -> SuppressionResult:
        """Import a list of numbers (CSV/Excel/Parquet, or a plain one-number-per-line file)."""
        read = importer.read_contacts_file(source, file_name)
        col = column or importer.guess_mobile_field(read.columns) or read.columns[0]
        if col not in read.columns:
            raise InvalidInput(f"The file has no column {col!r} (columns: {read.columns}).")
        values = read.table[col].to_pylist()
        header_is_number = phones.normalize_one(col, region).e164
        if header_is_number and column is None and len(read.columns) == 1:
            values = [col, *values]  # a headerless list: the first line is a number too
        values = [v for v in values if v is not None and str(v).strip()]
        return self.suppress(values, reason=reason, source="import", region=region)

    def list_suppressions(self, search: str | None = None, limit: int | None = None
                          ) -> pd.DataFrame:
        sql = "SELECT e164, reason, source, mailing_id, added_at FROM suppressions"
        params: list = []
        if search:
            sql += " WHERE contains(e164, ?)"
            params.append("".join(ch for ch in search if ch.isdigit() or ch == "+"))
        sql += " ORDER BY added_at DESC, e164"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return self.storage.df(sql, params)

    def suppression_count(self) -> int:
        return int(self.storage.one("SELECT count(*) FROM suppressions"))

    def is_suppressed(self, number: str, region: str = "NL") -> bool:
        norm = phones.normalize_one(number, region)
        if not norm.e164:
            return False
        return bool(self.storage.one("SELECT count(*) FROM suppressions WHERE e164 = ?",
                                     [norm.e164]))
