"""Baseline: the read side starts empty; later revisions add its tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 10:30:00
"""

from __future__ import annotations

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
