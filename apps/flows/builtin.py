"""The built-in default flow every tenant starts with: greet, answer from the knowledge base, else hand off.

It is an ordinary published flow (key `default`), so an admin can open, change, republish,
deactivate or delete it. It reproduces the original knowledge auto-reply: a short greeting
gets a greeting; a question gets the knowledge base's answer with its source when the
answerer is confident (same threshold, same gap log); otherwise the customer is told so and
the conversation is handed to people. Its trigger is a catch-all at the lowest priority, so
any other flow that matches a message wins. The bot's words carry their translations, and the
customer gets them in the conversation's language.

The graph is built here (not in the migration) so that the data migration, new tenants
(cloned from the template, which that migration populated) and tests share one definition.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext

from apps.flows import graph as g

DEFAULT_KEY = "default"
DEFAULT_NAME = "Default: answer from knowledge, else hand off"
# Below any priority an admin would give; a catch-all already ranks after keywords and patterns.
DEFAULT_PRIORITY = -1000
# The built-in reply's words: they are the knowledge app's msgids, so they share its translations.
GREETING = "Hello %(name)s! How can we help you today?"
NO_ANSWER = "I don't have an answer to that yet. Let me connect you with a member of our team."
HANDOFF_REASON = "no answer in the knowledge base"
# The original reply greeted only a short greeting ("hi", "habari yako"): a longer message
# with a greeting in it is a question and goes to the knowledge base.
SHORT_MESSAGE = r"^\s*\S+(\s+\S+){0,3}\s*$"


def _translations(msgid: str, *, name_as: str = "") -> dict[str, dict[str, str]]:
    """The catalogue's translations of `msgid`, for every UI language that has one."""
    found: dict[str, dict[str, str]] = {}
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            text = gettext(msgid)
        if text != msgid:
            found[code] = {"text": text.replace("%(name)s", name_as) if name_as else text}
    return found


def default_flow_graph() -> dict[str, Any]:
    first_name = "{{contact.first_name}}"

    def node(node_id: str, node_type: str, nxt: dict[str, str], **config: Any) -> dict[str, Any]:
        return {"id": node_id, "type": node_type, "config": config, "next": nxt}

    return {
        "nodes": [
            node("start", g.TRIGGER, {"default": "has_text"}, kind="catch_all"),
            # A photo, voice note or sticker without words: nothing to look up, nothing is said.
            node(
                "has_text",
                g.CONDITION,
                {"true": "is_greeting", "false": "no_text"},
                rules=[{"field": "text", "op": "regex", "value": r"\S"}],
            ),
            node("no_text", g.CONNECTOR, {}),
            node(
                "is_greeting",
                g.CONDITION,
                {"true": "greet", "false": "answer"},
                match="all",
                rules=[
                    {"field": "intent", "op": "equals", "value": "greeting"},
                    {"field": "text", "op": "regex", "value": SHORT_MESSAGE},
                ],
            ),
            node(
                "greet",
                g.SEND_MESSAGE,
                {},
                text=GREETING.replace("%(name)s", first_name),
                translations=_translations(GREETING, name_as=first_name),
            ),
            node("answer", g.KNOWLEDGE_BASE, {"no_answer": "handoff"}),
            node(
                "handoff",
                g.HUMAN_HANDOFF,
                {},
                text=NO_ANSWER,
                translations=_translations(NO_ANSWER),
                reason=HANDOFF_REASON,
            ),
        ]
    }


def default_flow_install(flow_model: Any, version_model: Any) -> bool:
    """Create the published, active default flow unless the schema has one; say whether it did.

    Takes the model classes so that the data migration can pass its historical models.
    """
    if flow_model.objects.filter(key=DEFAULT_KEY).exists():
        return False
    data = default_flow_graph()
    graph = g.graph_validate(data)
    flow = flow_model.objects.create(
        key=DEFAULT_KEY,
        name=DEFAULT_NAME,
        priority=DEFAULT_PRIORITY,
        draft=data,
        trigger=dict(graph.node(graph.entry).config),
        is_active=True,
    )
    version_model.objects.create(flow=flow, number=1, graph=data)
    return True
