"""API keys for tests: made through the running replica's own key service (or, for the
expired and revoked ones, written as they would be after time passed)."""

from datetime import timedelta
from typing import Any

import httpx

from app.domain.keys import ANONYMOUS, ApiKeyCreate, Role, new_secret
from app.domain.models import utcnow
from app.service.keys import new_api_key


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def make_key(client: httpx.AsyncClient, role: Role, **limits: Any) -> tuple[str, str]:
    """(key_id, secret) of a new key, created on the replica behind `client`."""
    keys = client.app.state.context.keys  # type: ignore[attr-defined]
    created = await keys.create(
        ApiKeyCreate(name=f"test-{role}", role=role, **limits), by=ANONYMOUS
    )
    return created.key_id, created.secret


async def make_expired_key(client: httpx.AsyncClient) -> tuple[str, str]:
    secret = new_secret()
    key = new_api_key(ApiKeyCreate(name="expired", role=Role.ADMIN), secret=secret, created_by=None)
    key.expires_at = utcnow() - timedelta(seconds=1)
    await client.app.state.context.keys.store.insert(key=key)  # type: ignore[attr-defined]
    return key.key_id, secret


async def make_revoked_key(client: httpx.AsyncClient) -> tuple[str, str]:
    key_id, secret = await make_key(client, Role.ADMIN)
    await client.app.state.context.keys.revoke(key_id, by=ANONYMOUS)  # type: ignore[attr-defined]
    return key_id, secret
