from django.db import migrations, models


def count_warned_lines(apps, schema_editor):
    """Batches uploaded before the count was kept: their lines' warnings (a resident ID's region) counted once."""
    PayrollBatch = apps.get_model("payroll", "PayrollBatch")
    PayrollLine = apps.get_model("payroll", "PayrollLine")
    warned = (PayrollLine.objects.exclude(warnings=[]).values("batch_id").annotate(n=models.Count("pk"))
              .values_list("batch_id", "n"))
    for batch_id, count in warned:
        PayrollBatch.objects.filter(pk=batch_id).update(warning_count=count)


class Migration(migrations.Migration):

    dependencies = [
        ('payroll', '0006_union_dues_call_attempts'),
    ]

    operations = [
        migrations.AddField(
            model_name='payrollbatch',
            name='warning_count',
            field=models.PositiveIntegerField(default=0, verbose_name='有提示的明细数 (lines with warnings)'),
        ),
        migrations.RunPython(count_warned_lines, migrations.RunPython.noop),
    ]
