"""API tokens: named secrets with a role, stored as hashes only.

    create(name, role)  ─► (Token, secret)    the secret is shown once and never stored
    verify(secret)      ─► Token | None        hash lookup; revoked tokens are refused
    revoke(name or id)  ─► how many were revoked
    list()              ─► the tokens, without their secrets

A secret is ``planta_`` followed by 43 URL-safe characters (256 random bits). The store keeps
its SHA-256 hex digest, and the first 8 random characters (``prefix``) so that people can tell
their tokens apart (``planta_Ab3dE5gH…``). A slow password hash would add nothing: nobody can
guess 256 random bits, so the digest of a stolen database cannot be reversed either.

**Roles** are the lifecycle's: ``viewer < operator < approver < admin``
(:class:`planta.core.lifecycle.Role`; a token is never ``system``).

**The hot path.** :meth:`TokenStore.verify` runs on every API request, so it does not write on
every call:

* a verified token is cached in this process for ``cache_ttl_s`` (5 s by default), keyed by the
  digest; a revoke made through the same :class:`TokenStore` drops it at once, a revoke made by
  another process (``planta token revoke`` on the command line) takes effect within
  ``cache_ttl_s`` seconds;
* ``last_used_at`` is written at most once per ``touch_interval_s`` (60 s) per token and
  process, outside the write lock, and a failed update never fails the request.

Creating and revoking a token are audit events (``token_create``, ``token_revoke``) in the same
transaction as the change; their payloads hold the name and role, never the secret.

>>> from planta.store.audit import AuditLog
>>> from planta.store.metadata import open_store
>>> store = open_store("sqlite://")
>>> tokens = TokenStore(store, AuditLog(store))
>>> token, secret = tokens.create("mes-line-3", "operator", actor="ana")
>>> secret.startswith("planta_"), tokens.verify(secret).name, tokens.verify("planta_wrong")
(True, 'mes-line-3', None)
>>> tokens.revoke("mes-line-3", actor="ana"), tokens.verify(secret)
(1, None)
"""

from __future__ import annotations

import builtins
import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from planta.core.lifecycle import Role
from planta.errors import InputError, NotFoundError, PlantaError, keyed
from planta.store.audit import AuditLog
from planta.store.ids import is_id, new_id
from planta.store.metadata import Store, tokens, utc_now

