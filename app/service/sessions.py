"""Dashboard sessions: a browser signs in with an API key once and then carries a cookie.

The cookie holds no secret: `<key id>.<expires unix seconds>.<signature>`, an HMAC-SHA256
under TASKBEAT_SESSION_SECRET. Every request checks the signature and the expiry, then
looks the key up again (at most KEY_CACHE_S old), so a revoked or expired key's sessions
end within about a second on every replica."""

import base64
import hashlib
import hmac
import logging
import math
import secrets
import time
from dataclasses import dataclass

from app.core.config import Settings
from app.domain.errors import NotAuthenticated
from app.domain.keys import Principal
from app.service.keys import KeyService

log = logging.getLogger(__name__)
SESSION_COOKIE = "taskbeat_session"
COOKIE_PATH = "/ui"
TOKEN_VERSION = "s1"


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    max_age_s: int


def _signing_key(settings: Settings) -> bytes:
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value().encode()
    log.info(
        "dashboard sessions are signed with this process's own random secret: set "
        "TASKBEAT_SESSION_SECRET (the same on every replica) to share them"
    )
    return secrets.token_bytes(32)


class Sessions:
    """Issues and checks the dashboard's session cookies."""

    def __init__(self, settings: Settings, keys: KeyService) -> None:
        self._keys = keys
        self._ttl_s = settings.session_ttl_s
        self._signing_key = _signing_key(settings)

    def _signature(self, key_id: str, expires_s: int) -> str:
        signed = f"{TOKEN_VERSION}.{key_id}.{expires_s}".encode()
        digest = hmac.new(self._signing_key, signed, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    async def sign_in(self, secret: str | None) -> tuple[Principal, Session]:
        """The principal of an API key's secret and a session for it, lasting the TTL or
        until the key expires, whichever is first. NotAuthenticated for a bad key."""
        key = await self._keys.key_of(secret)
        expires_s = math.floor(time.time()) + self._ttl_s
        if key.expires_at is not None:
            expires_s = min(expires_s, math.floor(key.expires_at.timestamp()))
        token = f"{key.key_id}.{expires_s}.{self._signature(key.key_id, expires_s)}"
        max_age_s = max(1, expires_s - math.floor(time.time()))
        return self._keys.principal_of(key), Session(token, max_age_s)

    async def principal_of(self, token: str) -> Principal:
        """Who a session cookie speaks for; NotAuthenticated when it is forged, expired,
        or its key is revoked or expired."""
        key_id, _, rest = token.partition(".")
        expires_text, _, signature = rest.partition(".")
        if not expires_text.isdigit() or len(expires_text) > 12:
            raise NotAuthenticated("not a dashboard session: sign in again")
        expires_s = int(expires_text)
        expected = self._signature(key_id, expires_s).encode()
        if not hmac.compare_digest(signature.encode(errors="replace"), expected):
            raise NotAuthenticated("not a dashboard session: sign in again")
        if expires_s <= time.time():
            raise NotAuthenticated("the dashboard session expired: sign in again")
        return self._keys.principal_of(await self._keys.key_by_id(key_id))
