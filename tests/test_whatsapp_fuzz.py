"""Malformed input never crashes the parser or the endpoint: a 2xx/4xx and a recorded error, never a 500."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from apps.tenants.models import WebhookEvent
from apps.whatsapp.payloads import PayloadInvalid, parse_message, parse_status, webhook_items
from apps.whatsapp.payloads.templates import parse_template_category, parse_template_status
from apps.whatsapp.webhooks import sign
from tests import whatsapp_payloads as wp

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.text(st.characters(exclude_categories=()), max_size=20),  # lone surrogates ("\ud83d") and NUL too
    st.integers(min_value=60_000, max_value=80_000).map(lambda n: "a" * n),  # huge strings
)
json_values = st.recursive(
    json_leaf,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
KEYS = [
    *("entry", "changes", "value", "metadata", "phone_number_id", "messages", "statuses", "id", "from", "type"),
    *("timestamp", "text", "body", "interactive", "button_reply", "location", "latitude", "errors", "status"),
    *("time", "field", "event", "message_template_id", "message_template_language", "reason", "new_category"),
    *("rejection_info", "disable_info", "disable_date", "other_info"),
]


def _mutations() -> st.SearchStrategy[Any]:
    """Payloads shaped like Meta's (a message, a business account's template change), with any part replaced by junk."""
    bases = [
        wp.text("100000000000001", "wamid.FUZZ", "hello"),
        wp.template_status(
            "102290129340398", "REJECTED", template_id=41, name="order_ready", language="en_US",
            reason="INVALID_FORMAT", rejection_info={"reason": "x"}, disable_info={"disable_date": 1751234563},
        ),
        wp.template_category("102290129340398", template_id=41, name="x", language="en", new_category="MARKETING"),
    ]  # fmt: skip

    def mutate(base: int, path: list[str], junk: Any) -> Any:
        payload = json.loads(json.dumps(bases[base]))
        node: Any = payload
        for key in path[:-1]:
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and node:
                node = node[0]
        if isinstance(node, dict):
            node[path[-1]] = junk
        return payload

    return st.builds(
        mutate, st.integers(0, len(bases) - 1), st.lists(st.sampled_from(KEYS), min_size=1, max_size=6), json_values
    )


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, _mutations()))
def test_the_parser_only_ever_raises_payload_invalid(payload: Any) -> None:
    try:
        items = webhook_items(payload)
    except PayloadInvalid:
        return
    parsers: dict[str, list[Callable[[dict[str, Any]], object]]] = {
        "message": [parse_message],
        "status": [parse_status],
        "account": [parse_template_status, parse_template_category],
    }
    for item in items:
        for parse in parsers.get(item.kind, []):
            with contextlib.suppress(PayloadInvalid):
                parse(item.payload)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.django_db
@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        _mutations().map(lambda p: json.dumps(p).encode()),
        st.binary(max_size=300),
        st.sampled_from([b"\xff\xfe\x00garbage", b'{"entry": ' + _nested(5000).encode() + b"}", b"", b"null"]),
    )
)
def test_the_endpoint_answers_2xx_or_4xx_and_records_errors(body: bytes) -> None:
    response = wp.post(body, signature=sign(body, settings.WHATSAPP_APP_SECRET))
    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        assert response.json()["code"] == "payload_invalid"
        assert WebhookEvent.objects.filter(state=WebhookEvent.State.FAILED).exists()


@pytest.mark.django_db
def test_the_body_size_is_limited(settings: Any) -> None:
    settings.WHATSAPP_WEBHOOK_MAX_BYTES = 1000
    body = json.dumps({"entry": [], "pad": "x" * 2000}).encode()
    response = wp.post(body, signature=sign(body, settings.WHATSAPP_APP_SECRET))
    assert response.status_code == 413
    assert not WebhookEvent.objects.exists()
