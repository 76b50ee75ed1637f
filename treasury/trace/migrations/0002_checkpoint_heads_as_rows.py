"""Checkpoints store the heads that changed since the previous checkpoint as rows, numbered and
chained, instead of one JSON document of every head. No code wrote checkpoints in the 0001 shape,
so the table is recreated.

On PostgreSQL, triggers make trace events and checkpoints append-only: UPDATE and DELETE raise.
(TRUNCATE, used by test-database flushes, does not fire row triggers.) SQLite, the embedded
development database, has no such guard: there `manage.py verify_trace` is what catches changes.
"""
from django.db import migrations, models

APPEND_ONLY_TABLES = ("trace_traceevent", "trace_tracecheckpoint", "trace_tracecheckpointhead")

CREATE_GUARD = """
CREATE OR REPLACE FUNCTION trace_forbid_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the trace is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
"""


def add_append_only_guard(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(CREATE_GUARD, params=None)  # no placeholders: keep RAISE's % literal
    for table in APPEND_ONLY_TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION trace_forbid_change()"
        )


def remove_append_only_guard(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in APPEND_ONLY_TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS trace_forbid_change()")


class Migration(migrations.Migration):

    dependencies = [("trace", "0001_initial")]

    operations = [
        migrations.DeleteModel(name="TraceCheckpoint"),
        migrations.CreateModel(
            name="TraceCheckpoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("number", models.PositiveBigIntegerField(unique=True)),
                ("created_at", models.DateTimeField()),
                ("stream_count", models.BigIntegerField()),
                ("event_count", models.BigIntegerField()),
                ("merkle_root", models.CharField(max_length=64)),
                ("changed_count", models.BigIntegerField()),
                ("changed_root", models.CharField(max_length=64)),
                ("prev_body_hash", models.CharField(max_length=64)),
                ("key_id", models.CharField(max_length=16)),
                ("signature", models.TextField()),
            ],
            options={"verbose_name": "追溯检查点 (trace checkpoint)", "ordering": ["-number"]},
        ),
        migrations.CreateModel(
            name="TraceCheckpointHead",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("stream_key", models.CharField(max_length=120)),
                ("seq", models.BigIntegerField()),
                ("hash", models.CharField(max_length=64)),
                (
                    "checkpoint",
                    models.ForeignKey(
                        on_delete=models.deletion.PROTECT, related_name="heads", to="trace.tracecheckpoint"
                    ),
                ),
            ],
            options={
                "verbose_name": "检查点流头 (checkpointed stream head)",
                "indexes": [models.Index(fields=["stream_key", "seq"], name="trace_cphead_stream_seq")],
                "constraints": [
                    models.UniqueConstraint(fields=("checkpoint", "stream_key"), name="trace_checkpoint_head_once")
                ],
            },
        ),
        migrations.RunPython(add_append_only_guard, remove_append_only_guard, elidable=False),
    ]
