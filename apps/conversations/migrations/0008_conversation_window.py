"""The 24-hour window moves from the contact to (contact, number): carry every known end over.

Before, the contact held one end for all numbers, and each conversation copied it on every
message the customer sent to it. A pair's window is the latest copy among its conversations:
the message that set it was the pair's own, so no window that is open now is lost. (Where two
numbers' messages were recorded out of order, a copy may run past the pair's true end, for
24 hours at most: as it did before.) A pair none of whose conversations holds a copy (rows not
made by the inbound path) takes the contact's end if it is the contact's latest conversation;
a contact without a conversation has no number to carry it to, and nothing sends to it.
"""

from typing import Any

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import F, Max, OuterRef, Subquery


def carry_over(apps: Any, schema_editor: Any) -> None:
    Contact = apps.get_model("contacts", "Contact")
    Conversation = apps.get_model("conversations", "Conversation")
    ServiceWindow = apps.get_model("contacts", "ServiceWindow")

    ends = {
        (row["contact_id"], row["account_id"]): row["end"]
        for row in Conversation.objects.order_by()
        .values("contact_id", "account_id")
        .annotate(end=Max("window_expires_at"))
    }
    unknown = {contact for (contact, _account), end in ends.items() if end is None}
    if unknown:
        latest: dict[int, tuple[int, int]] = {}
        conversations = (
            Conversation.objects.filter(contact_id__in=unknown)
            .order_by(F("last_message_at").asc(nulls_first=True), "pk")
            .values_list("contact_id", "account_id")
        )
        for contact, account in conversations.iterator():
            latest[contact] = (contact, account)  # the last one wins: the latest conversation
        contacts = Contact.objects.filter(pk__in=unknown, window_expires_at__isnull=False)
        for contact, end in contacts.values_list("pk", "window_expires_at").iterator():
            if ends[latest[contact]] is None:
                ends[latest[contact]] = end
    windows = [ServiceWindow(contact_id=contact, account_id=account, expires_at=end) for (contact, account), end in ends.items()]
    ServiceWindow.objects.bulk_create(windows, batch_size=1000)
    Conversation.objects.update(
        window=Subquery(
            ServiceWindow.objects.filter(contact=OuterRef("contact"), account=OuterRef("account")).values("pk")[:1]
        )
    )


def carry_back(apps: Any, schema_editor: Any) -> None:
    Contact = apps.get_model("contacts", "Contact")
    Conversation = apps.get_model("conversations", "Conversation")
    ServiceWindow = apps.get_model("contacts", "ServiceWindow")

    Conversation.objects.update(
        window_expires_at=Subquery(ServiceWindow.objects.filter(pk=OuterRef("window_id")).values("expires_at")[:1])
    )
    Contact.objects.update(
        window_expires_at=Subquery(
            ServiceWindow.objects.filter(contact=OuterRef("pk"))
            .order_by()
            .values("contact")
            .annotate(end=Max("expires_at"))
            .values("end")
        )
    )


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0002_servicewindow"),
        ("conversations", "0007_message_customer_reaction"),
    ]
    # The contact's own end is read here, before contacts drops it.
    run_before = [("contacts", "0003_remove_contact_window_expires_at")]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="window",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.RESTRICT,
                related_name="conversations",
                to="contacts.servicewindow",
                verbose_name="24-hour window",
            ),
        ),
        migrations.RunPython(carry_over, carry_back),
    ]
