"""The coordinator's hot statements, compiled once per database and run on the DB-API cursor.

Each is an ordinary SQLAlchemy Core statement — one definition for SQLite and PostgreSQL — compiled once
for the open database's dialect (both use positional parameters). Executing the compiled text directly
on the driver's cursor skips SQLAlchemy's per-execution work (~50 µs a statement), which is most of the
cost of a coordinator tick. Only plain columns are bound (no type processing is needed for them), and
constants are written as SQL literals, so a statement's parameters are exactly the ones its caller
passes, in the order the caller names them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import ClauseElement, bindparam, func, literal_column, or_, select, text, update
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnClause

from ..lifecycle import RUN_TRANSITIONS, sources
from ..models import CANCELED, FAILED, IN_PROGRESS, QUEUED, RUNNING, SUCCESS
from .schema import backfills, queue_lock, run_logs, run_partitions, runs, schedules, workers

Q_QUEUED: ColumnClause[Any] = literal_column(f"'{QUEUED}'")
Q_RUNNING: ColumnClause[Any] = literal_column(f"'{RUNNING}'")
Q_IN_PROGRESS: ColumnClause[Any] = literal_column(f"'{IN_PROGRESS}'")

#: Run columns in the order ``insert_runs`` binds them.
RUN_INSERT_COLUMNS = ("run_id", "workflow", "status", "partition_key", "partition_keys", "num_partitions", "params",
                      "tags", "priority", "backfill_id", "idempotency_key", "attempt", "logical_time", "window_start",
                      "window_end", "scheduled_time", "created_at", "run_name", "environ", "owner",
                      "cancel_requested", "error", "ended_at", "started_at", "plan_index")


class Prepared:
    """A statement compiled for one dialect; ``args`` name its parameters in the order callers pass them.
    A parameter the dialect adds itself (SQLite's ``OFFSET`` after a bound ``LIMIT``) keeps its compiled value."""

    __slots__ = ("sql", "_reorder", "_dialect")

    def __init__(self, statement: ClauseElement, dialect: Dialect, args: Sequence[str],
                 column_keys: Sequence[str] | None = None):
        self._dialect = dialect
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect,
                                                       column_keys=list(column_keys) if column_keys else None))
        self.sql = str(compiled)
        order = list(compiled.positiontup or ())
        missing = [a for a in args if a not in order]
        extra = [n for n in order if n not in args and compiled.params.get(n) is None]
        if missing or extra:
            raise ValueError(f"statement binds {order}, caller passes {list(args)}")
        slots: list[tuple[int, Any]] = [(list(args).index(n), None) if n in args else (-1, compiled.params[n])
                                        for n in order]
        self._reorder: Callable[[Sequence[Any]], Sequence[Any]] | None = None
        if slots == [(i, None) for i in range(len(args))]:
            pass  # the caller's order is the statement's
        elif all(i >= 0 for i, _ in slots) and len(slots) > 1:
            self._reorder = itemgetter(*(i for i, _ in slots))  # C speed: a 23-column row in ~0.2 µs
        else:
            def reorder(values: Sequence[Any]) -> Sequence[Any]:
                return tuple(values[i] if i >= 0 else constant for i, constant in slots)

            self._reorder = reorder

    def bind(self, values: Sequence[Any]) -> Sequence[Any]:
        return values if self._reorder is None else self._reorder(values)

    def execute(self, cursor: Any, values: Sequence[Any] = ()) -> Any:
        try:
            cursor.execute(self.sql, self.bind(values))
        except Exception as exc:
            raise self._wrapped(exc, cursor) from exc
        return cursor

    def executemany(self, cursor: Any, rows: Iterable[Sequence[Any]]) -> int:
        if self._reorder is None:
            batch = rows if isinstance(rows, list) else list(rows)
        else:
            batch = [self.bind(r) for r in rows]
        if not batch:
            return 0
        try:
            cursor.executemany(self.sql, batch)
        except Exception as exc:
            raise self._wrapped(exc, cursor) from exc
        return int(cursor.rowcount)

    def _wrapped(self, exc: Exception, cursor: Any) -> Exception:
        return self._wrap(self._dialect, self.sql, exc, cursor)

    @staticmethod
    def _wrap(dialect: Dialect, sql: str, exc: Exception, cursor: Any) -> Exception:
        """A driver error as the SQLAlchemy exception a Core execution would raise (IntegrityError,
        OperationalError, ... with ``connection_invalidated`` set on a disconnect)."""
        dbapi = dialect.dbapi
        if dbapi is None or not isinstance(exc, dbapi.Error):
            return exc
        from sqlalchemy.exc import DBAPIError

        lost = dialect.is_disconnect(exc, None, cursor)
        return DBAPIError.instance(sql, None, exc, dbapi.Error, connection_invalidated=lost, dialect=dialect)


