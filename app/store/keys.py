"""The api_keys table: create, find by the digest of a secret, list, revoke; and the
count of a key's unfinished tasks (its limit). Plain functions on a connection, so that
the `taskbeat keys` commands use them without a running service, and `KeyStore` for the
service (each call one transaction on a worker thread)."""

from datetime import datetime

from sqlalchemy import Connection, exists, insert, select, update

from app.core.db import Database
from app.domain.keys import ApiKey, ApiKeyPublic
from app.domain.models import utcnow

api_keys = ApiKey.__table__  # type: ignore[attr-defined]
PUBLIC_COLUMNS = [api_keys.c[name] for name in ApiKeyPublic.model_fields]


def insert_key(conn: Connection, key: ApiKey) -> None:
    conn.execute(insert(api_keys), [key.model_dump()])


def key_by_digest(conn: Connection, digest: str) -> ApiKeyPublic | None:
    row = (
        conn.execute(select(*PUBLIC_COLUMNS).where(api_keys.c.secret_sha256 == digest))
        .mappings()
        .first()
    )
    return None if row is None else ApiKeyPublic.model_validate(dict(row))


def digest_exists(conn: Connection, digest: str) -> bool:
    return bool(conn.execute(select(exists().where(api_keys.c.secret_sha256 == digest))).scalar())


def list_keys(conn: Connection) -> list[ApiKeyPublic]:
    query = select(*PUBLIC_COLUMNS).order_by(api_keys.c.created_at, api_keys.c.key_id)
    return [ApiKeyPublic.model_validate(dict(row)) for row in conn.execute(query).mappings()]


def revoke(conn: Connection, key_id: str, *, at: datetime) -> bool:
    """Revokes the key; False when there is no such key or it was revoked already."""
    statement = (
        update(api_keys)
        .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    return bool(conn.execute(statement).rowcount == 1)


def any_key(conn: Connection) -> bool:
    """True once a key was ever created (a revoked key keeps auth on)."""
    return bool(conn.execute(select(exists().select_from(api_keys))).scalar())


class KeyStore:
    """The keys, for the service: each call runs in one transaction on a worker thread."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(self, *, key: ApiKey) -> None:
        await self.db.write(lambda conn: insert_key(conn, key))

    async def by_digest(self, *, digest: str) -> ApiKeyPublic | None:
        return await self.db.read(lambda conn: key_by_digest(conn, digest))

    async def ensure(self, *, key: ApiKey) -> bool:
        """Stores the key unless its digest is stored already; True when it was added."""

        def insert_new(conn: Connection) -> bool:
            if digest_exists(conn, key.secret_sha256):
                return False
            insert_key(conn, key)
            return True

        return await self.db.write(insert_new)

    async def list(self) -> list[ApiKeyPublic]:
        return await self.db.read(list_keys)

    async def revoke(self, *, key_id: str) -> bool:
        return await self.db.write(lambda conn: revoke(conn, key_id, at=utcnow()))

    async def any(self) -> bool:
        return await self.db.read(any_key)
