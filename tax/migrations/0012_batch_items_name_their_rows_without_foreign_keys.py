"""A deduction names its package, agreement and transfer, and a treasury entry its deduction, without
foreign-key constraints; triggers keep what the constraints guarded.

Each constraint was checked once per inserted or updated row at commit, an index probe and a row lock
each (the lock writes the referenced row's header: every agreement's page was dirtied once a day by its
deduction): four checks per batch item. Without them `bench/tax.py --part batch` used 0.7 and 1.7 fewer
PostgreSQL CPU-seconds per 100,000 items (tax/README.md, Performance). What they promised still holds:
- the rows are written only by the tax services, which read or create what they name in the same
  transaction (the package stored with its items, the agreement looked up by number, the transfer made by
  `create_transfers`, the entry of a deduction just decided);
- nothing a deduction or an entry names can be deleted: on PostgreSQL a trigger refuses deleting a package
  or agreement a deduction names and a deduction an entry names (each found through an index), and
  transfers are never deleted (a trigger refuses it, treasury 0005); Django's PROTECT refuses the same through the ORM on any
  database.
"""
import django.db.models.deletion
from django.db import migrations, models

# (guarded table, the table naming its rows, the naming column)
GUARDED = (
    ("tax_deductionpackage", "tax_taxdeduction", "package_id"),
    ("tax_taxagreement", "tax_taxdeduction", "agreement_id"),
    ("tax_taxdeduction", "tax_treasuryentry", "deduction_id"),
)

CREATE_FUNCTION = """
CREATE OR REPLACE FUNCTION tax_forbid_delete_named() RETURNS trigger AS $$
DECLARE
    named boolean;
BEGIN
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE %I = $1)', TG_ARGV[0], TG_ARGV[1])
        INTO named USING OLD.id;
    IF named THEN
        RAISE EXCEPTION 'row % of % is named by % (%): DELETE is not allowed', OLD.id, TG_TABLE_NAME, TG_ARGV[0],
            TG_ARGV[1] USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;
"""


def _create_guards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(CREATE_FUNCTION, params=None)  # no placeholders: keep RAISE's % literal
    for table, naming_table, column in GUARDED:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_named_kept BEFORE DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION tax_forbid_delete_named('{naming_table}', '{column}')", params=None)


def _drop_guards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, *_ in GUARDED:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_named_kept ON {table}", params=None)
    schema_editor.execute("DROP FUNCTION IF EXISTS tax_forbid_delete_named()", params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("tax", "0011_treasury_entries_of_corrections"),
        ("treasury", "0009_transfers_name_their_parents_without_foreign_keys"),
    ]

    operations = [
        migrations.RunPython(_create_guards, _drop_guards),
        migrations.AlterField(
            model_name="taxdeduction",
            name="agreement",
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True,
                                    on_delete=django.db.models.deletion.PROTECT, related_name="deductions",
                                    to="tax.taxagreement"),
        ),
        migrations.AlterField(
            model_name="taxdeduction",
            name="package",
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True,
                                    on_delete=django.db.models.deletion.PROTECT, related_name="deductions",
                                    to="tax.deductionpackage"),
        ),
        migrations.AlterField(
            model_name="taxdeduction",
            name="transfer",
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True,
                                    on_delete=django.db.models.deletion.PROTECT, related_name="+",
                                    to="treasury.transfer"),
        ),
        migrations.AlterField(
            model_name="treasuryentry",
            name="deduction",
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True,
                                    on_delete=django.db.models.deletion.PROTECT, related_name="entries",
                                    to="tax.taxdeduction"),
        ),
    ]
