"""What server-side CLI commands share: the database the server uses."""

from __future__ import annotations

from typing import Any

__all__ = ["database_sessions", "key_id_of"]


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


def key_id_of(session: Any, key: str) -> str:
    """A key's id from its id or its secret (commands take either); "" when unknown."""
    from sqlalchemy import select

    from service.db import ApiKey
    from service.http.auth import hash_key

    if not key.startswith("san_"):
        return key
    return session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(key))) or ""
