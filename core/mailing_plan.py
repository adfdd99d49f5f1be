"""The plan of a bulk mailing: what the wizard's last step shows before the final button.

`plan_mailing` answers "what happens if I press send?" without sending: the recipients
after the reconciliation, the segments and the estimated cost per country and in total, the
share in UCS-2, and every warning (an alphanumeric sender to a country that refuses it,
messages over the parts limit, a large share of numbers that cannot receive SMS).
`confirm_mailing` turns a plan into a stored mailing, with the plan's estimate kept in
`mailings.estimate` so the Statistics page can compare it with what was actually sent.

Decisions:
- *No second implementation.* The recipients and the reconciliation come from `audience`,
  the rendering, segment counts, UCS-2 and cost from `selection_view`; this module only
  adapts them to the mailing's own parts limit (which may differ from the Settings default
  that `selection_view` reports against).
- *Skipped, never truncated.* A recipient whose message needs more parts than the limit is
  skipped and listed, with the same reason the launch will store; so is one whose
  personalised sender breaks the sender rule. The estimate counts only what will be sent.
  Finding who exactly is skipped needs a second render, done only when the summary shows
  that somebody is over the limit.
- *The plan is advice, the launch is the truth.* A scheduled mailing takes its snapshot when
  it starts (later opt-outs and new contacts count), so the plan is an estimate made at
  confirmation and is stored as such.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core import pricing, segments, templates
from core.documents import is_personalised
from core.errors import InvalidInput
from core.senders import validate_sender

if TYPE_CHECKING:
    from core.audience import AudienceResult
    from core.contacts import DatabaseInfo
    from core.documents import SelectionView
    from core.storage import Storage

Progress = Callable[[float, str], None]

UNKNOWN_COUNTRY = "unknown"
PAST_GRACE = timedelta(seconds=60)  # a time this far in the past is a mistake, not "now"
SKIPPED_COLUMNS = ("contact_key", "e164", "country", "parts", "encoding", "reason")
# Reconciliation steps that mean "this contact's number cannot receive SMS".
UNREACHABLE_STEPS = ("no_number", "invalid_number", "not_mobile")


@dataclass
class MailingPlan:
    """Everything the confirmation step shows, and what `confirm_mailing` stores."""

    document: str | None
    sender: str
    body: str
    selection: str | None
    database: str
    split_max_parts: int
    audience: AudienceResult
    view: SelectionView  # the whole-selection view (histogram, UCS-2 causes, longest message)
    recipients: int  # after the reconciliation
    skipped: pd.DataFrame  # SKIPPED_COLUMNS: recipients that will not be sent, and why
    total_segments: int  # segments of the messages that will be sent
    cost_by_country: pd.DataFrame  # country, recipients, segments, price, cost, priced_by
    total_cost: float
    currency: str
    ucs2_recipients: int
    unreachable: int  # contacts of the selection whose number cannot receive SMS
    confirm_threshold: int
    computed_at: datetime
    warnings: list[str] = field(default_factory=list)

    @property
    def to_send(self) -> int:
        """Recipients who will get a message (the reconciled ones minus the skipped)."""
        return self.recipients - len(self.skipped)

    @property
    def ucs2_share(self) -> float:
        return self.ucs2_recipients / self.recipients if self.recipients else 0.0

    @property
    def unreachable_share(self) -> float:
        total = self.audience.count("in_selection")
        return self.unreachable / total if total else 0.0

    @property
    def needs_second_confirmation(self) -> bool:
        """Above the Settings size (`confirm_threshold`) sending needs a second, explicit yes."""
        return self.confirm_threshold > 0 and self.recipients > self.confirm_threshold

    @property
    def target_label(self) -> str:
        if self.selection:
            return f"selection {self.selection!r} (database {self.database!r})"
        return f"the whole contact database {self.database!r}"

    def estimate(self) -> dict[str, Any]:
        """The JSON stored in `mailings.estimate` (read back by the Statistics page)."""
        rows = [
            {"country": str(r.country), "recipients": int(r.recipients),
             "segments": int(r.segments), "price": float(r.price),
             "cost": round(float(r.cost), 6)}
            for r in self.cost_by_country.itertuples(index=False)
        ]  # fmt: skip
        return {
            "computed_at": self.computed_at.isoformat(),
            "recipients": int(self.to_send),
            "reconciled": int(self.recipients),
            "skipped": len(self.skipped),
            "segments": int(self.total_segments),
            "total_cost": round(float(self.total_cost), 6),
            "currency": self.currency,
            "split_max_parts": int(self.split_max_parts),
            "ucs2_recipients": int(self.ucs2_recipients),
            "by_country": rows,
        }


def _noop(fraction: float, label: str) -> None:
    return None


def _countries(values: pd.Series) -> pd.Series:
    """Country codes as the whole-selection view labels them ('unknown' for none)."""
    return values.astype("str").fillna("").replace("", UNKNOWN_COUNTRY)


def _without_skipped(cost: pd.DataFrame, skipped: pd.DataFrame) -> pd.DataFrame:
    """Recipients and segments per country once the skipped recipients are taken out."""
    base = cost[["country", "recipients", "segments"]].copy()
    if skipped.empty:
        return base
    out = (
        pd.DataFrame({"country": skipped["country"].to_numpy(),
                      "parts": skipped["parts"].to_numpy(dtype=np.int64)})
        .groupby("country").agg(gone=("parts", "size"), gone_segments=("parts", "sum"))
    )  # fmt: skip
    merged = base.merge(out, left_on="country", right_index=True, how="left")
    merged["recipients"] = merged["recipients"] - merged["gone"].fillna(0).astype("int64")
    merged["segments"] = merged["segments"] - merged["gone_segments"].fillna(0).astype("int64")
    return merged.loc[merged["recipients"] > 0, ["country", "recipients", "segments"]]


class PlanMixin:
    """Plan and confirm bulk mailings; mixed into `core.studio.Studio`."""

    storage: Storage
    clock: Callable[[], datetime]
    get_setting: Callable[[str], Any]

    # -- times ------------------------------------------------------------------------------
    def check_send_time(self, at: datetime | None) -> datetime | None:
        """A send time as naive UTC (None: now), refusing one that has already passed.

        Aware times are converted; naive ones are UTC, like every stored time. A minute of
        grace covers the time it takes to press the button.
        """
        if at is None:
            return None
        if not isinstance(at, datetime):
            raise InvalidInput(f"The send time must be a date and time, not {at!r}.")
        utc = at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at
        now = self.clock()
        if utc < now - PAST_GRACE:
            raise InvalidInput(
                f"The send time {utc:%Y-%m-%d %H:%M} UTC has already passed (it is now "
                f"{now:%Y-%m-%d %H:%M} UTC); choose a later time, or send now."
            )
        return utc

    # -- planning ---------------------------------------------------------------------------
    def plan_mailing(
        self,
        *,
        document: str | None = None,
        sender: str | None = None,
        body: str | None = None,
        selection: str | None = None,
        database: str | None = None,
        split_max_parts: int | None = None,
        progress: Progress | None = None,
    ) -> MailingPlan:
        """The confirmation summary of a mailing, without storing or sending anything.

        The text is the `document`'s, or `sender`/`body` (which override the document's).
        The recipients are a selection (or mini-selection) usable for SMS, or a whole
        database whose mobile field and opt-in rule are set. `split_max_parts` is the most
        parts one recipient's message may have (None: the Settings default); recipients
        needing more are skipped and listed in `skipped`, never cut short.
        """
        step = progress or _noop
        if document is not None:
            doc = self.get_document(document)  # type: ignore[attr-defined]
            sender = doc.sender if sender is None else sender
            body = doc.body if body is None else body
        sender, body = sender or "", body or ""
        if not body.strip():
            raise InvalidInput("The message text is empty; write it on the Documents page.")
        if not sender.strip():
            raise InvalidInput("The mailing has no sender; give the document one.")
        if not is_personalised(sender):
            check = validate_sender(sender)
            if not check.ok:
                raise InvalidInput(check.error or f"The sender {sender!r} cannot be used.")
        target = None if selection else database
        if selection:
            self.require_sms_usable(selection)  # type: ignore[attr-defined]
        else:
            self.require_sms_usable(database=database)  # type: ignore[attr-defined]
        split = self._mailing_split_limit(split_max_parts)  # type: ignore[attr-defined]

        step(0.0, "Reconciling the recipients")
        audience: AudienceResult = self.audience(  # type: ignore[attr-defined]
            selection=selection, database=target)
        try:
            view: SelectionView = self.selection_view(  # type: ignore[attr-defined]
                body=body, sender=sender, selection=selection, database=target,
                progress=lambda f, label: step(0.05 + 0.8 * f, label),
            )
        except templates.TemplateError as exc:
            raise InvalidInput(f"The message cannot be used for {audience.database!r}: {exc}") \
                from None
        info = self.get_database(view.database)  # type: ignore[attr-defined]

        histogram = view.segments_histogram
        over = int(histogram.loc[histogram["segments"] > split, "recipients"].sum())
        step(0.86, "Listing the recipients that will be skipped")
        if over or not view.invalid_senders.empty:
            skipped = self._skipped_recipients(info, body, sender, selection, split)
        else:
            skipped = pd.DataFrame({c: pd.Series(dtype="int64" if c == "parts" else "str")
                                    for c in SKIPPED_COLUMNS})  # fmt: skip
        kept = _without_skipped(view.cost_by_country, skipped)
        cost = pricing.estimate_cost(kept, self.price_table())  # type: ignore[attr-defined]
        unreachable = sum(audience.count(s) for s in UNREACHABLE_STEPS)
        plan = MailingPlan(
            document=document, sender=sender, body=body, selection=selection,
            database=view.database, split_max_parts=split, audience=audience, view=view,
            recipients=int(view.recipients), skipped=skipped,
            total_segments=int(cost["segments"].sum()), cost_by_country=cost,
            total_cost=float(cost["cost"].sum()), currency=view.currency,
            ucs2_recipients=int(view.ucs2_recipients), unreachable=int(unreachable),
            confirm_threshold=int(self.get_setting("confirm_threshold") or 0),
            computed_at=self.clock(),
        )
        plan.warnings = self._plan_warnings(plan, over)
        step(1.0, "Done")
        return plan

    def _plan_warnings(self, plan: MailingPlan, over: int) -> list[str]:
        view = plan.view
        own_limit = f"{view.over_max_parts:,} recipients' messages need more than"
        warnings = [w for w in view.warnings if not w.startswith(own_limit)]
        if over:
            limit = "1 part" if plan.split_max_parts == 1 else f"{plan.split_max_parts} parts"
            who = "1 recipient's message needs" if over == 1 else \
                f"{over:,} recipients' messages need"
            warnings.append(
                f"{who} more than {limit}: skipped and listed, never cut short. Shorten the "
                "text or allow more parts."
            )
        share_limit = float(self.get_setting("invalid_share_warning") or 0)
        if plan.unreachable and plan.unreachable_share > share_limit:
            counts = ", ".join(
                f"{label} {plan.audience.count(s):,}"
                for s, label in zip(UNREACHABLE_STEPS, ("no number", "invalid", "not mobile"),
                                    strict=True)
                if plan.audience.count(s)
            )
            warnings.append(
                f"{plan.unreachable_share:.0%} of the contacts in {plan.target_label} cannot "
                f"receive SMS ({counts}); check the mobile field and the numbers."
            )
        return warnings

    def _skipped_recipients(self, info: DatabaseInfo, body: str, sender: str,
                            selection: str | None, split: int) -> pd.DataFrame:
        """Who the launch would skip, and why: the same render and count, per recipient."""
        template = templates.prepare(body, info.user_columns)
        sender_template = (
            templates.prepare(sender, info.user_columns) if is_personalised(sender)
            else None
        )
        key = info.key_field if info.key_field in info.user_columns else None
        columns = list(dict.fromkeys([
            *template.fields, *(sender_template.fields if sender_template else ()),
            *([key] if key else []),
        ]))  # fmt: skip
        frame = self.audience_frame(  # type: ignore[attr-defined]
            selection=selection, database=None if selection else info.name, columns=columns,
        ).reset_index(drop=True)
        national = self.national_shift()  # type: ignore[attr-defined]
        stats = segments.analyze_many(template.render_many(frame), national=national)
        parts = stats["segments"].to_numpy(dtype=np.int64)
        too_long = parts > split
        reason = pd.Series(None, index=frame.index, dtype="object")
        if too_long.any():
            reason[too_long] = ("needs " + pd.Series(parts[too_long]).astype(str)
                                + f" parts, the limit is {split}").to_numpy(dtype=object)
        if sender_template is not None:
            rendered = sender_template.render_many(frame).astype(str)
            verdicts = {s: validate_sender(s).error or "" for s in rendered.unique()}
            errors = rendered.map(verdicts)
            bad = (errors != "").to_numpy() & ~too_long
            if bad.any():
                reason[bad] = ("invalid sender: " + errors[bad]).to_numpy(dtype=object)
        chosen = reason.notna().to_numpy()
        keys = frame[key] if key else frame["_row_id"]
        out = pd.DataFrame({
            "contact_key": keys[chosen].astype("str").to_numpy(),
            "e164": frame.loc[chosen, "_e164"].astype("str").to_numpy(),
            "country": _countries(frame.loc[chosen, "_country"]).to_numpy(),
            "parts": parts[chosen],
            "encoding": stats.loc[chosen, "encoding"].astype("str").to_numpy(),
            "reason": reason[chosen].astype("str").to_numpy(),
        })  # fmt: skip
        return out.reset_index(drop=True)

    # -- confirming -------------------------------------------------------------------------
    def confirm_mailing(self, plan: MailingPlan, *, at: datetime | None = None,
                        accept_rules: bool = False, confirm_large: bool = False) -> int:
        """Store the planned mailing (sent now, or scheduled at `at`) with its estimate.

        Refuses, storing nothing, without the accepted rules, without the second
        confirmation a mailing above the `confirm_threshold` setting needs, for a send time
        that has passed, or for a mailing "now" that nobody would receive.
        """
        if not accept_rules:
            raise InvalidInput(
                "Accept the sending rules first: the recipients opted in, the numbers were "
                "obtained lawfully, and every STOP is honoured."
            )
        if plan.needs_second_confirmation and not confirm_large:
            raise InvalidInput(
                f"This mailing goes to {plan.recipients:,} recipients, more than the "
                f"{plan.confirm_threshold:,} set on the Settings page: confirm it a second time."
            )
        when = self.check_send_time(at)
        if when is None and plan.to_send == 0:
            raise InvalidInput(
                f"Nobody would receive this mailing now ({plan.target_label} has no recipient "
                "left after the reconciliation and the parts limit)."
            )
        from core.mailings import _launch_lock

        # Under the launch lock: the scheduler must not start the mailing between the
        # insert and the estimate (two writes to one row in two transactions conflict).
        with _launch_lock(self.storage):
            mailing_id = int(self.create_mailing(  # type: ignore[attr-defined]
                sender=plan.sender, body=plan.body, selection=plan.selection,
                database=None if plan.selection else plan.database, document=plan.document,
                at=when, split_max_parts=plan.split_max_parts, accept_rules=True,
            ))
            self.save_estimate(mailing_id, plan)
        return mailing_id

    def mailing_skipped(self, mailing_id: int, *, limit: int | None = 500) -> pd.DataFrame:
        """The recipients a started mailing skipped, with the reason (first `limit`, in
        snapshot order): the "listed" half of "skipped and listed, never truncated"."""
        self.get_mailing(mailing_id)  # type: ignore[attr-defined]  # NotFound for a bad id
        sql = (
            "SELECT contact_key, e164, country, parts, encoding, reason FROM message_status "
            "WHERE mailing_id = ? AND status = 'skipped' ORDER BY message_id"
        )
        params: list[Any] = [int(mailing_id)]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return self.storage.df(sql, params)

    def save_estimate(self, mailing_id: int, plan: MailingPlan | None) -> None:
        """Store (or clear, with None) the estimate a mailing is later compared against."""
        import json

        self.storage.execute(
            "UPDATE mailings SET estimate = ? WHERE id = ?",
            [None if plan is None else json.dumps(plan.estimate()), int(mailing_id)],
        )


__all__ = ["SKIPPED_COLUMNS", "MailingPlan", "PlanMixin"]