class Batch:
    """A statement over many rows at once — a multi-row ``INSERT ... VALUES (...), (...)``, an
    ``UPDATE ... FROM (VALUES ...)``, an ``IN (...)`` list — where the database would otherwise run one
    statement per row (on PostgreSQL, one round of protocol and planning each).

    ``template(n, group)`` builds the SQL for ``n`` rows of ``width`` values; ``{p}`` marks a parameter and
    ``group`` is one row's ``({p}, {p}, ...)``. On PostgreSQL parameters are numbered where the SQL is built
    (``$1``, ``$2``...), so psycopg never parses a long statement to find them (it would, each time, for a
    statement of more than 50 parameters); on SQLite they are plain ``?`` (SQLite prepares numbered ``?NNN``
    in quadratic time). The same SQL otherwise. Each size is built once (and the driver keeps it prepared).
    ``head`` values (the same for every row) come first."""

    def __init__(self, dialect: Dialect, width: int, template: Callable[[int, str], str], max_rows: int = 500):
        self._dialect = dialect
        self._width = width
        self._template = template
        self._raw = dialect.paramstyle != "qmark"  # psycopg: a RawCursor takes $n as it is
        self._max_rows = max_rows
        self._sql: dict[int, str] = {}

    def sql(self, n: int) -> str:
        text = self._sql.get(n)
        if text is None:
            group = "(" + ", ".join(["{p}"] * self._width) + ")"
            parts = self._template(n, group).split("{p}")
            if self._raw:  # numbered ($1, $2...): psycopg passes them through as they are
                text = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))
            else:  # plain ?: SQLite prepares numbered ?NNN in quadratic time (0.8 s for 1,000 rows)
                text = "?".join(parts)
            self._sql[n] = text
        return text

    def execute(self, cursor: Any, rows: Sequence[Sequence[Any]], head: Sequence[Any] = ()) -> int:
        """Run it over ``rows`` (in chunks of ``max_rows``); the total row count."""
        return sum(int(c.rowcount) for c in self._chunks(cursor, rows, head))

    def returning(self, cursor: Any, rows: Sequence[Sequence[Any]], head: Sequence[Any] = ()) -> list[Any]:
        """Run it (a statement ``RETURNING`` something) over ``rows``; every row it returned."""
        return [row for c in self._chunks(cursor, rows, head) for row in c.fetchall()]

    def _chunks(self, cursor: Any, rows: Sequence[Sequence[Any]], head: Sequence[Any]) -> Iterator[Any]:
        if self._raw:
            from psycopg import RawCursor

            cursor = RawCursor(cursor.connection)
        for i in range(0, len(rows), self._max_rows):
            chunk = rows[i:i + self._max_rows]
            sql = self.sql(len(chunk))
            values = list(head)  # one flat list of parameters (chain: C speed; a row's values in order)
            values.extend(chain.from_iterable(chunk) if self._width > 1 else chunk)
            try:
                cursor.execute(sql, values)
            except Exception as exc:
                raise Prepared._wrap(self._dialect, sql, exc, cursor) from exc
            yield cursor


def _in(statuses: Iterable[str]) -> str:
    """``('a', 'b')``: a guard's statuses as SQL literals."""
    return "(" + ", ".join(f"'{s}'" for s in statuses) + ")"


