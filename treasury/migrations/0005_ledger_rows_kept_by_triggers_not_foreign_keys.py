"""Ledger entries and outbox rows lose their foreign-key constraints; triggers keep what they guarded.

A foreign key is checked once per inserted row, at commit: for a settled chunk of 1,000 transfers
that is 2,000 entries times two checks, each an index probe and a row lock, about a tenth of what
settling costs PostgreSQL (bench/transfers.py). What the constraints promised holds without them:
- entries are inserted only by the posting statement, which reads the transfer and account rows it
  names, and outbox rows only in the transaction that creates their transfer;
- the rows they name are never deleted: on PostgreSQL a trigger refuses any DELETE from
  treasury_transfer and treasury_ledgeraccount;
- entries are never changed or deleted either (a trigger, as for the trace).
`ledger_check` also looks for an entry or outbox row naming a row that is not there.
"""
import django.db.models.deletion
from django.db import migrations, models

CREATE_GUARDS = """
CREATE OR REPLACE FUNCTION treasury_forbid_delete() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'rows of % are kept for ever: DELETE is not allowed', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE OR REPLACE FUNCTION treasury_forbid_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER treasury_transfer_kept BEFORE DELETE ON treasury_transfer
    FOR EACH ROW EXECUTE FUNCTION treasury_forbid_delete();
CREATE TRIGGER treasury_ledgeraccount_kept BEFORE DELETE ON treasury_ledgeraccount
    FOR EACH ROW EXECUTE FUNCTION treasury_forbid_delete();
CREATE TRIGGER treasury_ledgerentry_append_only BEFORE UPDATE OR DELETE ON treasury_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION treasury_forbid_change();
"""

DROP_GUARDS = """
DROP TRIGGER IF EXISTS treasury_transfer_kept ON treasury_transfer;
DROP TRIGGER IF EXISTS treasury_ledgeraccount_kept ON treasury_ledgeraccount;
DROP TRIGGER IF EXISTS treasury_ledgerentry_append_only ON treasury_ledgerentry;
DROP FUNCTION IF EXISTS treasury_forbid_delete();
DROP FUNCTION IF EXISTS treasury_forbid_change();
"""


def _create_guards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE_GUARDS, params=None)  # no placeholders: keep RAISE's % literal


def _drop_guards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_GUARDS, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("treasury", "0004_transfer_fillfactor_for_two_hot_updates"),
    ]

    operations = [
        migrations.RunPython(_create_guards, _drop_guards),
        migrations.AlterField(
            model_name="ledgerentry",
            name="account",
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT,
                                    related_name="entries", to="treasury.ledgeraccount"),
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="transfer",
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT,
                                    related_name="entries", to="treasury.transfer"),
        ),
        migrations.AlterField(
            model_name="transferoutbox",
            name="transfer",
            field=models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.CASCADE,
                                       primary_key=True, related_name="outbox", serialize=False,
                                       to="treasury.transfer"),
        ),
    ]
