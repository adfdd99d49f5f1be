"""SMS documents: a named sender and message template, checked, previewed and costed.

A document is not tied to a contact database: the same text can go to several databases,
so its fields are checked against the database chosen in the editor (`check_document`),
and again, strictly, when a mailing starts.

Decisions:
- *Drafts may hold template errors.* A body with an unknown field or a missing brace is
  saved as typed (losing a half-written text to a validation error is worse) and the error,
  with line, column and suggestions, is shown beside it; a mailing refuses to start with it.
- *A fixed sender is refused when it breaks the GSM originator rule* (`validate_sender`);
  its warnings (alphanumeric senders in some countries) are returned to be shown. An empty
  sender is allowed in a draft: sending needs one.
- *A sender may be personalised* (`{{ shop_name }}` or Smarty `{$shop_name}`): it cannot be
  checked until rendered, so previews check the rendered sender and the whole-selection
  view lists every rendered sender that breaks the rule, with how many recipients get it.
- *Counting follows the gateway*: the `national_shift` setting ("" = off) is passed to the
  segment counter, so the meter, the preview and the cost estimate count the same parts
  the gateway will send.

The whole-selection view renders and measures the message of every recipient, but only
aggregates leave this module (histogram, per-country cost, UCS-2 causes, the longest
message): a page never receives a million rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np
import pandas as pd

from core import pricing, segments, templates
from core.contacts import DatabaseInfo
from core.errors import InvalidInput, NotFound
from core.senders import SenderCheck, alphanumeric_warning, validate_sender
from core.storage import Storage, quote_ident

Progress = Callable[[float, str], None]

MAX_NAME = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Distinct field values named in the UCS-2 causes and distinct rendered senders checked:
# enough to act on, small enough for a page.
MAX_CAUSES = 50
MAX_SENDERS_CHECKED = 20_000
TEMPLATE_TEXT = "(document text)"


@dataclass
class DocumentInfo:
    id: int
    name: str
    sender: str
    body: str
    settings: dict[str, Any]
    created_at: datetime | None
    updated_at: datetime | None


@dataclass
class DocumentCheck:
    """What the editor shows beside a draft: template and sender problems, never raised."""

    fields: list[str]
    template: templates.CompiledTemplate | None
    template_error: templates.TemplateError | None
    sender_check: SenderCheck | None  # a fixed sender's verdict (None: empty or personalised)
    sender_personalised: bool
    sender_error: templates.TemplateError | None = None

    @property
    def translated_source(self) -> str | None:
        """The Jinja2 form of a Smarty template, to teach the syntax (None if not Smarty)."""
        if self.template is not None and self.template.translated:
            return self.template.jinja_source
        return None

    @property
    def ok(self) -> bool:
        sender_ok = self.sender_check is None or self.sender_check.ok
        return self.template_error is None and self.sender_error is None and sender_ok


@dataclass
class Preview:
    """One contact's message as it will be sent, with its meter."""

    text: str
    sender: str
    sender_check: SenderCheck | None
    meter: segments.SegmentInfo
    smart: segments.SmartSuggestion
    contact: dict[str, Any]
    label: str


@dataclass
class LongestMessage:
    text: str
    characters: int
    units: int
    segments: int
    encoding: str
    contact_key: str
    e164: str


@dataclass
class SelectionView:
    """Every recipient's message, summarised (only aggregates: safe to send to a browser)."""

    database: str
    selection: str | None
    recipients: int
    total_segments: int
    segments_histogram: pd.DataFrame  # segments, recipients
    ucs2_recipients: int
    ucs2_causes: pd.DataFrame  # field, value, characters, recipients
    longest: LongestMessage | None
    cost_by_country: pd.DataFrame  # country, recipients, segments, price, cost, priced_by
    total_cost: float
    currency: str
    render_seconds: float
    analyse_seconds: float
    load_seconds: float
    fast_path: bool
    national: str | None
    max_parts: int
    over_max_parts: int
    invalid_senders: pd.DataFrame  # sender, recipients, error
    warnings: list[str] = field(default_factory=list)
    audience: str = ""  # who was counted, in words

    @property
    def mean_segments(self) -> float:
        return self.total_segments / self.recipients if self.recipients else 0.0


