"""The pure flow interpreter: `run(graph, state, event, ports) -> (state, steps)`.

It reads the graph, the run's state and one event (an inbound message, a resume after a
Delay, or the start of a run) and walks nodes until it must wait or the flow ends. Every
side effect goes through `Ports`; the interpreter itself does no I/O, so a whole flow runs
in tests with fake ports and the benchmark measures only the interpreter's overhead.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from django.utils.translation import gettext

from apps.flows import graph as g
from apps.flows.ports import Choice, PortError, Ports

MAX_NODES_PER_EVENT = g.MAX_NODES_PER_EVENT  # one message never walks more than this many nodes
MAX_STEPS_PER_RUN = 500  # a whole run's budget, so a looping flow cannot pester a customer forever
DEFAULT_MAX_RETRIES = 2
# The optional space before a variable goes with it when the value is empty ("Hello {{name}}!").
_VAR = re.compile(r"( ?)\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")

RUNNING, WAITING, FINISHED, FAILED = "running", "waiting", "finished", "failed"


@dataclass(frozen=True)
class Event:
    """What woke the run: a customer's message (`kind="message"`) or a Delay's end (`"resume"`)."""

    kind: str = "message"
    now: datetime | None = None
    text: str = ""
    choice_id: str = ""  # the id of the button or list row the customer tapped
    intent: str = ""
    sentiment: float | None = None
    language: str = ""
    # The language the bot's own words go out in (the conversation's): picks a text's translation.
    reply_language: str = ""
    tags: tuple[str, ...] = ()
    first_message: bool = False
    referral: bool = False
    business_hours: bool = True


@dataclass(frozen=True)
class State:
    node_id: str | None
    status: str = RUNNING
    variables: dict[str, Any] = field(default_factory=dict)
    retries: int = 0
    wait_until: datetime | None = None
    steps_total: int = 0
    error: str = ""


@dataclass(frozen=True)
class Step:
    node_id: str
    node_type: str
    started: float  # perf_counter seconds
    duration_ms: float
    branch: str = ""
    error: str = ""


def state_start(graph: g.Graph, variables: dict[str, Any] | None = None) -> State:
    return State(node_id=graph.entry, variables=dict(variables or {}))


def substitute(text: str, variables: dict[str, Any]) -> str:
    """Replace `{{name}}` (or `{{a.b}}` into nested values) with the run's variables; unknown → ''."""

    def value(match: re.Match[str]) -> str:
        current: Any = variables
        for part in match.group(2).split("."):
            if isinstance(current, dict) and part in current:
                current = current[part]
            else:
                return ""
        text = "" if current is None else str(current)
        return match.group(1) + text if text else ""

    return _VAR.sub(value, text)


def localized(config: dict[str, Any], key: str, language: str) -> str:
    """A node's text in the customer's language when the node has that translation, else as written."""
    translations = config.get("translations")
    if language and isinstance(translations, dict):
        for code in (language, language.split("-")[0]):
            entry = translations.get(code)
            if isinstance(entry, dict) and isinstance(entry.get(key), str) and entry[key].strip():
                return str(entry[key])
    return str(config.get(key, ""))


# --- triggers --------------------------------------------------------------------------

# Keywords and patterns are equally specific; a catch-all only takes what nothing else claimed.
_TRIGGER_RANK = {"keyword": 0, "regex": 0, "ad_referral": 1, "first_message": 2, "business_hours": 3, "catch_all": 4}


def trigger_matches(trigger: dict[str, Any], event: Event) -> bool:
    kind = trigger.get("kind", "catch_all")
    text = event.text.strip().lower()
    if kind == "keyword":
        words = set(re.findall(r"\w+", text))
        return any(
            (k.lower() in words) if " " not in k else (k.lower() in text)
            for k in (str(k).strip() for k in trigger.get("keywords", []))
            if k
        )
    if kind == "regex":
        return re.search(str(trigger.get("pattern", "")), event.text, re.IGNORECASE) is not None
    if kind == "first_message":
        return bool(event.first_message)
    if kind == "ad_referral":
        return bool(event.referral)
    if kind == "business_hours":
        inside = str(trigger.get("when", "outside")) == "inside"
        return event.business_hours is inside
    return str(kind) == "catch_all"


