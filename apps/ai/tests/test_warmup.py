from __future__ import annotations

from apps.ai import embeddings
from apps.ai.warmup import analysers_warm


def test_warming_loads_the_models_a_first_message_needs() -> None:
    seconds = analysers_warm()
    assert seconds >= 0
    assert embeddings._model is not None  # the embedding model is in memory for the first message
