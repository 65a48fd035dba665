from __future__ import annotations

import pytest
from celery.signals import worker_init

import imaradesk.celery  # noqa: F401  (connects the worker signal handlers)
from apps.ai import embeddings
from apps.ai.warmup import analysers_warm


def test_warming_loads_the_models_a_first_message_needs() -> None:
    seconds = analysers_warm()
    assert seconds >= 0
    assert embeddings._model is not None  # the embedding model is in memory for the first message


class _Worker:
    def __init__(self, pool_cls: str) -> None:
        self.pool_cls = pool_cls


@pytest.mark.parametrize(("pool", "warmed"), [("threads", True), ("prefork", False), ("solo", False)])
def test_a_threads_pool_ai_worker_warms_its_own_process(
    monkeypatch: pytest.MonkeyPatch, pool: str, warmed: bool
) -> None:
    """Prefork and solo pools warm on `worker_process_init`; the threads pool sends no such signal."""
    calls: list[str] = []
    monkeypatch.setenv("IMARADESK_WARM_AI", "1")
    monkeypatch.setattr("apps.ai.warmup.analysers_warm_in_background", lambda: calls.append("warm"))
    worker_init.send(sender=_Worker(pool))
    assert calls == (["warm"] if warmed else [])


def test_the_embedding_model_uses_one_openmp_thread_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AI_EMBED_THREADS", raising=False)
    assert embeddings.embed_threads() == 1
    monkeypatch.setenv("AI_EMBED_THREADS", "0")
    assert embeddings.embed_threads() == 0  # one per core (OpenMP's default)
    monkeypatch.setenv("AI_EMBED_THREADS", "two")
    assert embeddings.embed_threads() == 1
