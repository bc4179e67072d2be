"""The auth database: credentials only (profiles live in the user service)."""

import uuid
from datetime import datetime

from sqlalchemy import ARRAY, DateTime, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from comm.db import service_metadata
from comm.events.tables import add_event_tables


class Base(DeclarativeBase):
    metadata = service_metadata()


class User(Base):
    """A user's credentials; `token_version` goes up to revoke every token issued before."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-cased
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[list[str]] = mapped_column(ARRAY(String(32)), default=list, server_default="{}")
    token_version: Mapped[int] = mapped_column(default=0, server_default="0")
    # 1 at registration, +1 with every change of username or email, in that change's transaction (under the row
    # lock): user.created / user.updated carry it, so consumers order a user's events without trusting clocks.
    identity_version: Mapped[int] = mapped_column(default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


EVENT_TABLES = add_event_tables(Base.metadata)
