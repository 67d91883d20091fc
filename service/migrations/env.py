"""Alembic environment: the service's tables, the URL given by service.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from service.db import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )  # fmt: skip
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite")  # fmt: skip
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
