"""A batch keeps a digest of what its file says (period and lines, in any order): the same lines uploaded again in a
file of other bytes (saved again, another format, other blank rows) are refused like the same file."""
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('payroll', '0007_batch_warning_count'),
    ]

    operations = [
        migrations.AddField(
            model_name='payrollbatch',
            name='lines_sha256',
            field=models.CharField(blank=True, default='', max_length=64),
        ),
        migrations.AddConstraint(
            model_name='payrollbatch',
            constraint=models.UniqueConstraint(condition=models.Q(models.Q(('state__in', ['rejected', 'cancelled']), _negated=True), models.Q(('lines_sha256', ''), _negated=True)), fields=('employer', 'lines_sha256'), name='payroll_same_lines_once'),
        ),
    ]
