"""Give every tenant (and the template that new tenants are cloned from) the built-in default flow."""

from typing import Any

from django.db import migrations


def install(apps: Any, schema_editor: Any) -> None:
    from apps.flows.builtin import default_flow_install

    default_flow_install(apps.get_model("flows", "Flow"), apps.get_model("flows", "FlowVersion"))


class Migration(migrations.Migration):
    dependencies = [("flows", "0002_flow_key_run_claim")]

    # Reversing keeps the flow: runs may reference its versions, and it is ordinary data by then.
    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
