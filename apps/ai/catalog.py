"""What the router knows about providers: task names, default models, cheaper models, prices.

Prices are list prices in USD per million tokens, used to *estimate* cost for budgets and
the usage page; the vendor's invoice is the truth. Unknown models are priced like the
provider's strong model, so a budget errs on the safe side.
"""

from __future__ import annotations

import math
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


def _price(provider: str, model: str) -> tuple[Decimal, Decimal]:
    """The model's prices; a dated or preview name ("gpt-4o-mini-2024-07-18") as its family's."""
    if model in PRICES:
        return PRICES[model]
    families = [known for known in PRICES if model.startswith(known + "-")]
    if families:
        return PRICES[max(families, key=len)]
    return PRICES[DEFAULT_MODELS[provider]["generate"]]


def cost_estimate(provider: str, model: str, tokens_in: int, tokens_out: int) -> Decimal:
    if provider == LOCAL:
        return Decimal(0)
    price_in, price_out = _price(provider, model)
    return (price_in * tokens_in + price_out * tokens_out) / _M


def tokens_estimate(text: str) -> int:
    """About 1.3 tokens per word for the languages served here; a budget, not a bill."""
    return math.ceil(len(text.split()) * 1.3) + 4
