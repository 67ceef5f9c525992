"""Users, bearer tokens and the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from appliance.security import hash_password, new_token, token_hash, verify_password
from appliance.store.models import ApiToken, AuditRow, User


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user with a role, or a node (role None) on its own endpoints."""

    name: str
    role: Role | None
    node_id: str | None = None


def now() -> datetime:
    return datetime.now(UTC)


async def create_user(session: AsyncSession, name: str, password: str, role: Role) -> User:
    user = User(name=name, password_hash=hash_password(password), role=role, created_at=now())
    session.add(user)
    await session.flush()
    return user


async def ensure_admin(session: AsyncSession, password: str) -> bool:
    """Create user ``admin`` when there is no user yet. True when it was created."""
    if await session.scalar(select(User.id).limit(1)) is not None:
        return False
    await create_user(session, "admin", password, Role.ADMIN)
    return True


async def login(
    session: AsyncSession, name: str, password: str, ttl: timedelta
) -> tuple[str, User, datetime] | None:
    user = await session.scalar(select(User).where(User.name == name))
    if user is None or not verify_password(user.password_hash, password):
        return None
    token = new_token()
    expires = now() + ttl
    session.add(
        ApiToken(
            token_hash=token_hash(token), user_id=user.id, created_at=now(), expires_at=expires
        )
    )
    return token, user, expires


async def principal_for_token(session: AsyncSession, token: str) -> Principal | None:
    row = (
        await session.execute(
            select(User, ApiToken)
            .join(ApiToken, ApiToken.user_id == User.id)
            .where(ApiToken.token_hash == token_hash(token))
        )
    ).first()
    if row is None:
        return None
    user, api_token = row
    expires = api_token.expires_at
    if expires.tzinfo is None:  # SQLite returns naive datetimes
        expires = expires.replace(tzinfo=UTC)
    if expires <= now():
        return None
    return Principal(user.name, Role(user.role))


async def logout(session: AsyncSession, token: str) -> None:
    await session.execute(delete(ApiToken).where(ApiToken.token_hash == token_hash(token)))


async def record_audit(
    session: AsyncSession,
    *,
    actor: str,
    role: str | None,
    method: str,
    path: str,
    status: int,
    remote: str | None,
) -> None:
    session.add(
        AuditRow(
            ts=now(), actor=actor, role=role, method=method, path=path, status=status, remote=remote
        )
    )
