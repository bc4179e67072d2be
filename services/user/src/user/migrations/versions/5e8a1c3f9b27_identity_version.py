"""identity version of the identity event applied last

Revision ID: 5e8a1c3f9b27
Revises: 3c1f0a9b7d2e
Create Date: 2026-12-04 22:10:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = '5e8a1c3f9b27'
down_revision: Union[str, Sequence[str], None] = '3c1f0a9b7d2e'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('profiles', sa.Column('identity_version', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('profiles', 'identity_version')
