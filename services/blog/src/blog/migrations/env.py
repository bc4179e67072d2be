"""Alembic environment of the blog database."""

from blog.models import Base
from comm.db import run_env

run_env(Base.metadata)
