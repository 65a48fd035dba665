"""What the router knows about providers: task names, default models, cheaper models, prices.

Prices are list prices in USD per million tokens, used to *estimate* cost for budgets and
the usage page; the vendor's invoice is the truth. Unknown models are priced like the
provider's strong model, so a budget errs on the safe side.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal
from typing import Literal

Task = Literal["classify", "generate", "embed", "translate", "summarize"]
TASKS: tuple[Task, ...] = ("classify", "generate", "embed", "translate", "summarize")
LOCAL = "local"
CLOUD_PROVIDERS: tuple[str, ...] = ("openai", "anthropic", "google")
PROVIDERS: tuple[str, ...] = (*CLOUD_PROVIDERS, LOCAL)
EMBED_DIMENSIONS = 384  # the same width as the offline e5 model, so every vector fits one pgvector column

# Cheap fast models classify (and translate/summarise); strong models generate.
DEFAULT_MODELS: dict[str, dict[Task, str]] = {
    "openai": {
        "classify": "gpt-4o-mini",
        "generate": "gpt-4o",
        "embed": "text-embedding-3-small",
        "translate": "gpt-4o-mini",
        "summarize": "gpt-4o-mini",
    },
    "anthropic": {
        "classify": "claude-haiku-4-5",
        "generate": "claude-sonnet-4-6",
        "translate": "claude-haiku-4-5",
        "summarize": "claude-haiku-4-5",
    },
    "google": {
        "classify": "gemini-2.5-flash-lite",
        "generate": "gemini-2.5-flash",
        "embed": "gemini-embedding-001",
        "translate": "gemini-2.5-flash-lite",
        "summarize": "gemini-2.5-flash-lite",
    },
}
# What a task degrades to when the monthly budget is spent.
CHEAP_MODELS: dict[str, str] = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-haiku-4-5",
    "google": "gemini-2.5-flash-lite",
}

_M = Decimal(1_000_000)
PRICES: dict[str, tuple[Decimal, Decimal]] = {
    "gpt-4o": (Decimal("2.50"), Decimal("10.00")),
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.60")),
    "text-embedding-3-small": (Decimal("0.02"), Decimal("0")),
    "claude-sonnet-4-6": (Decimal("3.00"), Decimal("15.00")),
    "claude-haiku-4-5": (Decimal("1.00"), Decimal("5.00")),
    "gemini-2.5-flash": (Decimal("0.30"), Decimal("2.50")),
    "gemini-2.5-flash-lite": (Decimal("0.10"), Decimal("0.40")),
    "gemini-embedding-001": (Decimal("0.15"), Decimal("0")),
}


def can_embed(provider: str) -> bool:
    return provider == LOCAL or "embed" in DEFAULT_MODELS.get(provider, {})


# Tokens of conversation (recent messages + rolling summary) one prompt may carry: the
# strong models get the longer memory, the cheap ones a shorter one (each token is paid for
# on every turn), and the offline extractive path the shortest.
CONTEXT_BUDGETS: dict[str, int] = {
    "gpt-4o": 4000,
    "gpt-4o-mini": 2000,
    "claude-sonnet-4-6": 4000,
    "claude-haiku-4-5": 2000,
    "gemini-2.5-flash": 4000,
    "gemini-2.5-flash-lite": 2000,
}
DEFAULT_CONTEXT_BUDGET = 1500


def _family(model: str, known: Iterable[str]) -> str | None:
    """`model` itself if known, else the known family a dated or preview name belongs to
    ("gpt-4o-mini-2024-07-18" → "gpt-4o-mini"), else None."""
    names = set(known)
    if model in names:
        return model
    families = [name for name in names if model.startswith(name + "-")]
    return max(families, key=len) if families else None


def _price(provider: str, model: str) -> tuple[Decimal, Decimal]:
    family = _family(model, PRICES)
    return PRICES[family or DEFAULT_MODELS[provider]["generate"]]


def context_budget(model: str) -> int:
    """The conversation tokens a prompt to `model` may carry ("" or unknown: the default)."""
    family = _family(model, CONTEXT_BUDGETS)
    return CONTEXT_BUDGETS[family] if family else DEFAULT_CONTEXT_BUDGET


def cost_estimate(provider: str, model: str, tokens_in: int, tokens_out: int) -> Decimal:
    if provider == LOCAL:
        return Decimal(0)
    price_in, price_out = _price(provider, model)
    return (price_in * tokens_in + price_out * tokens_out) / _M


def tokens_estimate(text: str) -> int:
    """About 1.3 tokens per word for the languages served here; a budget, not a bill."""
    return math.ceil(len(text.split()) * 1.3) + 4
