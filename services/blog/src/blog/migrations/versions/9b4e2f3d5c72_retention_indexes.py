"""retention indexes: sent outbox rows by sent_at, dedup records by consumer and age

Revision ID: 9b4e2f3d5c72
Revises: 14dbe50b6448
Create Date: 2026-12-04 22:30:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = '9b4e2f3d5c72'
down_revision: Union[str, Sequence[str], None] = '14dbe50b6448'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_index('ix_outbox_sent', 'outbox', ['sent_at'], unique=False, postgresql_where=sa.text('sent_at IS NOT NULL'))
    op.create_index('ix_processed_events_consumer_at', 'processed_events', ['consumer', 'processed_at'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_processed_events_consumer_at', table_name='processed_events')
    op.drop_index('ix_outbox_sent', table_name='outbox', postgresql_where=sa.text('sent_at IS NOT NULL'))
