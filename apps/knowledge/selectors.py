"""Reads of the knowledge base: hybrid retrieval (HNSW vectors + full text, fused by RRF) and lists."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Model, QuerySet

from apps.ai.language import detect_language
from apps.knowledge.embedding import DIM, ann_distance, query_embed, vector_literal
from apps.knowledge.indexing import SIMPLE, search_config_for
from apps.knowledge.models import Article, ArticleVersion, Chunk, Document, KnowledgeGap

# Reciprocal rank fusion constant (Cormack et al. 2009): damps the head of each list.
RRF_K = 60
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_QUERY_TERMS = 32
# A passage's vector and full-text vector are not needed by the callers: not reading them
# saves detoasting and parsing 1.5 KB a passage.
_CHUNK_SKIPPED = ("embedding", "search_vector")


@dataclass(frozen=True)
class SearchHit:
    chunk: Chunk
    score: float  # fused RRF score
    similarity: float  # cosine similarity of the question and the passage, -1..1
    vector_rank: int | None
    text_rank: int | None


def _words(question: str) -> list[str]:
    # Words only (\w+), so nothing in them is tsquery syntax; OR-ed in the query, so that a
    # passage matching some of a natural-language question's words still ranks.
    return list(dict.fromkeys(word.lower() for word in _WORD.findall(question)))[:MAX_QUERY_TERMS]


@cache
def _search_sql(*, filter_category: bool, filter_tags: bool) -> str:
    filters = ""
    if filter_category:
        filters += " AND category_id = %(category)s"
    if filter_tags:
        filters += " AND tags && %(tags)s::varchar(50)[]"
    return f"""
        WITH vec AS (
            SELECT id, row_number() OVER (ORDER BY distance, id) AS rank
            FROM (
                SELECT id, {ann_distance("%(q)s")} AS distance
                FROM knowledge_chunk
                WHERE is_live{filters}
                ORDER BY {ann_distance("%(q)s")}
                LIMIT %(k)s
            ) nearest
        ),
        terms AS (
            -- The question's words as full-text terms: each word's lexemes in the question's
            -- language configuration (stemmed) and as it is (`simple`: codes and names match
            -- whatever the language), OR-ed. The language's stop words are left out: they
            -- would match nearly every passage.
            SELECT DISTINCT
                '(' || string_agg(DISTINCT quote_literal(lexeme), ' | ' ORDER BY quote_literal(lexeme)) || ')' AS term
            FROM unnest(%(words)s::text[]) WITH ORDINALITY AS word(text, position),
                 LATERAL unnest(
                     tsvector_to_array(to_tsvector(%(config)s::regconfig, word.text))
                     || tsvector_to_array(to_tsvector('simple', word.text))
                 ) AS lexeme
            WHERE to_tsvector(%(config)s::regconfig, word.text) <> ''::tsvector
            GROUP BY word.position
        ),
        fts AS (
            -- `any_term`: a passage with at least one of the terms; `two_terms`: at least two
            -- ("minimum should match" 2, an OR of pairs, decided inside the GIN index).
            SELECT COALESCE((SELECT string_agg(term, ' | ') FROM terms), '')::tsquery AS any_term,
                   COALESCE((
                       SELECT string_agg(a.term || ' & ' || b.term, ' | ')
                       FROM terms a JOIN terms b ON a.term < b.term
                   ), (SELECT min(term) FROM terms), '')::tsquery AS two_terms
        ),
        strong AS MATERIALIZED (
            -- Ranking every match is what full-text search costs on a large base (a common
            -- word matches thousands of passages), so only a bounded candidate set is ranked:
            -- passages with two or more of the question's terms first, at most
            -- KNOWLEDGE_FTS_RANK_LIMIT of them (the first the GIN index yields), by ts_rank_cd
            -- (cover density: StackFAQ MRR@10 0.905 against 0.881 with the cheaper ts_rank).
            SELECT id, ts_rank_cd(search_vector, fts.any_term) AS score
            FROM (
                SELECT id, search_vector
                FROM knowledge_chunk, fts
                WHERE is_live AND search_vector @@ fts.two_terms{filters}
                LIMIT %(rank_limit)s
            ) candidates, fts
            ORDER BY score DESC, id
            LIMIT %(k)s
        ),
        weak AS (
            -- Passages with a single term, only when fewer than k have two (the sub-select is
            -- a one-time filter: the scan does not run otherwise).
            SELECT id, ts_rank_cd(search_vector, fts.any_term) AS score
            FROM (
                SELECT id, search_vector
                FROM knowledge_chunk, fts
                WHERE (SELECT count(*) FROM strong) < %(k)s
                  AND is_live AND search_vector @@ fts.any_term{filters}
                  AND id NOT IN (SELECT id FROM strong)
                LIMIT %(rank_limit)s
            ) candidates, fts
            ORDER BY score DESC, id
            LIMIT %(k)s
        ),
        txt AS (
            SELECT id, row_number() OVER (ORDER BY tier, score DESC, id) AS rank
            FROM (SELECT id, score, 1 AS tier FROM strong UNION ALL SELECT id, score, 2 FROM weak) matched
            ORDER BY rank
            LIMIT %(k)s
        )
        SELECT c.id,
               COALESCE(1.0 / ({RRF_K} + vec.rank), 0) + COALESCE(1.0 / ({RRF_K} + txt.rank), 0) AS score,
               1 - (c.embedding::vector({DIM}) <=> %(q)s::vector({DIM})) AS similarity,
               vec.rank,
               txt.rank,
               {", ".join(layout.sql for layout in _layouts())}
        FROM vec
        FULL OUTER JOIN txt ON txt.id = vec.id
        JOIN knowledge_chunk c ON c.id = COALESCE(vec.id, txt.id)
        LEFT JOIN {Document._meta.db_table} d ON d.id = c.document_id
        LEFT JOIN {Article._meta.db_table} a ON a.id = c.article_id
        ORDER BY score DESC, similarity DESC
        LIMIT %(k)s
    """  # noqa: S608 - the interpolated parts are fixed SQL fragments; values are parameters


@dataclass(frozen=True)
class _Layout:
    """A model's columns in the search's rows: their SQL, attnames and the ORM's converters."""

    model: type[Model]
    alias: str
    attnames: tuple[str, ...]
    converters: tuple[tuple[int, Any, tuple[Callable[..., Any], ...]], ...]

    @property
    def sql(self) -> str:
        quote = connection.ops.quote_name
        table_fields = {field.attname: field for field in self.model._meta.concrete_fields}
        return ", ".join(f"{self.alias}.{quote(table_fields[name].column)}" for name in self.attnames)

    def instance(self, values: Sequence[Any]) -> Model | None:
        """The instance from its columns (None for an outer join's NULLs)."""
        if values[0] is None:
            return None
        row = list(values)
        for position, column, converters in self.converters:
            for convert in converters:
                row[position] = convert(row[position], column, connection)
        return self.model.from_db(connection.alias, list(self.attnames), row)