def trigger_sort_key(trigger: dict[str, Any], priority: int, flow_id: int) -> tuple[int, int, int]:
    """Keywords and patterns first, catch-all last; then the higher explicit priority; then the older flow."""
    return (_TRIGGER_RANK.get(trigger.get("kind", "catch_all"), len(_TRIGGER_RANK)), -priority, flow_id)


# --- conditions -------------------------------------------------------------------------


def _rule_holds(rule: dict[str, Any], event: Event, variables: dict[str, Any]) -> bool:
    fieldname, op = rule.get("field"), rule.get("op", "equals")
    expected = substitute(str(rule.get("value", "")), variables)
    actual: Any
    if fieldname == "text":
        actual = event.text
    elif fieldname == "intent":
        actual = event.intent
    elif fieldname == "sentiment":
        actual = event.sentiment
    elif fieldname == "language":
        actual = event.language
    elif fieldname == "tag":
        holds = expected.lower() in {t.lower() for t in event.tags}
        return holds if op != "not_equals" else not holds
    else:
        actual = variables.get(str(rule.get("name", "")))
    if op in ("gt", "lt"):
        try:
            left, right = float(actual), float(expected)
        except (TypeError, ValueError):
            return False
        return left > right if op == "gt" else left < right
    text = "" if actual is None else str(actual)
    if op == "contains":
        return expected.lower() in text.lower()
    if op == "regex":
        return re.search(expected, text, re.IGNORECASE) is not None
    if op == "not_equals":
        return text.lower() != expected.lower()
    return text.lower() == expected.lower()


def condition_holds(config: dict[str, Any], event: Event, variables: dict[str, Any]) -> bool:
    results = (_rule_holds(rule, event, variables) for rule in config.get("rules", []))
    return any(results) if config.get("match", "all") == "any" else all(results)


# --- the interpreter --------------------------------------------------------------------


class _Stop(Exception):
    def __init__(self, state: State) -> None:
        self.state = state


def _choice_for(node: g.Node, event: Event) -> dict[str, Any] | None:
    options: list[dict[str, Any]] = node.config.get("options", [])
    if event.choice_id:
        return next((o for o in options if str(o.get("id")) == event.choice_id), None)
    typed = event.text.strip().lower()
    for index, option in enumerate(options, start=1):
        if typed in (str(option.get("title", "")).lower(), str(option.get("id", "")).lower(), str(index)):
            return option
    return None


def _next(node: g.Node, branch: str) -> str | None:
    return node.next.get(branch) or node.next.get("default")


def _send_choices(node: g.Node, ports: Ports, variables: dict[str, Any], *, reprompt: bool = False) -> None:
    body = substitute(str(node.config.get("text", "")), variables)
    if reprompt and node.config.get("invalid_text"):
        body = substitute(str(node.config["invalid_text"]), variables)
    choices = [
        Choice(str(o.get("id")), substitute(str(o.get("title", "")), variables), str(o.get("description", "")))
        for o in node.config.get("options", [])
    ]
    if node.config.get("style") == "list" or len(choices) > 3:
        ports.send_list(body, str(node.config.get("button") or "Choose"), choices)
    else:
        ports.send_buttons(body, choices)


