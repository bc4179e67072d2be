"""Alembic environment of the comment database."""

from comm.db import run_env
from comment.models import Base

run_env(Base.metadata)
