"""Publish-time validation: each problem is refused with a message naming the node."""

from __future__ import annotations

from typing import Any

import pytest

from apps.flows import graph as g
from apps.flows.tests.fakes import graph_of, node


def refused(data: Any, *needles: str) -> g.FlowGraphInvalid:
    with pytest.raises(g.FlowGraphInvalid) as info:
        g.graph_validate(data)
    for needle in needles:
        assert needle in info.value.message, info.value.message
    return info.value


def test_a_valid_graph_passes() -> None:
    graph = g.graph_validate(graph_of(node("hi", "send_message", text="Hello")))
    assert graph.entry == "start" and set(graph.nodes) == {"start", "hi"}


def test_structure() -> None:
    refused({"nodes": []}, "non-empty")
    refused({"nodes": [node("a", "send_message", text="x")]}, "exactly one Trigger")
    refused(graph_of(node("a", "teleport")), "Node a", "unknown node type")
    refused(graph_of(node("a", "send_message", text="x"), node("a", "send_message", text="y")), "used twice")
    refused(graph_of(node("a", "send_message", {"default": "ghost"}, text="x")), "Node a", "unknown node 'ghost'")
    refused(graph_of(node("a", "send_message", {"yes": "a"}, text="x")), "Node a", "no branch 'yes'")


def test_unreachable_nodes_are_named() -> None:
    error = refused(graph_of(node("a", "send_message", text="x"), node("island", "send_message", text="y")), "island")
    assert error.extra == {"node": "island"}


def test_missing_branches() -> None:
    refused(
        graph_of(
            node("c", "condition", {"true": "y"}, rules=[{"field": "text", "op": "contains", "value": "a"}]),
            node("y", "send_message", text="y"),
        ),
        "Node c",
        "false",
    )
    refused(graph_of(node("kb", "knowledge_base", {"answered": "y"}), node("y", "connector")), "no_answer")
    refused(
        graph_of(node("api", "api_call", {"success": "y"}, url="https://x.example"), node("y", "connector")), "error"
    )
    options = [{"id": "a", "title": "A"}, {"id": "b", "title": "B"}]
    refused(
        graph_of(node("q", "quick_replies", {"a": "y"}, text="?", options=options), node("y", "connector")),
        "Node q",
        "b",
    )
    refused({"nodes": [node("start", "trigger")]}, "default")


def test_whatsapp_limits() -> None:
    refused(graph_of(node("t", "send_message", text="x" * 4097)), "Node t", "4096")
    four = [{"id": str(i), "title": f"T{i}"} for i in range(4)]
    refused(
        graph_of(
            node(
                "q",
                "quick_replies",
                {"default": "y"},
                text="?",
                style="buttons",
                options=[{"id": "a", "title": "x" * 21}],
            ),
            node("y", "connector"),
        ),
        "Node q",
        "20",
    )
    g.graph_validate(
        graph_of(node("q", "quick_replies", {"default": "y"}, text="?", options=four), node("y", "connector"))
    )  # four options: a list
    eleven = [{"id": str(i), "title": f"T{i}"} for i in range(11)]
    refused(
        graph_of(node("q", "quick_replies", {"default": "y"}, text="?", options=eleven), node("y", "connector")),
        "Node q",
        "10",
    )
    long_row = [{"id": "a", "title": "x" * 25}, *four]
    refused(
        graph_of(node("q", "quick_replies", {"default": "y"}, text="?", options=long_row), node("y", "connector")), "24"
    )
    long_desc = [{"id": "a", "title": "A", "description": "d" * 73}, *four]
    refused(
        graph_of(node("q", "quick_replies", {"default": "y"}, text="?", options=long_desc), node("y", "connector")),
        "72",
    )


