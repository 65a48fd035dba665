"""The flow graph's JSON schema and the checks a graph must pass before it is published.

A graph is `{"nodes": [{"id", "type", "config": {...}, "next": {branch: node_id}}]}`. Exactly
one Trigger node is the entry. Waiting nodes (Quick Replies, Delay) are the only places where
a run stops until the customer answers or time passes, so they are the only nodes a cycle
may pass through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _

from apps.core.exceptions import ApplicationError
from apps.whatsapp import messages as wa

TRIGGER = "trigger"
SEND_MESSAGE = "send_message"
QUICK_REPLIES = "quick_replies"
AI_RESPONSE = "ai_response"
AGENT = "agent"
KNOWLEDGE_BASE = "knowledge_base"
CONDITION = "condition"
DELAY = "delay"
CONNECTOR = "connector"
ACTION = "action"
API_CALL = "api_call"
SMART_REPLY = "smart_reply"
HUMAN_HANDOFF = "human_handoff"

# The branches each node type may have; "default" is the plain next step.
BRANCHES: dict[str, frozenset[str]] = {
    TRIGGER: frozenset({"default"}),
    SEND_MESSAGE: frozenset({"default"}),
    QUICK_REPLIES: frozenset({"default", "invalid"}),  # plus one per option id
    AI_RESPONSE: frozenset({"default", "unavailable"}),
    AGENT: frozenset({"default", "handoff"}),
    KNOWLEDGE_BASE: frozenset({"answered", "no_answer"}),
    CONDITION: frozenset({"true", "false"}),
    DELAY: frozenset({"default"}),
    CONNECTOR: frozenset({"default"}),
    ACTION: frozenset({"default"}),
    API_CALL: frozenset({"success", "error"}),
    SMART_REPLY: frozenset({"matched", "unmatched"}),
    HUMAN_HANDOFF: frozenset(),
}
# Branches a node must have (a Condition without its "false" side is a dead end). A Knowledge
# Base node sends its answer itself, so the run may end after "answered"; "no_answer" needs a
# path, or the customer would be left without a reply.
REQUIRED_BRANCHES: dict[str, frozenset[str]] = {
    TRIGGER: frozenset({"default"}),
    CONDITION: frozenset({"true", "false"}),
    KNOWLEDGE_BASE: frozenset({"no_answer"}),
    API_CALL: frozenset({"success", "error"}),
}
NODE_TYPES = frozenset(BRANCHES)
WAITING_TYPES = frozenset({QUICK_REPLIES, DELAY})
TRIGGER_KINDS = ("keyword", "regex", "ad_referral", "first_message", "business_hours", "catch_all")
CONDITION_FIELDS = frozenset({"text", "intent", "sentiment", "language", "tag", "variable"})
CONDITION_OPS = frozenset({"contains", "regex", "equals", "not_equals", "gt", "lt"})
ACTIONS = frozenset({"tag", "set_field", "set_variable", "create_ticket", "close"})
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
TEMPLATE_WINDOW_SECONDS = 24 * 3600  # after 24 h of silence only templates may be sent (131047)
# One event (a message, a Delay's end) never walks more than this many nodes: the interpreter
# stops there, and publishing refuses a path between two waits that would reach it.
MAX_NODES_PER_EVENT = 20
_NODE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class FlowGraphInvalid(ApplicationError):
    code = "flow_graph_invalid"


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    config: dict[str, Any]
    next: dict[str, str]


@dataclass(frozen=True)
class Graph:
    nodes: dict[str, Node]
    entry: str

    def node(self, node_id: str) -> Node:
        return self.nodes[node_id]


def _fail(node_id: str, message: str) -> FlowGraphInvalid:
    return FlowGraphInvalid(
        _("Node %(node)s: %(problem)s") % {"node": node_id, "problem": message}, extra={"node": node_id}
    )


def graph_parse(data: Any) -> Graph:
    """Read the graph's structure (ids, types, links) without checking node settings."""
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list) or not data["nodes"]:
        raise FlowGraphInvalid(_("A flow graph is an object with a non-empty list of nodes."))
    nodes: dict[str, Node] = {}
    for raw in data["nodes"]:
        if not isinstance(raw, dict):
            raise FlowGraphInvalid(_("Each node is an object."))
        node_id = str(raw.get("id", ""))
        if not _NODE_ID.match(node_id):
            raise FlowGraphInvalid(_("Node id %(id)r is not valid.") % {"id": node_id}, extra={"node": node_id})
        if node_id in nodes:
            raise _fail(node_id, _("the id is used twice."))
        node_type = raw.get("type")
        if node_type not in NODE_TYPES:
            raise _fail(node_id, _("unknown node type %(type)r.") % {"type": node_type})
        config = raw.get("config") or {}
        links = raw.get("next") or {}
        if not isinstance(config, dict) or not isinstance(links, dict):
            raise _fail(node_id, _("config and next must be objects."))
        nodes[node_id] = Node(node_id, str(node_type), config, {str(k): str(v) for k, v in links.items()})
    triggers = [n.id for n in nodes.values() if n.type == TRIGGER]
    if len(triggers) != 1:
        raise FlowGraphInvalid(
            _("A flow has exactly one Trigger node, not %(count)d.") % {"count": len(triggers)},
            extra={"nodes": triggers},
        )
    return Graph(nodes=nodes, entry=triggers[0])