def _execute(node: g.Node, state: State, event: Event, ports: Ports, resumed: bool) -> tuple[str | None, State]:
    """Run one node; return the branch to follow (None: the run ends) and the new state."""
    c, variables = node.config, state.variables
    t = node.type
    if t in (g.TRIGGER, g.CONNECTOR):
        return "default", state
    if t == g.SEND_MESSAGE:
        if c.get("template"):
            tpl = c["template"]
            params = [substitute(str(p), variables) for p in tpl.get("params", [])]
            ports.send_template(str(tpl["name"]), str(tpl["language"]), params)
        else:
            ports.send_text(substitute(localized(c, "text", event.reply_language), variables))
        return "default", state
    if t == g.QUICK_REPLIES:
        if not resumed:
            _send_choices(node, ports, variables)
            raise _Stop(replace(state, node_id=node.id, status=WAITING, retries=0))
        option = _choice_for(node, event)
        if option is None:
            if state.retries < int(c.get("max_retries", DEFAULT_MAX_RETRIES)):
                _send_choices(node, ports, variables, reprompt=True)
                raise _Stop(replace(state, node_id=node.id, status=WAITING, retries=state.retries + 1))
            return "invalid", replace(state, retries=0)
        if c.get("variable"):
            # The id for conditions, the title (`<variable>_title`) for messages to the customer.
            name = str(c["variable"])
            title = substitute(str(option.get("title", "")), variables)
            variables = {**variables, name: str(option.get("id")), f"{name}_title": title}
        return str(option.get("id")), replace(state, variables=variables, retries=0)
    if t == g.DELAY:
        if not resumed:
            seconds = int(c["seconds"])
            ports.schedule_resume(seconds)
            until = event.now + timedelta(seconds=seconds) if event.now is not None else None
            raise _Stop(replace(state, node_id=node.id, status=WAITING, wait_until=until))
        return "default", replace(state, wait_until=None)
    if t == g.AI_RESPONSE:
        text = ports.generate(substitute(str(c["prompt"]), variables), substitute(str(c.get("system", "")), variables))
        if not text:
            if c.get("fallback"):
                ports.send_text(substitute(str(c["fallback"]), variables))
            return "unavailable", state
        if c.get("variable"):
            state = replace(state, variables={**variables, str(c["variable"]): text})
        if c.get("send", True):
            ports.send_text(text[:4000])
        return "default", state
    if t in (g.KNOWLEDGE_BASE, g.AGENT):
        question = substitute(str(c.get("question") or "{{last_message}}"), variables) or event.text
        answer = ports.knowledge_answer(question)
        if answer.handoff and t == g.AGENT:
            generated = ports.generate(question, str(c.get("system", "")))
            if generated:
                ports.send_text(generated[:4000])
                return "default", state
            ports.send_text(answer.text)
            ports.handoff(str(c.get("reason") or "the assistant had no answer"))
            return "handoff", replace(state, status=FINISHED)
        if answer.handoff:
            return "no_answer", state
        sources = ""
        if answer.sources:
            # The same words as the built-in knowledge reply, so they share its translations.
            sources = "\n\n" + gettext("Source: %(sources)s") % {"sources": answer.sources[0]}
        ports.send_text(answer.text[:4000] + sources)
        return ("default" if t == g.AGENT else "answered"), state
    if t == g.CONDITION:
        return ("true" if condition_holds(c, event, variables) else "false"), state
    if t == g.SMART_REPLY:
        for reply in c.get("replies", []):
            intents = {str(i) for i in reply.get("intents", [])}
            keywords = [str(k).lower() for k in reply.get("keywords", [])]
            if (event.intent and event.intent in intents) or any(k and k in event.text.lower() for k in keywords):
                ports.send_text(substitute(str(reply["text"]), variables))
                return "matched", state
        return "unmatched", state
    if t == g.ACTION:
        action = c["action"]
        value = substitute(str(c.get("value", "")), variables)
        if action == "tag":
            ports.tag(value)
        elif action == "set_field":
            ports.set_field(str(c["name"]), value)
        elif action == "set_variable":
            if c.get("pattern"):
                # Keep only what the pattern finds ("DB-10234" out of "my order is DB-10234 pls").
                found = re.search(str(c["pattern"]), value, re.IGNORECASE)
                value = found.group(0) if found else ""
            state = replace(state, variables={**variables, str(c["name"]): value})
        elif action == "create_ticket":
            ports.create_ticket(value or "created by a flow")
        elif action == "close":
            ports.close()
            return None, replace(state, status=FINISHED)
        return "default", state
    if t == g.API_CALL:
        headers = {str(k): substitute(str(v), variables) for k, v in (c.get("headers") or {}).items()}
        body = substitute(str(c["body"]), variables) if c.get("body") else None
        try:
            response = ports.http_call(
                str(c.get("method", "GET")).upper(), substitute(str(c["url"]), variables), headers, body
            )
        except PortError as exc:
            return "error", replace(state, variables={**variables, "api_error": str(exc)})
        if c.get("variable"):
            variables = {**variables, str(c["variable"]): response.body}
        return ("success" if 200 <= response.status < 300 else "error"), replace(state, variables=variables)
    if t == g.HUMAN_HANDOFF:
        if c.get("text"):
            ports.send_text(substitute(localized(c, "text", event.reply_language), variables))
        ports.handoff(substitute(str(c.get("reason") or "handed off by a flow"), variables))
        return None, replace(state, status=FINISHED)
    raise ValueError(f"unknown node type {t}")


