"""The pure interpreter, node by node, with fake ports (no database, no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from apps.flows import engine
from apps.flows import graph as g
from apps.flows.engine import Event, State
from apps.flows.ports import HttpResponse, KnowledgeReply, PortError
from apps.flows.tests.fakes import FakePorts, graph_of, node

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def go(data: dict[str, Any], ports: FakePorts, *events: Event, state: State | None = None) -> State:
    graph = g.graph_validate(data)
    state = state or engine.state_start(graph)
    for event in events:
        state, _steps = engine.run(graph, state, event, ports)
    return state


def msg(text: str = "hello", **kwargs: Any) -> Event:
    return Event(kind="message", now=NOW, text=text, **kwargs)


def test_send_message_substitutes_variables_and_finishes() -> None:
    ports = FakePorts()
    data = graph_of(
        node("set", "action", {"default": "say"}, action="set_variable", name="who", value="Amina"),
        node("say", "send_message", text="Hello {{who}}, you said {{last_message}}{{missing}}."),
    )
    state = go(data, ports, msg("hi"))
    assert ports.calls == [("text", "Hello Amina, you said hi.")]
    assert state.status == engine.FINISHED and state.node_id is None


def test_template_send() -> None:
    ports = FakePorts()
    data = graph_of(
        node("t", "send_message", template={"name": "order_update", "language": "en", "params": ["{{last_message}}"]})
    )
    go(data, ports, msg("42"))
    assert ports.calls == [("template", ("order_update", "en", ["42"]))]


def _menu(**extra: Any) -> dict[str, Any]:
    options = [{"id": "sales", "title": "Sales"}, {"id": "help", "title": "Support"}]
    return graph_of(
        node(
            "menu", "quick_replies", {"sales": "s", "help": "h", "invalid": "x"}, text="Pick", options=options, **extra
        ),
        node("s", "send_message", text="Sales it is ({{choice}})"),
        node("h", "send_message", text="Support"),
        node("x", "human_handoff", reason="could not choose"),
    )


def test_quick_replies_wait_for_the_choice() -> None:
    ports = FakePorts()
    data = _menu(variable="choice")
    graph = g.graph_validate(data)
    state, steps = engine.run(graph, engine.state_start(graph), msg(), ports)
    assert state.status == engine.WAITING and state.node_id == "menu"
    assert ports.calls == [("buttons", ("Pick", ["sales", "help"]))]
    assert [s.branch for s in steps] == ["default", "wait"]
    state, _ = engine.run(graph, state, msg("Sales", choice_id="sales"), ports)
    assert ports.calls[-1] == ("text", "Sales it is (sales)")
    assert state.status == engine.FINISHED


def test_quick_replies_accept_a_typed_title_or_number() -> None:
    ports = FakePorts()
    state = go(_menu(), ports, msg(), msg("2"))
    assert ports.calls[-1] == ("text", "Support")
    assert state.status == engine.FINISHED


def test_quick_replies_reprompt_then_take_the_invalid_branch() -> None:
    ports = FakePorts()
    state = go(_menu(max_retries=2, invalid_text="Please tap a button"), ports, msg(), msg("what?"), msg("eh"))
    assert ports.kinds() == ["buttons", "buttons", "buttons"]
    assert ports.calls[1] == ("buttons", ("Please tap a button", ["sales", "help"]))
    assert state.status == engine.WAITING and state.retries == 2
    state = go(_menu(max_retries=2), ports, msg("no"), state=state)
    assert ports.calls[-1] == ("handoff", "could not choose")
    assert state.status == engine.FINISHED


def test_more_than_three_options_become_a_list() -> None:
    ports = FakePorts()
    options = [{"id": f"o{i}", "title": f"Option {i}"} for i in range(5)]
    go(
        graph_of(
            node("menu", "quick_replies", {"default": "end"}, text="Pick", options=options),
            node("end", "send_message", text="ok"),
        ),
        ports,
        msg(),
    )
    assert ports.calls == [("list", ("Pick", [f"o{i}" for i in range(5)]))]


def test_ai_response_and_its_unavailable_branch() -> None:
    data = graph_of(
        node(
            "ai",
            "ai_response",
            {"default": "end", "unavailable": "sorry"},
            prompt="Answer: {{last_message}}",
            variable="answer",
        ),
        node("end", "send_message", text="({{answer}})"),
        node("sorry", "send_message", text="Offline"),
    )
    ports = FakePorts()
    go(data, ports, msg("why?"))
    assert ports.calls == [
        ("generate", "Answer: why?"),
        ("text", "A generated answer."),
        ("text", "(A generated answer.)"),
    ]
    offline = FakePorts(generated=None)
    go(data, offline, msg("why?"))
    assert offline.calls[-1] == ("text", "Offline")


def test_knowledge_base_answers_or_branches() -> None:
    data = graph_of(
        node("kb", "knowledge_base", {"answered": "done", "no_answer": "people"}),
        node("done", "connector", {"default": "bye"}),
        node("bye", "send_message", text="Anything else?"),
        node("people", "human_handoff", text="Connecting you", reason="no answer"),
    )
    ports = FakePorts()
    go(data, ports, msg("hours?"))
    assert ports.calls == [
        ("knowledge", "hours?"),
        ("text", "Opening hours are 8 to 5.\n\nSource: Hours"),
        ("text", "Anything else?"),
    ]
    none = FakePorts(knowledge=KnowledgeReply("I don't know", True))
    go(data, none, msg("hours?"))
    assert none.kinds() == ["knowledge", "text", "handoff"]


def test_agent_answers_generates_or_hands_off() -> None:
    data = graph_of(node("agent", "agent", {"handoff": "t"}), node("t", "action", action="create_ticket", value="x"))
    ports = FakePorts()
    go(data, ports, msg("q"))
    assert ports.kinds() == ["knowledge", "text"]
    gen = FakePorts(knowledge=KnowledgeReply("no", True))
    go(data, gen, msg("q"))
    assert gen.kinds() == ["knowledge", "generate", "text"]
    off = FakePorts(knowledge=KnowledgeReply("no", True), generated=None)
    state = go(data, off, msg("q"))
    assert off.kinds() == ["knowledge", "generate", "text", "handoff"]
    assert state.status == engine.FINISHED


@pytest.mark.parametrize(
    ("rules", "match", "event", "expected"),
    [
        ([{"field": "text", "op": "contains", "value": "refund"}], "all", msg("I want a REFUND"), True),
        ([{"field": "text", "op": "regex", "value": r"order\s*#?\d+"}], "all", msg("order #123"), True),
        ([{"field": "text", "op": "equals", "value": "yes"}], "all", msg("Yes"), True),
        ([{"field": "text", "op": "not_equals", "value": "yes"}], "all", msg("Yes"), False),
        ([{"field": "intent", "op": "equals", "value": "complaint"}], "all", msg(intent="complaint"), True),
        ([{"field": "sentiment", "op": "lt", "value": "-0.3"}], "all", msg(sentiment=-0.8), True),
        ([{"field": "sentiment", "op": "gt", "value": "0"}], "all", msg(), False),  # no sentiment yet
        ([{"field": "language", "op": "equals", "value": "sw"}], "all", msg(language="sw"), True),
        ([{"field": "tag", "op": "equals", "value": "VIP"}], "all", msg(tags=("vip",)), True),
        ([{"field": "tag", "op": "not_equals", "value": "vip"}], "all", msg(tags=("vip",)), False),
        ([{"field": "variable", "name": "plan", "op": "equals", "value": "gold"}], "all", msg(), True),
        (
            [{"field": "language", "op": "equals", "value": "fr"}, {"field": "text", "op": "contains", "value": "hi"}],
            "all",
            msg("hi"),
            False,
        ),
        (
            [{"field": "language", "op": "equals", "value": "fr"}, {"field": "text", "op": "contains", "value": "hi"}],
            "any",
            msg("hi"),
            True,
        ),
    ],
)
def test_condition_rules(rules: list[dict[str, Any]], match: str, event: Event, expected: bool) -> None:
    ports = FakePorts()
    data = graph_of(
        node("plan", "action", {"default": "c"}, action="set_variable", name="plan", value="gold"),
        node("c", "condition", {"true": "y", "false": "n"}, rules=rules, match=match),
        node("y", "send_message", text="yes"),
        node("n", "send_message", text="no"),
    )
    go(data, ports, event)
    assert ports.calls == [("text", "yes" if expected else "no")]


def test_delay_schedules_a_resume_and_ignores_messages_meanwhile() -> None:
    ports = FakePorts()
    data = graph_of(
        node("wait", "delay", {"default": "after"}, seconds=600), node("after", "send_message", text="Back")
    )
    graph = g.graph_validate(data)
    state, _ = engine.run(graph, engine.state_start(graph), msg(), ports)
    assert ports.calls == [("resume_in", 600)]
    assert state.status == engine.WAITING and state.wait_until == NOW + timedelta(seconds=600)
    state, steps = engine.run(graph, state, msg("still there?"), ports)
    assert steps == [] and state.status == engine.WAITING
    state, _ = engine.run(graph, state, Event(kind="resume", now=NOW + timedelta(seconds=600)), ports)
    assert ports.calls[-1] == ("text", "Back") and state.status == engine.FINISHED


def test_actions_tag_field_ticket_close() -> None:
    ports = FakePorts()
    data = graph_of(
        node("a", "action", {"default": "b"}, action="tag", value="lead"),
        node("b", "action", {"default": "c"}, action="set_field", name="city", value="{{last_message}}"),
        node("c", "action", {"default": "d"}, action="create_ticket", value="Call back"),
        node("d", "action", {"default": "e"}, action="close"),
        node("e", "send_message", text="never sent"),
    )
    state = go(data, ports, msg("Nairobi"))
    assert ports.calls == [("tag", "lead"), ("field", ("city", "Nairobi")), ("ticket", "Call back"), ("close", None)]
    assert state.status == engine.FINISHED


def test_api_call_success_stores_the_body_and_error_branches() -> None:
    data = graph_of(
        node(
            "api",
            "api_call",
            {"success": "ok", "error": "bad"},
            method="POST",
            url="https://shop.example/orders/{{last_message}}",
            body='{"q": "{{last_message}}"}',
            variable="order",
        ),
        node("ok", "send_message", text="Your order is {{order.status}}"),
        node("bad", "send_message", text="Try later ({{api_error}})"),
    )
    ports = FakePorts()
    go(data, ports, msg("42"))
    assert ports.calls == [
        ("http", ("POST", "https://shop.example/orders/42", '{"q": "42"}')),
        ("text", "Your order is shipped"),
    ]
    failing = FakePorts(http=PortError("refused"))
    go(data, failing, msg("42"))
    assert failing.calls[-1] == ("text", "Try later (refused)")
    server_error = FakePorts(http=HttpResponse(503, "busy"))
    go(data, server_error, msg("42"))
    assert server_error.calls[-1] == ("text", "Try later ()")


def test_smart_reply_by_intent_or_keyword() -> None:
    data = graph_of(
        node(
            "sr",
            "smart_reply",
            {"matched": "end", "unmatched": "kb"},
            replies=[{"intents": ["pricing"], "text": "Plans start at 10 USD"}, {"keywords": ["hours"], "text": "8-5"}],
        ),
        node("kb", "knowledge_base", {"answered": "end", "no_answer": "end"}),
        node("end", "connector"),
    )
    ports = FakePorts()
    go(data, ports, msg("how much", intent="pricing"))
    assert ports.calls == [("text", "Plans start at 10 USD")]
    ports = FakePorts()
    go(data, ports, msg("your hours?"))
    assert ports.calls == [("text", "8-5")]
    ports = FakePorts()
    go(data, ports, msg("other"))
    assert ports.kinds()[0] == "knowledge"


def test_human_handoff_ends_the_run() -> None:
    ports = FakePorts()
    state = go(graph_of(node("h", "human_handoff", text="An agent will reply", reason="asked")), ports, msg())
    assert ports.calls == [("text", "An agent will reply"), ("handoff", "asked")]
    assert state.status == engine.FINISHED


def test_a_failing_port_fails_the_run_with_the_error_on_its_step() -> None:
    class Broken(FakePorts):
        def tag(self, tag: str) -> None:
            raise RuntimeError("database down")

    data = graph_of(node("a", "action", {"default": "b"}, action="tag", value="x"), node("b", "connector"))
    graph = g.graph_validate(data)
    state, steps = engine.run(graph, engine.state_start(graph), msg(), Broken())
    assert state.status == engine.FAILED and "database down" in state.error
    assert steps[-1].node_id == "a" and "database down" in steps[-1].error


def test_the_ports_hear_of_each_step_before_its_effects() -> None:
    """`step_begin` is called once per logged step, whatever ends it: the live ports tie effects to steps."""

    class Broken(FakePorts):
        def tag(self, tag: str) -> None:
            raise RuntimeError("database down")

    options = [{"id": "a", "title": "A"}]
    data = graph_of(
        node("menu", "quick_replies", {"a": "say"}, text="Pick", options=options),
        node("say", "send_message", {"default": "tag"}, text="Noted"),
        node("tag", "action", {"default": "end"}, action="tag", value="x"),
        node("end", "send_message", text="Done"),
    )
    graph = g.graph_validate(data)
    ports = Broken()
    state, steps = engine.run(graph, engine.state_start(graph), msg(), ports)
    assert ports.begun == [s.node_id for s in steps] == ["start", "menu"]  # a wait ends a step too
    ports.begun.clear()
    state, steps = engine.run(graph, state, msg(choice_id="a"), ports)
    assert state.status == engine.FAILED  # so does a failure
    assert ports.begun == [s.node_id for s in steps] == ["menu", "say", "tag"]


def test_a_loop_through_quick_replies_costs_one_turn_per_message() -> None:
    options = [{"id": "again", "title": "Again"}, {"id": "stop", "title": "Stop"}]
    data = graph_of(
        node("menu", "quick_replies", {"again": "say", "stop": "bye"}, text="Again?", options=options),
        node("say", "send_message", {"default": "menu"}, text="Here you go"),
        node("bye", "send_message", text="Bye"),
    )
    ports = FakePorts()
    state = go(data, ports, msg(), msg(choice_id="again"), msg(choice_id="again"), msg(choice_id="stop"))
    assert ports.kinds() == ["buttons", "text", "buttons", "text", "buttons", "text"]
    assert state.status == engine.FINISHED


def test_the_per_message_node_limit_stops_a_long_chain() -> None:
    chain = [node(f"n{i}", "connector", {"default": f"n{i + 1}"}) for i in range(30)]
    data = graph_of(*chain, node("n30", "send_message", text="end"))
    with pytest.raises(g.FlowGraphInvalid, match="Node n19: one message would run more than 20 steps"):
        g.graph_validate(data)  # publishing refuses it; a version published before that check still stops
    ports = FakePorts()
    graph = g.graph_parse(data)
    state, _steps = engine.run(graph, engine.state_start(graph), msg(), ports)
    assert state.status == engine.FAILED and "nodes per message" in state.error
    assert ports.calls == []


def test_the_run_budget_stops_an_endless_menu() -> None:
    options = [{"id": "again", "title": "Again"}]
    data = graph_of(
        node("menu", "quick_replies", {"again": "say"}, text="Again?", options=options),
        node("say", "send_message", {"default": "menu"}, text="x"),
    )
    graph = g.graph_validate(data)
    state = engine.state_start(graph)
    ports = FakePorts(record=False)
    for _ in range(engine.MAX_STEPS_PER_RUN):
        state, _ = engine.run(graph, state, msg(choice_id="again"), ports)
        if state.status == engine.FAILED:
            break
    assert state.status == engine.FAILED and "steps per run" in state.error


def test_finished_runs_ignore_further_events() -> None:
    ports = FakePorts()
    data = graph_of(node("say", "send_message", text="once"))
    state = go(data, ports, msg(), msg())
    assert ports.calls == [("text", "once")] and state.status == engine.FINISHED


# --- triggers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "event", "expected"),
    [
        ({"kind": "keyword", "keywords": ["menu", "price list"]}, msg("Show MENU please"), True),
        ({"kind": "keyword", "keywords": ["menu"]}, msg("menus"), False),
        ({"kind": "keyword", "keywords": ["price list"]}, msg("your price list?"), True),
        ({"kind": "regex", "pattern": r"^order\s+\d+$"}, msg("Order 12"), True),
        ({"kind": "first_message"}, msg(first_message=True), True),
        ({"kind": "first_message"}, msg(), False),
        ({"kind": "ad_referral"}, msg(referral=True), True),
        ({"kind": "business_hours", "when": "outside"}, msg(business_hours=False), True),
        ({"kind": "business_hours", "when": "inside"}, msg(business_hours=False), False),
        ({"kind": "catch_all"}, msg("anything"), True),
    ],
)
def test_trigger_matching(trigger: dict[str, Any], event: Event, expected: bool) -> None:
    assert engine.trigger_matches(trigger, event) is expected


def test_trigger_order_keywords_first_then_priority() -> None:
    flows: list[tuple[dict[str, Any], int, int]] = [
        ({"kind": "catch_all"}, 100, 1),
        ({"kind": "first_message"}, 0, 2),
        ({"kind": "keyword", "keywords": ["x"]}, 0, 3),
        ({"kind": "regex", "pattern": "x"}, 5, 4),
    ]
    ordered = sorted(flows, key=lambda f: engine.trigger_sort_key(*f))
    assert [f[2] for f in ordered] == [4, 3, 2, 1]


def test_texts_follow_the_customers_language_and_empty_variables_leave_no_gap() -> None:
    data = graph_of(
        node(
            "hi",
            "send_message",
            {"default": "bye"},
            text="Hello {{contact.first_name}}!",
            translations={"sw": {"text": "Habari {{contact.first_name}}!"}, "fr": {"text": ""}},
        ),
        node("bye", "human_handoff", text="A person will help", translations={"sw": {"text": "Mtu atakusaidia"}}),
    )
    graph = g.graph_validate(data)
    for language, expected in (("sw", ["Habari!", "Mtu atakusaidia"]), ("fr", ["Hello!", "A person will help"])):
        ports = FakePorts()
        engine.run(graph, engine.state_start(graph), msg(reply_language=language), ports)
        assert [value for kind, value in ports.calls if kind == "text"] == expected
    named = FakePorts()
    engine.run(
        graph, engine.state_start(graph, {"contact": {"first_name": "Wanjiru"}}), msg(reply_language="sw-KE"), named
    )
    assert named.calls[0] == ("text", "Habari Wanjiru!")


def test_quick_replies_keep_the_title_and_set_variable_extracts_a_pattern() -> None:
    ports = FakePorts()
    options = [{"id": "repair", "title": "Phone repair"}, {"id": "other", "title": "Other"}]
    data = graph_of(
        node("pick", "quick_replies", {"default": "number"}, text="Which?", options=options, variable="service"),
        node(
            "number",
            "quick_replies",
            {"invalid": "keep", "none": "say"},
            text="Order number?",
            options=[{"id": "none", "title": "None"}],
            max_retries=0,
        ),
        node(
            "keep",
            "action",
            {"default": "say"},
            action="set_variable",
            name="order",
            value="{{last_message}}",
            pattern=r"DB-\d+",
        ),
        node("say", "send_message", text="{{service}} / {{service_title}} / {{order}}"),
    )
    state = go(data, ports, msg("menu"), msg("Phone repair"), msg("it is db-10234 thanks"))
    assert state.status == engine.FINISHED
    assert ports.calls[-1] == ("text", "repair / Phone repair / db-10234")