def test_a_long_delay_must_be_followed_by_a_template() -> None:
    day = 24 * 3600
    refused(
        graph_of(node("d", "delay", {"default": "t"}, seconds=day + 1), node("t", "send_message", text="Hi")),
        "Node d",
        "template",
    )
    g.graph_validate(graph_of(node("d", "delay", {"default": "t"}, seconds=day), node("t", "send_message", text="Hi")))
    g.graph_validate(
        graph_of(
            node("d", "delay", {"default": "t"}, seconds=3 * day),
            node("t", "send_message", template={"name": "follow_up", "language": "en"}),
        )
    )


def test_loops_must_pass_through_a_waiting_node() -> None:
    refused(
        graph_of(node("a", "send_message", {"default": "b"}, text="x"), node("b", "connector", {"default": "a"})),
        "loop",
    )
    g.graph_validate(
        graph_of(
            node("a", "send_message", {"default": "w"}, text="x"), node("w", "delay", {"default": "a"}, seconds=60)
        )
    )


def test_node_settings() -> None:
    refused(
        graph_of(
            node("c", "condition", {"true": "y", "false": "y"}, rules=[{"field": "mood", "op": "equals"}]),
            node("y", "connector"),
        ),
        "Node c",
    )
    refused(
        graph_of(
            node("c", "condition", {"true": "y", "false": "y"}, rules=[{"field": "text", "op": "regex", "value": "("}]),
            node("y", "connector"),
        ),
        "regular expression",
    )
    refused(graph_of(node("d", "delay", {"default": "y"}, seconds=0), node("y", "connector")), "positive")
    refused(graph_of(node("a", "action", action="explode")), "unknown action")
    refused(
        graph_of(node("api", "api_call", {"success": "y", "error": "y"}, url="ftp://x"), node("y", "connector")), "http"
    )
    refused(graph_of(node("a", "ai_response", {"default": "y"}), node("y", "connector")), "prompt")
    refused(
        {"nodes": [node("start", "trigger", {"default": "y"}, kind="keyword", keywords=[]), node("y", "connector")]},
        "keyword",
    )


def test_knowledge_base_may_end_after_its_answer_and_translations_are_checked() -> None:
    g.graph_validate(graph_of(node("kb", "knowledge_base", {"no_answer": "y"}), node("y", "human_handoff")))
    refused(graph_of(node("s", "send_message", text="hi", translations={"sw": {"text": "x" * 5000}})), "Node s", "sw")
    refused(graph_of(node("s", "send_message", text="hi", translations=["sw"])), "Node s", "translations")
    refused(graph_of(node("a", "action", action="set_variable", name="n", pattern="(")), "Node a", "regular expression")
    refused(graph_of(node("a", "action", action="set_field", value="x")), "Node a", "name")


def test_the_longest_branch_between_waits_decides_the_walk_length() -> None:
    def tags(prefix: str, count: int, then: str) -> list[dict[str, Any]]:
        return [
            node(f"{prefix}{i}", "action", {"default": f"{prefix}{i + 1}" if i + 1 < count else then}, action="tag")
            for i in range(count)
        ]

    rule = [{"field": "text", "op": "contains", "value": "x"}]
    # Trigger, the condition, 17 tags on the long side, then a Quick Replies: 20 nodes for one message.
    ok = graph_of(
        node("if", "condition", {"true": "s0", "false": "l0"}, rules=rule),
        *tags("s", 2, "menu"),
        *tags("l", 17, "menu"),
        node("menu", "quick_replies", {"default": "bye"}, text="More?", options=[{"id": "y", "title": "Yes"}]),
        node("bye", "send_message", text="Bye"),
    )
    g.graph_validate(ok)
    long_side = graph_of(
        node("if", "condition", {"true": "s0", "false": "l0"}, rules=rule),
        *tags("s", 2, "menu"),
        *tags("l", 18, "menu"),
        node("menu", "quick_replies", {"default": "bye"}, text="More?", options=[{"id": "y", "title": "Yes"}]),
        node("bye", "send_message", text="Bye"),
    )
    error = refused(long_side, "more than 20 steps")
    assert error.extra["node"] == "menu"  # the wait itself is the 21st node the message would run
    assert [p.extra["node"] for p in g.graph_problems(long_side)] == ["menu"]
