"""API keys for the service: who a bearer secret speaks for, whether auth is on, the keys
admins manage, and each key's limit of unfinished tasks.

What was read about a key is kept at most KEY_CACHE_S, so a key created, revoked or
expired on any replica is in force (or not) on every replica within that time."""

import ipaddress
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import timedelta

from app.core.config import Settings
from app.domain.errors import NotAuthenticated, NotFound
from app.domain.keys import (
    ApiKey,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    Principal,
    Role,
    hash_secret,
    is_key_id,
    is_secret,
    new_key_id,
    new_secret,
)
from app.domain.models import utcnow
from app.store.keys import KeyStore

log = logging.getLogger(__name__)
KEY_CACHE_S = 1.0
# Digests remembered at once; past it the cache starts afresh (a flood of unknown keys).
KEY_CACHE_MAX = 10_000
BOOTSTRAP_NAME = "bootstrap-admin"


class AuthRefused(RuntimeError):
    """The service must not start: auth would be off on an address others can reach."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def log_change(actor: Principal, action: str, target: str) -> None:
    """The audit line of a change of keys or policies: what, to what, and by which key."""
    log.info("audit: %s %s by key %s", action, target, actor.key_id or "(auth off)")


def new_api_key(request: ApiKeyCreate, *, secret: str, created_by: str | None) -> ApiKey:
    """The row of a new key: its secret's digest, never the secret."""
    now = utcnow()
    expires_at = None
    if request.expires_in_s is not None:
        expires_at = now + timedelta(seconds=request.expires_in_s)
    return ApiKey(
        key_id=new_key_id(),
        name=request.name,
        role=request.role,
        created_at=now,
        expires_at=expires_at,
        rate_per_s=request.rate_per_s,
        max_unfinished=request.max_unfinished,
        created_by=created_by,
        secret_sha256=hash_secret(secret),
    )


@dataclass
class KeyService:
    settings: Settings
    store: KeyStore
    # ("digest" or "id", its value) -> (monotonic time read, the key or None)
    _cache: dict[tuple[str, str], tuple[float, ApiKeyPublic | None]] = field(default_factory=dict)
    _keys_seen_at: float | None = None  # monotonic time a key was last found to exist
    _no_key_checked_at: float = -math.inf

    async def required(self) -> bool:
        """Whether requests need a key: TASKBEAT_AUTH, and in `auto` whether any key exists
        (asked again at most every KEY_CACHE_S while none does; once one does, it stays on)."""
        if self.settings.auth != "auto":
            return self.settings.auth == "on"
        if self._keys_seen_at is not None:
            return True
        now = time.monotonic()
        if now - self._no_key_checked_at >= KEY_CACHE_S:
            # one look at a time: requests that come meanwhile answer from the last one
            looked_at, self._no_key_checked_at = self._no_key_checked_at, now
            try:
                found = await self.store.any()
            except BaseException:
                self._no_key_checked_at = looked_at  # the next request looks again
                raise
            if found:
                self._keys_seen_at = now
                return True
        return False

    async def start(self, *, host: str) -> None:
        """Seeds TASKBEAT_BOOTSTRAP_ADMIN_KEY, then refuses to start in `auto` with no key on
        an address that is not loopback; logs when auth is off."""
        bootstrap = self.settings.bootstrap_admin_key
        if bootstrap is not None:
            key = new_api_key(
                ApiKeyCreate(name=BOOTSTRAP_NAME, role=Role.ADMIN),
                secret=bootstrap.get_secret_value(),
                created_by=None,
            )
            if await self.store.ensure(key=key):
                log.info(
                    "audit: created key %s (%s) from TASKBEAT_BOOTSTRAP_ADMIN_KEY",
                    key.key_id,
                    BOOTSTRAP_NAME,
                )
        if await self.required():
            return
        if self.settings.auth == "off":
            log.warning(
                "auth is off (TASKBEAT_AUTH=off): anyone who reaches %s may do anything", host
            )
            return
        if not is_loopback(host):
            raise AuthRefused(
                f"refusing to serve on {host} without an API key: create one with "
                "`taskbeat keys create --name admin --role admin` (or set "
                "TASKBEAT_BOOTSTRAP_ADMIN_KEY), or set TASKBEAT_AUTH=off explicitly"
            )
        log.warning(
            "auth is off: no API key exists and the service listens on loopback (%s); "
            "it turns on when the first key is created",
            host,
        )

    async def authenticate(self, secret: str | None) -> Principal:
        """The principal of a bearer secret; NotAuthenticated for a missing, malformed,
        unknown, revoked or expired one."""
        return self.principal_of(await self.key_of(secret))

    async def key_of(self, secret: str | None) -> ApiKeyPublic:
        """The key in force whose secret this is; NotAuthenticated for a missing,
        malformed, unknown, revoked or expired one."""
        if secret is None:
            raise NotAuthenticated("an API key is required: Authorization: Bearer tb_...")
        if not is_secret(secret):
            raise NotAuthenticated("not an API key")
        return self._in_force(await self._lookup(("digest", hash_secret(secret))))

    async def key_by_id(self, key_id: str) -> ApiKeyPublic:
        """The key in force with this id (a dashboard session names it); NotAuthenticated
        once it is revoked or expired. Read again at most every KEY_CACHE_S."""
        if not is_key_id(key_id):
            raise NotAuthenticated("not a key id")
        return self._in_force(await self._lookup(("id", key_id)))

    def principal_of(self, key: ApiKeyPublic) -> Principal:
        return Principal(
            key_id=key.key_id,
            role=key.role,
            rate_per_s=key.rate_per_s or self.settings.key_rate_per_s,
            max_unfinished=key.max_unfinished or self.settings.key_max_unfinished,
            name=key.name,
        )

    @staticmethod
    def _in_force(key: ApiKeyPublic | None) -> ApiKeyPublic:
        if key is None:
            raise NotAuthenticated("unknown API key")
        if key.revoked_at is not None:
            raise NotAuthenticated("the API key was revoked")
        if key.expires_at is not None and key.expires_at <= utcnow():
            raise NotAuthenticated("the API key expired")
        return key

    async def _lookup(self, by: tuple[str, str]) -> ApiKeyPublic | None:
        now = time.monotonic()
        cached = self._cache.get(by)
        if cached is not None and now - cached[0] < KEY_CACHE_S:
            return cached[1]
        kind, value = by
        if kind == "digest":
            key = await self.store.by_digest(digest=value)
        else:
            key = await self.store.by_id(key_id=value)
        if len(self._cache) >= KEY_CACHE_MAX:
            self._cache.clear()
        self._cache[by] = (now, key)
        if key is not None:
            self._keys_seen_at = now
        return key

    async def create(self, request: ApiKeyCreate, *, by: Principal) -> ApiKeyCreated:
        secret = new_secret()
        key = new_api_key(request, secret=secret, created_by=by.key_id)
        await self.store.insert(key=key)
        self._keys_seen_at = time.monotonic()  # auth is on here from this answer on
        log_change(by, "created key", f"{key.key_id} ({key.name}, {key.role.value})")
        return ApiKeyCreated(
            **ApiKeyPublic.model_validate(key, from_attributes=True).model_dump(), secret=secret
        )

    async def list(self) -> list[ApiKeyPublic]:
        return await self.store.list()

    async def revoke(self, key_id: str, *, by: Principal) -> None:
        if not is_key_id(key_id) or not await self.store.revoke(key_id=key_id):
            raise NotFound(f"no key {key_id} in force")
        log_change(by, "revoked key", key_id)
