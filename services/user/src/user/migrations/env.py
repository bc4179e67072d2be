"""Alembic environment of the user database."""

from comm.db import run_env
from user.models import Base

run_env(Base.metadata)
