"""API keys: the roles, the key table, and who a request speaks for (`Principal`).

A key's secret is `tb_` + 32 random bytes (URL-safe base64); only its SHA-256 is stored. A
secret of 256 random bits needs no slow hash: nobody can guess one from its digest, and
looking a key up by digest compares no secret in variable time.
"""

import enum
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String
from sqlmodel import Column, Field, SQLModel

from app.domain.models import UTCDateTime

SECRET_PREFIX = "tb_"
SECRET_BYTES = 32
# tb_ + at least 32 bytes in URL-safe base64 (43 characters, unpadded)
SECRET_PATTERN = re.compile(r"^tb_[A-Za-z0-9_-]{43,128}$")
KEY_ID_PATTERN = re.compile(r"^key_[0-9a-f]{16}$")


class Role(enum.StrEnum):
    CLIENT = "client"  # creates tasks, sees and acts on its own only
    VIEWER = "viewer"  # reads everything, changes nothing
    ADMIN = "admin"  # everything


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def is_key_id(text: str) -> bool:
    """True for an id in the form this service gives out (anything else names no key)."""
    return KEY_ID_PATTERN.fullmatch(text) is not None


def is_secret(text: str) -> bool:
    """True for text in the form of a key's secret (says nothing of whether it exists)."""
    return SECRET_PATTERN.fullmatch(text) is not None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyCreate(SQLModel):
    """What an admin sends to create a key; unset limits take the configured defaults."""

    name: str = Field(min_length=1, max_length=64, regex=r"^[^\x00-\x1f\x7f]+$")
    role: Role
    expires_in_s: int | None = Field(default=None, ge=1, le=10 * 365 * 86400)
    rate_per_s: int | None = Field(default=None, ge=1, le=1_000_000)
    max_unfinished: int | None = Field(default=None, ge=1, le=100_000_000)


class ApiKeyBase(SQLModel):
    key_id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=64)
    role: Role = Field(sa_column=Column(String(16), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    rate_per_s: int | None = None
    max_unfinished: int | None = None
    created_by: str | None = Field(default=None, max_length=32)


class ApiKey(ApiKeyBase, table=True):
    """The api_keys table: a key is found by the digest of its secret, never by the secret."""

    __tablename__ = "api_keys"

    secret_sha256: str = Field(max_length=64, unique=True, index=True)


class ApiKeyPublic(ApiKeyBase):
    """A key as admins see it: never its secret nor its digest."""


class ApiKeyCreated(ApiKeyPublic):
    """The answer to a create: the only time the secret is shown."""

    secret: str


class ApiKeyPage(SQLModel):
    items: list[ApiKeyPublic]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request speaks for: a key's id, role and limits (no key when auth is off)."""

    key_id: str | None
    role: Role
    rate_per_s: int | None = None
    max_unfinished: int | None = None
    name: str | None = None  # the key's name, shown by the dashboard

    @property
    def task_scope(self) -> str | None:
        """The key whose tasks alone this principal sees; None: every task."""
        return self.key_id if self.role is Role.CLIENT else None


ANONYMOUS = Principal(key_id=None, role=Role.ADMIN)  # auth off: every request may do all
