"""identity version: orders a user's user.created / user.updated without clocks

Revision ID: 7d2b9e4c1a05
Revises: 6a110679193c
Create Date: 2026-12-04 22:10:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = '7d2b9e4c1a05'
down_revision: Union[str, Sequence[str], None] = '6a110679193c'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('users', sa.Column('identity_version', sa.Integer(), server_default='1', nullable=False))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('users', 'identity_version')
