"""The AI engine's public API: one call per task, routed by the tenant's settings.

Every function here answers: when no cloud provider is configured, reachable, healthy or
within budget, the offline models answer (or the result says plainly that nothing could,
`GenerateResult.available is False`, `TranslateResult.translated is False`). No provider
exception ever reaches the caller. Call these inside the tenant's schema.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import replace

import numpy as np

from apps.ai import catalog
from apps.ai.breaker import breaker_success
from apps.ai.catalog import Task
from apps.ai.chain import (
    Candidate,
    Plan,
    allowed,
    complete_whole,
    meter_answer,
    meter_failure,
    plan_for,
    run_chain,
)
from apps.ai.intents import UNKNOWN, examples_hash, merged_examples
from apps.ai.prompts import classify_schema, classify_system, summarize_system, translate_system
from apps.ai.providers import provider_get
from apps.ai.providers.base import (
    ChatMessage,
    CompletionRequest,
    EmbedKind,
    Provider,
    ProviderConfig,
    ProviderError,
    StreamUsage,
    Vectors,
)
from apps.ai.providers.local import CLASSIFY_MODEL, EMBED_MODEL, SUMMARIZE_MODEL, local_provider
from apps.ai.results import (
    Attempt,
    EmbedResult,
    GenerateResult,
    RoutedIntentResult,
    SummaryResult,
    TranslateResult,
)
from apps.ai.selectors import ai_cache_get
from apps.ai.services import ai_cache_put, ai_usage_record
from apps.core.tenancy import schema_context
from apps.core.text import storable_text

logger = logging.getLogger(__name__)
Prompt = str | Sequence[ChatMessage]
_LOCAL_CONFIG = ProviderConfig(api_key="")

__all__ = [
    "ChatMessage",
    "GenerationStream",
    "classify_intent",
    "embed",
    "generate",
    "generate_stream",
    "provider_configured",
    "summarize",
    "translate",
]


def cache_key(provider: str, model: str, task: str, text: str) -> str:
    return hashlib.sha256("\x00".join((provider, model, task, text)).encode()).hexdigest()


def _messages(prompt: Prompt) -> list[ChatMessage]:
    return [ChatMessage("user", prompt)] if isinstance(prompt, str) else list(prompt)


def _complete(
    plan: Plan, request: CompletionRequest, attempts: list[Attempt]
) -> tuple[str, Candidate, int, int] | None:
    def call(provider: Provider, candidate: Candidate) -> tuple[str, int, int]:
        answer = complete_whole(provider, candidate.model, request)
        if not answer.text.strip():
            raise ProviderError(candidate.provider, "an empty answer", transient=False)
        return storable_text(answer.text), answer.tokens_in, answer.tokens_out

    answered = run_chain(plan, call, attempts)
    if answered is None:
        return None
    return answered.value, answered.candidate, answered.tokens_in, answered.tokens_out


# --- generate ----------------------------------------------------------------------------


def generate(prompt: Prompt, *, system: str = "", max_tokens: int = 512, temperature: float = 0.3) -> GenerateResult:
    """Write text with the tenant's strong model; `available=False` when only offline models remain."""
    plan = plan_for("generate")
    attempts: list[Attempt] = []
    request = CompletionRequest(
        model="", messages=_messages(prompt), system=system, max_tokens=max_tokens, temperature=temperature
    )
    answered = _complete(plan, request, attempts)
    if answered is None:
        return GenerateResult(
            text="", available=False, provider=catalog.LOCAL, model="", degraded=plan.degraded, attempts=tuple(attempts)
        )
    text, candidate, tokens_in, tokens_out = answered
    return GenerateResult(
        text=text,
        available=True,
        provider=candidate.provider,
        model=candidate.model,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=catalog.cost_estimate(candidate.provider, candidate.model, tokens_in, tokens_out),
        degraded=plan.degraded,
        attempts=tuple(attempts),
    )


