"""The instructions the router sends to cloud models for each task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

EXAMPLES_PER_INTENT = 3


def classify_system(examples: Mapping[str, Sequence[str]]) -> str:
    lines = [
        "You classify one customer message sent to a business on WhatsApp into exactly one intent.",
        'Answer "unknown" when no intent fits. Give your confidence between 0 and 1.',
        "Intents, with example messages:",
    ]
    for name, phrases in examples.items():
        shown = "; ".join(phrases[:EXAMPLES_PER_INTENT])
        lines.append(f"- {name}: {shown}")
    return "\n".join(lines)


def classify_schema(names: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "intent": {"type": "string", "enum": list(names)},
            "confidence": {"type": "number"},
        },
        "required": ["intent", "confidence"],
        "additionalProperties": False,
    }


def translate_system(source: str, target: str) -> str:
    return (
        f"Translate the user's message from the language with code '{source}' into the language with code "
        f"'{target}'. Keep names, numbers, links and emoji. Answer with the translation only."
    )


def summarize_system(max_sentences: int, language: str | None) -> str:
    into = f" in the language with code '{language}'" if language else " in the conversation's main language"
    return (
        "Summarise this customer-support conversation for the agent who takes it over: the customer's "
        f"problem, what was already done, and what is still open. At most {max_sentences} sentences{into}."
    )
