"""Retrieval at scale: HNSW + full text on clustered vectors, against exact search and JSON-in-Python.

    python -m benchmarks.retrieval [--sizes 10000,100000] [--million] [--queries 100]
    python -m benchmarks.retrieval --sizes 1000000 --skip-ingestion   # the 1M run (~20 min on 2 cores)

Creates a throw-away tenant `bench-rt-*` and, for each size, loads that many passages with
synthetic 384-dim unit vectors into its `knowledge_chunk` table by binary COPY (through a
staging table; the full-text vector is computed in SQL), then builds the HNSW index after
loading (timed; `maintenance_work_mem` sized for the graph, one parallel worker beside the
leader). The vectors (`benchmarks/_vectors.py`) are clustered like real embeddings, which are
far from uniform: topics → documents → passages, with the neighbourhood geometry measured on
real e5 embeddings (`--vectors calibrated`, the default; `python -m benchmarks.embedding_geometry`
compares them), or the earlier 300 isotropic clusters (`--vectors isotropic`, much harder for
any graph index). Queries are new passages of loaded documents. It reports:
- vector top-10 latency p50/p99 and recall@10 against exact search (computed in numpy on the
  generated vectors, checked against PostgreSQL's exact scan on a few queries), per
  `hnsw.ef_search`;
- hybrid top-10 latency (`selectors.chunk_search`, query embedding replaced by the vector),
  and in the same run the previous hybrid query (every full-text match ranked) as a baseline;
- filtered recall@10 (a category holding 5% of the passages, iterative scan);
- up to 100k passages, the baseline of the product Imaradesk grew from: vectors stored as JSON
  arrays, every row loaded and cosine computed in Python (a few queries), and the ratio;
- ingestion throughput (passages/s, extraction + chunking + e5 embedding + insert) of a real
  text, this repository's docs/architecture.md.
The load average is printed with the figures: on a shared machine, latencies follow it. For
1M passages start the local cluster with `IMARADESK_PG_SHARED_BUFFERS=4GB` (the index is
1.1 GB; with PostgreSQL's default 128 MB every search reads it through the OS cache).
The tenant is dropped afterwards (`--keep` leaves it, for EXPLAIN).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imaradesk.settings.base")
os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("LOG_LEVEL", "WARNING")
django.setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from pgvector.psycopg import register_vector  # noqa: E402

from apps.core.tenancy import tenant_context  # noqa: E402
from apps.knowledge import selectors  # noqa: E402
from apps.knowledge.embedding import (  # noqa: E402
    DIM,
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    ann_distance,
    vector_literal,
)
from apps.knowledge.indexing import document_index  # noqa: E402
from apps.knowledge.models import Chunk, Document  # noqa: E402
from apps.knowledge.services import document_create  # noqa: E402
from apps.tenants.models import Organization  # noqa: E402
from apps.tenants.services import organization_create  # noqa: E402
from benchmarks._setup import database_ready  # noqa: E402
from benchmarks._vectors import GEOMETRIES, Matrix, VectorSpace  # noqa: E402

FILTER_CATEGORY, OTHER_CATEGORIES = 1, 19  # category 1 holds 5% of the passages
EF_SEARCH = (40, 64, 100, 150, 200)
JSON_BASELINE_MAX = 100_000
_rng_words = random.Random(7)
WORDS = ["".join(_rng_words.choices("abcdefghijklmnopqrstuvwxyz", k=_rng_words.randint(4, 9))) for _ in range(3000)]


def _cluster_words(owner: int) -> list[str]:
    # Each topic has its own 20 words, so that full text and vectors roughly agree.
    return WORDS[(owner * 20) % len(WORDS) : (owner * 20) % len(WORDS) + 20]


@dataclass
class Corpus:
    """What was loaded, kept in memory for the exact top-10 (row i has ordinal i)."""

    vectors: Matrix
    categories: np.ndarray[Any, np.dtype[np.int32]]


LOAD_BATCH = 50_000


def _load(document_id: int, start: int, n: int, rng: np.random.Generator, space: VectorSpace) -> tuple[Corpus, float]:
    """Binary COPY of n passages into a staging table, then one INSERT … SELECT into knowledge_chunk."""
    started = time.perf_counter()
    raw = connection.connection
    register_vector(raw)
    vectors: list[Matrix] = []
    categories: list[np.ndarray[Any, np.dtype[np.int32]]] = []
    with raw.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE bench_stage (ordinal int, words text[], embedding vector, category int)")
        for offset in range(0, n, LOAD_BATCH):
            size = min(LOAD_BATCH, n - offset)
            batch, owners = space.passages(size)
            batch_categories = np.where(
                rng.random(size) < 0.05, FILTER_CATEGORY, 2 + rng.integers(0, OTHER_CATEGORIES, size=size)
            ).astype(np.int32)
            with cursor.copy("COPY bench_stage FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int4", "text[]", "vector", "int4"])
                for i in range(size):
                    words = random.choices(_cluster_words(int(owners[i])), k=8) + random.choices(WORDS, k=24)
                    copy.write_row((start + offset + i, words, batch[i], int(batch_categories[i])))
            vectors.append(batch)
            categories.append(batch_categories)
        cursor.execute(
            "INSERT INTO knowledge_chunk (document_id, ordinal, text, content_hash, embedding, search_config,"
            " search_vector, is_live, category_id, tags, created, token_count, heading_path)"
            " SELECT %s, ordinal, text, lpad(to_hex(ordinal), 64, '0'), embedding, 'simple',"
            " to_tsvector('simple', text), true, category, '{}', now(), 32, ''"
            " FROM (SELECT *, array_to_string(words, ' ') AS text FROM bench_stage) staged",
            [document_id],
        )
        cursor.execute("DROP TABLE bench_stage")
    return Corpus(np.concatenate(vectors), np.concatenate(categories)), time.perf_counter() - started


def _index_build(size: int, m: int, ef_construction: int) -> float:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # The graph is built in memory when it fits (~1.7 KB a 384-dim element with m=16), far
        # faster than spilling to disk; one parallel worker beside the leader on 2 cores.
        cursor.execute(f"SET maintenance_work_mem = '{max(1, math.ceil(size * 2.2 / 1_000_000))}GB'")
        cursor.execute("SET max_parallel_maintenance_workers = 1")
        cursor.execute(
            "CREATE INDEX knowledge_chunk_embedding_hnsw ON knowledge_chunk "
            f"USING hnsw ((embedding::halfvec({DIM})) halfvec_cosine_ops) "
            f"WITH (m = {m}, ef_construction = {ef_construction})"
        )
    with connection.cursor() as cursor:
        # Flush GIN's pending list as autovacuum would; a fresh COPY leaves it full and every
        # full-text search would scan it.
        cursor.execute("VACUUM ANALYZE knowledge_chunk")
    return time.perf_counter() - started


def _cpu_ns() -> int | None:
    """CPU time so far of this process and of its PostgreSQL backend, in ns (None if not local).

    On a machine shared with other work, wall-clock latency mostly measures waiting for a core
    (the load average is printed beside it); CPU time is what a search costs on an idle one.
    """
    try:
        with open(f"/proc/{connection.connection.info.backend_pid}/schedstat") as stat:
            backend = int(stat.read().split()[0])
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return time.process_time_ns() + backend


def _cpu_ms(before: int | None) -> float | None:
    after = _cpu_ns()
    return None if before is None or after is None else (after - before) / 1e6


Timed = tuple[list[int], float, float | None]  # ordinals, wall ms, CPU ms (client + backend)


def _top10(vector: Matrix, *, exact: bool, ef: int = 40, category: int | None = None) -> Timed:
    """Ordinals of the 10 nearest live passages, and the milliseconds the query took."""
    where = "is_live" + (" AND category_id = %s" if category is not None else "")
    params: list[Any] = [*([category] if category is not None else []), vector_literal(vector)]
    with transaction.atomic(), connection.cursor() as cursor:
        # As chunk_search: exact means no index; otherwise the HNSW index even on small tables.
        cursor.execute("SET LOCAL enable_indexscan = off" if exact else "SET LOCAL enable_seqscan = off")
        cursor.execute(
            "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), set_config('hnsw.ef_search', %s, true)",
            [str(ef)],
        )
        cpu = _cpu_ns()
        started = time.perf_counter()
        cursor.execute(
            f"SELECT ordinal FROM knowledge_chunk WHERE {where} "  # noqa: S608 - fixed fragments
            f"ORDER BY {ann_distance('%s')} LIMIT 10",
            params,
        )
        ids = [row[0] for row in cursor.fetchall()]
        return ids, (time.perf_counter() - started) * 1000, _cpu_ms(cpu)


def _exact_top10(corpus: Corpus, queries: Matrix, category: int | None = None) -> list[list[int]]:
    """Exact top-10 by cosine (the vectors are unit length: the dot product), in batches."""
    truth: list[list[int]] = []
    allowed = None if category is None else corpus.categories == category
    for offset in range(0, len(queries), 8):
        scores = queries[offset : offset + 8] @ corpus.vectors.T
        if allowed is not None:
            scores[:, ~allowed] = -2.0
        top = np.argpartition(-scores, 10, axis=1)[:, :10]
        for row, candidates in enumerate(top):
            truth.append([int(i) for i in candidates[np.argsort(-scores[row, candidates])]])
    return truth


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _recall(results: list[Timed], truth: list[list[int]]) -> float:
    return statistics.mean(
        len(set(ids) & set(t)) / max(1, len(t)) for (ids, _ms, _cpu), t in zip(results, truth, strict=True)
    )


def _cpu_p50(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f" | CPU p50 {statistics.median(known):.2f} ms" if known else ""


def _json_baseline(vector: Matrix) -> tuple[list[int], float]:
    """The original product: every row's JSON array loaded, cosine in Python, sorted."""
    started = time.perf_counter()
    query = vector.tolist()
    query_norm = math.sqrt(sum(x * x for x in query))
    with connection.cursor() as cursor:
        cursor.execute("SELECT ordinal, embedding_json FROM bench_json_chunk")
        scored = []
        for row_id, raw in cursor.fetchall():
            values = json.loads(raw)
            dot = sum(a * b for a, b in zip(query, values, strict=True))
            scored.append((dot / (query_norm * math.sqrt(sum(x * x for x in values))), row_id))
    scored.sort(reverse=True)
    return [row_id for _score, row_id in scored[:10]], (time.perf_counter() - started) * 1000


