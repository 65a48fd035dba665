"""The fallback chain: which providers a task may use, in order, and running a call down it.

Per call: the breaker is asked first; a transient failure is retried once on the same
provider; any other failure (or a second transient one) counts against the breaker and
the next provider is tried. An answer cut at max_tokens is not an answer either: the next
provider is tried, but the cut one is billed and the provider counts as healthy. Every
answer and failure is metered. Nothing raises to callers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from django.conf import settings as django_settings

from apps.ai import catalog
from apps.ai.breaker import breaker_allow, breaker_failure, breaker_success
from apps.ai.catalog import Task
from apps.ai.models import AISettings
from apps.ai.providers import provider_get
from apps.ai.providers.base import Completion, CompletionRequest, Provider, ProviderConfig, ProviderError
from apps.ai.results import Attempt
from apps.ai.selectors import ai_budget_exhausted, ai_settings_get
from apps.ai.services import ai_usage_record
from apps.core.tenancy import current_schema

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Candidate:
    provider: str
    model: str
    config: ProviderConfig


@dataclass(frozen=True)
class Plan:
    task: Task
    schema: str
    candidates: tuple[Candidate, ...]
    degraded: bool


class AnswerCut(Exception):
    """The vendor stopped at max_tokens: it answered (and bills the tokens), but not in full."""

    def __init__(self, tokens_in: int, tokens_out: int) -> None:
        super().__init__(f"the answer was cut at max_tokens ({tokens_out} tokens)")
        self.tokens_in = tokens_in
        self.tokens_out = tokens_out


def complete_whole(provider: Provider, model: str, request: CompletionRequest) -> Completion:
    """`model` of `provider` answers `request`; AnswerCut when the vendor stopped it at max_tokens."""
    completion = provider.complete(replace(request, model=model))
    if completion.truncated:
        raise AnswerCut(completion.tokens_in, completion.tokens_out)
    return completion


@dataclass(frozen=True)
class Answer(Generic[T]):
    value: T
    candidate: Candidate
    tokens_in: int = 0
    tokens_out: int = 0
    cached: bool = False


def plan_for(task: Task, *, settings: AISettings | None = None) -> Plan:
    """The cloud providers that may answer `task` for the current tenant, first choice first."""
    settings = settings or ai_settings_get()
    names = [
        name
        for name in settings.provider_names()
        if name in catalog.CLOUD_PROVIDERS and settings.api_key_for(name) and settings.model_for(name, task)
    ]
    degraded = bool(names) and ai_budget_exhausted(settings)
    if degraded and settings.on_budget_exhausted == AISettings.OnBudgetExhausted.LOCAL:
        names = []
    candidates = []
    for name in names:
        model = settings.model_for(name, task) or ""
        if degraded and task != "embed":
            model = catalog.CHEAP_MODELS[name]
        config = ProviderConfig(
            api_key=settings.api_key_for(name),
            base_url=settings.base_url_for(name),
            timeout=settings.request_timeout_seconds,
        )
        candidates.append(Candidate(provider=name, model=model, config=config))
    return Plan(task=task, schema=current_schema(), candidates=tuple(candidates), degraded=degraded)


def meter_answer(plan: Plan, candidate: Candidate, tokens_in: int, tokens_out: int) -> None:
    ai_usage_record(
        task=plan.task,
        provider=candidate.provider,
        model=candidate.model,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=catalog.cost_estimate(candidate.provider, candidate.model, tokens_in, tokens_out),
    )


def meter_failure(plan: Plan, candidate: Candidate) -> None:
    breaker_failure(schema=plan.schema, provider=candidate.provider)
    ai_usage_record(task=plan.task, provider=candidate.provider, model=candidate.model, failed=True)


def allowed(plan: Plan, candidate: Candidate, attempts: list[Attempt]) -> bool:
    # A half-open probe may take as long as one call with its retry.
    probe = 2 * candidate.config.timeout + 1
    if breaker_allow(schema=plan.schema, provider=candidate.provider, probe_seconds=probe):
        return True
    attempts.append(Attempt(candidate.provider, candidate.model, "circuit_open"))
    return False


def run_chain(
    plan: Plan,
    call: Callable[[Provider, Candidate], tuple[T, int, int]],
    attempts: list[Attempt],
    *,
    lookup: Callable[[Candidate], T | None] | None = None,
) -> Answer[T] | None:
    """Try each candidate in order; None when none answered (the caller then goes offline)."""
    for candidate in plan.candidates:
        if lookup is not None:
            hit = lookup(candidate)
            if hit is not None:
                attempts.append(Attempt(candidate.provider, candidate.model, "cached"))
                return Answer(hit, candidate, cached=True)
        if not allowed(plan, candidate, attempts):
            continue
        provider = provider_get(candidate.provider, candidate.config)
        for try_number in (1, 2):
            try:
                value, tokens_in, tokens_out = call(provider, candidate)
            except AnswerCut as cut:
                # Retrying the same request would be cut again, and the provider is healthy:
                # the next one may answer within the limit (or the caller goes offline).
                logger.warning("AI %s via %s/%s: %s", plan.task, candidate.provider, candidate.model, cut)
                attempts.append(Attempt(candidate.provider, candidate.model, "truncated", str(cut)))
                breaker_success(schema=plan.schema, provider=candidate.provider)
                meter_answer(plan, candidate, cut.tokens_in, cut.tokens_out)
                break
            except ProviderError as exc:
                logger.warning("AI %s via %s/%s failed: %s", plan.task, candidate.provider, candidate.model, exc)
                if exc.transient and try_number == 1:
                    attempts.append(Attempt(candidate.provider, candidate.model, "retried", str(exc)))
                    time.sleep(django_settings.AI_RETRY_DELAY_SECONDS)
                    continue
                attempts.append(Attempt(candidate.provider, candidate.model, "failed", str(exc)))
                meter_failure(plan, candidate)
                break
            except Exception as exc:  # a bug reading an answer must not reach the caller either
                logger.exception("AI %s via %s/%s: unexpected error", plan.task, candidate.provider, candidate.model)
                attempts.append(Attempt(candidate.provider, candidate.model, "failed", type(exc).__name__))
                meter_failure(plan, candidate)
                break
            breaker_success(schema=plan.schema, provider=candidate.provider)
            meter_answer(plan, candidate, tokens_in, tokens_out)
            attempts.append(Attempt(candidate.provider, candidate.model, "ok"))
            return Answer(value, candidate, tokens_in, tokens_out)
    return None
