"""API keys per project, stored hashed in a small SQLite file under the data root.

A key reads ``eef_<key_id>_<secret>``: ``key_id`` (12 hex characters) finds the row, the secret
(32 random bytes, URL-safe base64) is checked against ``scrypt(secret, salt)`` stored with its own
random salt, compared in constant time. The plain key is shown once, at creation; the file holds
only salts and hashes. A key can expire (``expires_at``) and be revoked; both take effect at the
next request (the row is read on every request; only the costly scrypt result is cached, keyed by
the SHA-256 of the key, for :data:`VERIFIED_CACHE_S` seconds).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEY_PREFIX = "eef_"
#: scrypt cost (N=2**14, r=8, p=1: about 16 MiB and tens of milliseconds per hash).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
VERIFIED_CACHE_S = 300.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    note TEXT NOT NULL DEFAULT ''
)
"""


class ApiKeyError(LookupError):
    """Base of the key failures (kept apart from the builtin ``KeyError``)."""


class MissingKeyError(ApiKeyError):
    """The request carries no API key."""


class InvalidKeyError(ApiKeyError):
    """The key is malformed, unknown, revoked or expired; the message says which."""


@dataclass(frozen=True)
class ApiKey:
    """One stored key (never the secret)."""

    key_id: str
    project: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    note: str

    def status(self, now: dt.datetime | None = None) -> str:
        """Return ``active``, ``revoked`` or ``expired``."""
        if self.revoked_at:
            return "revoked"
        now = now or dt.datetime.now(dt.UTC)
        if self.expires_at and dt.datetime.fromisoformat(self.expires_at) <= now:
            return "expired"
        return "active"

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-able summary with the status."""
        return {"key_id": self.key_id, "project": self.project, "created_at": self.created_at,
                "expires_at": self.expires_at, "revoked_at": self.revoked_at, "note": self.note,
                "status": self.status()}


def hash_secret(secret: str, salt: bytes) -> bytes:
    """Return the scrypt hash (32 bytes) of a key's secret with its salt."""
    return hashlib.scrypt(secret.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                          dklen=32, maxmem=64 * 2**20)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ApiKeyStore:
    """Create, list, revoke and verify project API keys in a SQLite file.

    Args:
        path: the SQLite file (created with its folder on first use).

    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._verified: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()
        with self._connect() as con:
            con.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=10.0)
            con.row_factory = sqlite3.Row
            self._local.con = con
        return con

    @staticmethod
    def _row(row: sqlite3.Row) -> ApiKey:
        return ApiKey(key_id=row["key_id"], project=row["project"], created_at=row["created_at"],
                      expires_at=row["expires_at"], revoked_at=row["revoked_at"],
                      note=row["note"])

    def create(self, project: str, *, expires_at: dt.datetime | None = None,
               expires_in_days: float | None = None, note: str = "") -> tuple[str, ApiKey]:
        """Create a key for ``project``; return (the plain key, shown only now; its record).

        Args:
            project: the project whose models the key may use.
            expires_at: when the key stops working (UTC), or
            expires_in_days: days from now until it stops working; neither: never expires.
            note: free text shown by ``list`` (who holds the key).

        """
        if not project or not project.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"project {project!r}: use letters, digits, '-' and '_'")
        if expires_in_days is not None:
            if expires_in_days <= 0:
                raise ValueError(f"expires_in_days must be > 0, got {expires_in_days}")
            expires_at = _now() + dt.timedelta(days=expires_in_days)
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        record = ApiKey(key_id=key_id, project=project, created_at=_now().isoformat(),
                        expires_at=expires_at.astimezone(dt.UTC).isoformat() if expires_at
                        else None, revoked_at=None, note=note)
        with self._connect() as con:
            con.execute(
                "INSERT INTO api_keys (key_id, project, salt, hash, created_at, expires_at, note)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key_id, project, salt, hash_secret(secret, salt), record.created_at,
                 record.expires_at, note))
        return f"{KEY_PREFIX}{key_id}_{secret}", record

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key by its id (the ``key_id`` column of ``list``); idempotent.

        Raises:
            LookupError: no key has that id.

        """
        key_id = key_id.removeprefix(KEY_PREFIX).split("_")[0]
        with self._connect() as con:
            con.execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS "
                        "NULL", (_now().isoformat(), key_id))
            row = con.execute("SELECT * FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        if row is None:
            raise LookupError(f"no API key with id {key_id!r} in {self.path}; see "
                              "'eeflow serve keys list'")
        with self._lock:
            self._verified.pop(key_id, None)
        return self._row(row)

    def list(self, project: str | None = None) -> list[ApiKey]:
        """Return the stored keys (of ``project`` if given), oldest first."""
        query = "SELECT * FROM api_keys"
        args: tuple[str, ...] = ()
        if project:
            query, args = query + " WHERE project = ?", (project,)
        rows = self._connect().execute(query + " ORDER BY created_at", args).fetchall()
        return [self._row(r) for r in rows]

    def verify(self, key: str | None) -> ApiKey:
        """Return the record of a valid key.

        Raises:
            MissingKeyError: ``key`` is empty.
            InvalidKeyError: malformed, unknown, wrong secret, revoked or expired.

        """
        if not key:
            raise MissingKeyError("no API key: send it in the X-API-Key header (create one "
                                  "with 'eeflow serve keys create --project <project>')")
        parts = key.removeprefix(KEY_PREFIX).split("_", 1)
        if not key.startswith(KEY_PREFIX) or len(parts) != 2 or len(parts[0]) != 12:
            raise InvalidKeyError("the API key is malformed: keys read 'eef_<id>_<secret>'")
        key_id, secret = parts
        row = self._connect().execute("SELECT * FROM api_keys WHERE key_id = ?",
                                      (key_id,)).fetchone()
        if row is None:
            raise InvalidKeyError(f"API key {key_id} is unknown; ask for a new key")
        fingerprint = hashlib.sha256(key.encode()).digest()
        with self._lock:
            cached = self._verified.get(key_id)
        if cached is None or cached[1] < time.monotonic() or not hmac.compare_digest(
                cached[0], fingerprint):
            if not hmac.compare_digest(hash_secret(secret, row["salt"]), row["hash"]):
                raise InvalidKeyError(f"API key {key_id}: wrong secret; ask for a new key")
            with self._lock:
                self._verified[key_id] = (fingerprint, time.monotonic() + VERIFIED_CACHE_S)
        record = self._row(row)
        status = record.status()
        if status == "revoked":
            raise InvalidKeyError(f"API key {key_id} was revoked at {record.revoked_at}; ask "
                                  "for a new key")
        if status == "expired":
            raise InvalidKeyError(f"API key {key_id} expired at {record.expires_at}; ask for a "
                                  "new key")
        return record

