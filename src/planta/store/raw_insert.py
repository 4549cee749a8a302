"""A table's INSERT as one prepared DB-API statement, for the prediction log's writer.

SQLAlchemy Core spends about 50 µs per row of a multi-row ``insert(table)`` on building and
processing its parameter dictionaries; the writer's rows already have every column, so it
compiles the statement text once per dialect and hands ``executemany`` plain tuples. The
values go through each column type's own bind processor (SQLAlchemy's, e.g. timestamps as
SQLite text, JSON serialized with the store's serializer), so the stored bytes are the ones
Core would have written; the driver prepares the statement once and reuses it (sqlite3's
statement cache, psycopg's prepared statements).

>>> from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine
>>> t = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("name", String))
>>> engine = create_engine("sqlite://")
>>> t.metadata.create_all(engine)
>>> with engine.begin() as conn:
...     RawInsert(t, ("id", "name"), engine.dialect).execute(conn, [(1, "a"), (2, "b")])
>>> with engine.connect() as conn:
...     conn.exec_driver_sql("SELECT id, name FROM t ORDER BY id").all()
[(1, 'a'), (2, 'b')]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.engine import Dialect

_MARKERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


class RawInsert:
    """``INSERT INTO table (columns) VALUES (...)`` for positional rows in ``columns`` order."""

    def __init__(self, table: Table, columns: Sequence[str], dialect: Dialect) -> None:
        marker = _MARKERS.get(str(dialect.paramstyle))
        if marker is None:
            raise ValueError(f"parameter style {dialect.paramstyle!r} is not supported")
        quote = dialect.identifier_preparer.quote
        self.columns = tuple(columns)
        # Names from planta's own schema (never from input), quoted by the dialect.
        self.sql = "".join(("INSERT INTO ", quote(table.name), " (",
                            ", ".join(quote(c) for c in self.columns), ") VALUES (",
                            ", ".join([marker] * len(self.columns)), ")"))
        procs: list[tuple[int, Callable[[Any], Any]]] = []
        for i, name in enumerate(self.columns):
            proc = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                procs.append((i, proc))
        self._procs = procs

    def bind(self, row: Sequence[Any]) -> tuple[Any, ...]:
        """One row's values as the driver takes them."""
        if not self._procs:
            return tuple(row)
        out = list(row)
        for i, proc in self._procs:
            out[i] = proc(out[i])
        return tuple(out)

    def execute(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` in the connection's current transaction (one ``executemany``)."""
        if rows:
            conn.exec_driver_sql(self.sql, [self.bind(r) for r in rows])


__all__ = ["RawInsert"]
