"""The audience reconciliation: how a selection's size becomes the number of SMS recipients.

    in selection → no mobile number → invalid number → not a mobile number → no consent
    → suppressed → duplicate number (kept once) → recipients

The first step counts the contacts in the selection; every later step counts the contacts it
removes, applied in that order, so a contact is counted once, at the first step that removes
it, and `recipients` is the first count minus all the others.

Decisions:
- *Consent*: the contact's consent field value, trimmed and compared case-insensitively, is
  one of the database's consent values. A database without an opt-in rule is not usable for
  SMS (`require_sms_usable` refuses it), but the reconciliation still shows its counts, with
  every contact with a mobile number counted as "no consent": that is the truthful answer to
  "who could receive this", and it shows the user what to fix.
- *Duplicate number*: among the contacts left, those sharing an E.164 number with another;
  the one with the lowest `_row_id` is kept.

Everything is one DuckDB query over the contacts (a CTE that flags each contact with the
first step that removes it), never a Python loop over contacts. A mailing's snapshot uses
`audience_frame`, so what the page shows and who receives the mailing cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from core import exports
from core.errors import InvalidInput
from core.selection_service import SelectionScope
from core.storage import quote_ident

STEPS = (
    "in_selection", "no_number", "invalid_number", "not_mobile", "no_consent", "suppressed",
    "duplicate_number",
)
STEP_LABELS = {
    "in_selection": "In selection",
    "no_number": "No mobile number",
    "invalid_number": "Invalid number",
    "not_mobile": "Not a mobile number",
    "no_consent": "No consent",
    "suppressed": "Suppressed",
    "duplicate_number": "Duplicate number (kept once)",
    "recipients": "Recipients",
}
FRAME_STEPS = (*STEPS, "recipients")
# Contact columns every reconciliation download carries beside the uploaded ones.
_STEP_COLUMNS = ("_row_id", "_e164", "_country", "_number_type", "_phone_status",
                 "_phone_reason")
_RECIPIENT_COLUMNS = ("_row_id", "_e164", "_country")


@dataclass
class AudienceResult:
    """The reconciliation of one selection (or a whole database)."""

    steps: list[tuple[str, int]]
    recipients: int
    by_country: dict[str, int]
    computed_at: datetime
    database: str = ""
    selection: str | None = None
    consent_rule: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def count(self, step: str) -> int:
        if step == "recipients":
            return self.recipients
        return dict(self.steps)[step]

    def to_json(self) -> dict[str, Any]:
        """Exactly the CLI's `audience --json` object."""
        return {
            "steps": [{"step": name, "count": int(n)} for name, n in self.steps],
            "recipients": int(self.recipients),
            "by_country": {k: int(v) for k, v in self.by_country.items()},
        }

    def table(self) -> pd.DataFrame:
        """Step, label, count and what is left after it (the page's funnel)."""
        rows, left = [], 0
        for name, n in self.steps:
            left = n if name == "in_selection" else left - n
            rows.append({"step": name, "label": STEP_LABELS[name], "contacts": int(n),
                         "left": int(left)})
        rows.append({"step": "recipients", "label": STEP_LABELS["recipients"],
                     "contacts": int(self.recipients), "left": int(self.recipients)})
        return pd.DataFrame(rows)


def _step_case(scope: SelectionScope) -> tuple[str, list[Any]]:
    """SQL for the first step that removes a contact (NULL: it stays), with its parameters."""
    db = scope.database
    if db.has_opt_in_rule and db.consent_field in db.columns:
        values = sorted({str(v).strip().lower() for v in db.consent_values})
        consent = (
            f"coalesce(list_contains(?::VARCHAR[], "
            f"lower(trim(CAST({quote_ident(db.consent_field)} AS VARCHAR)))), false)"
        )
        params: list[Any] = [values]
    else:
        consent, params = "false", []
    case = (
        "CASE"
        " WHEN _phone_status = 'missing' THEN 'no_number'"
        " WHEN _phone_status = 'not_mobile' THEN 'not_mobile'"
        " WHEN _phone_status IS DISTINCT FROM 'valid_mobile' OR coalesce(_e164, '') = ''"
        "  THEN 'invalid_number'"
        f" WHEN NOT {consent} THEN 'no_consent'"
        " WHEN _e164 IN (SELECT e164 FROM suppressions) THEN 'suppressed'"
        " END"
    )
    return case, params


