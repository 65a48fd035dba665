"""The AI engine end to end: real SDKs against local fake vendor APIs, real PostgreSQL and Redis."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import numpy as np
import pytest
from django.db import connection
from django.test import override_settings

from apps.ai import router
from apps.ai.breaker import breaker_state
from apps.ai.intents import IntentResult
from apps.ai.models import AICacheEntry, AIUsage
from apps.core.tenancy import schema_context
from tests.ai_support import Fakes, ai_configure, ai_fakes, ai_fakes_server
from tests.conftest import PASSWORD, TenantSetup
from tests.fakes.llm_apis import Reply

pytestmark = pytest.mark.django_db
__all__ = ["ai_fakes", "ai_fakes_server"]  # fixtures used by name

BILLING = json.dumps({"intent": "billing_payment", "confidence": 0.91})


def test_without_keys_everything_is_offline(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    with schema_context(tenant_a.schema):
        generated = router.generate("Where is my order?")
        assert (generated.available, generated.provider, generated.text) == (False, "local", "")
        intent = router.classify_intent("I was charged twice on my card")
        assert isinstance(intent, IntentResult) and intent.provider == "local"
        translated = router.translate("Habari yako", "sw", "en")
        assert (translated.translated, translated.text, translated.provider) == (False, "Habari yako", "local")
        summary = router.summarize(["Customer: My parcel has not arrived after ten days.", "Agent: Sorry about that."])
        assert summary.extractive and summary.provider == "local" and "parcel" in summary.text
        vectors = router.embed(["hello", "world"])
        assert vectors.vectors.shape == (2, 384) and vectors.provider == "local"
        stream = router.generate_stream("hi")
        assert list(stream) == [] and not stream.available
    assert ai_fakes.openai.calls() == [] and ai_fakes.anthropic.calls() == []


def test_generate_answers_with_the_first_provider_and_meters_it(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    ai_fakes.openai.text = "Your order ships tomorrow."
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes)
        result = router.generate("Where is my order?", system="Be brief.")
        assert (result.text, result.provider, result.model) == ("Your order ships tomorrow.", "openai", "gpt-4o")
        assert (result.tokens_in, result.tokens_out) == (11, 7)
        row = AIUsage.objects.get(task="generate", provider="openai")
        assert (row.requests, row.tokens_in, row.tokens_out) == (1, 11, 7)
        assert row.cost_usd == Decimal("0.000098")  # (11 x 2.50 + 7 x 10.00) per million, rounded
    sent = ai_fakes.openai.calls("generate")[0]
    assert sent.headers["authorization"] == "Bearer sk-openai-test"
    assert sent.body["messages"][0] == {"role": "system", "content": "Be brief."}


@pytest.mark.parametrize(
    "failure",
    [
        [Reply(500), Reply(503)],  # a 5xx, retried once, then the next provider
        [Reply(raw=b"{not json")],  # malformed JSON: no retry
        [Reply(delay=1.0), Reply(delay=1.0)],  # timeouts, retried once
    ],
    ids=["500", "malformed", "timeout"],
)
def test_a_failing_provider_falls_back_to_the_next(
    tenant_a: TenantSetup, ai_fakes: Fakes, failure: list[Reply]
) -> None:
    ai_fakes.openai.script("generate", *failure)
    ai_fakes.anthropic.text = "Claude here."
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes, request_timeout_seconds=0.3)
        result = router.generate("hello")
        assert (result.text, result.provider, result.model) == ("Claude here.", "anthropic", "claude-sonnet-4-6")
        assert [a.outcome for a in result.attempts][-2:] == ["failed", "ok"]
        assert AIUsage.objects.get(provider="openai").failures == 1
    assert len(ai_fakes.openai.calls()) == len(failure)


def test_a_transient_failure_is_retried_once_on_the_same_provider(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    ai_fakes.openai.script("generate", Reply(429))
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes)
        result = router.generate("hello")
    assert result.provider == "openai" and [a.outcome for a in result.attempts] == ["retried", "ok"]
    assert ai_fakes.anthropic.calls() == []


def test_all_providers_failing_ends_offline_without_raising(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    for fake in (ai_fakes.openai, ai_fakes.anthropic, ai_fakes.google):
        fake.script("generate", Reply(401), Reply(401), Reply(401))
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes)
        assert router.generate("hello").available is False
        assert router.translate("Bonjour", "fr", "en").translated is False
        assert router.summarize(["The customer wants a refund for the broken phone."]).extractive


@override_settings(AI_BREAKER_FAILURES=2, AI_BREAKER_COOLDOWN_SECONDS=0.5)
def test_breaker_opens_then_a_half_open_probe_closes_it(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    ai_fakes.openai.script("generate", *[Reply(400)] * 2)
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes, keys=("openai", "anthropic"))
        assert router.generate("one").provider == "anthropic"
        assert router.generate("two").provider == "anthropic"
        assert breaker_state(schema=tenant_a.schema, provider="openai") == "open"
        skipped = router.generate("three")
        assert skipped.provider == "anthropic" and skipped.attempts[0].outcome == "circuit_open"
        assert len(ai_fakes.openai.calls()) == 2  # the open breaker sent nothing
        time.sleep(0.6)
        assert breaker_state(schema=tenant_a.schema, provider="openai") == "half_open"
        assert router.generate("four").provider == "openai"  # the probe succeeded
        assert breaker_state(schema=tenant_a.schema, provider="openai") == "closed"


@override_settings(AI_BREAKER_FAILURES=1, AI_BREAKER_COOLDOWN_SECONDS=0.3)
def test_a_failed_probe_reopens_the_breaker(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    ai_fakes.openai.script("generate", Reply(400), Reply(400))
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes, keys=("openai", "anthropic"))
        router.generate("one")
        time.sleep(0.35)
        assert router.generate("probe").provider == "anthropic"
        assert breaker_state(schema=tenant_a.schema, provider="openai") == "open"


def test_budget_spent_degrades_to_the_cheaper_model_or_offline(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes, monthly_token_budget=20)
        first = router.generate("hello")
        assert (first.model, first.degraded) == ("gpt-4o", False)
        second = router.generate("hello")  # 18 tokens used: still under 20
        assert second.model == "gpt-4o"
        cheaper = router.generate("hello")
        assert (cheaper.model, cheaper.degraded) == ("gpt-4o-mini", True)
        ai_configure(ai_fakes, monthly_token_budget=20, on_budget_exhausted="local")
        offline = router.generate("hello")
        assert (offline.available, offline.degraded, offline.provider) == (False, True, "local")


def test_llm_classification_returns_the_offline_type_and_is_cached(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    ai_fakes.openai.text = BILLING
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes)
        first = router.classify_intent("You charged me twice", intents={"refund_status": ["where is my refund"]})
        assert isinstance(first, IntentResult)
        assert (first.intent, first.confidence, first.provider, first.model, first.cached) == (
            "billing_payment",
            0.91,
            "openai",
            "gpt-4o-mini",
            False,
        )
        started = time.perf_counter()
        again = router.classify_intent("You charged me twice", intents={"refund_status": ["where is my refund"]})
        assert again.cached and again.intent == "billing_payment" and time.perf_counter() - started < 0.2
        assert AICacheEntry.objects.filter(task="classify").count() == 1
    body = ai_fakes.openai.calls("generate")[0].body
    assert len(ai_fakes.openai.calls("generate")) == 1
    schema = body["response_format"]["json_schema"]["schema"]
    assert {"billing_payment", "refund_status", "unknown"} <= set(schema["properties"]["intent"]["enum"])


def test_a_classification_the_model_doubts_is_unknown(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    ai_fakes.openai.text = json.dumps({"intent": "human_request", "confidence": 0.05})
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes)
        result = router.classify_intent("hmm")
        assert (result.intent, result.confidence, result.provider) == ("unknown", 0.05, "openai")
        # The same from the cache: the raw answer is what is cached, the threshold applies on top.
        again = router.classify_intent("hmm")
        assert (again.cached, again.intent) == (True, "unknown")


def test_an_invalid_classification_falls_back_to_the_next_provider(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    ai_fakes.openai.text = json.dumps({"intent": "made_up", "confidence": 3})
    ai_fakes.google.text = BILLING
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes, keys=("openai", "google"))
        result = router.classify_intent("You charged me twice")
    assert (result.provider, result.model, result.intent) == ("google", "gemini-2.5-flash-lite", "billing_payment")
    config = ai_fakes.google.calls()[0].body["generationConfig"]
    assert config["responseMimeType"] == "application/json"


def test_embeddings_by_provider_are_cached_per_text(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes, keys=("anthropic", "google", "openai"))  # Anthropic cannot embed: skipped
        first = router.embed(["hello", "world"], kind="passage")
        assert (first.provider, first.model, first.cached) == ("google", "gemini-embedding-001", 0)
        assert first.vectors.shape == (2, 384)
        assert np.allclose(np.linalg.norm(first.vectors, axis=1), 1.0, atol=1e-5)
        second = router.embed(["world", "new"], kind="passage")
        assert second.cached == 1 and np.allclose(second.vectors[0], first.vectors[1], atol=1e-6)
    requests = ai_fakes.google.calls("embed")
    assert len(requests) == 2 and len(requests[1].body["requests"]) == 1
    assert requests[0].body["requests"][0]["outputDimensionality"] == 384
    assert ai_fakes.anthropic.calls() == []


def test_openai_embeddings_fall_back_to_offline_vectors(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    ai_fakes.openai.script("embed", Reply(500), Reply(500))
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes, keys=("openai",))
        result = router.embed(["hello"])
        assert (result.provider, result.model) == ("local", "multilingual-e5-small-q4")
        ok = router.embed(["hello"])
        assert ok.provider == "openai" and ok.model == "text-embedding-3-small"
    assert ai_fakes.openai.calls("embed")[-1].body["dimensions"] == 384


def test_translate_and_summarize_with_a_provider(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    ai_fakes.anthropic.text = "Hello, how are you?"
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes, keys=("anthropic",))
        translated = router.translate("Habari yako?", "sw", "en")
        assert (translated.text, translated.translated, translated.provider) == (
            "Hello, how are you?",
            True,
            "anthropic",
        )
        summary = router.summarize(["Customer: hi", "Agent: hello"])
        assert not summary.extractive and summary.model == "claude-haiku-4-5"


def test_an_offline_summary_asks_no_provider_and_provider_configured_follows_the_settings(
    tenant_a: TenantSetup, ai_fakes: Fakes
) -> None:
    from apps.tenants.selectors import organization_today

    with schema_context(tenant_a.schema):
        assert not router.provider_configured("summarize")
        ai_configure(ai_fakes, keys=("openai",))
        assert router.provider_configured("summarize") and router.provider_configured("generate")
        summary = router.summarize(["Customer: My parcel has not arrived after ten days."], offline=True)
        assert (summary.extractive, summary.provider) == (True, "local") and "parcel" in summary.text
        # The budget is spent and the tenant chose the offline models then: no provider may answer.
        ai_configure(ai_fakes, keys=("openai",), monthly_token_budget=20, on_budget_exhausted="local")
        AIUsage.objects.create(
            day=organization_today(), task="generate", provider="openai", model="gpt-4o", tokens_in=30
        )
        assert not router.provider_configured("summarize")
    assert ai_fakes.openai.calls() == []


def test_streaming_falls_back_before_the_first_delta_and_meters(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    ai_fakes.openai.script("generate", Reply(500), Reply(500))
    ai_fakes.anthropic.text = "Streaming from Claude now"
    ai_fakes.google.text = "Gemini streams too"
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes)
        stream = router.generate_stream("hello")
        deltas = list(stream)
        assert deltas == ["Streaming ", "from ", "Claude ", "now"]
        assert (stream.provider, stream.model, stream.available, stream.interrupted) == (
            "anthropic",
            "claude-sonnet-4-6",
            True,
            False,
        )
        assert (stream.tokens_in, stream.tokens_out) == (13, 9)
        row = AIUsage.objects.get(provider="anthropic", task="generate")
        assert (row.requests, row.tokens_in, row.tokens_out) == (1, 13, 9)
        ai_configure(ai_fakes, keys=("google",))
        gemini = router.generate_stream("hello")
        assert gemini.text() == "Gemini streams too" and gemini.provider == "google"
        ai_configure(ai_fakes, keys=("openai",))
        openai_stream = router.generate_stream("hello")
        assert openai_stream.text() == "Hello from the fake." and openai_stream.tokens_out == 7
    assert ai_fakes.anthropic.calls()[0].body["stream"] is True


def test_api_keys_are_encrypted_at_rest_and_never_shown_in_the_admin(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes, keys=("openai",))
        with connection.cursor() as cursor:
            cursor.execute("SELECT openai_api_key FROM ai_aisettings")
            (stored,) = cursor.fetchone()
    assert stored and "sk-openai-test" not in stored
    client = tenant_a.client()
    assert client.post("/admin/login/", {"username": tenant_a.admin_email, "password": PASSWORD}).status_code == 302
    page = client.get("/admin/ai/aisettings/1/change/")
    assert page.status_code == 200
    assert b"sk-openai-test" not in page.content and stored.encode() not in page.content
    assert client.get("/admin/ai/aisettings/").status_code == 302
    # Saving with the key field empty keeps the stored key.
    form = {
        "provider_order": "openai",
        "task_models": '{"generate": {"openai": "gpt-4.1"}}',
        "request_timeout_seconds": "5",
        "openai_api_key": "",
        "anthropic_api_key": "sk-ant-new",
        "google_api_key": "",
        "openai_base_url": ai_fakes.base_urls()["openai_base_url"],
        "anthropic_base_url": "",
        "google_base_url": "",
        "monthly_token_budget": "0",
        "monthly_cost_budget": "0",
        "on_budget_exhausted": "cheaper",
    }
    saved = client.post("/admin/ai/aisettings/1/change/", form)
    assert saved.status_code == 302, saved.content[:2000]
    with schema_context(tenant_a.schema):
        ai_fakes.openai.text = "fine"
        result = router.generate("hello")
        assert (result.provider, result.model) == ("openai", "gpt-4.1")
    assert ai_fakes.openai.calls()[-1].headers["authorization"] == "Bearer sk-openai-test"


def test_usage_page_loads_with_filters(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes, keys=("openai",))
        router.generate("hello")
    client = tenant_a.client()
    client.post("/admin/login/", {"username": tenant_a.admin_email, "password": PASSWORD})
    page = client.get("/admin/ai/aiusage/?provider=openai")
    assert page.status_code == 200 and b"gpt-4o" in page.content
    assert client.get("/admin/ai/aiusage/add/").status_code == 403


def test_tenants_share_no_settings_cache_breaker_or_usage(
    tenant_a: TenantSetup, tenant_b: TenantSetup, ai_fakes: Fakes
) -> None:
    ai_fakes.openai.text = BILLING
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes, keys=("openai",))
        assert router.classify_intent("charged twice").provider == "openai"
        router.embed(["shared text"])
    with schema_context(tenant_b.schema):
        # B has no key: A's key, cache and usage are invisible; B answers offline.
        result = router.classify_intent("charged twice")
        assert result.provider == "local" and not result.cached
        assert router.embed(["shared text"]).provider == "local"
        assert not AIUsage.objects.filter(provider="openai").exists()
        assert not AICacheEntry.objects.filter(provider="openai").exists()
        ai_configure(ai_fakes, keys=("openai",), openai_api_key="sk-tenant-b")
        again = router.classify_intent("charged twice")
        assert again.provider == "openai" and not again.cached  # A's cached answer is not B's
    assert [c.headers["authorization"] for c in ai_fakes.openai.calls("generate")] == [
        "Bearer sk-openai-test",
        "Bearer sk-tenant-b",
    ]
    with override_settings(AI_BREAKER_FAILURES=1), schema_context(tenant_a.schema):
        ai_fakes.openai.script("generate", Reply(400))
        router.generate("trip A's breaker")
        assert breaker_state(schema=tenant_a.schema, provider="openai") == "open"
        assert breaker_state(schema=tenant_b.schema, provider="openai") == "closed"
    with schema_context(tenant_b.schema):
        assert router.generate("B still uses OpenAI").provider == "openai"


def test_provider_text_postgresql_cannot_store_is_replaced(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    # A model may answer with U+0000 or half an emoji (JSON-escaped); translations and summaries are stored.
    ai_fakes.openai.text = "Hello\x00 there \ud83d friend"
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes, keys=("openai",))
        assert router.translate("Habari rafiki", "sw", "en").text == "Hello\ufffd there \ufffd friend"
        assert router.generate_stream("hello").text() == "Hello\ufffd there \ufffd friend"


def test_a_value_refilled_from_the_database_expires_in_redis(tenant_a: TenantSetup) -> None:
    from django.conf import settings
    from django.core.cache import cache

    from apps.ai.selectors import CACHE_PREFIX, ai_cache_get
    from apps.ai.services import ai_cache_put

    with schema_context(tenant_a.schema):
        ai_cache_put(key="refill", task="classify", provider="openai", model="gpt-4o-mini", value=["greeting", 0.9])
        cache.delete(CACHE_PREFIX + "refill")  # Redis forgot it (expired, restarted)
        assert ai_cache_get("refill") == ["greeting", 0.9]
        ttl = cache._cache.get_client(write=False).ttl(cache.make_key(CACHE_PREFIX + "refill"))  # type: ignore[attr-defined]
        assert 0 < ttl <= settings.AI_CACHE_REDIS_TTL_SECONDS


def test_gemini_flash_is_told_not_to_think_and_thoughts_are_metered(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    ai_fakes.google.text = BILLING
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes, keys=("google",))
        answer = router.generate("Write a ticket title", max_tokens=30)
        assert (answer.provider, answer.model) == ("google", "gemini-2.5-flash")
        generate = AIUsage.objects.get(provider="google", task="generate")
        assert generate.tokens_out == 5  # no thoughts: thinking was off
        # Flash-Lite is not sent a budget (it does not think unless asked); thoughts, if a
        # model has them, are billed as output and metered so.
        router.classify_intent("You charged me twice")
        classify = AIUsage.objects.get(provider="google", task="classify")
        assert classify.tokens_out == 5 + 11
    bodies = [call.body["generationConfig"] for call in ai_fakes.google.calls("generate")]
    assert bodies[0]["thinkingConfig"] == {"thinking_budget": 0}  # as the SDK writes it
    assert "thinkingConfig" not in bodies[1]


def test_a_stream_the_reader_abandons_is_still_metered(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    ai_fakes.openai.text = "one two three four five six seven eight"
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes, keys=("openai",))
        stream = router.generate_stream("hello there")
        assert next(stream) == "one "
        stream.close()  # the agent closed the copilot panel
        row = AIUsage.objects.get(provider="openai", task="generate")
        assert row.requests == 1 and row.failures == 0
        assert row.tokens_in > 0 and row.tokens_out > 0
        assert row.cost_usd > 0
        assert [a.outcome for a in stream.attempts] == ["abandoned"]


def test_dated_and_preview_model_names_are_priced_as_their_family() -> None:
    from apps.ai.catalog import cost_estimate

    million = 1_000_000
    assert cost_estimate("openai", "gpt-4o-mini-2024-07-18", million, 0) == Decimal("0.15")
    assert cost_estimate("anthropic", "claude-haiku-4-5-20251001", million, 0) == Decimal("1.00")
    assert cost_estimate("google", "gemini-2.5-flash-lite-preview-09-2025", million, 0) == Decimal("0.10")
    assert cost_estimate("openai", "some-new-model", million, 0) == Decimal("2.50")  # the strong model's price


def test_meters_and_the_monthly_budget_turn_over_at_the_businesss_midnight(
    tenant_a: TenantSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    from django.utils import timezone

    from apps.ai.selectors import ai_usage_month_totals
    from apps.ai.services import ai_usage_record
    from apps.core.tenancy import tenant_context

    organization = tenant_a.organization
    # 22:30 UTC on 30 November is 01:30 on 1 December in Nairobi: a new day and a new month there.
    monkeypatch.setattr(timezone, "now", lambda: dt.datetime(2026, 11, 30, 22, 30, tzinfo=dt.UTC))
    monkeypatch.setattr(organization, "time_zone", "Africa/Nairobi")
    with tenant_context(organization):
        AIUsage.objects.create(day=dt.date(2026, 11, 30), task="generate", provider="openai", model="gpt-4o",
                               tokens_in=1000, tokens_out=1000, cost_usd=Decimal("1"))  # fmt: skip
        ai_usage_record(task="generate", provider="openai", model="gpt-4o", tokens_in=10, tokens_out=5)
        assert AIUsage.objects.filter(day=dt.date(2026, 12, 1)).count() == 1
        assert ai_usage_month_totals().tokens == 15  # November's spend is not December's


def test_an_embedding_model_for_a_provider_without_embeddings_is_refused() -> None:
    from django.core.exceptions import ValidationError

    from apps.ai.models import AISettings

    settings_row = AISettings(task_models={"embed": {"anthropic": "claude-haiku-4-5"}})
    with pytest.raises(ValidationError) as refused:
        settings_row.clean()
    assert "only openai and google" in str(refused.value.message_dict["task_models"])
    AISettings(task_models={"embed": {"google": "gemini-embedding-001"}}).clean()


def test_a_key_no_configured_encryption_key_opens_reads_as_unset_and_is_kept(
    tenant_a: TenantSetup, ai_fakes: Fakes
) -> None:
    from cryptography.fernet import Fernet

    from apps.ai.models import AISettings

    foreign = Fernet(Fernet.generate_key()).encrypt(b"sk-from-another-install").decode()
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes, keys=("openai",))
        with connection.cursor() as cursor:
            cursor.execute("UPDATE ai_aisettings SET openai_api_key = %s", [foreign])
        assert AISettings.objects.get().openai_api_key == ""
        # Every AI call goes on, offline, instead of raising.
        assert router.generate("hello").provider == "local"
    client = tenant_a.client()
    client.post("/admin/login/", {"username": tenant_a.admin_email, "password": PASSWORD})
    assert client.get("/admin/ai/aisettings/1/change/").status_code == 200
    with schema_context(tenant_a.schema):
        row = AISettings.objects.get()
        row.monthly_token_budget = 1000
        row.save()  # saving the row writes the stored secret back as it was
        with connection.cursor() as cursor:
            cursor.execute("SELECT openai_api_key FROM ai_aisettings")
            assert cursor.fetchone() == (foreign,)


@pytest.mark.parametrize("first", ["openai", "anthropic", "google"])
def test_an_answer_cut_at_max_tokens_is_not_passed_off_as_whole(
    tenant_a: TenantSetup, ai_fakes: Fakes, first: str
) -> None:
    # A reply to a customer, a translation or a summary that stops mid-sentence is not an
    # answer: the next provider is asked, and the cut one is billed but not held against it.
    vendors = {"openai": ai_fakes.openai, "anthropic": ai_fakes.anthropic, "google": ai_fakes.google}
    second = next(name for name in vendors if name != first)
    vendors[first].script("generate", Reply(text="Your refund was sent to the card ending", truncated=True))
    vendors[second].text = "Your refund was sent on Monday."
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes, keys=(first, second))
        result = router.generate("Where is my refund?")
        assert (result.text, result.provider) == ("Your refund was sent on Monday.", second)
        assert [(a.provider, a.outcome) for a in result.attempts] == [(first, "truncated"), (second, "ok")]
        cut = AIUsage.objects.get(provider=first, task="generate")
        assert (cut.requests, cut.failures) == (1, 0) and cut.tokens_out > 0  # billed by the vendor all the same
        assert breaker_state(schema=tenant_a.schema, provider=first) == "closed"
    assert len(vendors[first].calls("generate")) == 1  # not retried: the same request would be cut again


def test_a_translation_every_provider_cuts_stays_untranslated(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    text = " ".join(["Ningependa kurudisha simu hii kwa sababu imevunjika."] * 6)
    ai_fakes.openai.script("generate", Reply(text="I would like to", truncated=True))
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes, keys=("openai",))
        result = router.translate(text, "sw", "en")
        assert (result.translated, result.text) == (False, text)
        assert [a.outcome for a in result.attempts] == ["truncated"]
    # Room for the whole translation: scripts such as Ethiopic take more than a token a character.
    assert ai_fakes.openai.calls("generate")[0].body["max_completion_tokens"] == 2 * len(text)


@pytest.mark.parametrize("vendor", ["openai", "anthropic", "google"])
def test_a_stream_cut_at_max_tokens_says_so(tenant_a: TenantSetup, ai_fakes: Fakes, vendor: str) -> None:
    fake = {"openai": ai_fakes.openai, "anthropic": ai_fakes.anthropic, "google": ai_fakes.google}[vendor]
    fake.script("generate", Reply(text="Thanks for waiting, your order", truncated=True), Reply(text="Done."))
    with schema_context(tenant_a.schema):
        ai_configure(ai_fakes, keys=(vendor,))
        cut = router.generate_stream("hello")
        assert cut.text() == "Thanks for waiting, your order"
        assert (cut.available, cut.truncated, cut.interrupted) == (True, True, False)
        assert [a.outcome for a in cut.attempts] == ["truncated"]
        whole = router.generate_stream("hello")
        assert whole.text() == "Done." and not whole.truncated