# The hybrid query before the full-text side was bounded (every match ranked with ts_rank_cd),
# kept here to measure the change in the same run.
_PREVIOUS_HYBRID_SQL = f"""
    WITH vec AS (
        SELECT id, row_number() OVER (ORDER BY distance, id) AS rank
        FROM (
            SELECT id, {ann_distance("%(q)s")} AS distance
            FROM knowledge_chunk WHERE is_live
            ORDER BY {ann_distance("%(q)s")} LIMIT %(k)s
        ) nearest
    ),
    fts AS (
        SELECT COALESCE((
            SELECT string_agg(DISTINCT quote_literal(lexeme), ' | ')
            FROM (
                SELECT unnest(tsvector_to_array(
                    to_tsvector(%(config)s::regconfig, array_to_string(%(words)s::text[], ' '))
                )) AS lexeme
                UNION
                SELECT unnest(tsvector_to_array(to_tsvector('simple', word)))
                FROM unnest(%(words)s::text[]) AS word
                WHERE to_tsvector(%(config)s::regconfig, word) <> ''::tsvector
            ) lexemes
        ), '')::tsquery AS query
    ),
    txt AS (
        SELECT id, row_number() OVER (ORDER BY score DESC, id) AS rank
        FROM (
            SELECT id, ts_rank_cd(search_vector, fts.query) AS score
            FROM knowledge_chunk, fts WHERE is_live AND search_vector @@ fts.query
            ORDER BY score DESC, id LIMIT %(k)s
        ) matched
    )
    SELECT c.id,
           COALESCE(1.0 / (60 + vec.rank), 0) + COALESCE(1.0 / (60 + txt.rank), 0) AS score,
           1 - (c.embedding::vector({DIM}) <=> %(q)s::vector({DIM})) AS similarity, vec.rank, txt.rank
    FROM vec FULL OUTER JOIN txt ON txt.id = vec.id
    JOIN knowledge_chunk c ON c.id = COALESCE(vec.id, txt.id)
    ORDER BY score DESC, similarity DESC LIMIT %(k)s
"""  # noqa: S608 - constant fragments; values are parameters


