from django.db import migrations


class Migration(migrations.Migration):
    # conversations.0008 carries the values over first (it declares run_before this one), so
    # this app's migrations need not know about conversations.
    dependencies = [("contacts", "0002_servicewindow")]

    operations = [migrations.RemoveField(model_name="contact", name="window_expires_at")]
