"""Hybrid knowledge search latency: the HNSW + GIN path against an exact sequential scan.

    python -m benchmarks.knowledge_search [--chunks N] [--queries Q] [--k K]

Creates a throw-away tenant `bench-kb-*`, fills it with N passages (random unit vectors,
random words, a few categories, 10% unpublished), then times `chunk_search` (the query
embedding is replaced by random vectors so that only the database is measured):
- indexed: the product path (HNSW iterative scan + GIN full text, fused by RRF);
- exact: the same SQL with index scans disabled, i.e. a sequential scan and a sort.
Prints p50/p95 of both, the ratio, and the recall@k of the HNSW vector part.
The tenant is dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import uuid
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
from apps.knowledge.embedding import DIM, ann_distance, vector_literal  # noqa: E402
from apps.knowledge.models import Category, Chunk, Document  # noqa: E402
from apps.tenants.models import Organization  # noqa: E402
from apps.tenants.services import organization_create  # noqa: E402
from benchmarks._setup import database_ready  # noqa: E402

# A vocabulary large enough that a question's words match a few percent of the passages, as
# in real text (a tiny vocabulary would make every OR-query match every passage).
_rng_words = random.Random(7)
WORDS = ["".join(_rng_words.choices("abcdefghijklmnopqrstuvwxyz", k=_rng_words.randint(4, 9))) for _ in range(3000)]


def _unit(rng: np.random.Generator, n: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    vectors = rng.normal(size=(n, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def _fill(chunks: int, rng: np.random.Generator) -> list[int]:
    categories = [Category.objects.create(name=f"cat-{i}").pk for i in range(5)]
    document = Document.objects.create(title="bench", file="knowledge/bench.txt", kind="txt", status="ready")
    vectors = _unit(rng, chunks)
    rows = []
    for i in range(chunks):
        text = " ".join(random.choices(WORDS, k=40))
        rows.append(
            Chunk(
                document=document,
                ordinal=i,
                text=text,
                content_hash=f"{i:064x}",
                embedding=vectors[i],
                search_config="english",
                is_live=random.random() > 0.1,
                category_id=random.choice(categories),
            )
        )
    Chunk.objects.bulk_create(rows, batch_size=1000)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE knowledge_chunk SET search_vector = to_tsvector('english', text) || to_tsvector('simple', text)"
        )
        cursor.execute("ANALYZE knowledge_chunk")
    return categories


def _time(queries: list[tuple[str, np.ndarray[Any, Any]]], k: int, exact: bool, category: int | None) -> list[float]:
    timings = []
    for text, vector in queries:
        selectors.__dict__["query_embed"] = lambda _text, v=vector: v
        with transaction.atomic():
            if exact:
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL enable_indexscan = off")
                    cursor.execute("SET LOCAL enable_bitmapscan = off")
            started = time.perf_counter()
            selectors.chunk_search(query=text, k=k, language="en", category_id=category)
            timings.append((time.perf_counter() - started) * 1000)
    return timings


def _ids(vector: np.ndarray[Any, Any], k: int, exact: bool, timings: list[float]) -> set[int]:
    literal = vector_literal(vector)
    with transaction.atomic(), connection.cursor() as cursor:
        if exact:
            cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
        # Exact: every row's float32 distance; otherwise the index's (half precision).
        distance = f"embedding::vector({DIM}) <=> %s::vector({DIM})" if exact else ann_distance("%s")
        started = time.perf_counter()
        sql = f"SELECT id FROM knowledge_chunk WHERE is_live ORDER BY {distance} LIMIT %s"  # noqa: S608
        cursor.execute(sql, [literal, k])
        rows = cursor.fetchall()
        timings.append((time.perf_counter() - started) * 1000)
        return {row[0] for row in rows}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    database_ready()
    rng = np.random.default_rng(42)
    random.seed(42)
    slug = f"bench-kb-{uuid.uuid4().hex[:8]}"
    organization_create(slug=slug, name=slug, domain=f"{slug}.localhost")
    org = Organization.objects.get(slug=slug)
    try:
        with tenant_context(org):
            started = time.perf_counter()
            categories = _fill(args.chunks, rng)
            print(f"filled {args.chunks} passages (HNSW + GIN maintained) in {time.perf_counter() - started:.1f}s")
            queries = [(" ".join(random.choices(WORDS, k=5)), v) for v in _unit(rng, args.queries)]
            _time(queries[:5], args.k, exact=False, category=None)  # warm the caches
            _time(queries[:5], args.k, exact=True, category=None)
            for label, category in (("all", None), ("one category", categories[0])):
                indexed = _time(queries, args.k, exact=False, category=category)
                exact = _time(queries, args.k, exact=True, category=category)
                p50_i, p95_i = statistics.median(indexed), _pct(indexed, 0.95)
                p50_e, p95_e = statistics.median(exact), _pct(exact, 0.95)
                print(
                    f"hybrid search k={args.k} ({label}): indexed p50 {p50_i:.2f} ms p95 {p95_i:.2f} ms | "
                    f"exact scan p50 {p50_e:.2f} ms p95 {p95_e:.2f} ms | exact/indexed p50 {p50_e / p50_i:.1f}x"
                )
            hnsw_ms: list[float] = []
            scan_ms: list[float] = []
            recall = [
                len(_ids(v, 10, exact=False, timings=hnsw_ms) & _ids(v, 10, exact=True, timings=scan_ms)) / 10
                for _text, v in queries
            ]
            p50_h, p50_s = statistics.median(hnsw_ms), statistics.median(scan_ms)
            print(
                f"vector top-10 alone: HNSW p50 {p50_h:.2f} ms p95 {_pct(hnsw_ms, 0.95):.2f} ms | "
                f"exact scan p50 {p50_s:.2f} ms p95 {_pct(scan_ms, 0.95):.2f} ms | exact/HNSW p50 {p50_s / p50_h:.1f}x"
                f" | recall@10 {statistics.mean(recall):.3f} (random vectors are HNSW's worst case)"
            )
    finally:
        org.delete(force_drop=True)


if __name__ == "__main__":
    main()
