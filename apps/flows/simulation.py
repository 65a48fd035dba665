"""The builder's "Test this flow" panel: run a draft against a pretend customer, send nothing.

The pure interpreter runs with `SimulationPorts`: replies are captured for the panel instead of
going to WhatsApp; the knowledge base and the AI router answer for real (both work offline);
side effects on real records (ticket, tag, hand-off, contact field, close) are reported, not
done; a marketing template goes to the pretend customer, with a note that a customer who
opted out would not get it. A GET API Call runs for real through the SSRF-guarded egress
(reading is what it is for); other methods are reported and treated as answered. The session
(node, variables, tags) lives in the panel and comes back with each message, so a test
touches no conversation and no run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.ai.language import UNKNOWN as UNKNOWN_LANGUAGE
from apps.ai.language import detect_language
from apps.ai.router import classify_intent, generate
from apps.ai.sentiment import analyse_sentiment
from apps.core.exceptions import ApplicationError
from apps.flows import engine
from apps.flows import graph as g
from apps.flows.egress import egress_request
from apps.flows.ports import Choice, HttpResponse, KnowledgeReply, PortError
from apps.knowledge.answers import knowledge_answer
from apps.whatsapp.message_templates import message_template_catalogue
from apps.whatsapp.models import MessageTemplate

_STATUSES = frozenset({engine.RUNNING, engine.WAITING, engine.FINISHED, engine.FAILED})
_UNTESTABLE_TRIGGERS = {
    "business_hours": gettext_lazy("In real use this flow starts only at the hours its trigger names."),
    "ad_referral": gettext_lazy("In real use this flow starts only for customers who come from an ad."),
}


class FlowTestSessionInvalid(ApplicationError):
    code = "flow_test_session_invalid"


@dataclass
class SimulationPorts:
    """Ports that capture what a flow would send and do, for one test message."""

    replies: list[dict[str, Any]] = field(default_factory=list)
    effects: list[dict[str, str]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def _effect(self, kind: str, detail: str) -> None:
        self.effects.append({"kind": kind, "detail": detail})

    def step_begin(self, node_id: str) -> None:
        pass  # the panel lists the engine's steps as they are

    def send_text(self, text: str) -> None:
        self.replies.append({"kind": "text", "text": text})

    def send_buttons(self, body: str, choices: list[Choice]) -> None:
        self.replies.append({"kind": "buttons", "text": body, "choices": [_choice(c) for c in choices]})

    def send_list(self, body: str, button: str, choices: list[Choice]) -> None:
        self.replies.append({"kind": "list", "text": body, "button": button, "choices": [_choice(c) for c in choices]})

    def send_template(self, name: str, language: str, params: list[str]) -> None:
        text = _("Template message “%(name)s” (%(language)s)") % {"name": name, "language": language}
        self.replies.append({"kind": "template", "text": text, "params": params})
        # The pretend customer has not opted out; a real one who sent STOP would not get it.
        categories = {category for category, _status in message_template_catalogue(name=name, language=language)}
        if MessageTemplate.Category.MARKETING in categories:
            self._effect(
                "consent",
                _(
                    "“%(name)s” is a marketing template: a customer who opted out (sent STOP) does not get it, "
                    "and the flow goes on without it."
                )
                % {"name": name},
            )

    def knowledge_answer(self, question: str) -> KnowledgeReply:
        # record_gap=False: a test question is not a customer's unanswered question.
        answer = knowledge_answer(question=question, record_gap=False)
        return KnowledgeReply(answer.text, answer.handoff, tuple(c.title for c in answer.citations))

    def generate(self, prompt: str, system: str) -> str | None:
        result = generate(prompt, system=system)
        return result.text if result.available and result.text else None

    def handoff(self, reason: str) -> None:
        self._effect("handoff", _("Would hand the conversation to a person: %(reason)s") % {"reason": reason})

    def create_ticket(self, reason: str) -> None:
        self._effect("ticket", _("Would open a ticket: %(reason)s") % {"reason": reason})

    def tag(self, tag: str) -> None:
        self.tags.append(tag)
        self._effect("tag", _("Would tag the conversation “%(tag)s”") % {"tag": tag})

    def set_field(self, name: str, value: str) -> None:
        self._effect("field", _("Would set the contact's %(name)s to “%(value)s”") % {"name": name, "value": value})

    def close(self) -> None:
        self._effect("close", _("Would close the conversation"))

    def schedule_resume(self, seconds: int) -> None:
        self._effect("wait", _("Would wait %(seconds)d seconds before going on") % {"seconds": seconds})

    def http_call(self, method: str, url: str, headers: dict[str, str], body: str | None) -> HttpResponse:
        if method == "GET":
            self._effect("http", _("Called GET %(url)s") % {"url": url})
            try:
                return egress_request(method, url, headers=headers, body=body)
            except PortError as exc:
                self._effect("http", _("The call failed: %(error)s") % {"error": exc})
                raise
        self._effect(
            "http",
            _("Would call %(method)s %(url)s (not sent in a test; the flow goes on as if it succeeded)")
            % {"method": method, "url": url},
        )
        return HttpResponse(200, {})


def _choice(choice: Choice) -> dict[str, str]:
    return {"id": choice.id, "title": choice.title, "description": choice.description}


@dataclass(frozen=True)
class SimulatedMessage:
    text: str = ""
    choice_id: str = ""
    resume: bool = False  # end the Delay the flow waits on, as if its time had passed


def _reads_analysis(graph: g.Graph) -> bool:
    """Whether any node looks at intent, sentiment or language (analysing costs a model call)."""
    for node in graph.nodes.values():
        if node.type == g.CONDITION and any(
            isinstance(rule, dict) and rule.get("field") in ("intent", "sentiment", "language")
            for rule in node.config.get("rules") or []
        ):
            return True
        if node.type == g.SMART_REPLY and any(
            isinstance(reply, dict) and reply.get("intents") for reply in node.config.get("replies") or []
        ):
            return True
    return False


def _analysis(text: str) -> dict[str, Any]:
    language = detect_language(text, [], languages=tuple(settings.AI_DETECT_LANGUAGES))
    intent = classify_intent(text, language=language.code)
    sentiment = analyse_sentiment(text, language=language.code)
    return {
        "language": "" if language.code == UNKNOWN_LANGUAGE else language.code,
        "intent": intent.intent,
        "sentiment": round(sentiment.score, 4),
    }


def _session_state(graph: g.Graph, session: dict[str, Any]) -> tuple[engine.State, list[str]]:
    node_id = session.get("node_id")
    status = session.get("status")
    variables = session.get("variables", {})
    tags = session.get("tags", [])
    if node_id is not None and node_id not in graph.nodes:
        raise FlowTestSessionInvalid(
            _("The test stopped at a step that is no longer in the flow. Start the test again."),
            extra={"node": str(node_id)},
        )
    if status not in _STATUSES or not isinstance(variables, dict) or not isinstance(tags, list):
        raise FlowTestSessionInvalid(_("The test session is not valid. Start the test again."))
    try:
        wait_until = datetime.fromisoformat(session["wait_until"]) if session.get("wait_until") else None
        retries, steps_total = int(session.get("retries", 0)), int(session.get("steps_total", 0))
    except (TypeError, ValueError) as exc:
        raise FlowTestSessionInvalid(_("The test session is not valid. Start the test again.")) from exc
    state = engine.State(
        node_id=node_id,
        status=str(status),
        variables=variables,
        retries=retries,
        wait_until=wait_until,
        steps_total=steps_total,
        error=str(session.get("error", "")),
    )
    return state, [str(t) for t in tags]


def _session_of(state: engine.State, tags: list[str]) -> dict[str, Any]:
    return {
        "node_id": state.node_id,
        "status": state.status,
        "variables": state.variables,
        "retries": state.retries,
        "wait_until": state.wait_until.isoformat() if state.wait_until else None,
        "steps_total": state.steps_total,
        "error": state.error,
        "tags": tags,
    }


def _trigger_matches(graph: g.Graph, event: engine.Event) -> bool:
    try:
        return engine.trigger_matches(graph.node(graph.entry).config, event)
    except (TypeError, AttributeError) as exc:  # e.g. keywords that are not a list, in a draft
        raise g.FlowGraphInvalid(
            _("Node %(node)s: %(problem)s") % {"node": graph.entry, "problem": _("the settings are malformed.")},
            extra={"node": graph.entry},
        ) from exc


def flow_test_run(
    *, graph_data: Any, session: dict[str, Any] | None, message: SimulatedMessage, now: datetime | None = None
) -> dict[str, Any]:
    """Run one customer message (or a Delay's end) through a draft; return what the customer would see."""
    graph = g.graph_parse(graph_data)
    # A draft may be unfinished, but the test must be able to walk it: a link to a deleted step
    # or a pattern that does not compile is a 400 naming the step, not a 500.
    g.graph_check_runnable(graph)
    now = now or timezone.now()
    started = session is None
    if session is None:
        state, tags = engine.state_start(graph), list[str]()
    else:
        state, tags = _session_state(graph, session)
    if message.resume:
        event = engine.Event(kind="resume", now=now)
        analysis: dict[str, Any] = {}
    else:
        if not message.text.strip() and not message.choice_id:
            raise FlowTestSessionInvalid(_("Type a message or tap a button first."))
        analysis = _analysis(message.text) if message.text.strip() and _reads_analysis(graph) else {}
        event = engine.Event(
            kind="message",
            now=now,
            text=message.text,
            choice_id=message.choice_id,
            intent=str(analysis.get("intent", "")),
            sentiment=analysis.get("sentiment"),
            language=str(analysis.get("language", "")),
            tags=tuple(tags),
            first_message=started,
        )
    notice = ""
    if started:
        trigger = graph.node(graph.entry).config
        kind = trigger.get("kind", "catch_all")
        if kind in _UNTESTABLE_TRIGGERS:
            # A test cannot come from an ad or at another hour: start, and say what real use needs.
            notice = str(_UNTESTABLE_TRIGGERS[kind])
        elif message.resume or not _trigger_matches(graph, event):
            notice = _(
                "This message would not start the flow: its trigger does not match it. "
                "Try a message the trigger listens for."
            )
            return {
                "started": False,
                "notice": notice,
                "replies": [],
                "effects": [],
                "steps": [],
                "analysis": analysis,
                "session": None,
            }
    ports = SimulationPorts(tags=list(tags))
    state, steps = engine.run(graph, state, event, ports)
    ending = ""
    if state.status == engine.WAITING and state.node_id and graph.node(state.node_id).type == g.DELAY:
        ending = _("The flow is waiting on a Delay. Use “Skip the wait” to go on.")
    elif state.status == engine.FINISHED:
        ending = _("The flow has ended.")
    elif state.status == engine.FAILED:
        ending = _("The flow stopped with an error: %(error)s") % {"error": state.error}
    notice = f"{notice} {ending}"
    return {
        "started": True,
        "notice": notice.strip(),
        "replies": ports.replies,
        "effects": ports.effects,
        "steps": [
            {"node_id": s.node_id, "node_type": s.node_type, "branch": s.branch, "error": s.error} for s in steps
        ],
        "analysis": analysis,
        "session": _session_of(state, ports.tags),
    }