def run(graph: g.Graph, state: State, event: Event, ports: Ports) -> tuple[State, list[Step]]:
    """Advance a run by one event; stop at a waiting node, the end, or a limit."""
    steps: list[Step] = []
    start = state.node_id
    if state.status in (FINISHED, FAILED) or start is None:
        return state, steps
    if event.kind == "message":
        state = replace(state, variables={**state.variables, "last_message": event.text})
    if start not in graph.nodes:
        return replace(state, status=FAILED, error=f"step {start} is not in the flow"), steps
    # A waiting node is resumed only by the event it waits for: a reply, or the Delay's end.
    current = graph.node(start)
    resumed = state.status == WAITING and (
        (current.type == g.QUICK_REPLIES and event.kind == "message")
        or (current.type == g.DELAY and event.kind == "resume")
    )
    if state.status == WAITING and not resumed:
        return state, steps  # a message during a Delay is recorded, not acted on
    state = replace(state, status=RUNNING)
    walked = 0
    node_id: str | None = start
    while node_id is not None:
        if walked >= MAX_NODES_PER_EVENT or state.steps_total >= MAX_STEPS_PER_RUN:
            limit = "nodes per message" if walked >= MAX_NODES_PER_EVENT else "steps per run"
            return replace(state, node_id=node_id, status=FAILED, error=f"limit reached: {limit}"), steps
        if node_id not in graph.nodes:  # a link to a deleted step (only an unchecked draft has one)
            return replace(
                state, status=FAILED, error=f"step {state.node_id} leads to {node_id}, not in the flow"
            ), steps
        node = graph.node(node_id)
        started = time.perf_counter()
        state = replace(state, node_id=node_id, steps_total=state.steps_total + 1)
        ports.step_begin(node.id)  # every path below logs exactly one step for it
        try:
            branch, state = _execute(node, state, event, ports, resumed)
        except _Stop as stop:
            steps.append(Step(node.id, node.type, started, (time.perf_counter() - started) * 1000, "wait"))
            return stop.state, steps
        except Exception as exc:  # a failing side effect fails the run, logged on its step
            error = f"{type(exc).__name__}: {exc}"
            steps.append(Step(node.id, node.type, started, (time.perf_counter() - started) * 1000, "", error))
            return replace(state, status=FAILED, error=error), steps
        steps.append(Step(node.id, node.type, started, (time.perf_counter() - started) * 1000, branch or ""))
        resumed = False
        walked += 1
        if state.status == FINISHED:
            return replace(state, node_id=None), steps
        node_id = _next(node, branch) if branch is not None else None
    return replace(state, node_id=None, status=FINISHED), steps
