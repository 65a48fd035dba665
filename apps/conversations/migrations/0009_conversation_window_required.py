import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    # Apart from 0008: PostgreSQL refuses to alter a table whose rows the same transaction
    # just updated while their (deferred) foreign key checks are pending.
    dependencies = [("conversations", "0008_conversation_window")]

    operations = [
        migrations.AlterField(
            model_name="conversation",
            name="window",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.RESTRICT,
                related_name="conversations",
                to="contacts.servicewindow",
                verbose_name="24-hour window",
            ),
        ),
        migrations.RemoveField(model_name="conversation", name="window_expires_at"),
    ]
