"""Alembic environment for planta's metadata store.

planta runs migrations itself when a store is opened (``planta.store.metadata.open_store``): it
hands over a connection that already holds the store's write lock, so there is no alembic.ini
and no URL here. Revisions in ``versions/`` are written by hand and never edited once released.
"""

from __future__ import annotations

from alembic import context

from planta.store.metadata import metadata


def run_migrations() -> None:
    """Run the pending revisions on the connection planta handed over."""
    connection = context.config.attributes.get("connection")
    if connection is None:  # someone ran `alembic` by hand
        raise RuntimeError("planta migrations run through planta.store.metadata.open_store(url)")
    # render_as_batch: SQLite cannot ALTER most things in place; batch mode copies the table.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


# Alembic's context exists only while a migration command runs; importing this file at any
# other time (a doctest collector walking the package) must do nothing.
if getattr(context, "config", None) is not None:
    run_migrations()
