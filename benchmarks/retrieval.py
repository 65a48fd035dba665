"""Retrieval at scale: HNSW + full text on clustered vectors, against exact search and JSON-in-Python.

    python -m benchmarks.retrieval [--sizes 10000,100000] [--million] [--queries 100]

Creates a throw-away tenant `bench-rt-*` and, for each size, loads that many passages with
synthetic *clustered* 384-dim unit vectors (300 Gaussian centres, points near them, like
real embeddings, which are far from uniform) into its `knowledge_chunk` table by COPY, then
builds the HNSW index (timed). It reports:
- vector top-10 latency p50/p99 and recall@10 against an exact scan, per `hnsw.ef_search`;
- hybrid top-10 latency (`selectors.chunk_search`, query embedding replaced by the vector);
- filtered recall@10 (a category holding 5% of the passages, iterative scan);
- the baseline of the product Imaradesk grew from: vectors stored as JSON arrays, every row
  loaded and cosine computed in Python (a few queries), and the latency ratio;
- ingestion throughput (passages/s, extraction + chunking + e5 embedding + insert) of a real
  text, this repository's docs/architecture.md.
The tenant is dropped afterwards.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imaradesk.settings.base")
os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("LOG_LEVEL", "WARNING")
django.setup()

import numpy as np  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from apps.core.tenancy import tenant_context  # noqa: E402
from apps.knowledge import selectors  # noqa: E402
from apps.knowledge.embedding import DIM, vector_literal  # noqa: E402
from apps.knowledge.indexing import document_index  # noqa: E402
from apps.knowledge.models import Chunk, Document  # noqa: E402
from apps.knowledge.services import document_create  # noqa: E402
from apps.tenants.models import Organization  # noqa: E402
from apps.tenants.services import organization_create  # noqa: E402
from benchmarks._setup import database_ready  # noqa: E402

Matrix = np.ndarray[Any, np.dtype[np.float32]]
CENTRES = 300
NOISE = 0.045  # per dimension: a point's cosine to its centre ≈ 0.75, like e5 neighbours
FILTER_CATEGORY, OTHER_CATEGORIES = 1, 19  # category 1 holds 5% of the passages
EF_SEARCH = (40, 64, 100, 200)
_rng_words = random.Random(7)
WORDS = ["".join(_rng_words.choices("abcdefghijklmnopqrstuvwxyz", k=_rng_words.randint(4, 9))) for _ in range(3000)]


def _normalise(vectors: Matrix) -> Matrix:
    normalised: Matrix = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    return normalised


def _points(rng: np.random.Generator, centres: Matrix, n: int) -> tuple[Matrix, np.ndarray[Any, Any]]:
    owners = rng.integers(0, len(centres), size=n)
    return _normalise(centres[owners] + rng.normal(scale=NOISE, size=(n, DIM)).astype(np.float32)), owners


def _cluster_words(owner: int) -> list[str]:
    # Each cluster has its own 20 topic words, so that full text and vectors roughly agree.
    return WORDS[(owner * 20) % len(WORDS) : (owner * 20) % len(WORDS) + 20]


def _load(document_id: int, start: int, n: int, rng: np.random.Generator, centres: Matrix) -> float:
    """COPY n passages; returns seconds. The HNSW index is dropped first and rebuilt by the caller."""
    vectors, owners = _points(rng, centres, n)
    started = time.perf_counter()
    rows = io.StringIO()
    for i in range(n):
        words = random.choices(_cluster_words(int(owners[i])), k=8) + random.choices(WORDS, k=24)
        positions: dict[str, list[int]] = {}
        for position, word in enumerate(words, start=1):
            positions.setdefault(word, []).append(position)
        tsvector = " ".join(f"'{word}':{','.join(map(str, p))}" for word, p in positions.items())
        category = FILTER_CATEGORY if random.random() < 0.05 else 2 + random.randrange(OTHER_CATEGORIES)
        rows.write(
            f"{document_id}\t{start + i}\t{' '.join(words)}\t{start + i:064x}\t{vector_literal(vectors[i])}\t"
            f"simple\t{tsvector}\tt\t{category}\t{{}}\t2026-01-01 00:00:00+00\t0\t\n"
        )
    with (
        connection.cursor() as cursor,
        cursor.copy(
            "COPY knowledge_chunk (document_id, ordinal, text, content_hash, embedding, search_config, search_vector,"
            " is_live, category_id, tags, created, token_count, heading_path) FROM STDIN"
        ) as copy,
    ):
        copy.write(rows.getvalue())
    return time.perf_counter() - started


def _index_build() -> float:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute(
            "CREATE INDEX knowledge_chunk_embedding_hnsw ON knowledge_chunk "
            f"USING hnsw ((embedding::vector({DIM})) vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        )
    with connection.cursor() as cursor:
        # Flush GIN's pending list as autovacuum would; a fresh COPY leaves it full and every
        # full-text search would scan it.
        cursor.execute("VACUUM ANALYZE knowledge_chunk")
    return time.perf_counter() - started


def _top10(vector: Matrix, *, exact: bool, ef: int = 40, category: int | None = None) -> tuple[list[int], float]:
    where = "is_live" + (" AND category_id = %s" if category is not None else "")
    params: list[Any] = [*([category] if category is not None else []), vector_literal(vector)]
    with transaction.atomic(), connection.cursor() as cursor:
        if exact:
            cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(
            "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), set_config('hnsw.ef_search', %s, true)",
            [str(ef)],
        )
        started = time.perf_counter()
        cursor.execute(
            f"SELECT id FROM knowledge_chunk WHERE {where} "  # noqa: S608 - fixed fragments
            f"ORDER BY embedding::vector({DIM}) <=> %s::vector({DIM}) LIMIT 10",
            params,
        )
        ids = [row[0] for row in cursor.fetchall()]
        return ids, (time.perf_counter() - started) * 1000


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _json_baseline(vector: Matrix) -> tuple[list[int], float]:
    """The original product: every row's JSON array loaded, cosine in Python, sorted."""
    started = time.perf_counter()
    query = vector.tolist()
    query_norm = math.sqrt(sum(x * x for x in query))
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, embedding_json FROM bench_json_chunk")
        scored = []
        for row_id, raw in cursor.fetchall():
            values = json.loads(raw)
            dot = sum(a * b for a, b in zip(query, values, strict=True))
            scored.append((dot / (query_norm * math.sqrt(sum(x * x for x in values))), row_id))
    scored.sort(reverse=True)
    return [row_id for _score, row_id in scored[:10]], (time.perf_counter() - started) * 1000


