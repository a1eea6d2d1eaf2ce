"""API keys: made and shown once, kept as their SHA-256 only, revoked (never deleted: judgements
keep naming who asked)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timezone

from sqlalchemy import select

from db.models import ApiKey
from db.session import session_scope
from shared.errors import InputError

KEY_PREFIX = "cdf_"


def hash_key(key: str) -> str:
    # The key is 256 random bits: a plain hash cannot be reversed by guessing, no slow hash needed.
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(name: str) -> dict:
    """{"name", "key", "prefix"}: the only time the key itself exists outside its holder."""
    name = (name or "").strip()
    if not name or len(name) > 128:
        raise InputError("an API key needs a name of 1 to 128 characters")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with session_scope() as session:
        if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
            raise InputError(f"an API key named {name!r} exists (`orchestrator api-key list`)")
        session.add(ApiKey(name=name, key_hash=hash_key(key), prefix=key[:10]))
    return {"name": name, "key": key, "prefix": key[:10]}


def list_keys() -> list[dict]:
    with session_scope() as session:
        return [{"name": k.name, "prefix": k.prefix, "created_at": k.created_at.isoformat(),
                 "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None}
                for k in session.scalars(select(ApiKey).order_by(ApiKey.id))]


def revoke_key(name: str) -> dict:
    with session_scope() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.name == name))
        if key is None:
            raise InputError(f"no API key named {name!r} (`orchestrator api-key list`)")
        if key.revoked_at is None:
            key.revoked_at = datetime.now(timezone.utc)
        return {"name": key.name, "prefix": key.prefix, "revoked_at": key.revoked_at.isoformat()}


def active_key_count() -> int:
    with session_scope() as session:
        return len(session.scalars(select(ApiKey.id).where(ApiKey.revoked_at.is_(None))).all())


def key_owner(key: str) -> tuple[int, str] | None:
    """(id, name) of the active key, or None."""
    with session_scope() as session:
        row = session.execute(select(ApiKey.id, ApiKey.name).where(
            ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))).first()
        return (row.id, row.name) if row else None