@cache
def _layout(model: type[Model], alias: str, skipped: tuple[str, ...] = ()) -> _Layout:
    fields = [field for field in model._meta.concrete_fields if field.attname not in skipped]
    converters = []
    for position, field in enumerate(fields):
        column = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((position, column, tuple(found)))
    return _Layout(model, alias, tuple(field.attname for field in fields), tuple(converters))


def _layouts() -> tuple[_Layout, _Layout, _Layout]:
    """The passage (without its vectors), its document and its article, in that order."""
    return _layout(Chunk, "c", _CHUNK_SKIPPED), _layout(Document, "d"), _layout(Article, "a")


def chunk_search(
    *,
    query: str,
    k: int = 5,
    category_id: int | None = None,
    tags: Sequence[str] = (),
    language: str = "",
) -> list[SearchHit]:
    """The k best live passages for a question: vector top-k and full-text top-k, fused (RRF)."""
    if not query.strip() or k < 1:
        return []
    if not language:
        detected = detect_language(query)
        language = detected.code if detected.reliable else ""
    params: dict[str, str | int | list[str] | None] = {
        "q": vector_literal(query_embed(query)),
        "k": k,
        "config": search_config_for(language) if language else SIMPLE,
        "words": _words(query),
        "category": category_id,
        "tags": [tag.lower() for tag in tags],
        "rank_limit": settings.KNOWLEDGE_FTS_RANK_LIMIT,
    }
    # pgvector ≥ 0.8: keep scanning the HNSW graph until k rows pass the filters (is_live,
    # category, tags), instead of returning fewer. relaxed_order: the rank is re-sorted above.
    # enable_seqscan off: below ~10k passages the planner prefers an exact scan, which it
    # costs without reading the out-of-line (TOAST) vectors: measured 30-40 ms at 3-6k
    # passages against 1-2 ms through the index (benchmarks/retrieval.py --sizes 6000).
    # The settings and the search go in one round trip: statements sent together run in one
    # transaction (PostgreSQL's simple query protocol; Django binds parameters client-side),
    # so the transaction-local settings hold for the search and end with it.
    # A filtered search walks more of the graph to find k matching rows: a longer candidate list.
    filtered = category_id is not None or bool(tags)
    ef_search = settings.KNOWLEDGE_HNSW_EF_SEARCH_FILTERED if filtered else settings.KNOWLEDGE_HNSW_EF_SEARCH
    params["ef_search"] = str(max(ef_search, 2 * k))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),"
            " set_config('hnsw.ef_search', %(ef_search)s, true), set_config('enable_seqscan', 'off', true);"
            + _search_sql(filter_category=category_id is not None, filter_tags=bool(tags)),
            params,
        )
        cursor.nextset()
        rows = cursor.fetchall()
    # The passages and their sources come with the ranking, in the same row: no second query.
    chunks, documents, articles = _layouts()
    document_start = 5 + len(chunks.attnames)
    article_start = document_start + len(documents.attnames)
    hits = []
    for row in rows:
        chunk = chunks.instance(row[5:document_start])
        if not isinstance(chunk, Chunk):  # not possible (an inner join), but never a half-built hit
            continue
        document = documents.instance(row[document_start:article_start])
        article = articles.instance(row[article_start:])
        if isinstance(document, Document):
            chunk.document = document
        if isinstance(article, Article):
            chunk.article = article
        hits.append(
            SearchHit(chunk=chunk, score=float(row[1]), similarity=float(row[2]), vector_rank=row[3], text_rank=row[4])
        )
    return hits


def document_list() -> QuerySet[Document]:
    return Document.objects.select_related("category", "uploaded_by").order_by("-created")


def document_get(*, document_id: int) -> Document | None:
    return document_list().filter(pk=document_id).first()


def article_list() -> QuerySet[Article]:
    return Article.objects.select_related("category").order_by("-updated")


def article_get(*, article_id: int) -> Article | None:
    return article_list().filter(pk=article_id).first()


def article_versions(*, article: Article) -> QuerySet[ArticleVersion]:
    return ArticleVersion.objects.filter(article=article).select_related("author").order_by("-number")


def knowledge_gap_list_open() -> QuerySet[KnowledgeGap]:
    return KnowledgeGap.objects.filter(resolved=False).order_by("-count", "-last_asked")
