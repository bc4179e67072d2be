"""authors by name key: an anonymous comment's name checked against registered names in one index lookup

Revision ID: 3ff684e243d3
Revises: bd6a4f5e7e94
Create Date: 2026-12-05 19:40:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = '3ff684e243d3'
down_revision: Union[str, Sequence[str], None] = 'bd6a4f5e7e94'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_index(
        'ix_authors_name_key',
        'authors',
        [sa.text('lower((normalize(username, NFKC) COLLATE "und-x-icu"))')],
        unique=False,
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_authors_name_key', table_name='authors')