class Statements:
    """The hot statements for one database dialect. Every status change is guarded by the statuses the
    lifecycle (``anachron.lifecycle``) lets move to the new one."""

    def __init__(self, dialect: Dialect):
        def p(statement: ClauseElement, *args: str, column_keys: Sequence[str] | None = None) -> Prepared:
            return Prepared(statement, dialect, args, column_keys)

        b = bindparam

        def insert_many(table: Any, columns: Sequence[str], tail: str = "") -> Batch:
            head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
            return Batch(dialect, len(columns), lambda n, group: head + ", ".join([group] * n) + tail,
                         max_rows=max(1, 30_000 // len(columns)))

        self.insert_runs = insert_many(runs, RUN_INSERT_COLUMNS)
        #: runs whose idempotency key may be taken already (schedule ticks): those are left as they are
        self.insert_runs_once = insert_many(runs, RUN_INSERT_COLUMNS, " ON CONFLICT (workflow, idempotency_key) "
                                                                      "DO NOTHING RETURNING run_id")
        self.insert_schedules_once = insert_many(schedules, ("workflow", "schedule_id", "paused", "cursor",
                                                             "updated_at"),
                                                 " ON CONFLICT (workflow, schedule_id) DO NOTHING")
        self.insert_run_partitions = insert_many(run_partitions, ("run_id", "workflow", "partition_key"))
        self.insert_logs = insert_many(run_logs, ("run_id", "attempt", "ts", "level", "message"))
        started_from = sources(RUN_TRANSITIONS, RUNNING)
        finishable = sources(RUN_TRANSITIONS, SUCCESS, FAILED, CANCELED)
        active = runs.c.status.in_([literal_column(f"'{s}'") for s in finishable])
        #: many outcomes of runs ``owner`` runs, in one statement. An outcome is accepted from the run's
        #: current attempt while it is active and owned by ``owner``, or — the attempt that ran, reported late
        #: (its leader stalled, storage was down) — when the run was taken over meanwhile and its next attempt
        #: has not started (queued as attempt + 1): that attempt is then never started.
        r = runs.name
        self.finish_many = Batch(dialect, 7, lambda n, group: (
            f"UPDATE {r} SET status = CAST(v.column2 AS VARCHAR(16)), error = CAST(v.column3 AS TEXT), "
            "ended_at = CAST(v.column4 AS DOUBLE PRECISION), "
            f"started_at = COALESCE(CAST(v.column5 AS DOUBLE PRECISION), {r}.started_at), "
            f"attempt = CAST(v.column6 AS INTEGER), not_before = NULL "
            f"FROM (VALUES {', '.join([group] * n)}) AS v "
            f"WHERE {r}.run_id = v.column1 AND ("
            f"({r}.attempt = CAST(v.column6 AS INTEGER) AND {r}.owner = v.column7 AND {r}.status IN {_in(finishable)}) "
            f"OR ({r}.attempt = CAST(v.column6 AS INTEGER) + 1 AND {r}.status = '{QUEUED}')) "
            f"RETURNING {r}.run_id, {r}.backfill_id"))
        #: queued runs to running, in one statement; returns the ids it started (a run finished meanwhile by
        #: a late outcome is not)
        #: queued runs started by their owner: a claim read before another process took them over (the
        #: claimer froze between its read and this write) starts nothing
        self.start_many = Batch(dialect, 1, lambda n, group: (
            f"UPDATE {r} SET status = '{RUNNING}', started_at = {{p}}, not_before = NULL "
            f"WHERE status IN {_in(started_from)} AND owner = {{p}} AND run_id IN ({', '.join(['{p}'] * n)}) "
            f"RETURNING run_id"))
        finish = update(runs).values(status=b("st"), error=b("err"), ended_at=b("end"),
                                     started_at=func.coalesce(b("begin"), runs.c.started_at))
        #: an outcome from the executor of the current attempt (guarded by attempt and owner)
        self.finish_owned = p(finish.where(runs.c.run_id == b("rid"), runs.c.attempt == b("att"),
                                           runs.c.owner == b("own"), active),
                              "st", "err", "end", "begin", "rid", "att", "own")
        #: a decision about an active run (cancel), whoever runs it
        self.finish_active = p(finish.where(runs.c.run_id == b("rid"), active), "st", "err", "end", "begin", "rid")
        self.mark_key_failed = p(update(run_partitions).values(error=b("err")).where(
            run_partitions.c.run_id == b("rid"), run_partitions.c.partition_key == b("k")), "err", "rid", "k")
        self.count = p(update(backfills).values(
            completed=backfills.c.completed + b("c"), failed=backfills.c.failed + b("f"),
            canceled=backfills.c.canceled + b("x"), updated_at=b("now")).where(backfills.c.backfill_id == b("bid")),
            "c", "f", "x", "now", "bid")
        #: the queue's claim lock: PostgreSQL ``FOR UPDATE SKIP LOCKED`` (no row: another claimer holds it);
        #: SQLite renders a plain read (its write transactions are ``BEGIN IMMEDIATE``: already exclusive)
        self.lock_queue = p(select(queue_lock.c.id).where(queue_lock.c.id == literal_column("1"))
                            .with_for_update(skip_locked=True))
        self.queued = p(
            select(runs.c.run_id, runs.c.workflow, runs.c.priority, runs.c.created_at, runs.c.seq, runs.c.owner,
                   runs.c.backfill_id, backfills.c.max_concurrency, runs.c.tags, runs.c.partition_key,
                   runs.c.partition_keys, runs.c.plan_index)
            .select_from(runs.outerjoin(backfills, runs.c.backfill_id == backfills.c.backfill_id))
            .where(runs.c.status == Q_QUEUED, or_(runs.c.backfill_id.is_(None), backfills.c.status == Q_IN_PROGRESS),
                   or_(runs.c.not_before.is_(None), runs.c.not_before <= b("now")),
                   # a run deferred to a future scheduled_time (Prefect's --start-at) is no candidate before it
                   or_(runs.c.scheduled_time.is_(None), runs.c.scheduled_time <= b("now")))
            .order_by(runs.c.priority.desc(), runs.c.seq).limit(b("scan")), "now", "scan")
        self.running = p(select(runs.c.workflow, runs.c.backfill_id, runs.c.tags, runs.c.partition_key,
                                runs.c.partition_keys).where(runs.c.status == Q_RUNNING))
        self.advance_cursor = p(update(backfills).values(cursor=b("new"), updated_at=b("now")).where(
            backfills.c.backfill_id == b("bid"), backfills.c.owner == b("own"), backfills.c.cursor == b("old"),
            backfills.c.status == Q_IN_PROGRESS), "new", "now", "bid", "own", "old")
        #: a schedule's cursor moved forward, never back
        self.advance_schedule = p(update(schedules).values(cursor=b("c"), updated_at=b("now")).where(
            schedules.c.workflow == b("w"), schedules.c.schedule_id == b("s"),
            or_(schedules.c.cursor.is_(None), schedules.c.cursor < b("c2"))), "c", "now", "w", "s", "c2")
        #: a savepoint (the engine's: it never nests them), e.g. around a batch whose per-row effect may need
        #: redoing row by row, or writes that are undone together when the database refuses one
        self.savepoint = p(text("SAVEPOINT anachron_batch"))
        self.rollback_to_savepoint = p(text("ROLLBACK TO SAVEPOINT anachron_batch"))
        self.release_savepoint = p(text("RELEASE SAVEPOINT anachron_batch"))
        self.run_ids_of_backfill = p(select(runs.c.run_id).where(runs.c.backfill_id == b("bid"))
                                     .order_by(runs.c.seq), "bid")
        self.renew_lease = p(update(workers).values(expires_at=b("exp")).where(
            workers.c.worker_id == b("wid"), workers.c.expires_at >= b("now")), "exp", "wid", "now")