def _measure(size: int, queries: Matrix, baseline_queries: int) -> None:
    truth = [_top10(q, exact=True)[0] for q in queries]
    exact_ms = [_top10(q, exact=True)[1] for q in queries[:20]]
    print(f"  exact scan top-10: p50 {statistics.median(exact_ms):.1f} ms")
    p50_by_ef: dict[int, float] = {}
    for ef in EF_SEARCH:
        for q in queries[:10]:
            _top10(q, exact=False, ef=ef)  # warm
        results = [_top10(q, exact=False, ef=ef) for q in queries]
        latencies = [ms for _ids, ms in results]
        recall = statistics.mean(len(set(ids) & set(t)) / 10 for (ids, _ms), t in zip(results, truth, strict=True))
        p50_by_ef[ef] = statistics.median(latencies)
        print(
            f"  vector top-10 ef_search={ef:>3}: p50 {p50_by_ef[ef]:.2f} ms p99 {_pct(latencies, 0.99):.2f} ms "
            f"recall@10 {recall:.4f}"
        )
    filtered_truth = [_top10(q, exact=True, category=FILTER_CATEGORY)[0] for q in queries]
    for ef in (40, 100):
        results = [_top10(q, exact=False, ef=ef, category=FILTER_CATEGORY) for q in queries]
        recall = statistics.mean(
            len(set(ids) & set(t)) / max(1, len(t)) for (ids, _ms), t in zip(results, filtered_truth, strict=True)
        )
        latencies = [ms for _ids, ms in results]
        print(
            f"  filtered (5% category) ef_search={ef}: p50 {statistics.median(latencies):.2f} ms "
            f"p99 {_pct(latencies, 0.99):.2f} ms recall@10 {recall:.4f}"
        )
    hybrid = []
    for q in queries:
        text = " ".join(random.choices(WORDS, k=5))
        selectors.__dict__["query_embed"] = lambda _text, v=q: v
        started = time.perf_counter()
        selectors.chunk_search(query=text, k=10, language="en")
        hybrid.append((time.perf_counter() - started) * 1000)
    print(f"  hybrid top-10 (chunk_search): p50 {statistics.median(hybrid):.2f} ms p99 {_pct(hybrid, 0.99):.2f} ms")
    baseline = [_json_baseline(q) for q in queries[:baseline_queries]]
    baseline_ms = statistics.median(ms for _ids, ms in baseline)
    agree = statistics.mean(len(set(ids) & set(t)) / 10 for (ids, _ms), t in zip(baseline, truth, strict=False))
    print(
        f"  baseline JSON arrays + Python cosine ({baseline_queries} queries): p50 {baseline_ms:.0f} ms "
        f"(agrees with exact {agree:.2f}) | baseline/HNSW(ef=40) {baseline_ms / p50_by_ef[40]:.0f}x | "
        f"baseline/hybrid {baseline_ms / statistics.median(hybrid):.0f}x"
    )