def _previous_hybrid(vector: Matrix, text: str) -> float:
    started = time.perf_counter()
    params: dict[str, str | int | list[str]] = {
        "q": vector_literal(vector),
        "k": 10,
        "config": "english",
        "words": selectors._words(text),
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
        cursor.execute(_PREVIOUS_HYBRID_SQL, params)
        ids = [row[0] for row in cursor.fetchall()]
    Chunk.objects.select_related("document", "article").in_bulk(ids)
    return (time.perf_counter() - started) * 1000


def _load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} {five:.1f} {fifteen:.1f} (2 cores)"


def _measure(size: int, corpus: Corpus, queries: Matrix, baseline_queries: int) -> None:
    truth = _exact_top10(corpus, queries)
    checked = [_top10(q, exact=True) for q in queries[:5]]
    agree = statistics.mean(len(set(ids) & set(t)) / 10 for (ids, _ms, _cpu), t in zip(checked, truth, strict=False))
    print(
        f"  exact scan top-10 in PostgreSQL: p50 {statistics.median(ms for _ids, ms, _cpu in checked):.0f} ms "
        f"(agrees with the numpy truth {agree:.2f}) | {_load_average()}"
    )
    p50_by_ef: dict[int, float] = {}
    for ef in EF_SEARCH:
        for q in queries[:10]:
            _top10(q, exact=False, ef=ef)  # warm
        results = [_top10(q, exact=False, ef=ef) for q in queries]
        latencies = [ms for _ids, ms, _cpu in results]
        p50_by_ef[ef] = statistics.median(latencies)
        print(
            f"  vector top-10 ef_search={ef:>3}: p50 {p50_by_ef[ef]:.2f} ms p99 {_pct(latencies, 0.99):.2f} ms "
            f"recall@10 {_recall(results, truth):.4f}{_cpu_p50([cpu for _ids, _ms, cpu in results])}"
        )
    filtered_truth = _exact_top10(corpus, queries, category=FILTER_CATEGORY)
    for ef in (40, 100, 200):
        results = [_top10(q, exact=False, ef=ef, category=FILTER_CATEGORY) for q in queries]
        latencies = [ms for _ids, ms, _cpu in results]
        print(
            f"  filtered (5% category) ef_search={ef}: p50 {statistics.median(latencies):.2f} ms "
            f"p99 {_pct(latencies, 0.99):.2f} ms recall@10 {_recall(results, filtered_truth):.4f}"
            f"{_cpu_p50([cpu for _ids, _ms, cpu in results])}"
        )
    texts = [" ".join(random.choices(WORDS, k=5)) for _q in queries]
    hybrid: list[float] = []
    hybrid_cpu: list[float | None] = []
    previous: list[float] = []
    previous_cpu: list[float | None] = []
    for q, text in zip(queries, texts, strict=True):
        selectors.__dict__["query_embed"] = lambda _text, v=q: v
        cpu = _cpu_ns()
        started = time.perf_counter()
        selectors.chunk_search(query=text, k=10, language="en")
        hybrid.append((time.perf_counter() - started) * 1000)
        hybrid_cpu.append(_cpu_ms(cpu))
    print(
        f"  hybrid top-10 (chunk_search): p50 {statistics.median(hybrid):.2f} ms p99 {_pct(hybrid, 0.99):.2f} ms"
        f"{_cpu_p50(hybrid_cpu)} | {_load_average()}"
    )
    for q, text in list(zip(queries, texts, strict=True))[:20]:
        cpu = _cpu_ns()
        previous.append(_previous_hybrid(q, text))
        previous_cpu.append(_cpu_ms(cpu))
    print(
        f"  hybrid top-10, previous query (every full-text match ranked), 20 queries: "
        f"p50 {statistics.median(previous):.2f} ms p99 {_pct(previous, 0.99):.2f} ms{_cpu_p50(previous_cpu)} "
        f"| bounded/previous {statistics.median(previous) / statistics.median(hybrid):.1f}x faster"
    )
    if size > JSON_BASELINE_MAX or baseline_queries < 1:
        print(f"  (JSON-array baseline skipped: --baseline-queries 0, or above {JSON_BASELINE_MAX:,} passages)")
        return
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_json_chunk")
        cursor.execute(
            "CREATE TABLE bench_json_chunk AS SELECT ordinal, "
            "array_to_json(embedding::real[])::text AS embedding_json FROM knowledge_chunk"
        )
    baseline = [_json_baseline(q) for q in queries[:baseline_queries]]
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_json_chunk")
    baseline_ms = statistics.median(ms for _ids, ms in baseline)
    agree = statistics.mean(len(set(ids) & set(t)) / 10 for (ids, _ms), t in zip(baseline, truth, strict=False))
    print(
        f"  baseline JSON arrays + Python cosine ({baseline_queries} queries): p50 {baseline_ms:.0f} ms "
        f"(agrees with exact {agree:.2f}) | baseline/HNSW(ef={settings.KNOWLEDGE_HNSW_EF_SEARCH}) "
        f"{baseline_ms / p50_by_ef.get(settings.KNOWLEDGE_HNSW_EF_SEARCH, p50_by_ef[40]):.0f}x | "
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
    parser.add_argument("--keep", action="store_true", help="Keep the tenant (for EXPLAIN); drop it by hand.")
    parser.add_argument(
        "--vectors", choices=sorted(GEOMETRIES), default="calibrated", help="see benchmarks/_vectors.py"
    )
    parser.add_argument("--m", type=int, default=HNSW_M, help="HNSW m (default: the product's index)")
    parser.add_argument("--ef-construction", type=int, default=HNSW_EF_CONSTRUCTION, help="(default: the product's)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s] + ([1_000_000] if args.million else [])
    database_ready()
    rng = np.random.default_rng(42)
    random.seed(42)
    space = VectorSpace(GEOMETRIES[args.vectors])
    print(f"vectors: {args.vectors} {space.geometry}")
    slug = f"bench-rt-{uuid.uuid4().hex[:8]}"
    organization_create(slug=slug, name=slug, domain=f"{slug}.localhost")
    org = Organization.objects.get(slug=slug)
    try:
        with tenant_context(org):
            if not args.skip_ingestion:
                _ingestion()
                Chunk.objects.all().delete()
            document = Document.objects.create(title="bench", file="knowledge/bench.txt", kind="txt", status="ready")
            loaded = 0
            corpora: list[Corpus] = []
            for size in sorted(sizes):
                with connection.cursor() as cursor:
                    cursor.execute("DROP INDEX IF EXISTS knowledge_chunk_embedding_hnsw")
                added = size - loaded
                corpus, load_seconds = _load(document.pk, loaded, added, rng, space)
                corpora.append(corpus)
                corpus = Corpus(
                    np.concatenate([c.vectors for c in corpora]), np.concatenate([c.categories for c in corpora])
                )
                corpora = [corpus]
                loaded = size
                build_seconds = _index_build(size, args.m, args.ef_construction)
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_relation_size('knowledge_chunk_embedding_hnsw')")
                    index_mb = cursor.fetchone()[0] / 2**20
                print(
                    f"{size:,} passages: load of {added:,} in {load_seconds:.1f}s "
                    f"({added / max(load_seconds, 1e-9):,.0f}/s, vectors generated included), "
                    f"HNSW build over {size:,} (m {args.m}, ef_construction {args.ef_construction}) "
                    f"{build_seconds:.1f}s, {index_mb:,.0f} MB | {_load_average()}"
                )
                queries, _topics = space.queries(args.queries)
                _measure(size, corpus, queries, args.baseline_queries)
    finally:
        if args.keep:
            print(f"kept tenant schema {org.schema_name}")
        else:
            org.delete(force_drop=True)


if __name__ == "__main__":
    main()
