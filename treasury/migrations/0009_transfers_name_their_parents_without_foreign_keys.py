"""Transfers lose their foreign-key constraints to wallets, organizations and content types; triggers on
those tables keep what the constraints guarded.

A foreign key is checked once per inserted row, at commit, each check an index probe and a row lock: a
chunk of 5,000 payroll transfers made 20,000 of them, and the chunk's commit took 0.13 s with them, 0.07 s
without (timed inside bench/payroll.py's run); the chunk's making is what paying a run waits for. What the
constraints promised holds without them:
- transfers are inserted only by `create_transfers`, which reads every payer and payee wallet in the same
  transaction and refuses one that is missing or not active; the organization and source type come from
  rows the calling domain has just read;
- a row a transfer names cannot be deleted: on PostgreSQL a trigger on treasury_wallet,
  treasury_organization and django_content_type refuses to delete one that a transfer names (as the
  constraints did; an organization or content type no transfer names can still be deleted);
- `ledger_check` also looks for a transfer naming a wallet, organization or content type that is not there.
The domains' references to transfers (payroll lines, payment lines, deductions) keep their constraints.
"""
import django.db.models.deletion
from django.db import migrations, models

# (table, the transfer columns that name its rows)
GUARDED = (
    ("treasury_wallet", "payer_id", "payee_id"),
    ("treasury_organization", "organization_id"),
    ("django_content_type", "source_type_id"),
)

CREATE_FUNCTION = """
CREATE OR REPLACE FUNCTION treasury_forbid_delete_named_by_transfers() RETURNS trigger AS $$
DECLARE
    column_name text;
    named boolean;
BEGIN
    FOREACH column_name IN ARRAY TG_ARGV LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM treasury_transfer WHERE %I = $1)', column_name)
            INTO named USING OLD.id;
        IF named THEN
            RAISE EXCEPTION 'row % of % is named by a transfer (%): DELETE is not allowed', OLD.id, TG_TABLE_NAME,
                column_name USING ERRCODE = 'foreign_key_violation';
        END IF;
    END LOOP;
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;
"""


def _create_guards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(CREATE_FUNCTION, params=None)  # no placeholders: keep RAISE's % literal
    for table, *columns in GUARDED:
        arguments = ", ".join(f"'{column}'" for column in columns)
        schema_editor.execute(
            f"CREATE TRIGGER {table}_named_by_transfers_kept BEFORE DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION treasury_forbid_delete_named_by_transfers({arguments})", params=None)


def _drop_guards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, *_ in GUARDED:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_named_by_transfers_kept ON {table}", params=None)
    schema_editor.execute("DROP FUNCTION IF EXISTS treasury_forbid_delete_named_by_transfers()", params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("treasury", "0008_unique_by_constraints_and_holder_indexes_where_set"),
    ]

    operations = [
        migrations.RunPython(_create_guards, _drop_guards),
        migrations.AlterField(
            model_name="transfer",
            name="organization",
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT,
                                    related_name="transfers", to="treasury.organization"),
        ),
        migrations.AlterField(
            model_name="transfer",
            name="payee",
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.PROTECT,
                                    related_name="incoming_transfers", to="treasury.wallet"),
        ),
        migrations.AlterField(
            model_name="transfer",
            name="payer",
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.PROTECT,
                                    related_name="outgoing_transfers", to="treasury.wallet"),
        ),
        migrations.AlterField(
            model_name="transfer",
            name="source_type",
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True,
                                    on_delete=django.db.models.deletion.PROTECT, to="contenttypes.contenttype"),
        ),
    ]
