"""Stored selections and mini-selections: named rules over one contact database.

A selection is a rule (a JSON filter spec, see `core.selections`), not a list of contacts:
it is re-evaluated whenever it is used, so contacts imported later that match are included.
A mini-selection has a parent selection and its rule is AND-ed with every ancestor's rule
(`compile_chain`), so its contacts are always a subset of its parent's, at any depth.

The count a page shows is remembered (`last_count`, `counted_at`) so a list can show sizes
without re-running every rule, and always says when it was computed.

Usage settings: a selection may feed SMS mailings only when it is switched on for SMS and its
database has a mobile field and an opt-in rule. `Studio` refuses any other selection with the
reason (`require_sms_usable`), so the rule holds for the CLI and scripts as well as the UI.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd

from core import selections
from core.contacts import DatabaseInfo
from core.errors import InvalidInput, NotFound
from core.storage import Storage, quote_ident

SAMPLE_MAX = 500  # never more than a page of rows leaves the service for a sample
_SAMPLE_DERIVED = ("_row_id", "_e164", "_country", "_number_type", "_phone_status")


@dataclass
class SelectionInfo:
    """One stored selection as a page or the CLI sees it."""

    id: int
    name: str
    database: str
    database_id: int
    parent: str | None
    parent_id: int | None
    spec: dict[str, Any]
    sms_enabled: bool
    last_count: int | None
    counted_at: datetime | None
    depth: int = 0

    @property
    def is_mini(self) -> bool:
        return self.parent_id is not None


@dataclass
class SelectionScope:
    """What a rule evaluates over: a database and the SQL condition of the whole chain."""

    database: DatabaseInfo
    where: str
    params: list[Any]
    selection: SelectionInfo | None = None

    @property
    def table(self) -> str:
        return quote_ident(self.database.table)


_SELECT_SELECTION = (
    "SELECT s.id, s.name, d.name, s.database_id, p.name, s.parent_id, s.spec, s.sms_enabled, "
    "s.last_count, s.counted_at FROM selections s JOIN databases d ON d.id = s.database_id "
    "LEFT JOIN selections p ON p.id = s.parent_id"
)


def _parse_spec(spec: Any, where: str) -> dict[str, Any]:
    """Accept a spec as a dict or as JSON text (the CLI and the page's JSON editor)."""
    if isinstance(spec, (str, bytes)):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"{where}: the spec is not valid JSON ({exc.msg} at line {exc.lineno}, "
                f"column {exc.colno})."
            ) from None
    if not isinstance(spec, dict):
        raise InvalidInput(
            f"{where}: the spec must be a JSON object such as "
            '{"field": "city", "op": "eq", "value": "Utrecht"} or {"all": [...]}.'
        )
    return spec


def _row_to_info(row: tuple[Any, ...], depth: int = 0) -> SelectionInfo:
    (sel_id, name, db_name, db_id, parent, parent_id, spec, sms, last, counted) = row
    return SelectionInfo(
        id=int(sel_id), name=name, database=db_name, database_id=int(db_id), parent=parent,
        parent_id=None if parent_id is None else int(parent_id),
        spec=json.loads(spec) if isinstance(spec, str) else dict(spec or {}),
        sms_enabled=bool(sms), last_count=None if last is None else int(last),
        counted_at=counted, depth=depth,
    )


