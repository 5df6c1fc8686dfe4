"""Column comments the models declare (what each coded value means) written into the database, where
operators reading the schema see them: the tables were created without them. No data changes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from alembic import op

from sipas_kit.migrations import comment_columns

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COMMENTS = [
    ("campaign_keys", "key_ref", 'which master key wrapped it'),
    ("campaign_keys", "wrapped_key", 'NULL once shredded'),
    ("campaign_keys", "wrapped_salt", 'pseudonym salt, wrapped like the key; NULL once shredded'),
    ("draws", "plan_id", 'frame design'),
    ("draws", "status", 'committed | drawn'),
    ("draws", "round_id", 'resident design: the round'),
    ("draws", "stage", 'resident design: the stage drawn'),
    ("draws", "frame_id", 'resident design: the stage frame the commitment pinned'),
    ("frame_errors", "message", 'never the rejected value itself: it may be personal data'),
    ("frame_units", "area", "the agency's province"),
    ("frame_units", "row_hash", 'SHA-256 of the canonical row (digest v2)'),
    ("frame_units", "contact", 'nonce || AES-GCM(name, phone, address); NULL once erased'),
    ("frame_units", "canonical_pos", "0-based rank in the frame's canonical order; NULL before 0007"),
    ("frames", "status", 'imported | rejected'),
    ("frames", "round_id", 'resident design: the round of this stage frame'),
    ("frames", "stage", 'resident design: communes | villages | households'),
    ("household_listings", "household_key", 'resident.household_key: pseudonym input, sealing AD'),
    ("household_listings", "contact", 'nonce || AES-GCM(head_name, phone, address); NULL once erased'),
    ("plans", "status", 'proposed | approved'),
    ("plans", "body", 'the SamplePlanProposed payload'),
    ("resident_rounds", "status", 'the stage to draw next: communes | villages | households | drawn'),
    ("resident_rounds", "settings", 'the ResidentRoundOpened payload'),
    ("sample_units", "role", 'selected | reserve'),
    ("sample_units", "rank", "order within the stratum's sample or reserve list"),
    ("sample_units", "status", 'active | reserve | withdrawn | replacing'),
    ("sample_units", "assigned_to", 'enumerator or post office carrying the unit'),
    ("stage_areas", "parent_code", 'the province (communes) or the commune (villages)'),
    ("stage_areas", "agency_id", "communes: the registry's unit"),
    ("stage_areas", "name", "villages: the village's name (not personal data)"),
    ("stage_areas", "households", 'measure of size'),
    ("stage_parents", "inclusion", "the parent's own inclusion probability, 'n/d'"),
    ("stage_units", "code", "commune or village code; a household's household_key"),
    ("stage_units", "role", 'selected | reserve'),
    ("stage_units", "households", 'communes and villages: the measure of size'),
    ("stage_units", "conditional", "exact fraction 'n/d'"),
    ("stage_units", "inclusion", "exact fraction 'n/d'"),
    ("stage_units", "unit_id", 'households: the pseudonymous unit id'),
]
TABLE_COMMENTS = [
    ("responses", 'accepted ballots by unit, from the ballots service: who responded, for non-response weights'),
]


def upgrade() -> None:
    comment_columns(op, COMMENTS)
    for table, comment in TABLE_COMMENTS:
        op.create_table_comment(table, comment)


def downgrade() -> None:
    for table, _ in TABLE_COMMENTS:
        op.drop_table_comment(table)
    comment_columns(op, [(table, column, None) for table, column, _ in COMMENTS])
