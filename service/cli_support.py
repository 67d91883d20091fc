"""What server-side CLI commands share: the database the server uses."""

from __future__ import annotations

from typing import Any

__all__ = ["database_sessions"]


def database_sessions() -> Any:
    """Sessions on SANITAS_DATABASE_URL (SQLite brought up to date first)."""
    from service.audit_chain import make_sessionmaker
    from service.db import make_engine
    from service.migrate import upgrade
    from service.settings import Settings

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.is_sqlite:
        upgrade(settings.sqlalchemy_url)
    return make_sessionmaker(make_engine(settings.sqlalchemy_url))