class GenerationStream:
    """Text deltas as they arrive; `provider`, `model` and `available` are known once iteration starts.

    A provider that fails before its first delta is replaced by the next one. One that fails
    mid-answer cannot be replaced without repeating text: the stream ends, `interrupted` is True.
    One that stops at max_tokens ends it too, with `truncated` True: the reader has already
    shown the text, so it is kept, and the reader says it is cut.
    """

    def __init__(self, plan: Plan, request: CompletionRequest) -> None:
        self._plan = plan
        self._request = request
        self.provider = catalog.LOCAL
        self.model = ""
        self.available = False
        self.interrupted = False
        self.truncated = False
        self.degraded = plan.degraded
        self.tokens_in = 0
        self.tokens_out = 0
        self.attempts: list[Attempt] = []
        self._deltas = self._run()

    def __iter__(self) -> Iterator[str]:
        return self._deltas

    def __next__(self) -> str:
        return next(self._deltas)

    def close(self) -> None:
        """Stop reading (the client went away): the provider's stream is closed and metered."""
        self._deltas.close()

    def text(self) -> str:
        """Consume the rest of the stream and return the whole answer."""
        return "".join(self)

    def _start(self, candidate: Candidate, usage: StreamUsage) -> tuple[Iterator[str], str] | None:
        """Open a stream and read its first delta, retrying once on a transient failure."""
        provider = provider_get(candidate.provider, candidate.config)
        request = replace(self._request, model=candidate.model)
        for try_number in (1, 2):
            try:
                deltas = provider.stream(request, usage)
                return deltas, next(deltas)
            except StopIteration:
                exc: ProviderError = ProviderError(candidate.provider, "an empty stream", transient=False)
            except ProviderError as error:
                exc = error
            except Exception as error:  # a bug reading a stream must not reach the caller
                logger.exception("AI stream via %s: unexpected error", candidate.provider)
                exc = ProviderError(candidate.provider, type(error).__name__, transient=False)
            logger.warning("AI stream via %s/%s failed: %s", candidate.provider, candidate.model, exc)
            if exc.transient and try_number == 1:
                self.attempts.append(Attempt(candidate.provider, candidate.model, "retried", str(exc)))
                continue
            self.attempts.append(Attempt(candidate.provider, candidate.model, "failed", str(exc)))
            with schema_context(self._plan.schema):
                meter_failure(self._plan, candidate)
            return None
        return None

    def _abandoned(self, candidate: Candidate, usage: StreamUsage, streamed: str) -> None:
        prompt = " ".join([self._request.system, *(message.content for message in self._request.messages)])
        self.tokens_in = usage.tokens_in or catalog.tokens_estimate(prompt)
        self.tokens_out = usage.tokens_out or catalog.tokens_estimate(streamed)
        self.attempts.append(Attempt(candidate.provider, candidate.model, "abandoned"))
        with schema_context(self._plan.schema):
            meter_answer(self._plan, candidate, self.tokens_in, self.tokens_out)

    def _run(self) -> Generator[str, None, None]:
        # The consumer may iterate after leaving the tenant's schema (a streaming response):
        # every database and breaker step re-enters the schema the stream was created in.
        plan = self._plan
        for candidate in plan.candidates:
            with schema_context(plan.schema):
                if not allowed(plan, candidate, self.attempts):
                    continue
            usage = StreamUsage()
            started = self._start(candidate, usage)
            if started is None:
                continue
            deltas, first = started
            self.provider, self.model, self.available = candidate.provider, candidate.model, True
            streamed = [first]
            try:
                yield storable_text(first)
                for delta in deltas:
                    streamed.append(delta)
                    yield storable_text(delta)
            except GeneratorExit:
                # The reader stopped (closed the stream, went away): what was generated is
                # billed all the same. Most providers report usage only at the end: estimate.
                self._abandoned(candidate, usage, "".join(streamed))
                _close(deltas)
                raise
            except Exception as exc:  # ProviderError or a bug: end the stream, never raise
                logger.warning("AI stream via %s/%s interrupted: %s", candidate.provider, candidate.model, exc)
                self.interrupted = True
                self.attempts.append(Attempt(candidate.provider, candidate.model, "interrupted", str(exc)))
                with schema_context(plan.schema):
                    meter_failure(plan, candidate)
                return
            self.tokens_in, self.tokens_out = usage.tokens_in, usage.tokens_out
            self.truncated = usage.truncated
            self.attempts.append(Attempt(candidate.provider, candidate.model, "truncated" if usage.truncated else "ok"))
            with schema_context(plan.schema):
                breaker_success(schema=plan.schema, provider=candidate.provider)
                meter_answer(plan, candidate, usage.tokens_in, usage.tokens_out)
            return


def provider_configured(task: Task) -> bool:
    """Whether a cloud provider may answer `task` for this tenant now (it may still fail, or its breaker be open)."""
    return bool(plan_for(task).candidates)


def context_budget(task: Task = "generate") -> int:
    """The conversation tokens a prompt for `task` may carry, for the model that will answer first."""
    plan = plan_for(task)
    return catalog.context_budget(plan.candidates[0].model if plan.candidates else "")


