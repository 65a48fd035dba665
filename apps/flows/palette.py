"""What the builder shows for each of the 13 node types: plain names, outputs, settings, defaults.

The settings forms are drawn in the browser from these descriptions, so every word an admin
reads is translated here. Branch keys come from `graph.BRANCHES`, the one source of truth.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

from apps.flows import graph as g


def _field(key: str, label: Any, kind: str = "text", **extra: Any) -> dict[str, Any]:
    return {"key": key, "label": label, "kind": kind, **extra}


_CONDITION_FIELDS = [
    ("text", _("the customer's message")),
    ("intent", _("what the customer wants (intent)")),
    ("sentiment", _("the customer's mood (-1 to 1)")),
    ("language", _("the customer's language (code, e.g. sw)")),
    ("tag", _("a conversation tag")),
    ("variable", _("a saved answer (variable)")),
]
_CONDITION_OPS = [
    ("contains", _("contains")),
    ("equals", _("is")),
    ("not_equals", _("is not")),
    ("regex", _("matches the pattern")),
    ("gt", _("is more than")),
    ("lt", _("is less than")),
]


def palette() -> list[dict[str, Any]]:
    """The node types in palette order, each with its outputs, settings form and new-node defaults."""
    return [
        {
            "type": g.TRIGGER,
            "label": _("Start"),
            "help": _("When the flow starts: on words the customer sends, or for any message."),
            "outputs": [("default", _("then"))],
            "defaults": {"kind": "keyword", "keywords": ["hello"]},
            "fields": [
                _field(
                    "kind",
                    _("Start when"),
                    "select",
                    choices=[
                        ("keyword", _("the message has one of these words")),
                        ("regex", _("the message matches a pattern")),
                        ("first_message", _("a customer writes for the first time")),
                        ("business_hours", _("a message comes in at certain hours")),
                        ("ad_referral", _("a customer comes from an ad")),
                        ("catch_all", _("any message (when no other flow starts)")),
                    ],
                ),
                _field("keywords", _("Words (comma-separated)"), "csv", show_if={"kind": ["keyword"]}),
                _field("pattern", _("Pattern (regular expression)"), show_if={"kind": ["regex"]}),
                _field(
                    "when",
                    _("Hours"),
                    "select",
                    choices=[("inside", _("during business hours")), ("outside", _("outside business hours"))],
                    show_if={"kind": ["business_hours"]},
                ),
            ],
        },
        {
            "type": g.SEND_MESSAGE,
            "label": _("Send a message"),
            "help": _("Sends a text. {{last_message}} or {{a saved answer}} put values in it."),
            "outputs": [("default", _("then"))],
            "defaults": {"text": str(_("Thanks for your message!"))},
            "fields": [_field("text", _("Message"), "textarea", maxlength=4096)],
        },
        {
            "type": g.QUICK_REPLIES,
            "label": _("Ask with buttons"),
            "help": _("Asks a question with up to 3 buttons (or a list of up to 10) and waits for the answer."),
            "outputs": "options",
            "extra_outputs": [("invalid", _("no valid answer"))],
            "defaults": {
                "text": str(_("How can we help?")),
                "options": [
                    {"id": "option_1", "title": str(_("Option 1"))},
                    {"id": "option_2", "title": str(_("Option 2"))},
                ],
                "max_retries": 2,
                "invalid_text": str(_("Please tap one of the buttons.")),
            },
            "fields": [
                _field("text", _("Question"), "textarea", maxlength=1024),
                _field("options", _("Buttons"), "options", max=10, maxlength=24),
                _field(
                    "style",
                    _("Show as"),
                    "select",
                    choices=[("", _("buttons (a list when more than 3)")), ("list", _("a list"))],
                ),
                _field("button", _("List button text"), maxlength=20, show_if={"style": ["list"]}),
                _field("variable", _("Save the answer as (optional)")),
                _field("max_retries", _("Ask again how many times on a wrong answer"), "number", min=0, max=5),
                _field("invalid_text", _("Message when the answer is not one of the buttons"), "textarea"),
            ],
        },
        {
            "type": g.AI_RESPONSE,
            "label": _("AI reply"),
            "help": _("Writes one reply with AI from an instruction. Needs an AI provider; otherwise it goes on."),
            "outputs": [("default", _("then")), ("unavailable", _("AI not available"))],
            "defaults": {
                "prompt": str(_("Answer the customer's message politely: {{last_message}}")),
                "fallback": str(_("Sorry, I cannot answer that right now.")),
            },
            "fields": [
                _field("prompt", _("Instruction"), "textarea"),
                _field("system", _("Background for the AI (optional)"), "textarea"),
                _field("variable", _("Save the reply as (optional)")),
                _field("fallback", _("Message when AI is not available (optional)"), "textarea"),
            ],
        },
        {
            "type": g.AGENT,
            "label": _("AI assistant"),
            "help": _("Answers from your knowledge base and AI; hands off to a person when it cannot help."),
            "outputs": [("default", _("answered")), ("handoff", _("handed off"))],
            "defaults": {"reason": str(_("the assistant could not help"))},
            "fields": [
                _field("system", _("Background for the AI (optional)"), "textarea"),
                _field("reason", _("Hand-off reason")),
            ],
        },
        {
            "type": g.KNOWLEDGE_BASE,
            "label": _("Answer from knowledge base"),
            "help": _("Looks for the answer in your published articles and sends it with its source."),
            "outputs": [("answered", _("answered")), ("no_answer", _("no answer found"))],
            "defaults": {"question": "{{last_message}}"},
            "fields": [_field("question", _("Question to look up"))],
        },
        {
            "type": g.CONDITION,
            "label": _("Check a condition"),
            "help": _("Goes one way or the other depending on the message, a tag or a saved answer."),
            "outputs": [("true", _("yes")), ("false", _("no"))],
            "defaults": {"match": "all", "rules": [{"field": "text", "op": "contains", "value": "yes"}]},
            "fields": [
                _field(
                    "match",
                    _("Go to “yes” when"),
                    "select",
                    choices=[("all", _("all rules hold")), ("any", _("any rule holds"))],
                ),
                _field("rules", _("Rules"), "rules", fields=_CONDITION_FIELDS, ops=_CONDITION_OPS),
            ],
        },
        {
            "type": g.DELAY,
            "label": _("Wait"),
            "help": _("Waits, then goes on. After 24 hours only a template message may follow (WhatsApp's rule)."),
            "outputs": [("default", _("then"))],
            "defaults": {"seconds": 3600},
            "fields": [_field("seconds", _("Wait (seconds)"), "number", min=1)],
        },
        {
            "type": g.CONNECTOR,
            "label": _("Join paths"),
            "help": _("Brings several paths together into one."),
            "outputs": [("default", _("then"))],
            "defaults": {},
            "fields": [],
        },
        {
            "type": g.ACTION,
            "label": _("Do an action"),
            "help": _("Tags the conversation, saves a value, opens a ticket or closes the conversation."),
            "outputs": [("default", _("then"))],
            "defaults": {"action": "tag", "value": "follow-up"},
            "fields": [
                _field(
                    "action",
                    _("Action"),
                    "select",
                    choices=[
                        ("tag", _("add a tag")),
                        ("set_variable", _("save a value for this flow")),
                        ("set_field", _("set a contact field")),
                        ("create_ticket", _("open a ticket")),
                        ("close", _("close the conversation")),
                    ],
                ),
                _field("name", _("Name"), show_if={"action": ["set_variable", "set_field"]}),
                _field("value", _("Value"), show_if={"action": ["tag", "set_variable", "set_field", "create_ticket"]}),
            ],
        },
        {
            "type": g.API_CALL,
            "label": _("Call a web service"),
            "help": _("Calls another system over HTTP and saves its answer; private addresses are refused."),
            "outputs": [("success", _("worked")), ("error", _("failed"))],
            "defaults": {"method": "GET", "url": "https://example.com/orders/{{last_message}}", "variable": "order"},
            "fields": [
                _field("method", _("Method"), "select", choices=[(m, m) for m in sorted(g.HTTP_METHODS)]),
                _field("url", _("Address (URL)")),
                _field("headers", _("Headers (one “Name: value” per line)"), "headers"),
                _field("body", _("Body (optional)"), "textarea", show_if={"method": ["POST", "PUT", "PATCH"]}),
                _field("variable", _("Save the answer as")),
            ],
        },
        {
            "type": g.SMART_REPLY,
            "label": _("Ready answers"),
            "help": _("Sends a prepared answer when the message has one of its words."),
            "outputs": [("matched", _("answered")), ("unmatched", _("no match"))],
            "defaults": {"replies": [{"keywords": ["price"], "text": str(_("Our price list is on our website."))}]},
            "fields": [_field("replies", _("Answers"), "replies")],
        },
        {
            "type": g.HUMAN_HANDOFF,
            "label": _("Hand over to a person"),
            "help": _("Stops the flow and passes the conversation to your team."),
            "outputs": [],
            "defaults": {
                "text": str(_("I am connecting you with a member of our team.")),
                "reason": str(_("the customer asked for a person")),
            },
            "fields": [
                _field("text", _("Message to the customer (optional)"), "textarea"),
                _field("reason", _("Reason shown to the team")),
            ],
        },
    ]


def palette_json() -> list[dict[str, Any]]:
    """The palette with lazy translations resolved, for `json_script`."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, str | int | float | bool) or value is None:
            return value
        return str(value)

    return [plain(entry) for entry in palette()]