def _check_text(node: Node, key: str, limit: int, *, required: bool = True) -> str:
    value = node.config.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise _fail(node.id, _("%(field)s is required.") % {"field": key})
    if len(value) > limit:
        raise _fail(
            node.id,
            _("%(field)s is %(length)d characters; at most %(limit)d are allowed.")
            % {"field": key, "length": len(value), "limit": limit},
        )
    return value


def quick_reply_message(node: Node, body: str) -> wa.Outgoing:
    """Buttons for up to three options, else a list: the WhatsApp limits are the builders'."""
    options = node.config.get("options") or []
    if node.config.get("style") == "list" or len(options) > wa.BUTTONS_MAX:
        rows = [wa.Row(str(o.get("id", "")), str(o.get("title", "")), str(o.get("description", ""))) for o in options]
        button = str(node.config.get("button") or _("Choose"))
        return wa.list_message(body, button, [wa.Section("", rows)])
    return wa.buttons(body, [wa.Button(str(o.get("id", "")), str(o.get("title", ""))) for o in options])


def _check_translations(node: Node, key: str, limit: int) -> None:
    """`translations` is {language: {key: text}}: the same text in the customer's language."""
    translations = node.config.get("translations")
    if translations is None:
        return
    if not isinstance(translations, dict):
        raise _fail(node.id, _("translations must be an object keyed by language code."))
    for language, entry in translations.items():
        if not re.match(r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$", str(language)) or not isinstance(entry, dict):
            raise _fail(node.id, _("translation %(language)r is not valid.") % {"language": language})
        text = entry.get(key, "")
        if not isinstance(text, str):
            raise _fail(node.id, _("translation %(language)r is not valid.") % {"language": language})
        if len(text) > limit:
            raise _fail(
                node.id,
                _("the %(language)s text is %(length)d characters; at most %(limit)d are allowed.")
                % {"language": language, "length": len(text), "limit": limit},
            )


def _check_pattern(node: Node, pattern: Any) -> None:
    """A user's regular expression must compile; `re` raises more than `re.error` on some."""
    try:
        re.compile(str(pattern))
    except re.error as exc:
        raise _fail(node.id, _("the regular expression is not valid: %(error)s") % {"error": exc}) from exc
    except OverflowError as exc:  # "a{4294967296}"
        raise _fail(node.id, _("the regular expression repeats something too many times.")) from exc
    except RecursionError as exc:  # thousands of nested groups
        raise _fail(node.id, _("the regular expression is nested too deeply.")) from exc


def _check_patterns(node: Node) -> None:
    c = node.config
    if node.type == TRIGGER and c.get("kind") == "regex":
        _check_pattern(node, c.get("pattern", ""))
    elif node.type == CONDITION and isinstance(c.get("rules"), list):
        for rule in c["rules"]:
            if isinstance(rule, dict) and rule.get("op") == "regex":
                _check_pattern(node, rule.get("value", ""))
    elif node.type == ACTION and c.get("pattern"):
        _check_pattern(node, c["pattern"])


def graph_check_runnable(graph: Graph) -> None:
    """What the interpreter needs to walk even an unfinished draft: links to steps that exist, patterns that compile."""
    for node in graph.nodes.values():
        for branch, target in node.next.items():
            if target not in graph.nodes:
                raise _fail(
                    node.id,
                    _("branch %(branch)r leads to unknown node %(target)r.") % {"branch": branch, "target": target},
                )
        _check_patterns(node)


def _check_node(node: Node, graph: Graph) -> None:
    c = node.config
    try:
        if node.type == TRIGGER:
            kind = c.get("kind", "catch_all")
            if kind not in TRIGGER_KINDS:
                raise _fail(node.id, _("unknown trigger %(kind)r.") % {"kind": kind})
            if kind == "keyword" and not [k for k in c.get("keywords", []) if str(k).strip()]:
                raise _fail(node.id, _("a keyword trigger needs at least one keyword."))
        elif node.type == SEND_MESSAGE:
            if c.get("template"):
                template = c["template"]
                wa.template(str(template.get("name", "")), str(template.get("language", "")))
            else:
                wa.text(_check_text(node, "text", wa.TEXT_MAX))
                _check_translations(node, "text", wa.TEXT_MAX)
        elif node.type == QUICK_REPLIES:
            options = c.get("options")
            if not isinstance(options, list) or not options:
                raise _fail(node.id, _("quick replies need options."))
            quick_reply_message(node, _check_text(node, "text", wa.BODY_MAX))
            if int(c.get("max_retries", 2)) < 0:
                raise _fail(node.id, _("max_retries cannot be negative."))
        elif node.type == AI_RESPONSE:
            _check_text(node, "prompt", wa.TEXT_MAX)
        elif node.type == CONDITION:
            rules = c.get("rules")
            if not isinstance(rules, list) or not rules:
                raise _fail(node.id, _("a condition needs at least one rule."))
            if c.get("match", "all") not in ("all", "any"):
                raise _fail(node.id, _("match is all or any."))
            for rule in rules:
                if rule.get("field") not in CONDITION_FIELDS or rule.get("op", "equals") not in CONDITION_OPS:
                    raise _fail(node.id, _("rule %(rule)r is not valid.") % {"rule": rule})
        elif node.type == DELAY:
            seconds = c.get("seconds")
            if not isinstance(seconds, int) or seconds <= 0:
                raise _fail(node.id, _("a delay needs a positive number of seconds."))
            if seconds > TEMPLATE_WINDOW_SECONDS:
                following = graph.nodes.get(node.next.get("default", ""))
                if following is None or following.type != SEND_MESSAGE or not following.config.get("template"):
                    raise _fail(
                        node.id,
                        _("a delay longer than 24 hours must be followed by a template message (the window closes)."),
                    )
        elif node.type == ACTION:
            if c.get("action") not in ACTIONS:
                raise _fail(node.id, _("unknown action %(action)r.") % {"action": c.get("action")})
            if c["action"] in ("set_field", "set_variable") and not str(c.get("name", "")).strip():
                raise _fail(node.id, _("name is required."))
        elif node.type == API_CALL:
            if str(c.get("method", "GET")).upper() not in HTTP_METHODS:
                raise _fail(node.id, _("unsupported HTTP method."))
            url = _check_text(node, "url", 2000)
            if not url.startswith(("https://", "http://")):
                raise _fail(node.id, _("the URL must start with http:// or https://."))
        elif node.type == SMART_REPLY:
            if not isinstance(c.get("replies"), list) or not c["replies"]:
                raise _fail(node.id, _("a smart reply needs replies."))
            for reply in c["replies"]:
                wa.text(str(reply.get("text", "")))
        elif node.type == HUMAN_HANDOFF and c.get("text"):
            wa.text(str(c["text"]))
            _check_translations(node, "text", wa.TEXT_MAX)
        _check_patterns(node)  # the trigger's, the condition rules' and the action's patterns
    except wa.MessageInvalid as exc:
        raise _fail(node.id, exc.message) from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise _fail(node.id, _("the settings are malformed.")) from exc


def _allowed_branches(node: Node) -> frozenset[str]:
    if node.type == QUICK_REPLIES:
        return BRANCHES[QUICK_REPLIES] | {str(o.get("id")) for o in node.config.get("options", [])}
    return BRANCHES[node.type]


def _check_links(node: Node, graph: Graph) -> None:
    for branch, target in node.next.items():
        if branch not in _allowed_branches(node):
            raise _fail(node.id, _("%(type)s has no branch %(branch)r.") % {"type": node.type, "branch": branch})
        if target not in graph.nodes:
            raise _fail(
                node.id,
                _("branch %(branch)r leads to unknown node %(target)r.") % {"branch": branch, "target": target},
            )
        if target == graph.entry:
            raise _fail(node.id, _("no branch may lead back to the Trigger."))
    missing: set[str] = set(REQUIRED_BRANCHES.get(node.type, frozenset())) - set(node.next)
    if node.type == QUICK_REPLIES and "default" not in node.next:
        # Without a default, every option needs a branch of its own.
        missing = {str(o.get("id")) for o in node.config["options"]} - set(node.next)
    if missing:
        raise _fail(node.id, _("missing branch(es): %(branches)s.") % {"branches": ", ".join(sorted(missing))})


def _unreachable(graph: Graph) -> list[str]:
    reachable = {graph.entry}
    stack = [graph.entry]
    while stack:
        for target in graph.nodes[stack.pop()].next.values():
            if target in graph.nodes and target not in reachable:
                reachable.add(target)
                stack.append(target)
    return [node_id for node_id in graph.nodes if node_id not in reachable]


def graph_validate(data: Any) -> Graph:
    """Parse and check a graph for publication; the error names the first node at fault."""
    graph = graph_parse(data)
    for node in graph.nodes.values():
        _check_node(node, graph)
        _check_links(node, graph)
    for node_id in _unreachable(graph):
        raise _fail(node_id, _("no path from the Trigger reaches this node."))
    _check_cycles(graph)
    _check_walk_length(graph)
    return graph


def graph_problems(data: Any) -> list[FlowGraphInvalid]:
    """Every reason `graph_validate` would refuse the graph, at most one per node (for the builder)."""
    try:
        graph = graph_parse(data)
    except FlowGraphInvalid as exc:
        return [exc]
    problems: dict[str, FlowGraphInvalid] = {}
    for node in graph.nodes.values():
        try:
            _check_node(node, graph)
            _check_links(node, graph)
        except FlowGraphInvalid as exc:
            problems[node.id] = exc
    for node_id in _unreachable(graph):
        problems.setdefault(node_id, _fail(node_id, _("no path from the Trigger reaches this node.")))
    if not problems:
        try:
            _check_cycles(graph)
            _check_walk_length(graph)
        except FlowGraphInvalid as exc:
            return [exc]
    return list(problems.values())


def _check_cycles(graph: Graph) -> None:
    """Every cycle must pass through a waiting node, else one message could loop forever."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph.nodes, white)

    def visit(node_id: str) -> None:
        colour[node_id] = grey
        for target in graph.nodes[node_id].next.values():
            if graph.nodes[target].type in WAITING_TYPES:
                continue  # the run stops here: a loop through it costs one message per turn
            if colour[target] == grey:
                raise _fail(target, _("this node is in a loop with no Quick Replies or Delay to wait on."))
            if colour[target] == white:
                visit(target)
        colour[node_id] = black

    for node_id in graph.nodes:
        if colour[node_id] == white:
            visit(node_id)


def _check_walk_length(graph: Graph) -> None:
    """No event may walk more than MAX_NODES_PER_EVENT nodes: from the Trigger or a wait, to the next wait or the end.

    Runs after `_check_cycles`, so between waits the graph has no cycle and the longest
    stretch is found by one memoised walk. The error names the first node out of reach.
    """
    # node → (nodes one event runs from it, itself included, up to the next wait or the end; the next node on that path)
    longest: dict[str, tuple[int, str | None]] = {}

    def length(node_id: str) -> int:
        if node_id not in longest:
            best, via = 0, None
            for target in graph.nodes[node_id].next.values():
                walked = 1 if graph.nodes[target].type in WAITING_TYPES else length(target)
                if walked > best:
                    best, via = walked, target
            longest[node_id] = (1 + best, via)
        return longest[node_id][0]

    starts = [graph.entry, *(n.id for n in graph.nodes.values() if n.type in WAITING_TYPES)]
    for start in starts:
        if length(start) <= MAX_NODES_PER_EVENT:
            continue
        beyond: str | None = start
        for _step in range(MAX_NODES_PER_EVENT):
            beyond = longest[beyond][1] if beyond is not None else None
        raise _fail(
            beyond or start,
            _(
                "one message would run more than %(limit)d steps in a row to get here (%(limit)d is the most one "
                "message may run); add a Quick Replies or Delay on the way, or shorten the path."
            )
            % {"limit": MAX_NODES_PER_EVENT},
        )