def _close(deltas: Iterator[str]) -> None:
    """Close a provider's stream early, releasing its HTTP connection."""
    close = getattr(deltas, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # closing a half-read response must not turn into an error
            logger.warning("AI stream: closing an abandoned stream failed", exc_info=True)


def generate_stream(
    prompt: Prompt, *, system: str = "", max_tokens: int = 512, temperature: float = 0.3
) -> GenerationStream:
    """Stream text deltas for the agent copilot; an empty stream with `available=False` when offline."""
    request = CompletionRequest(
        model="", messages=_messages(prompt), system=system, max_tokens=max_tokens, temperature=temperature
    )
    return GenerationStream(plan_for("generate"), request)


# --- embed -------------------------------------------------------------------------------


def _embed_with_cache(
    provider: Provider, candidate: Candidate, texts: Sequence[str], kind: EmbedKind
) -> tuple[Vectors, int, int]:
    """Rows from the cache, the rest from `provider`; returns (vectors, tokens, cache hits)."""
    keys = [cache_key(candidate.provider, candidate.model, "embed", f"{kind}\x00{text}") for text in texts]
    out = np.empty((len(texts), catalog.EMBED_DIMENSIONS), dtype=np.float32)
    missing: list[int] = []
    for row, key in enumerate(keys):
        hit = ai_cache_get(key)
        if hit is None:
            missing.append(row)
        else:
            out[row] = np.asarray(hit, dtype=np.float32)
    tokens = 0
    if missing:
        fresh = provider.embed(
            [texts[row] for row in missing], model=candidate.model, kind=kind, dimensions=catalog.EMBED_DIMENSIONS
        )
        tokens = fresh.tokens_in
        for row, vector in zip(missing, fresh.vectors, strict=True):
            out[row] = vector
            ai_cache_put(
                key=keys[row],
                task="embed",
                provider=candidate.provider,
                model=candidate.model,
                value=[round(float(x), 7) for x in vector],
            )
    return out, tokens, len(texts) - len(missing)


def embed(texts: Sequence[str], *, kind: EmbedKind = "query") -> EmbedResult:
    """Embed texts as 384-dim unit vectors, cached per tenant; `kind` is e5's query/passage role."""
    plan = plan_for("embed")
    attempts: list[Attempt] = []
    if not texts:
        return EmbedResult(np.empty((0, catalog.EMBED_DIMENSIONS), np.float32), catalog.LOCAL, EMBED_MODEL)
    hits: dict[str, int] = {}

    def call(provider: Provider, candidate: Candidate) -> tuple[Vectors, int, int]:
        vectors, tokens, cached = _embed_with_cache(provider, candidate, texts, kind)
        hits[candidate.provider] = cached
        return vectors, tokens, 0

    answered = run_chain(plan, call, attempts)
    if answered is not None:
        return EmbedResult(
            vectors=answered.value,
            provider=answered.candidate.provider,
            model=answered.candidate.model,
            cached=hits.get(answered.candidate.provider, 0),
            degraded=plan.degraded,
            attempts=tuple(attempts),
        )
    local = Candidate(catalog.LOCAL, EMBED_MODEL, _LOCAL_CONFIG)
    vectors, _, cached = _embed_with_cache(local_provider, local, texts, kind)
    ai_usage_record(task="embed", provider=catalog.LOCAL, model=EMBED_MODEL)
    attempts.append(Attempt(catalog.LOCAL, EMBED_MODEL, "ok"))
    return EmbedResult(vectors, catalog.LOCAL, EMBED_MODEL, cached, plan.degraded, tuple(attempts))


# --- classify ----------------------------------------------------------------------------


# Below this self-reported confidence a provider's intent is `unknown` (the model rates
# another answer at least as likely).
PROVIDER_MIN_CONFIDENCE = 0.5


def _parse_intent(text: str, names: Sequence[str], provider: str) -> tuple[str, float]:
    raw = text.strip()
    if raw.startswith("```"):  # some models fence JSON even when asked not to
        raw = raw.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(raw)
        intent, confidence = data["intent"], float(data["confidence"])
    except (ValueError, TypeError, KeyError) as exc:
        raise ProviderError(provider, f"malformed classification: {text[:200]!r}", transient=False) from exc
    if intent not in names or not 0.0 <= confidence <= 1.0:
        raise ProviderError(provider, f"invalid classification: {text[:200]!r}", transient=False)
    return str(intent), confidence


def classify_intent(
    text: str, *, intents: Mapping[str, Sequence[str]] | None = None, language: str | None = None
) -> RoutedIntentResult:
    """Classify a message into the default intents plus the tenant's (`intents`: name → example phrases).

    With a provider configured, a cheap model answers in structured JSON; otherwise (or when
    it fails) the offline classifier does, exactly as `apps.ai.intents.classify_intent`
    (`language`, the detected one, adds its English head for English messages).
    """
    plan = plan_for("classify")
    attempts: list[Attempt] = []
    examples = merged_examples(intents)
    names = [*examples, UNKNOWN] if UNKNOWN not in examples else list(examples)
    cache_text = f"{examples_hash(examples)}\x00{text}"
    request = CompletionRequest(
        model="",
        messages=[ChatMessage("user", text)],
        system=classify_system(examples),
        max_tokens=60,
        temperature=0.0,
        json_schema=classify_schema(names),
    )

    def lookup(candidate: Candidate) -> tuple[str, float] | None:
        hit = ai_cache_get(cache_key(candidate.provider, candidate.model, "classify", cache_text))
        return (str(hit[0]), float(hit[1])) if hit is not None else None

    def call(provider: Provider, candidate: Candidate) -> tuple[tuple[str, float], int, int]:
        answer = complete_whole(provider, candidate.model, request)
        intent, confidence = _parse_intent(answer.text, names, candidate.provider)
        ai_cache_put(
            key=cache_key(candidate.provider, candidate.model, "classify", cache_text),
            task="classify",
            provider=candidate.provider,
            model=candidate.model,
            value=[intent, confidence],
        )
        return (intent, confidence), answer.tokens_in, answer.tokens_out

    answered = run_chain(plan, call, attempts, lookup=lookup)
    if answered is not None:
        intent, confidence = answered.value
        if confidence < PROVIDER_MIN_CONFIDENCE:
            # The model's own doubt: flows, rules and auto-replies act on the intent, so a
            # guess it rates unlikely is `unknown`, as below the offline thresholds.
            intent = UNKNOWN
        return RoutedIntentResult(
            intent=intent,
            confidence=confidence,
            scores={intent: round(confidence, 4)},
            provider=answered.candidate.provider,
            model=answered.candidate.model,
            cached=answered.cached,
            degraded=plan.degraded,
            attempts=tuple(attempts),
        )
    # Offline results are not cached here: the classifier is fast and keeps its own caches,
    # and a retuned classifier must not keep answering with stale results.
    offline = local_provider.classify(text, extra_examples=intents, language=language)
    ai_usage_record(task="classify", provider=catalog.LOCAL, model=CLASSIFY_MODEL)
    attempts.append(Attempt(catalog.LOCAL, CLASSIFY_MODEL, "ok"))
    return RoutedIntentResult(
        intent=offline.intent,
        confidence=offline.confidence,
        scores=offline.scores,
        similarity=offline.similarity,
        provider=catalog.LOCAL,
        model=CLASSIFY_MODEL,
        degraded=plan.degraded,
        attempts=tuple(attempts),
    )


# --- translate ---------------------------------------------------------------------------


def translate(text: str, source: str, target: str) -> TranslateResult:
    """Translate between language codes; offline, the original comes back with `translated=False`."""
    if source == target or not text.strip():
        return TranslateResult(text, source, target, translated=True, provider=catalog.LOCAL, model="identity")
    plan = plan_for("translate")
    attempts: list[Attempt] = []
    request = CompletionRequest(
        model="",
        messages=[ChatMessage("user", text)],
        system=translate_system(source, target),
        # A translation cut at the limit is refused (AnswerCut), so the limit must fit the
        # whole text: a token per character covers Latin scripts; Ethiopic and Arabic can
        # take more than one.
        max_tokens=max(256, 2 * len(text)),
        temperature=0.0,
    )
    answered = _complete(plan, request, attempts)
    if answered is None:
        return TranslateResult(
            text, source, target, False, catalog.LOCAL, "", degraded=plan.degraded, attempts=tuple(attempts)
        )
    translated, candidate, _, _ = answered
    return TranslateResult(
        translated.strip(),
        source,
        target,
        True,
        candidate.provider,
        candidate.model,
        degraded=plan.degraded,
        attempts=tuple(attempts),
    )


# --- summarize ---------------------------------------------------------------------------


def summarize(
    messages: Sequence[str], *, max_sentences: int = 3, language: str | None = None, offline: bool = False
) -> SummaryResult:
    """Summarise a conversation (one string per message, e.g. "Customer: ..."), extractively when offline.

    `offline=True` asks no provider, whatever the settings: for callers inside a transaction,
    which must not hold it open while a provider answers.
    """
    plan = None if offline else plan_for("summarize")
    attempts: list[Attempt] = []
    if messages and plan is not None:
        request = CompletionRequest(
            model="",
            messages=[ChatMessage("user", "\n".join(messages))],
            system=summarize_system(max_sentences, language),
            max_tokens=80 * max_sentences,
            temperature=0.2,
        )
        answered = _complete(plan, request, attempts)
        if answered is not None:
            text, candidate, _, _ = answered
            return SummaryResult(
                text.strip(),
                extractive=False,
                provider=candidate.provider,
                model=candidate.model,
                degraded=plan.degraded,
                attempts=tuple(attempts),
            )
    text = local_provider.summarize(messages, max_sentences=max_sentences)
    ai_usage_record(task="summarize", provider=catalog.LOCAL, model=SUMMARIZE_MODEL)
    attempts.append(Attempt(catalog.LOCAL, SUMMARIZE_MODEL, "ok"))
    degraded = plan.degraded if plan is not None else False
    return SummaryResult(text, True, catalog.LOCAL, SUMMARIZE_MODEL, degraded, tuple(attempts))
