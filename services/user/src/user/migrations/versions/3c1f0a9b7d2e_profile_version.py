"""profile version for profile.updated

Revision ID: 3c1f0a9b7d2e
Revises: ebe013a4dd8b
Create Date: 2026-12-01 09:40:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = '3c1f0a9b7d2e'
down_revision: Union[str, Sequence[str], None] = 'ebe013a4dd8b'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('profiles', sa.Column('version', sa.BigInteger(), server_default='0', nullable=False))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('profiles', 'version')
