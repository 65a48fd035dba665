"""What the router returns: typed results that always say which provider and model answered."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from apps.ai.intents import IntentResult
from apps.ai.providers.base import Vectors

Outcome = Literal["ok", "cached", "failed", "retried", "circuit_open", "interrupted", "abandoned", "truncated"]


@dataclass(frozen=True)
class Attempt:
    provider: str
    model: str
    outcome: Outcome
    error: str = ""


@dataclass(frozen=True)
class GenerateResult:
    text: str
    # False when no provider could answer (offline only, or all failed): the caller falls back
    # to its own templates or extractive answers. `text` is then empty.
    available: bool
    provider: str
    model: str
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: Decimal = Decimal(0)
    degraded: bool = False  # the monthly budget was spent: a cheaper model (or none) answered
    attempts: tuple[Attempt, ...] = ()


@dataclass(frozen=True)
class EmbedResult:
    # (n, 384) L2-normalised rows. Vectors of different `model`s live in different spaces:
    # store `model` with each vector and compare only vectors of the same model.
    vectors: Vectors
    provider: str
    model: str
    cached: int = 0  # how many rows came from the cache
    degraded: bool = False
    attempts: tuple[Attempt, ...] = ()


@dataclass(frozen=True)
class RoutedIntentResult(IntentResult):
    """The offline classifier's result type, plus where the answer came from."""

    provider: str = "local"
    model: str = ""
    cached: bool = False
    degraded: bool = False
    attempts: tuple[Attempt, ...] = ()


@dataclass(frozen=True)
class TranslateResult:
    text: str  # the original text when `translated` is False
    source: str
    target: str
    translated: bool
    provider: str
    model: str
    degraded: bool = False
    attempts: tuple[Attempt, ...] = ()


@dataclass(frozen=True)
class SummaryResult:
    text: str
    extractive: bool  # True: sentences picked offline, not written by a model
    provider: str
    model: str
    degraded: bool = False
    attempts: tuple[Attempt, ...] = ()
