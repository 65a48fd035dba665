"""The demo tenant's two sample flows: ordinary flows a newcomer can open, change and republish.

They fit the demo business (an online shop in Nairobi with a shop on Moi Avenue, whose order
numbers look like DB-10234; see fixtures/demo_kb). "Order status" collects an order number
and routes it to the dispatch team as a ticket; "Book an appointment" offers the shop's
services as a list, then a time, and records the booking on the contact and as a ticket.
Neither uses a Delay: while a run waits on one, the customer's messages are not answered.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.flows.models import Flow
from apps.flows.services import flow_activate, flow_publish

ORDER_STATUS_KEY = "demo-order-status"
BOOKING_KEY = "demo-book-appointment"
ORDER_NUMBER = r"\b(DB-?)?\d{4,6}\b"


def _node(node_id: str, node_type: str, nxt: dict[str, str] | None = None, **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "config": config, "next": nxt or {}}


def order_status_graph() -> dict[str, Any]:
    return {
        "nodes": [
            _node(
                "start",
                "trigger",
                {"default": "has_number"},
                kind="keyword",
                keywords=["order", "orders", "track", "tracking", "oda", "agizo"],
            ),
            # "track DB-10234" needs no menu: straight to the number.
            _node(
                "has_number",
                "condition",
                {"true": "keep_number", "false": "menu"},
                rules=[{"field": "text", "op": "regex", "value": ORDER_NUMBER}],
            ),
            _node(
                "menu",
                "quick_replies",
                {"track": "ask_number", "pay": "pay_info", "person": "handoff", "invalid": "handoff"},
                text="Hi {{contact.first_name}}! What do you need help with?",
                options=[
                    {"id": "track", "title": "Track my order"},
                    {"id": "pay", "title": "How to pay"},
                    {"id": "person", "title": "Talk to a person"},
                ],
                variable="topic",
                invalid_text="Please tap one of the buttons.",
                max_retries=1,
            ),
            # Any typed answer that is not the button goes to "invalid" at once (no re-prompt):
            # that is how a flow collects free text such as an order number.
            _node(
                "ask_number",
                "quick_replies",
                {"no_number": "handoff", "invalid": "check_number"},
                text="Please type your order number. It looks like DB-10234 and came by SMS when you paid.",
                options=[{"id": "no_number", "title": "I don't have it"}],
                max_retries=0,
            ),
            _node(
                "check_number",
                "condition",
                {"true": "keep_number", "false": "unreadable"},
                rules=[{"field": "text", "op": "regex", "value": ORDER_NUMBER}],
            ),
            _node(
                "keep_number",
                "action",
                {"default": "ticket"},
                action="set_variable",
                name="order_number",
                value="{{last_message}}",
                pattern=ORDER_NUMBER,
            ),
            _node(
                "ticket",
                "action",
                {"default": "tag"},
                action="create_ticket",
                value="Where is order {{order_number}}?",
            ),
            _node("tag", "action", {"default": "confirm"}, action="tag", value="order-status"),
            _node(
                "confirm",
                "send_message",
                text=(
                    "Thanks {{contact.first_name}}! Our dispatch team is checking order {{order_number}} and will "
                    "reply here within 30 minutes (Monday to Saturday, 8 am to 8 pm). The rider calls you about "
                    "30 minutes before arriving."
                ),
            ),
            _node(
                "pay_info",
                "send_message",
                text=(
                    "You can pay by M-Pesa (Paybill 400200, account number = your order number), Airtel Money, "
                    "Visa or Mastercard on our website, or cash on delivery in Nairobi."
                ),
            ),
            _node(
                "unreadable",
                "human_handoff",
                text="I couldn't find an order number in that. A member of our team will help you here shortly.",
                reason="order status: no order number",
            ),
            _node(
                "handoff",
                "human_handoff",
                text="Connecting you with our team; they will reply here shortly.",
                reason="order help requested",
            ),
        ]
    }


def booking_graph() -> dict[str, Any]:
    return {
        "nodes": [
            _node(
                "start",
                "trigger",
                {"default": "service"},
                kind="keyword",
                keywords=["book", "booking", "appointment", "appointments", "miadi"],
            ),
            _node(
                "service",
                "quick_replies",
                {"person": "handoff", "invalid": "handoff", "default": "slot"},
                text="Which service would you like to book at our Moi Avenue shop?",
                style="list",
                button="Choose a service",
                options=[
                    {"id": "repair", "title": "Phone repair", "description": "Screen, battery or charging port"},
                    {"id": "fitting", "title": "Screen protector fitting", "description": "Free with any protector"},
                    {"id": "setup", "title": "New phone setup", "description": "Contacts, WhatsApp and photos moved"},
                    {"id": "collect", "title": "Collect an order", "description": "Pick up a paid order in the shop"},
                    {"id": "person", "title": "Something else", "description": "Talk to our team"},
                ],
                variable="service",
                invalid_text="Please choose a service from the list.",
                max_retries=1,
            ),
            _node(
                "slot",
                "quick_replies",
                {"invalid": "handoff", "default": "remember"},
                text="When suits you? The shop is open 9 am to 6 pm, Monday to Saturday.",
                options=[
                    {"id": "tomorrow_am", "title": "Tomorrow morning"},
                    {"id": "tomorrow_pm", "title": "Tomorrow afternoon"},
                    {"id": "saturday", "title": "Saturday"},
                ],
                variable="slot",
                invalid_text="Please tap one of the times.",
                max_retries=1,
            ),
            _node(
                "remember",
                "action",
                {"default": "ticket"},
                action="set_field",
                name="appointment",
                value="{{service_title}}, {{slot_title}}",
            ),
            _node(
                "ticket",
                "action",
                {"default": "tag"},
                action="create_ticket",
                value="Appointment: {{service_title}}, {{slot_title}}",
            ),
            _node("tag", "action", {"default": "confirm"}, action="tag", value="appointment"),
            _node(
                "confirm",
                "send_message",
                text=(
                    "Booked: {{service_title}}, {{slot_title}}, at our shop on Moi Avenue, Nairobi. "
                    "A member of our team will confirm the exact time here."
                ),
            ),
            _node(
                "handoff",
                "human_handoff",
                text="No problem, a member of our team will reply here shortly to help you book.",
                reason="appointment help requested",
            ),
        ]
    }


SAMPLES: tuple[tuple[str, str, Any], ...] = (
    (ORDER_STATUS_KEY, "Order status", order_status_graph),
    (BOOKING_KEY, "Book an appointment", booking_graph),
)


@transaction.atomic
def flow_samples_install() -> list[Flow]:
    """Create, publish and activate the sample flows that are missing; never touch existing ones."""
    installed = []
    for key, name, build in SAMPLES:
        if Flow.objects.filter(key=key).exists():
            continue  # already there, perhaps edited by the admin: leave it as it is
        flow = Flow.objects.create(key=key, name=name, draft=build())
        flow_publish(flow=flow, by=None)
        installed.append(flow_activate(flow=flow, active=True))
    return installed
