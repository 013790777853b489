"""Idempotency keys of creates. A key's row is inserted in the transaction that inserts its
task, under the primary key (scope, key): of concurrent creates with one key, on any number
of replicas, one inserts the row and its task, and the others find that row. The insert
decides, never a read before it: an upsert that takes over only an expired row."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.domain.models import utcnow
from app.store.tables import idempotency_keys as keys

KeyId = tuple[str, str]  # (scope, key)


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """A create's Idempotency-Key, in the scope of its API key ("" with auth off)."""

    scope: str
    key: str
    body_hash: str  # what the key answers to: the create's body, hashed
    ttl_s: int

    @property
    def key_id(self) -> KeyId:
        return (self.scope, self.key)


@dataclass(frozen=True, slots=True)
class Holder:
    """The committed row holding a key: the body that took it and the task it made."""

    body_hash: str
    task_id: str


def take_keys(
    conn: Connection, claims: Sequence[tuple[IdempotencyClaim, str]]
) -> tuple[set[KeyId], dict[KeyId, Holder]]:
    """Inserts a row for each (claim, id of the task it would create), distinct keys, taking
    over rows that expired; returns the keys taken and, for the others, their holders. On
    PostgreSQL a key inserted by a transaction under way waits for it, so a holder is always
    committed."""
    now = utcnow()
    rows = [
        {
            "scope": claim.scope,
            "key": claim.key,
            "body_hash": claim.body_hash,
            "task_id": task_id,
            "expires_at": now + timedelta(seconds=claim.ttl_s),
        }
        for claim, task_id in sorted(claims, key=lambda pair: pair[0].key_id)  # lock order
    ]
    dialect_insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    upsert = dialect_insert(keys).values(rows)
    statement = upsert.on_conflict_do_update(
        index_elements=[keys.c.scope, keys.c.key],
        set_={
            "body_hash": upsert.excluded.body_hash,
            "task_id": upsert.excluded.task_id,
            "expires_at": upsert.excluded.expires_at,
        },
        where=keys.c.expires_at <= now,
    ).returning(keys.c.scope, keys.c.key)
    taken: set[KeyId] = {(scope, key) for scope, key in conn.execute(statement)}
    held = [claim.key_id for claim, _ in claims if claim.key_id not in taken]
    if not held:
        return taken, {}
    query = select(keys.c.scope, keys.c.key, keys.c.body_hash, keys.c.task_id).where(
        tuple_(keys.c.scope, keys.c.key).in_(held)
    )
    found = conn.execute(query).all()
    return taken, {(scope, key): Holder(body, task_id) for scope, key, body, task_id in found}


def sweep_expired(conn: Connection, *, limit: int) -> int:
    """Deletes up to `limit` expired keys (those another transaction holds are left for the
    next sweep); returns how many."""
    now = utcnow()
    query = (
        select(keys.c.scope, keys.c.key)
        .where(keys.c.expires_at <= now)
        .order_by(keys.c.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    expired = [(scope, key) for scope, key in conn.execute(query)]
    if not expired:
        return 0
    conn.execute(
        delete(keys).where(tuple_(keys.c.scope, keys.c.key).in_(expired), keys.c.expires_at <= now)
    )
    return len(expired)