def is_personalised(text: str) -> bool:
    """Whether a sender is a template: braces are never valid in a fixed sender."""
    return "{" in (text or "")


def _noop(fraction: float, label: str) -> None:
    return None


class DocumentsMixin:
    """Documents and their checks, previews and estimates; mixed into `core.studio.Studio`."""

    storage: Storage
    clock: Callable[[], datetime]
    get_database: Callable[[str], DatabaseInfo]
    get_setting: Callable[[str], Any]
    default_destination: Callable[[str], dict[str, Any] | None]
    get_contact: Callable[[str, int], dict[str, Any] | None]

    # -- the price table ---------------------------------------------------------------------
    _prices_path: Path | None = None

    @property
    def prices_path(self) -> Path:
        """The price CSV this Studio reads and writes ($SMS_STUDIO_PRICES, else
        data/prices.csv); assignable, e.g. to keep tests away from the shipped table."""
        return self._prices_path or pricing.prices_path()

    @prices_path.setter
    def prices_path(self, path: str | Path) -> None:
        self._prices_path = Path(path)

    def price_table(self) -> pd.DataFrame:
        return pricing.load_prices(self.prices_path)

    def save_price_table(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Validate and store the price table; returns it cleaned (sorted, `*` first)."""
        return pricing.save_prices(frame, self.prices_path)

    # -- reading -----------------------------------------------------------------------------
    def document_names(self) -> list[str]:
        return [r[0] for r in self.storage.rows("SELECT name FROM documents ORDER BY name")]

    def list_documents(self) -> pd.DataFrame:
        """Every document: id, name, sender, characters, start of the body, timestamps."""
        return self.storage.df(
            "SELECT id, name, sender, length(body) AS characters, "
            "CASE WHEN length(body) > 60 THEN left(body, 59) || '…' ELSE body END AS body_start, "
            "created_at, updated_at FROM documents ORDER BY name"
        )

    def get_document(self, name: str) -> DocumentInfo:
        rows = self.storage.rows(
            "SELECT id, name, sender, body, settings, created_at, updated_at FROM documents "
            "WHERE name = ?",
            [name],
        )
        if not rows:
            known = self.document_names()
            hint = ", ".join(known[:15]) + (", …" if len(known) > 15 else "") or "none yet"
            raise NotFound(f"There is no document named {name!r} (documents: {hint}).")
        doc_id, doc_name, sender, body, settings, created, updated = rows[0]
        return DocumentInfo(
            id=int(doc_id), name=doc_name, sender=sender or "", body=body or "",
            settings=json.loads(settings) if settings else {}, created_at=created,
            updated_at=updated,
        )

    # -- writing -----------------------------------------------------------------------------
    def _check_name(self, name: str | None, *, current_id: int | None = None) -> str:
        clean = (name or "").strip()
        if not clean:
            raise InvalidInput("Give the document a name.")
        if len(clean) > MAX_NAME:
            raise InvalidInput(f"A document name has at most {MAX_NAME} characters.")
        if _CONTROL.search(clean):
            raise InvalidInput("A document name cannot contain line breaks or tabs.")
        other = self.storage.one("SELECT id FROM documents WHERE name = ?", [clean])
        if other is not None and other != current_id:
            raise InvalidInput(f"There is already a document named {clean!r}; choose another name.")
        return clean

    @staticmethod
    def _check_sender(sender: str) -> str:
        """A fixed sender must follow the GSM rule; empty and personalised ones are kept."""
        sender = sender or ""
        if sender.strip() and not is_personalised(sender):
            verdict = validate_sender(sender)
            if not verdict.ok:
                raise InvalidInput(verdict.error or f"The sender {sender!r} cannot be used.")
        return sender

    def create_document(self, name: str, *, sender: str = "", body: str = "") -> int:
        """A new document; returns its id. The body may still contain template errors."""
        clean = self._check_name(name)
        sender = self._check_sender(sender)
        now = self.clock()
        return int(self.storage.one(
            "INSERT INTO documents (name, sender, body, settings, created_at, updated_at) "
            "VALUES (?, ?, ?, '{}', ?, ?) RETURNING id",
            [clean, sender, str(body or ""), now, now],
        ))

    def update_document(self, name: str, *, sender: str | None = None, body: str | None = None,
                        new_name: str | None = None) -> DocumentInfo:
        """Change what is given (None leaves it); refused as a whole when any part is bad."""
        doc = self.get_document(name)
        target = self._check_name(new_name, current_id=doc.id) if new_name is not None \
            else doc.name
        new_sender = self._check_sender(sender) if sender is not None else doc.sender
        new_body = str(body) if body is not None else doc.body
        self.storage.execute(
            "UPDATE documents SET name = ?, sender = ?, body = ?, updated_at = ? WHERE id = ?",
            [target, new_sender, new_body, self.clock(), doc.id],
        )
        return self.get_document(target)

    def rename_document(self, old: str, new: str) -> DocumentInfo:
        return self.update_document(old, new_name=new)

    def duplicate_document(self, name: str, new_name: str) -> int:
        """A copy under a new name (sender, body and settings); returns the copy's id."""
        doc = self.get_document(name)
        clean = self._check_name(new_name)
        now = self.clock()
        return int(self.storage.one(
            "INSERT INTO documents (name, sender, body, settings, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            [clean, doc.sender, doc.body, json.dumps(doc.settings), now, now],
        ))

    def delete_document(self, name: str) -> None:
        """Delete a document, unless a scheduled or sending mailing still needs it.

        Finished mailings keep their own copy of sender and body, so they do not hold it.
        """
        doc = self.get_document(name)
        busy = self.storage.rows(
            "SELECT id, state FROM mailings WHERE document_id = ? AND state IN "
            "('scheduled', 'sending') ORDER BY id",
            [doc.id],
        )
        if busy:
            listed = ", ".join(f"#{mid} ({state})" for mid, state in busy)
            raise InvalidInput(
                f"Document {name!r} is used by mailing {listed}; cancel or finish it first."
            )
        self.storage.execute("DELETE FROM documents WHERE id = ?", [doc.id])

    # -- checking, metering, previewing ------------------------------------------------------
    def national_shift(self) -> str | None:
        """The gateway's national language shift table for counting (None when off)."""
        value = str(self.get_setting("national_shift") or "").strip().lower()
        if value in ("", "off", "none"):
            return None
        if value not in segments.NATIONAL_LANGUAGES:
            raise InvalidInput(
                f"The setting national_shift is {value!r}; choose off or one of "
                f"{', '.join(segments.NATIONAL_LANGUAGES)} on the Settings page."
            )
        return value

    def message_meter(self, text: str) -> segments.SegmentInfo:
        """Encoding, units used and left, and segments of one text, as the gateway counts."""
        return segments.analyze(text or "", national=self.national_shift())

    def smart_fix(self, text: str) -> segments.SmartSuggestion:
        """Look-alike replacements that would bring the text back to GSM-7 (not applied)."""
        return segments.smart_suggestions(text or "", national=self.national_shift())

    def check_document(self, *, body: str, sender: str = "", database: str | None = None
                       ) -> DocumentCheck:
        """Template and sender problems of a draft, against a database's fields if given.

        Without a database only the syntax is checked (any field name is accepted).
        """
        fields = self.get_database(database).user_columns if database else None
        template, error = _try_prepare(body or "", fields)
        personal = is_personalised(sender)
        sender_check = validate_sender(sender) if sender.strip() and not personal else None
        sender_error = _try_prepare(sender, fields)[1] if personal else None
        return DocumentCheck(
            fields=list(fields or []), template=template, template_error=error,
            sender_check=sender_check, sender_personalised=personal, sender_error=sender_error,
        )

    def preview_document(self, *, body: str, database: str, sender: str = "",
                         row_id: int | None = None, contact: dict[str, Any] | None = None
                         ) -> Preview:
        """The message for one contact: `contact`, the contact `row_id`, or else the
        database's default destination. Raises TemplateError for a template that cannot
        render, InvalidInput when there is no contact to preview for."""
        info = self.get_database(database)
        if contact is None:
            if row_id is not None:
                contact = self.get_contact(database, int(row_id))
                if contact is None:
                    raise NotFound(f"No contact with row {row_id} in database {database!r}.")
            else:
                contact = self.default_destination(database)
                if contact is None:
                    raise InvalidInput(
                        f"Database {database!r} has no default destination yet; "
                        "choose one on the Contacts page, tab 'Opt-in rule & default destination'."
                    )
        values = {c: contact.get(c) for c in info.user_columns}
        text = templates.prepare(body or "", info.user_columns).render(values)
        rendered_sender, check = sender or "", None
        if is_personalised(sender):
            rendered_sender = templates.prepare(sender, info.user_columns).render(values)
        if rendered_sender.strip():
            check = validate_sender(rendered_sender)
        national = self.national_shift()
        return Preview(
            text=text, sender=rendered_sender, sender_check=check,
            meter=segments.analyze(text, national=national),
            smart=segments.smart_suggestions(text, national=national),
            contact=contact, label=_contact_label(info, contact),
        )

    # -- the whole selection -----------------------------------------------------------------
    def selection_view(self, document: str | None = None, *, body: str | None = None,
                       sender: str | None = None, selection: str | None = None,
                       database: str | None = None, progress: Progress | None = None
                       ) -> SelectionView:
        """Render every recipient's message and summarise: segments, UCS-2, longest, cost.

        The text is the stored `document`'s, or `body`/`sender` (an unsaved draft; they
        override the document's). Recipients are the selection's (or the whole database's)
        after consent, suppressions and de-duplication when the audience service is
        available, else the valid mobile contacts. Raises TemplateError when the body cannot
        be rendered for this database.
        """
        step = progress or _noop
        if document is not None:
            doc = self.get_document(document)
            body = doc.body if body is None else body
            sender = doc.sender if sender is None else sender
        body, sender = body or "", sender or ""
        db_name = self._view_database(selection, database)
        info = self.get_database(db_name)
        national = self.national_shift()
        template = templates.prepare(body, info.user_columns)
        sender_template = (
            templates.prepare(sender, info.user_columns) if is_personalised(sender) else None
        )
        # Only the referenced fields travel: every extra text column of a million rows
        # costs a conversion (the longest message's key is looked up afterwards).
        needed = list(dict.fromkeys([
            *template.fields, *(sender_template.fields if sender_template else ()),
        ]))

        step(0.02, "Finding the recipients")
        started = perf_counter()
        frame, audience = self._recipients(info, selection, needed)
        load_seconds = perf_counter() - started
        n = len(frame)

        step(0.3, f"Rendering {n:,} messages")
        started = perf_counter()
        texts = template.render_many(
            frame,
            progress=lambda done, total: step(0.3 + 0.4 * done / max(total, 1),
                                              f"Rendered {done:,} of {total:,}"),
        )
        render_seconds = perf_counter() - started

        step(0.72, "Counting segments")
        started = perf_counter()
        stats = segments.analyze_many(texts, national=national)
        analyse_seconds = perf_counter() - started

        step(0.85, "Summarising")
        segs = stats["segments"].to_numpy(dtype=np.int64)
        ucs2 = (stats["encoding"] == segments.UCS2).to_numpy(dtype=bool)
        histogram = (
            stats["segments"].value_counts().sort_index().rename_axis("segments")
            .rename("recipients").reset_index()
        )
        prices = self.price_table()
        countries = frame["_country"].astype("str").fillna("").replace("", "unknown")
        per_country = (
            pd.DataFrame({"country": countries.to_numpy(), "segments": segs})
            .groupby("country", sort=True)
            .agg(recipients=("segments", "size"), segments=("segments", "sum"))
            .reset_index()
        )
        cost = pricing.estimate_cost(per_country, prices)
        max_parts = int(self.get_setting("split_max_parts") or 4)
        warnings, invalid_senders = self._sender_findings(
            sender, sender_template, frame, per_country["country"].tolist()
        )
        view = SelectionView(
            database=info.name, selection=selection, recipients=n,
            total_segments=int(segs.sum()), segments_histogram=histogram,
            ucs2_recipients=int(ucs2.sum()),
            ucs2_causes=_ucs2_causes(template, frame, ucs2, national),
            longest=self._longest(info, texts, stats, frame) if n else None,
            cost_by_country=cost, total_cost=float(cost["cost"].sum()),
            currency=pricing.currency_of(prices),
            render_seconds=render_seconds, analyse_seconds=analyse_seconds,
            load_seconds=load_seconds, fast_path=template.is_plain, national=national,
            max_parts=max_parts, over_max_parts=int((segs > max_parts).sum()),
            invalid_senders=invalid_senders, warnings=warnings, audience=audience,
        )
        if n == 0:
            view.warnings.append(self._empty_reason(info, selection))
        if view.over_max_parts:
            view.warnings.append(
                f"{view.over_max_parts:,} recipients' messages need more than {max_parts} "
                "parts (the split_max_parts setting); shorten the text or raise the setting."
            )
        step(1.0, "Done")
        return view

    def _longest(self, info: DatabaseInfo, texts: pd.Series, stats: pd.DataFrame,
                 frame: pd.DataFrame) -> LongestMessage:
        """The message costing most parts (ties: most units, then the first contact)."""
        segs = stats["segments"].to_numpy(dtype=np.int64)
        units = stats["units"].to_numpy(dtype=np.int64)
        candidates = np.flatnonzero(segs == segs.max())
        pos = int(candidates[np.argmax(units[candidates])])
        text = str(texts.iloc[pos])
        row_id = int(frame["_row_id"].iloc[pos])
        contact_key = str(row_id)
        if info.key_field:
            contact = self.get_contact(info.name, row_id) or {}
            value = contact.get(info.key_field)
            contact_key = "" if value is None else str(value)
        return LongestMessage(
            text=text, characters=len(text), units=int(units[pos]), segments=int(segs[pos]),
            encoding=str(stats["encoding"].iloc[pos]), contact_key=contact_key,
            e164=str(frame["_e164"].iloc[pos]),
        )

    def _view_database(self, selection: str | None, database: str | None) -> str:
        if selection:
            owner = self.get_selection(selection).database  # type: ignore[attr-defined]
            if database and database != owner:
                raise InvalidInput(
                    f"Selection {selection!r} belongs to database {owner!r}, not {database!r}."
                )
            return str(owner)
        if not database:
            raise InvalidInput("Choose a selection or a contact database.")
        return database

    def _recipients(self, info: DatabaseInfo, selection: str | None, columns: list[str]
                    ) -> tuple[pd.DataFrame, str]:
        """The recipients' needed columns plus _row_id, _e164 and _country."""
        audience_frame = getattr(self, "audience_frame", None)
        if callable(audience_frame):
            frame = audience_frame(
                selection=selection, database=None if selection else info.name,
                columns=columns,
            )
            return frame, (
                "recipients after the opt-in rule, the suppression list and duplicate numbers"
            )
        where, params = "TRUE", []
        if selection and hasattr(self, "selection_scope"):
            scope = self.selection_scope(selection)
            where, params = scope.where, list(scope.params)
        cols = ", ".join(
            quote_ident(c) for c in dict.fromkeys([*columns, "_row_id", "_e164", "_country"])
        )
        # Through Arrow: for text columns that is several times faster than .df(). One chunk
        # per column, because the vectorised render joins whole arrays.
        frame = self.storage.cursor().sql(
            f"SELECT {cols} FROM {quote_ident(info.table)} WHERE {where} "
            "AND _phone_status = 'valid_mobile' ORDER BY _row_id",
            params=params or None,
        ).to_arrow_table().combine_chunks().to_pandas()
        return frame, "contacts with a valid mobile number (opt-in and suppressions not applied)"

    def _empty_reason(self, info: DatabaseInfo, selection: str | None) -> str:
        reason = None
        if hasattr(self, "database_sms_reason"):
            reason = self.database_sms_reason(info.name)
        if reason:
            return f"No recipients: {reason}."
        where = f"selection {selection!r}" if selection else f"database {info.name!r}"
        return f"No recipients: nobody in {where} can receive SMS."

    @staticmethod
    def _sender_findings(sender: str, sender_template: templates.CompiledTemplate | None,
                         frame: pd.DataFrame, countries: list[str]
                         ) -> tuple[list[str], pd.DataFrame]:
        """Warnings about the sender, and the rendered senders that break the GSM rule."""
        warnings: list[str] = []
        invalid = pd.DataFrame({"sender": pd.Series(dtype="str"),
                                "recipients": pd.Series(dtype="int64"),
                                "error": pd.Series(dtype="str")})
        if not sender.strip():
            warnings.append("The document has no sender yet; a mailing needs one.")
            return warnings, invalid
        if sender_template is None:
            kinds = {validate_sender(sender).kind}
        else:
            rendered = sender_template.render_many(frame).value_counts()
            checked = rendered.head(MAX_SENDERS_CHECKED)
            verdicts = {value: validate_sender(value) for value in checked.index}
            kinds = {v.kind for v in verdicts.values() if v.ok}
            bad = [(value, int(count), verdicts[value].error or "")
                   for value, count in checked.items() if not verdicts[value].ok]
            if bad:
                invalid = pd.DataFrame(bad, columns=["sender", "recipients", "error"])
                total = int(invalid["recipients"].sum())
                warnings.append(
                    f"The personalised sender is invalid for {total:,} recipients "
                    f"({len(bad):,} distinct senders); see the list."
                )
            if len(rendered) > MAX_SENDERS_CHECKED:
                warnings.append(
                    f"Only the {MAX_SENDERS_CHECKED:,} most frequent of {len(rendered):,} "
                    "distinct senders were checked."
                )
        if "alphanumeric" in kinds:
            refused = alphanumeric_warning(countries)
            if refused:
                warnings.append(refused)
        return warnings, invalid


# -- helpers --------------------------------------------------------------------------------
def _try_prepare(source: str, fields: list[str] | None
                 ) -> tuple[templates.CompiledTemplate | None, templates.TemplateError | None]:
    """Compile, returning the error instead of raising; without fields, any name is fine."""
    try:
        return templates.prepare(source, fields or []), None
    except templates.TemplateError as exc:
        if fields is None and exc.kind == "field":
            return None, None  # unknown fields are checked last: the syntax is fine
        return None, exc


def _contact_label(info: DatabaseInfo, contact: dict[str, Any]) -> str:
    parts = []
    if info.key_field and contact.get(info.key_field) not in (None, ""):
        parts.append(f"{info.key_field} {contact[info.key_field]}")
    if contact.get("_e164"):
        parts.append(str(contact["_e164"]))
    return " · ".join(parts) or "default destination"




def _ucs2_causes(template: templates.CompiledTemplate, frame: pd.DataFrame,
                 ucs2: np.ndarray, national: str | None) -> pd.DataFrame:
    """Which field values (and whether the document's own text) force UCS-2, and for how
    many recipients.

    Per referenced text field: the values of the UCS-2 recipients are counted (value_counts),
    and only the distinct values are measured (`analyze_many`), so a million recipients cost
    one vectorised pass over far fewer values.
    """
    columns = ["field", "value", "characters", "recipients"]
    rows: list[tuple[str, str, str, int]] = []
    n_ucs2 = int(ucs2.sum())
    if n_ucs2 == 0:
        return pd.DataFrame(rows, columns=columns)
    own = segments.analyze(template.jinja_source, national=national).non_gsm
    if own:
        rows.append((TEMPLATE_TEXT, "", " ".join(own), n_ucs2))
    for name in template.fields:
        column = frame[name]
        if not (pd.api.types.is_string_dtype(column.dtype)
                or pd.api.types.is_object_dtype(column.dtype)):
            continue  # numbers and dates are always GSM-7
        counts = column[ucs2].dropna().astype("str").value_counts()
        if counts.empty:
            continue
        distinct = counts.index.to_series(index=range(len(counts)))
        measured = segments.analyze_many(distinct, national=national)
        culprits = counts[(measured["encoding"] == segments.UCS2).to_numpy()]
        for value, recipients in culprits.head(MAX_CAUSES).items():
            chars = segments.analyze(str(value), national=national).non_gsm
            rows.append((name, str(value), " ".join(chars), int(recipients)))
    frame_out = pd.DataFrame(rows, columns=columns)
    return frame_out.sort_values("recipients", ascending=False, kind="stable").reset_index(
        drop=True
    )
