"""The flow interpreter's overhead per inbound message, with fake ports (no I/O).

    python -m benchmarks.flow_engine [--messages N]

Times `engine.run` for one message through a 10-node flow (Trigger, set variable,
Condition, Send Message, Smart Reply, Connector, tag Action, Knowledge Base, Send Message,
Quick Replies, where it stops to wait), alone and with the graph parsed from JSON first
(the live path parses the pinned version on each message). The baseline, measured in the
same run, is the bare dispatch of one no-op node (Trigger → Connector). Target: p50 ≤ 5 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imaradesk.settings.base")
os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("LOG_LEVEL", "WARNING")
django.setup()

from apps.flows import engine  # noqa: E402
from apps.flows import graph as g  # noqa: E402
from apps.flows.tests.fakes import FakePorts, graph_of, node  # noqa: E402

TARGET_P50_MS = 5.0
OPTIONS = [{"id": "a", "title": "Orders"}, {"id": "b", "title": "Billing"}, {"id": "c", "title": "Other"}]
TEN_NODES = graph_of(
    node("v", "action", {"default": "c"}, action="set_variable", name="plan", value="gold"),
    node(
        "c",
        "condition",
        {"true": "s", "false": "s"},
        match="any",
        rules=[
            {"field": "text", "op": "contains", "value": "order"},
            {"field": "variable", "name": "plan", "op": "equals", "value": "gold"},
        ],
    ),
    node("s", "send_message", {"default": "sr"}, text="Hi {{plan}} customer, you said {{last_message}}"),
    node("sr", "smart_reply", {"matched": "j", "unmatched": "j"}, replies=[{"keywords": ["order"], "text": "On it"}]),
    node("j", "connector", {"default": "t"}),
    node("t", "action", {"default": "kb"}, action="tag", value="lead"),
    node("kb", "knowledge_base", {"answered": "s2", "no_answer": "s2"}),
    node("s2", "send_message", {"default": "q"}, text="Anything else?"),
    node("q", "quick_replies", {"default": "s"}, text="Choose", options=OPTIONS),
)
BASELINE = graph_of(node("noop", "connector"))


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _measure(fn: Callable[[], object], n: int) -> list[float]:
    for _ in range(min(200, n)):
        fn()  # warm up
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    args = parser.parse_args()
    ports = FakePorts(record=False)
    event = engine.Event(kind="message", now=datetime.now(UTC), text="where is my order", intent="order_status")
    ten, base = g.graph_validate(TEN_NODES), g.graph_validate(BASELINE)
    state, steps = engine.run(ten, engine.state_start(ten), event, ports)
    assert state.status == engine.WAITING and len(steps) == 10, (state, len(steps))

    def run_ten() -> object:
        return engine.run(ten, engine.state_start(ten), event, ports)

    def run_ten_parsed() -> object:
        graph = g.graph_parse(TEN_NODES)
        return engine.run(graph, engine.state_start(graph), event, ports)

    def run_base() -> object:
        return engine.run(base, engine.state_start(base), event, ports)

    rows = [
        ("baseline: 1 no-op node", _measure(run_base, args.messages)),
        ("10-node flow", _measure(run_ten, args.messages)),
        ("10-node flow + graph parse", _measure(run_ten_parsed, args.messages)),
    ]
    print(f"{args.messages} messages each, fake ports, times in ms")
    for label, samples in rows:
        p50, p99 = _percentiles(samples)
        print(f"  {label:28s} p50 {p50:.4f}  p99 {p99:.4f}")
    p50 = _percentiles(rows[2][1])[0]
    print(f"target p50 <= {TARGET_P50_MS} ms: {'met' if p50 <= TARGET_P50_MS else 'MISSED'}")


if __name__ == "__main__":
    main()
