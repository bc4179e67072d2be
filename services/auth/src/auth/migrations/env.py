"""Alembic environment of the auth database."""

from auth.models import Base
from comm.db import run_env

run_env(Base.metadata)