SECRET_PREFIX = "planta_"  # nosec B105 - the public start of every token, not a secret
# secrets.token_urlsafe(32) is 43 characters; anything much longer is not one of ours, and is
# refused before it is hashed or looked up.
MAX_SECRET_CHARS = 128
PREFIX_CHARS = 8
CACHE_TTL_S = 5.0
TOUCH_INTERVAL_S = 60.0
# Verified tokens kept in memory; a plant has tens of tokens, so this bound is never reached in
# normal use and only caps memory.
MAX_CACHED = 1024
MAX_NAME_CHARS = 200
ROLES = (Role.VIEWER, Role.OPERATOR, Role.APPROVER, Role.ADMIN)
_ROLE_NAMES = ", ".join(r.value for r in ROLES)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Token:
    """One API token as stored: who it is for, its role, and its life. Never the secret."""

    id: str
    name: str
    role: Role
    prefix: str
    created_by: str
    created_at: datetime
    revoked_by: str | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def is_active(self) -> bool:
        """True until the token is revoked."""
        return self.revoked_at is None

    @property
    def shown(self) -> str:
        """How the token is shown to people: ``planta_Ab3dE5gH…``."""
        return f"{SECRET_PREFIX}{self.prefix}…"

    def allows(self, needed: Role | str) -> bool:
        """True when this token's role may do what needs ``needed``.

        >>> from datetime import UTC, datetime
        >>> t = Token("01J", "mes", Role.OPERATOR, "Ab3dE5gH", "ana", datetime.now(UTC))
        >>> t.allows("viewer"), t.allows(Role.APPROVER)
        (True, False)
        """
        return self.is_active and self.role.allows(Role(needed))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "role": self.role.value,
                "prefix": self.prefix, "shown": self.shown, "active": self.is_active,
                "created_by": self.created_by, "created_at": _iso(self.created_at),
                "revoked_by": self.revoked_by, "revoked_at": _iso(self.revoked_at),
                "last_used_at": _iso(self.last_used_at)}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def secret_digest(secret: str) -> str:
    """The SHA-256 hex digest under which a secret is stored.

    >>> secret_digest("planta_x")[:12]
    '4f14efe8d578'
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_role(value: Role | str) -> Role:
    """A person's role from its name; ``system`` and unknown names are refused.

    >>> parse_role("Approver")
    <Role.APPROVER: 'approver'>
    """
    text = value.value if isinstance(value, Role) else str(value).strip().lower()
    for role in ROLES:
        if role.value == text:
            return role
    raise keyed(InputError, "token.bad_role", value=_quote(value), known=_ROLE_NAMES)


def _quote(value: Any) -> str:
    """``repr`` of a string without its quotes (the catalogue puts quotes of its language
    around it), ``repr`` of anything else."""
    text = repr(value)
    return text[1:-1] if isinstance(value, str) and text[0] == "'" else text


def _check_name(name: str) -> str:
    text = name.strip() if isinstance(name, str) else ""
    if not text or len(text) > MAX_NAME_CHARS or not text.isprintable():
        raise keyed(InputError, "token.bad_name", name=_quote(name), most=MAX_NAME_CHARS)
    return text


class TokenStore:
    """The API tokens of one store.

    Args:
        store: the opened metadata store.
        audit: the audit trail of the same store; creating and revoking are recorded there.
        cache_ttl_s: how long a verified token is trusted without asking the store again, so
            how long a revoke made by another process may take to bite.
        touch_interval_s: at most one ``last_used_at`` write per token per this many seconds.
        clock: monotonic seconds (tests pass a fake clock).
    """

    def __init__(self, store: Store, audit: AuditLog, *, cache_ttl_s: float = CACHE_TTL_S,
                 touch_interval_s: float = TOUCH_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.audit = audit
        self.cache_ttl_s = cache_ttl_s
        self.touch_interval_s = touch_interval_s
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[Token, float]] = {}   # digest -> (token, expires)
        self._touched: dict[str, float] = {}               # token id -> clock at last write

    # -- admin acts ------------------------------------------------------------------------
    def create(self, name: str, role: Role | str, *, actor: str) -> tuple[Token, str]:
        """Create a token and return it with its secret, which is not kept anywhere.

        Raises:
            InputError: the name or role is not valid, or an active token has this name.
        """
        name, role = _check_name(name), parse_role(role)
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        token = Token(id=new_id(), name=name, role=role,
                      prefix=secret[len(SECRET_PREFIX):len(SECRET_PREFIX) + PREFIX_CHARS],
                      created_by=actor, created_at=utc_now())
        with self.store.write() as conn:
            clash = conn.scalar(select(tokens.c.id).where(
                tokens.c.name == name, tokens.c.revoked_at.is_(None)).limit(1))
            if clash is not None:
                raise keyed(InputError, "token.clash", name=name, clash=clash)
            conn.execute(insert(tokens).values(
                id=token.id, name=name, role=role.value, hash=secret_digest(secret),
                prefix=token.prefix, created_by=actor, created_at=token.created_at))
            self.audit.append("token_create", f"token/{token.id}", actor,
                              {"name": name, "role": role.value}, connection=conn)
        return token, secret

    def revoke(self, name_or_id: str, *, actor: str) -> int:
        """Revoke the active token with this id or name; return how many were revoked.

        Revoking a token that is already revoked changes nothing and returns 0.

        Raises:
            NotFoundError: no token has this id or name.
        """
        key = str(name_or_id).strip()
        with self.store.write() as conn:
            rows = self._find(conn, key)
            if not rows:
                raise keyed(NotFoundError, "token.unknown", key=key)
            now, revoked = utc_now(), 0
            for row in rows:
                if row.revoked_at is not None:
                    continue
                conn.execute(update(tokens).where(tokens.c.id == row.id)
                             .values(revoked_by=actor, revoked_at=now))
                self.audit.append("token_revoke", f"token/{row.id}", actor,
                                  {"name": row.name, "role": row.role}, connection=conn)
                revoked += 1
        with self._lock:
            ids = {row.id for row in rows}
            self._cache = {k: v for k, v in self._cache.items() if v[0].id not in ids}
        return revoked

    @staticmethod
    def _find(conn: Connection, key: str) -> builtins.list[Any]:
        if is_id(key):
            rows = conn.execute(select(tokens).where(tokens.c.id == key.upper())).all()
            if rows:
                return builtins.list(rows)
        # By name, the active token (names are unique among active tokens); failing that, the
        # revoked ones of that name, so revoking twice says "already revoked", not "unknown".
        rows = conn.execute(select(tokens).where(tokens.c.name == key)
                            .order_by(tokens.c.revoked_at.is_not(None), tokens.c.created_at)
                            ).all()
        active = [r for r in rows if r.revoked_at is None]
        return active or builtins.list(rows)

    # -- reading ---------------------------------------------------------------------------
    def list(self, include_revoked: bool = False) -> builtins.list[Token]:
        """The tokens, oldest first; revoked ones only when asked."""
        query = select(tokens).order_by(tokens.c.created_at, tokens.c.id)
        if not include_revoked:
            query = query.where(tokens.c.revoked_at.is_(None))
        with self.store.read() as conn:
            return [_token(row) for row in conn.execute(query)]

    def any_active(self) -> bool:
        """Whether any token is active (a server with none has no one to let in)."""
        with self.store.read() as conn:
            return bool(conn.scalar(select(func.count()).select_from(tokens)
                                    .where(tokens.c.revoked_at.is_(None))))

    def verify(self, secret: str) -> Token | None:
        """The active token whose secret this is, or None.

        Never raises for a wrong, malformed or revoked secret: the caller answers 401. May
        raise :class:`StoreError` when the store cannot be read.
        """
        if (not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX)
                or len(secret) > MAX_SECRET_CHARS):
            return None
        digest = secret_digest(secret)
        now = self.clock()
        with self._lock:
            hit = self._cache.get(digest)
        token = hit[0] if hit is not None and hit[1] > now else self._lookup(digest, now)
        if token is None:
            return None
        self._touch(token, now)
        return token

    def _lookup(self, digest: str, now: float) -> Token | None:
        with self.store.read() as conn:
            row = conn.execute(select(tokens).where(tokens.c.hash == digest)).first()
        token = None if row is None else _token(row)
        with self._lock:
            if token is None or not token.is_active:
                self._cache.pop(digest, None)
                return None
            if len(self._cache) >= MAX_CACHED:
                self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
                if len(self._cache) >= MAX_CACHED:
                    self._cache.clear()
            self._cache[digest] = (token, now + self.cache_ttl_s)
        return token

    def _touch(self, token: Token, now: float) -> None:
        with self._lock:
            last = self._touched.get(token.id)
            if last is None and token.last_used_at is not None:
                # Another process (or an earlier run) wrote it recently: count from then.
                age_s = (utc_now() - token.last_used_at).total_seconds()
                last = now - max(age_s, 0.0)
            if last is not None and now - last < self.touch_interval_s:
                return
            self._touched[token.id] = now
        try:
            # A plain transaction, not store.write(): the global write lock is for the registry
            # and the audit chain; a usage stamp must never queue behind a training run.
            with self.store.errors("update"), self.store.engine.begin() as conn:
                conn.execute(update(tokens).where(tokens.c.id == token.id)
                             .values(last_used_at=utc_now()))
        except PlantaError as exc:  # the request goes on; the stamp is informative only
            log.warning("could not record the use of token %s: %s", token.id, exc)


def _token(row: Any) -> Token:
    return Token(id=row.id, name=row.name, role=Role(row.role), prefix=row.prefix,
                 created_by=row.created_by, created_at=row.created_at,
                 revoked_by=row.revoked_by, revoked_at=row.revoked_at,
                 last_used_at=row.last_used_at)


__all__ = ["CACHE_TTL_S", "ROLES", "SECRET_PREFIX", "TOUCH_INTERVAL_S", "Token", "TokenStore",
           "parse_role", "secret_digest"]
