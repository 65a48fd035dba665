import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0001_initial"),
        ("tenants", "0002_webhookevent_whatsappaccount"),
    ]

    operations = [
        migrations.CreateModel(
            name="ServiceWindow",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("expires_at", models.DateTimeField(blank=True, null=True, verbose_name="24-hour window ends")),
                (
                    "account",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.DO_NOTHING, related_name="+", to="tenants.whatsappaccount"
                    ),
                ),
                (
                    "contact",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="windows", to="contacts.contact"
                    ),
                ),
            ],
            options={
                "verbose_name": "24-hour window",
                "verbose_name_plural": "24-hour windows",
                "constraints": [
                    models.UniqueConstraint(fields=("contact", "account"), name="contacts_one_window_per_number")
                ],
            },
        ),
    ]