class AudienceMixin:
    """The reconciliation and the recipients list; mixed into `core.studio.Studio`."""

    clock: Callable[[], datetime]
    selection_scope: Callable[..., SelectionScope]
    _run_scoped: Callable[..., Any]

    def _audience_scope(self, selection: str | None, database: str | None) -> SelectionScope:
        if not selection and not database:
            raise InvalidInput("Name a selection or a contact database for the audience.")
        if selection:
            return self.selection_scope(selection, database=database)
        return self.selection_scope(database=database)

    def _flagged_sql(self, scope: SelectionScope, columns: Sequence[str]) -> tuple[str, list]:
        """A query of the selection's contacts with `_step`: the step that removes each."""
        case, case_params = _step_case(scope)
        cols = ", ".join(quote_ident(c) for c in dict.fromkeys(columns))
        sql = (
            f"SELECT {cols}, {case} AS _step FROM {scope.table} WHERE {scope.where}"
        )
        # The CASE's parameters come first in the text, the rule's after them.
        return sql, [*case_params, *scope.params]

    def audience(self, *, selection: str | None = None, database: str | None = None
                 ) -> AudienceResult:
        """The reconciliation, step by step, of a selection (or of a whole database)."""
        scope = self._audience_scope(selection, database)
        flagged, params = self._flagged_sql(scope, ["_e164", "_country", "_phone_status"])
        rows = self._run_scoped(
            f"WITH f AS ({flagged}) "
            "SELECT _step, CASE WHEN _step IS NULL THEN coalesce(nullif(_country, ''), "
            "'unknown') END AS country, count(*) AS n, "
            "count(DISTINCT _e164) FILTER (WHERE _step IS NULL) AS d FROM f GROUP BY ALL",
            params, scope,
        ).fetchall()
        removed = dict.fromkeys(STEPS[1:], 0)
        total = kept_rows = recipients = 0
        by_country: dict[str, int] = {}
        for step, country, n, d in rows:
            total += int(n)
            if step is None:
                kept_rows += int(n)
                recipients += int(d)
                by_country[country] = by_country.get(country, 0) + int(d)
            else:
                removed[step] += int(n)
        removed["duplicate_number"] = kept_rows - recipients
        steps = [("in_selection", total), *removed.items()]
        ordered = dict(sorted(by_country.items(), key=lambda kv: (-kv[1], kv[0])))
        return AudienceResult(
            steps=steps, recipients=recipients, by_country=ordered, computed_at=self.clock(),
            database=scope.database.name, selection=selection,
            consent_rule=scope.database.has_opt_in_rule,
        )

    def _step_query(self, step: str, scope: SelectionScope, columns: Sequence[str]
                    ) -> tuple[str, list[Any]]:
        if step not in FRAME_STEPS:
            raise InvalidInput(
                f"There is no reconciliation step {step!r} (steps: {', '.join(FRAME_STEPS)})."
            )
        cols = list(dict.fromkeys(columns))
        need = list(dict.fromkeys([*cols, "_row_id", "_e164"]))
        flagged, params = self._flagged_sql(scope, need)
        out = ", ".join(quote_ident(c) for c in cols)
        if step == "in_selection":
            return f"SELECT {out} FROM ({flagged}) ORDER BY _row_id", params
        if step in ("duplicate_number", "recipients"):
            keep = "= 1" if step == "recipients" else "> 1"
            extra = "" if step == "recipients" else (
                ", first_value(_row_id) OVER (PARTITION BY _e164 ORDER BY _row_id) "
                "AS _duplicate_of"
            )
            return (
                f"SELECT {out}{extra} FROM ({flagged}) WHERE _step IS NULL "
                f"QUALIFY row_number() OVER (PARTITION BY _e164 ORDER BY _row_id) {keep} "
                "ORDER BY _row_id",
                params,
            )
        return f"SELECT {out} FROM ({flagged}) WHERE _step = ? ORDER BY _row_id", [*params, step]

    def audience_step_frame(self, step: str, *, selection: str | None = None,
                            database: str | None = None) -> pd.DataFrame:
        """The contacts a step removes (or every contact for `in_selection`, the recipients
        for `recipients`): the uploaded columns plus the phone verdict, for downloads."""
        scope = self._audience_scope(selection, database)
        columns = [*scope.database.user_columns,
                   *(c for c in _STEP_COLUMNS if c in scope.database.columns)]
        sql, params = self._step_query(step, scope, columns)
        return self._run_scoped(sql, params, scope).df()

    def audience_step_csv(self, step: str, *, selection: str | None = None,
                          database: str | None = None) -> bytes:
        """A step's contacts as spreadsheet-safe CSV bytes (the page's download)."""
        return exports.to_safe_csv(
            self.audience_step_frame(step, selection=selection, database=database)
        )

    def audience_frame(self, *, selection: str | None = None, database: str | None = None,
                       columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The recipients: one row per E.164 number (lowest `_row_id` kept), with the contact
        columns (all, or `columns`) plus `_row_id`, `_e164` and `_country`."""
        scope = self._audience_scope(selection, database)
        user = scope.database.user_columns
        if columns is None:
            chosen = list(user)
        else:
            unknown = [c for c in columns if c not in scope.database.columns]
            if unknown:
                raise InvalidInput(
                    f"Database {scope.database.name!r} has no column "
                    f"{', '.join(map(repr, unknown))} (columns: {', '.join(user)})."
                )
            chosen = [c for c in columns if c not in _RECIPIENT_COLUMNS]
        sql, params = self._step_query("recipients", scope, [*chosen, *_RECIPIENT_COLUMNS])
        return self._run_scoped(sql, params, scope).df()
