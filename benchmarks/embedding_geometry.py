"""How real e5 embeddings' neighbourhoods look, beside the synthetic vectors of the retrieval benchmark.

    python -m benchmarks.embedding_geometry --data ../shared/eval [--limit 33000] [--cache DIR]

Embeds short support texts of the development data (Banking77 and CLINC150 utterances, a
sample of Bitext's customer-support requests, the StackFAQ answers) with the product's e5 as
passages, and 1,000 of them, left out of the corpus, as queries (as a search does). Then, for
the real corpus and for each synthetic geometry of `benchmarks/_vectors.py` at the same size,
it prints, as medians over the queries:
- the cosine of the 1st, 10th and 100th nearest passage, and of a random one;
- d10/d1 and d100/d10, ratios of the distances to those neighbours (close to 1: the
  neighbours are nearly equidistant, the hard case for a graph index);
- the local intrinsic dimension (maximum-likelihood estimate over the 20 nearest, Levina &
  Bickel 2004): what makes nearest-neighbour search hard. Real embeddings have a low one.
The real vectors are centred first (e5 puts every text near one common direction; the
synthetic ones have none; centring moves cosines, not the order of neighbours). The figures
set `CALIBRATED`. Without `--data` it only says what it needs (so `make bench` passes).
Embedding 33,000 short texts took 10 minutes here with one embedding thread (`AI_EMBED_THREADS=0`
uses every core; `--cache DIR` keeps the vectors for the next run).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._vectors import GEOMETRIES, Matrix, VectorSpace

QUERIES = 1000
K = 20


def _texts(data: Path, limit: int) -> list[str]:
    intents = data / "intents"
    with (intents / "banking77_train.csv").open(newline="") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    clinc = json.loads((intents / "clinc150_train_val.json").read_text())
    texts += [text for text, _label in clinc["train"] + clinc["val"]]
    with (intents / "bitext_customer_support.csv").open(newline="") as handle:
        bitext = sorted({row["instruction"] for row in csv.DictReader(handle)})
    random.Random(1).shuffle(bitext)
    texts += bitext[:6000]
    with (data / "faq" / "corpus_qa_pairs.jsonl").open() as handle:
        texts += [json.loads(line)["text"][:600] for line in handle if line.strip()]
    unique = list(dict.fromkeys(texts))
    random.Random(2).shuffle(unique)
    return unique[:limit]


def _embedded(texts: list[str], cache: Path | None) -> tuple[Matrix, Matrix]:
    """(queries, passages): the first QUERIES texts as queries, the rest as passages."""
    if cache is not None and (cache / "passages.npy").exists():
        return np.load(cache / "queries.npy"), np.load(cache / "passages.npy")
    from apps.ai.embeddings import embed_passages, embed_queries

    started = time.perf_counter()
    queries = embed_queries(texts[:QUERIES])
    passages = np.concatenate([embed_passages(texts[start : start + 512]) for start in range(QUERIES, len(texts), 512)])
    print(f"embedded {len(texts):,} texts in {time.perf_counter() - started:.0f}s")
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.save(cache / "queries.npy", queries)
        np.save(cache / "passages.npy", passages)
    return queries, passages


def neighbourhood(passages: Matrix, queries: Matrix) -> dict[str, float]:
    """Medians over the queries of the figures the module docstring lists."""
    top: list[np.ndarray[Any, Any]] = []
    random_cosine: list[float] = []
    rng = np.random.default_rng(0)
    for start in range(0, len(queries), 100):
        scores = queries[start : start + 100] @ passages.T
        nearest = -np.partition(-scores, 100, axis=1)[:, :100]
        top.append(-np.sort(-nearest, axis=1))
        random_cosine += list(scores[:, rng.integers(0, passages.shape[0], 200)].mean(axis=1))
    cosines = np.concatenate(top)
    distances = np.sqrt(np.maximum(2 - 2 * cosines, 1e-12))
    lid = -1 / np.mean(np.log(distances[:, : K - 1] / distances[:, K - 1 : K]), axis=1)
    return {
        "cos 1st": float(np.median(cosines[:, 0])),
        "cos 10th": float(np.median(cosines[:, 9])),
        "cos 100th": float(np.median(cosines[:, 99])),
        "cos random": float(np.median(random_cosine)),
        "d10/d1": float(np.median(distances[:, 9] / distances[:, 0])),
        "d100/d10": float(np.median(distances[:, 99] / distances[:, 9])),
        "LID@20": float(np.median(lid)),
    }


def _centred(vectors: Matrix, mean: Matrix) -> Matrix:
    shifted = vectors - mean
    return np.asarray(shifted / np.linalg.norm(shifted, axis=1, keepdims=True), dtype=np.float32)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, help="the development data folder (../shared/eval)")
    parser.add_argument("--limit", type=int, default=33_000, help="texts to embed, queries included")
    parser.add_argument("--cache", type=Path, help="keep the embeddings here and reuse them")
    args = parser.parse_args()
    if args.data is None:
        print("embedding_geometry needs --data DIR (the development data, ../shared/eval): skipped")
        return 0
    queries, passages = _embedded(_texts(args.data, args.limit), args.cache)
    mean = passages.mean(axis=0)
    rows = {"real e5, centred": neighbourhood(_centred(passages, mean), _centred(queries, mean))}
    for name, geometry in GEOMETRIES.items():
        space = VectorSpace(geometry)
        synthetic, _topics = space.passages(len(passages))
        rows[f"synthetic {name}"] = neighbourhood(synthetic, space.queries(len(queries))[0])
    columns = list(next(iter(rows.values())))
    print(f"{len(passages):,} passages, {len(queries):,} queries (medians)")
    print(f"{'':22}" + "".join(f"{c:>11}" for c in columns))
    for name, figures in rows.items():
        print(f"{name:22}" + "".join(f"{figures[c]:>11.3f}" for c in columns))
    real = rows["real e5, centred"]["LID@20"]
    for name in GEOMETRIES:
        print(f"LID synthetic {name} / real: {rows[f'synthetic {name}']['LID@20'] / real:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