def _ingestion() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "architecture.md").read_bytes()
    started = time.perf_counter()
    document = document_create(upload=io.BytesIO(text), filename="architecture.md", queue_index=False)
    document = document_index(document_id=document.pk) or document
    elapsed = time.perf_counter() - started
    passages = document.chunks_embedded
    print(
        f"ingestion of docs/architecture.md ({len(text) / 1024:.0f} KiB): {passages} passages in {elapsed:.1f}s "
        f"= {passages / elapsed:.1f} passages/s (extract + chunk + e5 embed + insert)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--million", action="store_true", help="Also measure 1,000,000 passages (slow).")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--baseline-queries", type=int, default=3)
    parser.add_argument("--skip-ingestion", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s] + ([1_000_000] if args.million else [])
    database_ready()
    rng = np.random.default_rng(42)
    random.seed(42)
    centres = _normalise(rng.normal(size=(CENTRES, DIM)).astype(np.float32))
    slug = f"bench-rt-{uuid.uuid4().hex[:8]}"
    organization_create(slug=slug, name=slug, domain=f"{slug}.localhost")
    org = Organization.objects.get(slug=slug)
    try:
        with tenant_context(org):
            if not args.skip_ingestion:
                _ingestion()
                Chunk.objects.all().delete()
            document = Document.objects.create(title="bench", file="knowledge/bench.txt", kind="txt", status="ready")
            queries, _owners = _points(rng, centres, args.queries)
            loaded = 0
            for size in sorted(sizes):
                with connection.cursor() as cursor:
                    cursor.execute("DROP INDEX IF EXISTS knowledge_chunk_embedding_hnsw")
                added = size - loaded
                copy_seconds = _load(document.pk, loaded, added, rng, centres)
                loaded = size
                build_seconds = _index_build()
                with connection.cursor() as cursor:
                    cursor.execute("DROP TABLE IF EXISTS bench_json_chunk")
                    cursor.execute(
                        "CREATE TABLE bench_json_chunk AS SELECT id, "
                        "array_to_json(embedding::real[])::text AS embedding_json FROM knowledge_chunk"
                    )
                print(
                    f"{size:,} passages: COPY of {added:,} in {copy_seconds:.1f}s "
                    f"({added / max(copy_seconds, 1e-9):,.0f}/s, "
                    f"vectors generated included), HNSW build over {size:,} {build_seconds:.1f}s"
                )
                _measure(size, queries, args.baseline_queries)
            with connection.cursor() as cursor:
                cursor.execute("DROP TABLE IF EXISTS bench_json_chunk")
    finally:
        org.delete(force_drop=True)


if __name__ == "__main__":
    main()
