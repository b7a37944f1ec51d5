"""Accounts: users, their groups (for ``group:qualifier`` sharing) and API keys."""

import re
from datetime import datetime
from typing import Optional

from flask import current_app
from flask_login import UserMixin
from sqlalchemy import Column, ForeignKey, String, Table, Text, select
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db
from .types import UTCDateTime, utcnow

# the omegaml client splits "userid:apikey" on the first colon, so a userid never holds one
USERID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,62}$")

group_members = Table(
    "group_members",
    db.metadata,
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)


class User(UserMixin, db.Model):
    __tablename__ = "users"
    # its id is in sessions, API keys and history: SQLite must not give a deleted user's id to the next one
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    userid: Mapped[str] = mapped_column(String(63), unique=True)
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    admin: Mapped[bool] = mapped_column(default=False)
    # a service account reports usage events for any user (POST /admin/api/v2/usage/event)
    service_account: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    email_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # profile, snapshotted onto invoices when they are finalized
    company: Mapped[str] = mapped_column(String(200), default="")
    billing_address: Mapped[str] = mapped_column(Text, default="")
    country: Mapped[str] = mapped_column(String(2), default="")
    tax_id: Mapped[str] = mapped_column(String(50), default="")

    # memberships and keys go with the user, in the database; history (commands, invoices, usage) refuses it
    groups: Mapped[list["Group"]] = relationship(
        secondary=group_members, back_populates="members", passive_deletes=True
    )
    api_keys: Mapped[list["ApiKey"]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self):
        return f"<User {self.userid}>"

    def __str__(self):  # how the console shows a user
        return self.email

    @property
    def is_active(self) -> bool:  # flask-login refuses inactive users
        return self.active

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def set_password(self, password: str) -> None:
        """Store a hash of ``password`` with the configured method."""
        self.password_hash = generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])

    def check_password(self, password: str) -> bool:
        """Tell whether ``password`` matches; an account without a password never matches."""
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    @classmethod
    def find(cls, ident: str) -> Optional["User"]:
        """Return the user whose userid or email is ``ident`` (emails compare case-insensitively)."""
        ident = (ident or "").strip()
        if "@" in ident:
            return db.session.scalar(select(cls).where(db.func.lower(cls.email) == ident.lower()))
        return db.session.scalar(select(cls).where(cls.userid == ident))

    @classmethod
    def make_userid(cls, email: str) -> str:
        """Derive a free, valid userid from an email's local part (``jane.doe@x`` -> ``janedoe``)."""
        base = re.sub(r"[^a-z0-9]", "", email.split("@", 1)[0].lower())[:40] or "user"
        if len(base) < 2:
            base = f"{base}user"
        candidate, n = base, 1
        while db.session.scalar(select(cls.id).where(cls.userid == candidate)) is not None:
            n += 1
            candidate = f"{base}{n}"
        return candidate


class Group(db.Model):
    """A team: ``<group>:<qualifier>`` resolves to the shared account's settings for its members."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    account: Mapped[User | None] = relationship(foreign_keys=[account_id])
    members: Mapped[list[User]] = relationship(secondary=group_members, back_populates="groups", passive_deletes=True)

    def __repr__(self):
        return f"<Group {self.name}>"


class ApiKey(db.Model):
    """An API key: only its hash is stored; the 40-hex key is shown once, when it is created."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="api_keys")

    def __repr__(self):
        return f"<ApiKey {self.prefix}… of user {self.user_id}>"