class SelectionsMixin:
    """Selections and their usage settings; mixed into `core.studio.Studio`."""

    storage: Storage
    clock: Callable[[], datetime]
    get_database: Callable[[str], DatabaseInfo]
    get_database_by_id: Callable[[int], DatabaseInfo]

    # -- reading ----------------------------------------------------------------------------
    def selection_names(self, database: str | None = None) -> list[str]:
        if database is None:
            rows = self.storage.rows("SELECT name FROM selections ORDER BY name")
        else:
            rows = self.storage.rows(
                "SELECT s.name FROM selections s JOIN databases d ON d.id = s.database_id "
                "WHERE d.name = ? ORDER BY s.name",
                [database],
            )
        return [r[0] for r in rows]

    def _chain(self, name: str) -> list[SelectionInfo]:
        """The selection and its ancestors, root first, in one query (the chain is short)."""
        rows = self.storage.rows(
            "WITH RECURSIVE up(id, lvl) AS ("
            " SELECT id, 0 FROM selections WHERE name = ?"
            " UNION ALL SELECT s.parent_id, up.lvl + 1 FROM selections s JOIN up ON s.id = up.id"
            " WHERE s.parent_id IS NOT NULL AND up.lvl < 1000) "
            + _SELECT_SELECTION.replace("FROM selections s", "FROM up JOIN selections s "
                                        "ON s.id = up.id")
            + " ORDER BY up.lvl DESC",
            [name],
        )
        if not rows:
            known = self.selection_names()
            hint = ", ".join(known[:15]) + (", …" if len(known) > 15 else "") or "none yet"
            raise NotFound(f"There is no selection named {name!r} (selections: {hint}).")
        return [_row_to_info(row, depth) for depth, row in enumerate(rows)]

    def get_selection(self, name: str) -> SelectionInfo:
        return self._chain(name)[-1]

    def _get_selection_by_id(self, selection_id: int) -> SelectionInfo:
        name = self.storage.one("SELECT name FROM selections WHERE id = ?", [selection_id])
        if name is None:
            raise NotFound(f"There is no selection with id {selection_id}.")
        return self.get_selection(name)

    def _descendant_ids(self, selection_id: int) -> list[int]:
        """The mini-selections below this one, at any depth (not the selection itself)."""
        rows = self.storage.rows(
            "WITH RECURSIVE down(id, lvl) AS ("
            " SELECT id, 0 FROM selections WHERE parent_id = ?"
            " UNION ALL SELECT s.id, down.lvl + 1 FROM selections s"
            " JOIN down ON s.parent_id = down.id WHERE down.lvl < 1000)"
            " SELECT DISTINCT id FROM down",
            [selection_id],
        )
        return [int(r[0]) for r in rows]

    def selection_chain(self, name: str) -> list[SelectionInfo]:
        """The selection and its ancestors, root first: the rules that are AND-ed together."""
        return self._chain(name)

    def list_selections(self, database: str | None = None) -> pd.DataFrame:
        """Every selection in tree order: each parent followed by its mini-selections.

        Columns: id, name, database, parent, sms_enabled, usable, last_count, counted_at,
        depth. `usable` is whether SMS mailings may use it (see `sms_usable_reason`).
        """
        where, params = "", []
        if database is not None:
            where, params = "WHERE d.name = ?", [database]
        frame = self.storage.df(
            "WITH RECURSIVE tree(id, path, depth) AS ("
            " SELECT id, [lower(name)], 0 FROM selections WHERE parent_id IS NULL"
            " UNION ALL SELECT s.id, list_append(t.path, lower(s.name)), t.depth + 1"
            " FROM selections s JOIN tree t ON s.parent_id = t.id WHERE t.depth < 1000)"
            " SELECT s.id, s.name, d.name AS database, p.name AS parent, s.sms_enabled,"
            " (s.sms_enabled AND coalesce(d.mobile_field, '') <> ''"
            "  AND coalesce(d.consent_field, '') <> ''"
            "  AND coalesce(len(d.consent_values), 0) > 0) AS usable,"
            " s.last_count, s.counted_at, t.depth"
            " FROM tree t JOIN selections s ON s.id = t.id"
            " JOIN databases d ON d.id = s.database_id"
            " LEFT JOIN selections p ON p.id = s.parent_id "
            f"{where} ORDER BY lower(d.name), t.path",
            params,
        )
        frame["last_count"] = frame["last_count"].astype("Int64")
        frame["depth"] = frame["depth"].astype("int64")
        return frame.reset_index(drop=True)

    # -- writing ----------------------------------------------------------------------------
    def _check_new_name(self, name: str | None) -> str:
        clean = (name or "").strip()
        if not clean:
            raise InvalidInput("Give the selection a name.")
        if len(clean) > 200:
            raise InvalidInput("A selection name can be at most 200 characters.")
        if self.storage.one("SELECT count(*) FROM selections WHERE name = ?", [clean]):
            raise InvalidInput(
                f"A selection named {clean!r} already exists; choose another name."
            )
        return clean

    def _validated_spec(self, spec: Any, db: DatabaseInfo, where: str) -> dict[str, Any]:
        parsed = _parse_spec(spec, where)
        if not db.columns:
            raise InvalidInput(
                f"Database {db.name!r} has no contacts yet; import contacts before building "
                "selections."
            )
        try:
            return selections.validate_spec(parsed, db.columns)
        except selections.SelectionError as exc:
            raise InvalidInput(f"{where}: {exc}") from None

    def create_selection(self, name: str, *, spec: Any, database: str | None = None,
                         parent: str | None = None, sms: bool = False) -> int:
        """Store a selection of `database`, or a mini-selection of `parent`; returns its id."""
        clean = self._check_new_name(name)
        if parent:
            parent_info = self.get_selection(parent)
            if database and database != parent_info.database:
                raise InvalidInput(
                    f"Selection {parent!r} belongs to database {parent_info.database!r}, not "
                    f"{database!r}; a mini-selection always uses its parent's database."
                )
            db = self.get_database(parent_info.database)
            parent_id: int | None = parent_info.id
        elif database:
            db = self.get_database(database)
            parent_id = None
        else:
            raise InvalidInput(
                "Say which contact database the selection is for, or which selection it is a "
                "mini-selection of."
            )
        valid = self._validated_spec(spec, db, f"Selection {clean!r}")
        return int(self.storage.one(
            "INSERT INTO selections (name, database_id, parent_id, spec, sms_enabled) "
            "VALUES (?, ?, ?, ?, ?) RETURNING id",
            [clean, db.id, parent_id, json.dumps(valid), bool(sms)],
        ))

    def update_selection(self, name: str, *, spec: Any = None, new_name: str | None = None,
                         sms: bool | None = None) -> SelectionInfo:
        """Change a selection's rule, name or SMS switch; a new rule forgets the old count."""
        info = self.get_selection(name)
        sets: list[str] = []
        params: list[Any] = []
        if new_name is not None and new_name.strip() != info.name:
            sets.append("name = ?")
            params.append(self._check_new_name(new_name))
        if spec is not None:
            db = self.get_database(info.database)
            valid = self._validated_spec(spec, db, f"Selection {info.name!r}")
            if valid != info.spec:
                sets += ["spec = ?", "last_count = NULL", "counted_at = NULL"]
                params.append(json.dumps(valid))
        if sms is not None:
            sets.append("sms_enabled = ?")
            params.append(bool(sms))
        if sets:
            self.storage.execute(
                f"UPDATE selections SET {', '.join(sets)}, updated_at = now() WHERE id = ?",
                [*params, info.id],
            )
        return self._get_selection_by_id(info.id)

    def rename_selection(self, old: str, new: str) -> None:
        self.update_selection(old, new_name=new)

    def duplicate_selection(self, name: str, new_name: str) -> int:
        """A copy of the rule (same database and parent, same SMS switch), without children."""
        info = self.get_selection(name)
        clean = self._check_new_name(new_name)
        return int(self.storage.one(
            "INSERT INTO selections (name, database_id, parent_id, spec, sms_enabled, "
            "last_count, counted_at) SELECT ?, database_id, parent_id, spec, sms_enabled, "
            "last_count, counted_at FROM selections WHERE id = ? RETURNING id",
            [clean, info.id],
        ))

    def delete_selection(self, name: str, *, cascade: bool = False) -> list[str]:
        """Delete a selection (and with `cascade` its mini-selections); returns the names.

        Refused while it has mini-selections (unless `cascade`) or while a scheduled or sending
        mailing uses it or one of its mini-selections.
        """
        info = self.get_selection(name)
        below = self._descendant_ids(info.id)
        if below and not cascade:
            children = [r[0] for r in self.storage.rows(
                "SELECT name FROM selections WHERE parent_id = ? ORDER BY name", [info.id]
            )]
            raise InvalidInput(
                f"Selection {info.name!r} has mini-selections ({', '.join(children)}); delete "
                "those first, or delete them together (cascade)."
            )
        ids = [info.id, *below]
        busy = self.storage.rows(
            "SELECT m.id, m.state, s.name FROM mailings m JOIN selections s "
            "ON s.id = m.selection_id WHERE m.selection_id IN (SELECT unnest(?)) "
            "AND m.state IN ('scheduled', 'sending') ORDER BY m.id",
            [ids],
        )
        if busy:
            mailing_id, state, sel = busy[0]
            raise InvalidInput(
                f"Selection {sel!r} is used by mailing {mailing_id}, which is {state}; cancel "
                "or finish that mailing before deleting the selection."
            )
        names = [r[0] for r in self.storage.rows(
            "SELECT name FROM selections WHERE id IN (SELECT unnest(?)) ORDER BY name", [ids]
        )]
        with self.storage.transaction() as tx:
            tx.execute("DELETE FROM selections WHERE id IN (SELECT unnest(?))", [ids])
        return names

    # -- evaluating -------------------------------------------------------------------------
    def _today(self) -> date:
        """Today where the users are (birthdays, 'within the last N days')."""
        zone = "Europe/Amsterdam"
        getter = getattr(self, "get_setting", None)
        if getter is not None:
            zone = getter("time_zone") or zone
        now = self.clock().replace(tzinfo=UTC)
        try:
            return now.astimezone(ZoneInfo(str(zone))).date()
        except (KeyError, ValueError):
            return now.date()

    def selection_scope(self, name: str | None = None, *, spec: Any = None,
                        database: str | None = None, parent: str | None = None
                        ) -> SelectionScope:
        """The database and SQL condition for a stored selection, a draft, or a whole database.

        - `name`: the stored selection (with `spec`: its chain with that rule instead, unsaved);
        - `spec` with `parent`: a draft mini-selection of `parent`;
        - `spec` with `database`: a draft selection;
        - only `database`: every contact of the database.
        """
        today = self._today()
        stored: SelectionInfo | None = None
        ancestors: list[dict[str, Any]] = []
        if name:
            chain = self.selection_chain(name)
            stored = chain[-1]
            if database and database != stored.database:
                raise InvalidInput(
                    f"Selection {name!r} belongs to database {stored.database!r}, not "
                    f"{database!r}."
                )
            db = self.get_database(stored.database)
            specs = [c.spec for c in chain]
            if spec is not None:
                specs[-1] = self._validated_spec(spec, db, f"Selection {name!r}")
        elif parent:
            chain = self.selection_chain(parent)
            db = self.get_database(chain[-1].database)
            ancestors = [c.spec for c in chain]
            specs = ancestors + (
                [self._validated_spec(spec, db, "The new mini-selection")]
                if spec is not None else []
            )
        elif database:
            db = self.get_database(database)
            specs = [] if spec is None else [self._validated_spec(spec, db, "The selection")]
        else:
            raise InvalidInput("Name a selection, or a contact database.")
        if not db.columns:
            raise InvalidInput(
                f"Database {db.name!r} has no contacts yet; import contacts first."
            )
        if not specs:
            return SelectionScope(db, "TRUE", [], stored)
        try:
            where, params = selections.compile_chain(specs, db.columns, today=today)
        except selections.SelectionError as exc:
            label = repr(name or parent or db.name)
            raise InvalidInput(f"Selection {label}: {exc}") from None
        return SelectionScope(db, f"({where})", list(params), stored)

    def selection_where(self, name: str) -> tuple[str, list[Any]]:
        """The SQL condition (with its parameters) of a stored selection and its ancestors."""
        scope = self.selection_scope(name)
        return scope.where, scope.params

    def _run_scoped(self, sql: str, params: list[Any], scope: SelectionScope) -> Any:
        """Run a query over a rule, turning a missing SMS history into a clear message."""
        try:
            return self.storage.execute(sql, params)
        except duckdb.CatalogException as exc:
            if "sms_history" in str(exc):
                raise InvalidInput(
                    "This rule uses SMS history, which is not available in this database yet "
                    "(no mailing has been sent)."
                ) from None
            raise InvalidInput(f"Database {scope.database.name!r}: {exc}") from None
        except duckdb.Error as exc:
            raise InvalidInput(
                f"The rule cannot be evaluated on database {scope.database.name!r}: "
                f"{str(exc).splitlines()[0]}"
            ) from None

    def count_selection(self, name: str | None = None, *, spec: Any = None,
                        database: str | None = None, parent: str | None = None
                        ) -> tuple[int, datetime]:
        """How many contacts match now, and when that was computed.

        Counting a stored selection (without a `spec` override) remembers the count.
        """
        scope = self.selection_scope(name, spec=spec, database=database, parent=parent)
        count = int(self._run_scoped(
            f"SELECT count(*) FROM {scope.table} WHERE {scope.where}", scope.params, scope
        ).fetchone()[0])
        at = self.clock()
        if scope.selection is not None and spec is None:
            self.storage.execute(
                "UPDATE selections SET last_count = ?, counted_at = ? WHERE id = ?",
                [count, at, scope.selection.id],
            )
        return count, at

    def sample_selection(self, name: str | None = None, *, spec: Any = None,
                         database: str | None = None, parent: str | None = None,
                         limit: int = 20, offset: int = 0) -> pd.DataFrame:
        """A page of matching contacts (never more than `SAMPLE_MAX` rows)."""
        scope = self.selection_scope(name, spec=spec, database=database, parent=parent)
        limit = max(0, min(int(limit), SAMPLE_MAX))
        cols = [*scope.database.user_columns,
                *(c for c in _SAMPLE_DERIVED if c in scope.database.columns)]
        select = ", ".join(quote_ident(c) for c in cols)
        return self._run_scoped(
            f"SELECT {select} FROM {scope.table} WHERE {scope.where} ORDER BY _row_id "
            f"LIMIT {limit} OFFSET {max(0, int(offset))}",
            scope.params, scope,
        ).df()

    def frequent_values(self, database: str, field: str, limit: int = 50) -> list[Any]:
        """The most common values of a column, most common first (for 'is one of' pickers)."""
        db = self.get_database(database)
        if field not in db.columns:
            raise InvalidInput(
                f"Database {database!r} has no field {field!r} "
                f"(fields: {', '.join(db.columns)})."
            )
        col = quote_ident(field)
        rows = self.storage.rows(
            f"SELECT {col} FROM {quote_ident(db.table)} WHERE {col} IS NOT NULL "
            f"GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT {max(1, int(limit))}"
        )
        return [_plain(r[0]) for r in rows]

    def describe_selection(self, name: str) -> str:
        """The rule of a selection and its ancestors as a sentence."""
        chain = self.selection_chain(name)
        db = self.get_database(chain[-1].database)
        return " and ".join(
            f"({selections.describe(c.spec, db.columns)})" if len(chain) > 1
            else selections.describe(c.spec, db.columns)
            for c in chain
        )

    # -- usage settings ---------------------------------------------------------------------
    def set_sms_usage(self, name: str, enabled: bool) -> None:
        self.update_selection(name, sms=bool(enabled))

    @staticmethod
    def _database_sms_reason(db: DatabaseInfo) -> str | None:
        if not db.mobile_field:
            return f"database {db.name} has no mobile field"
        if not db.has_opt_in_rule:
            return f"database {db.name} has no opt-in rule (consent field and values)"
        return None

    def sms_usable_reason(self, name: str) -> str | None:
        """None when SMS mailings may use this selection; otherwise why not."""
        info = self.get_selection(name)
        if not info.sms_enabled:
            return "switch on SMS usage for this selection"
        return self._database_sms_reason(self.get_database(info.database))

    def database_sms_reason(self, database: str) -> str | None:
        """None when SMS mailings may go to a whole database; otherwise why not."""
        return self._database_sms_reason(self.get_database(database))

    def require_sms_usable(self, name: str | None = None, *, database: str | None = None
                           ) -> None:
        """Refuse (InvalidInput, with the reason) a selection or database not usable for SMS."""
        if name:
            reason = self.sms_usable_reason(name)
            if reason:
                raise InvalidInput(f"Selection {name!r} cannot be used for SMS: {reason}.")
            return
        if database:
            reason = self.database_sms_reason(database)
            if reason:
                raise InvalidInput(f"Database {database!r} cannot be used for SMS: {reason}.")
            return
        raise InvalidInput("Name the selection or the contact database to send to.")

    def usable_selections(self, database: str | None = None) -> list[str]:
        """The selections SMS mailings may use (what the mailing wizard offers)."""
        frame = self.list_selections(database)
        return [str(n) for n in frame.loc[frame["usable"].astype(bool), "name"]]


def _plain(value: Any) -> Any:
    """A DuckDB value as JSON-friendly Python (dates as ISO text)."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value
