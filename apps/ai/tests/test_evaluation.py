from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from apps.ai import evaluation
from apps.ai.datasets import afrisenti_language, afrisenti_read, intents_read, ntrex_read


def _toy_embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """One direction per leading word: enough to check the plumbing without the model."""
    words = ["balance", "card", "transfer"]
    out = np.full((len(texts), 4), 0.01, dtype=np.float32)
    for row, text in enumerate(texts):
        first = text.split()[0]
        out[row, words.index(first) if first in words else 3] = 1.0
    normalised: npt.NDArray[np.float32] = (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)
    return normalised


def test_weighted_f1_matches_hand_computation() -> None:
    gold = ["pos", "pos", "neg", "neu"]
    pred = ["pos", "neg", "neg", "neu"]
    # pos: p=1 r=.5 f=2/3 (w2); neg: p=.5 r=1 f=2/3 (w1); neu: f=1 (w1)
    assert abs(evaluation.weighted_f1(gold, pred) - (2 * 2 / 3 + 2 / 3 + 1) / 4) < 1e-9


def test_intents_evaluate_on_csv(tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    train.write_text(
        "text,category\n" + "".join(f"{w} thing {i},{w}\n" for w in ("balance", "card", "transfer") for i in range(3))
    )
    test = tmp_path / "test.csv"
    test.write_text("text,category\nbalance please,balance\ncard lost,card\ntransfer now,transfer\n")
    report = evaluation.intents_evaluate(
        intents_read(train), intents_read(test), shots=2, encoders=evaluation.Encoders(_toy_embed)
    )
    assert (report.accuracy, report.train_rows, report.intents) == (1.0, 6, 3)


def _last_word_embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    return _toy_embed([" ".join(reversed(text.split())) for text in texts])


def test_english_head_is_averaged_in(tmp_path: Path) -> None:
    """The first word says nothing here, the last one says everything: only the English head can tell."""
    train = tmp_path / "train.csv"
    train.write_text(
        "text,category\n"
        + "".join(f"{first} thing {word},{word}\n" for word in ("balance", "card") for first in ("a", "b", "c"))
    )
    test = tmp_path / "test.csv"
    test.write_text("text,category\nd please balance,balance\ne now card,card\n")
    alone = evaluation.intents_evaluate(
        intents_read(train), intents_read(test), shots=None, encoders=evaluation.Encoders(_toy_embed)
    )
    both = evaluation.intents_evaluate(
        intents_read(train), intents_read(test), shots=None, encoders=evaluation.Encoders(_toy_embed, _last_word_embed)
    )
    assert alone.accuracy == 0.5 and alone.english_l2 is None
    assert both.accuracy == 1.0 and both.english_l2 in evaluation.L2_CANDIDATES


def test_clinc_threshold_is_chosen_on_val(tmp_path: Path) -> None:
    rows = [[f"{w} x{i}", w] for w in ("balance", "card") for i in range(20)]
    data = {"train": rows, "val": rows, "oos_train": [], "oos_val": [[f"weather {i}", "oos"] for i in range(20)]}
    path = tmp_path / "clinc.json"
    path.write_text(json.dumps(data))
    from apps.ai.datasets import clinc_read

    report = evaluation.clinc_evaluate(clinc_read(path), shots=None, encoders=evaluation.Encoders(_toy_embed))
    assert report.in_scope_accuracy == 1.0
    assert report.oos_recall == 1.0
    assert "half" in report.note


def test_clinc_oos_train_is_a_class_and_its_predictions_are_rejected(tmp_path: Path) -> None:
    rows = [[f"{w} x{i}", w] for w in ("balance", "card") for i in range(20)]
    oos = [[f"weather {i}", "oos"] for i in range(20)]
    data = {"train": rows, "val": rows, "oos_train": oos, "oos_val": oos}
    path = tmp_path / "clinc.json"
    path.write_text(json.dumps(data))
    from apps.ai.datasets import clinc_read

    report = evaluation.clinc_evaluate(clinc_read(path), shots=None, encoders=evaluation.Encoders(_toy_embed))
    assert (report.in_scope_accuracy, report.oos_recall) == (1.0, 1.0)
    # A NaN score (best class: out-of-scope) is rejected whatever the threshold.
    scores = np.array([np.nan, 0.6, 0.9, 0.8], dtype=np.float32)
    is_oos = np.array([True, True, False, False])
    correct = np.array([True, False, True, True])
    assert evaluation._oos_rates(scores, correct, is_oos, 0.0) == (1.0, 0.5)
    assert evaluation.oos_threshold_choose(scores, correct, is_oos, min_recall=0.5) == pytest.approx(0.6)
    assert evaluation.oos_threshold_choose(scores, correct, is_oos, min_recall=1.0) == pytest.approx(0.8)


def test_readers_and_language_evaluate(tmp_path: Path) -> None:
    tweets = tmp_path / "afrisenti_sw_dev.tsv"
    tweets.write_text('ID\ttweet\tlabel\nsw_1\t"nzuri sana\tpositive\nsw_2\tmbaya\tnegative\n')
    assert afrisenti_read(tweets) == [('"nzuri sana', "positive"), ("mbaya", "negative")]
    assert afrisenti_language(tweets) == "sw"
    ntrex = tmp_path / "ntrex.tsv"
    ntrex.write_text("lang\ttext\nen\tHello there\nfr\tBonjour\n")
    assert ntrex_read(ntrex) == [("Hello there", "en"), ("Bonjour", "fr")]
    scores = evaluation.language_evaluate(ntrex, detect=lambda text: "en")
    assert scores == {"en": 1.0, "fr": 0.0, "macro": 0.5}
    assert evaluation.language_evaluate(tweets, detect=lambda text: "sw") == {"sw": 1.0, "macro": 1.0}
    sentiment = evaluation.sentiment_evaluate([tweets], analyse=lambda text: "positive")
    assert sentiment["sw"] == evaluation.weighted_f1(["positive", "negative"], ["positive", "positive"])


def test_holdout_split_is_a_fixed_fifth() -> None:
    rows = [(f"row {i}", "x") for i in range(2000)]
    train, test = evaluation.holdout_split(rows)
    assert len(train) + len(test) == 2000
    assert 0.17 < len(test) / 2000 < 0.23
    assert evaluation.holdout_split(rows) == (train, test)
    assert not {text for text, _ in train} & {text for text, _ in test}


def test_oos_threshold_is_the_best_in_scope_accuracy_at_the_minimum_recall() -> None:
    # 4 oos rows scored .1 .2 .3 .6; 6 in-scope rows, all correct, scored .25 .4 .5 .7 .8 .9
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.25, 0.4, 0.5, 0.7, 0.8, 0.9], dtype=np.float32)
    is_oos = np.array([True] * 4 + [False] * 6)
    correct = ~is_oos
    # recall >= .75 needs the .3 oos row rejected: threshold .4 (the .25 in-scope row is lost)
    assert evaluation.oos_threshold_choose(scores, correct, is_oos, min_recall=0.75) == pytest.approx(0.4)
    assert evaluation.oos_threshold_choose(scores, correct, is_oos, min_recall=0.5) == pytest.approx(0.25)
    assert evaluation.oos_threshold_choose(scores, correct, is_oos, min_recall=1.0) == pytest.approx(0.7)


def test_l2_choose_returns_one_of_the_candidates() -> None:
    texts = [f"{w} x{i}" for w in ("balance", "card", "transfer") for i in range(30)]
    labels = np.array([i for i in range(3) for _ in range(30)], dtype=np.int64)
    vectors = _toy_embed(texts)
    assert evaluation.l2_choose(texts, vectors, labels, 3) in evaluation.L2_CANDIDATES


def test_l2_pair_choose_chooses_the_heads_together(monkeypatch: pytest.MonkeyPatch) -> None:
    # The English vectors tell the intents apart; the e5 ones are noise that a weak penalty
    # memorises, so its confident guesses would spoil the average. The best pair silences
    # e5 (strong penalty) and lets the English head speak (weak penalty).
    monkeypatch.setattr(evaluation, "L2_CANDIDATES", (10.0, 1e-6))
    texts = [f"{w} x{i}" for w in ("balance", "card", "transfer") for i in range(40)]
    labels = np.array([i for i in range(3) for _ in range(40)], dtype=np.int64)
    noise = np.random.default_rng(7).normal(size=(len(texts), 64)).astype(np.float32)
    english = _toy_embed(texts)
    # Alone, each head scores the same under both penalties (so the stronger one is kept):
    # chosen one by one, the pair would be (10, 10), two nearly uniform heads.
    assert evaluation.l2_choose(texts, english, labels, 3) == 10.0
    assert evaluation.l2_pair_choose(texts, noise, english, labels, 3) == (10.0, 1e-6)
    assert evaluation.l2_pair_choose(texts, english, noise, labels, 3) == (1e-6, 10.0)


def test_cached_embedder_reuses_saved_vectors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from apps.ai import embeddings

    np.savez(tmp_path / "saved.npz", texts=np.array(["known"], dtype=object), emb=np.ones((1, 384), np.float32))
    asked: list[list[str]] = []

    def fake(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        asked.append(list(texts))
        return np.zeros((len(texts), 384), dtype=np.float32)

    monkeypatch.setattr(embeddings, "embed_queries", fake)
    embed = evaluation.cached_embedder(tmp_path)
    vectors = embed(["known", "new", "known"])
    assert asked == [["new"]]
    assert vectors[0].sum() == 384 and vectors[1].sum() == 0 and vectors[2].sum() == 384
    assert evaluation.cached_embedder(tmp_path)(["new"]).shape == (1, 384)
    assert asked == [["new"]]  # saved by the first embedder


def test_sentiment_evaluate_with_batch_embeddings(tmp_path: Path) -> None:
    from apps.ai.embeddings import embed_queries

    tweets = tmp_path / "afrisenti_pcm_dev.tsv"
    tweets.write_text(
        "ID\ttweet\tlabel\npcm_1\tUna do well, God bless una\tpositive\npcm_2\tdis service bad well well\tnegative\n"
    )
    assert evaluation.sentiment_evaluate([tweets], embed=embed_queries) == evaluation.sentiment_evaluate([tweets])


SENTIMENT140_ROWS = (
    '"4","3","Mon May 11 03:17:40 UTC 2009","kindle2","tpryan","I love my Kindle2, thank you so much!"\n'
    '"0","4","Mon May 11 03:18:03 UTC 2009","aig","vcu451","This is terrible, worst service ever, I am angry"\n'
    '"2","5","Mon May 11 03:18:54 UTC 2009","jquery","x","jQuery is a JavaScript library"\n'
)


def test_sentiment140_is_read_in_utf8_or_latin1(tmp_path: Path) -> None:
    from apps.ai.datasets import is_sentiment140, sentiment140_read

    utf8, latin1 = tmp_path / "utf8.csv", tmp_path / "latin1.csv"
    utf8.write_text(SENTIMENT140_ROWS, encoding="utf-8")
    latin1.write_bytes(SENTIMENT140_ROWS.replace("I love", "Café: I love").encode("latin-1"))
    assert is_sentiment140(utf8) and is_sentiment140(latin1)
    assert [label for _, label in sentiment140_read(utf8)] == ["positive", "negative", "neutral"]
    assert sentiment140_read(latin1)[0][0].startswith("Café: I love")
    banking = tmp_path / "banking.csv"
    banking.write_text("text,category\nmy card,card_arrival\n")
    assert not is_sentiment140(banking)
    broken = tmp_path / "broken.csv"
    broken.write_text(SENTIMENT140_ROWS + '"5","6","date","q","u","text"\n')
    with pytest.raises(ValueError, match="line 4"):
        sentiment140_read(broken)


def test_english_sentiment_counts_positive_and_negative_rows_by_the_sign(tmp_path: Path) -> None:
    from apps.ai.datasets import sentiment140_read
    from apps.ai.sentiment import SentimentResult

    path = tmp_path / "s140.csv"
    path.write_text(SENTIMENT140_ROWS)
    rows = sentiment140_read(path)

    def constant(texts: Sequence[str]) -> list[SentimentResult]:
        return [SentimentResult(score=0.0, label="neutral") for _ in texts]

    def by_word(texts: Sequence[str]) -> list[SentimentResult]:
        return [
            SentimentResult(-0.8, "negative") if "worst" in text else SentimentResult(0.1, "neutral") for text in texts
        ]

    # The neutral tweet is left out of the accuracy; a score of 0 counts as positive.
    report = evaluation.english_sentiment_evaluate(rows, analyse=constant)
    assert (report.accuracy, report.polar_rows, report.rows) == (0.5, 2, 3)
    # Only the neutral row is right: neutral's precision 1/3, recall 1, F1 0.5, weighed by 1 row of 3.
    assert abs(report.weighted_f1 - 0.5 / 3) < 1e-9
    report = evaluation.english_sentiment_evaluate(rows, analyse=by_word)
    assert report.accuracy == 1.0  # the positive tweet's label is neutral, but its score is above 0
    product = evaluation.english_sentiment_evaluate(rows)  # the product's analyser on two plain tweets
    assert (product.accuracy, product.polar_rows) == (1.0, 2)


VADER_ROWS = (
    "1\t2.726315789\tSomehow I was blessed with some really amazing friends in my life.\r\n"
    "1_2\t-2.154639175\tTwo words that should die this year: Sexting and jeggings. Die die die\r\n"
    "3\t0.2\tGoing to the shop at five\twith a tab inside\r\n"
)


def test_vader_ground_truth_is_read_with_a_neutral_band(tmp_path: Path) -> None:
    from apps.ai.datasets import is_vader, vader_label, vader_read

    path = tmp_path / "tweets_GroundTruth.txt"
    path.write_bytes(VADER_ROWS.replace("shop", "café").encode("latin-1"))
    assert is_vader(path)
    assert vader_read(path) == [
        ("Somehow I was blessed with some really amazing friends in my life.", "positive"),
        ("Two words that should die this year: Sexting and jeggings. Die die die", "negative"),
        ("Going to the café at five\twith a tab inside", "neutral"),
    ]
    assert (vader_label(0.5), vader_label(0.49), vader_label(-0.49), vader_label(-0.5)) == (
        "positive",
        "neutral",
        "neutral",
        "negative",
    )
    broken = tmp_path / "broken.txt"
    broken.write_text(VADER_ROWS + "4\tnot a rating\ttext\n")
    with pytest.raises(ValueError, match="line 4"):
        vader_read(broken)
    s140 = tmp_path / "s140.csv"
    s140.write_text(SENTIMENT140_ROWS)
    assert not is_vader(s140)


def test_vader_dev_rows_are_a_fixed_third_that_ai_eval_alone_reads(tmp_path: Path) -> None:
    from apps.ai.datasets import vader_dev

    texts = [f"message number {i}" for i in range(3000)]
    share = sum(map(vader_dev, texts)) / len(texts)
    assert 0.27 < share < 0.33
    assert [vader_dev(t) for t in texts] == [vader_dev(t) for t in texts]
    path = tmp_path / "tweets_GroundTruth.txt"
    path.write_text("".join(f"{i}\t{(-2.0, 0.0, 2.0)[i % 3]}\t{text}\n" for i, text in enumerate(texts[:60])))
    rows, which = evaluation.english_sentiment_rows(path)
    assert which == "dev rows" and [text for text, _ in rows] == [t for t in texts[:60] if vader_dev(t)]
    banking = tmp_path / "banking.csv"
    banking.write_text("text,category\nmy card,card_arrival\n")
    with pytest.raises(ValueError, match="neither"):
        evaluation.english_sentiment_rows(banking)


def test_ai_eval_sentiment_command(tmp_path: Path) -> None:
    import io

    from django.core.management import CommandError, call_command

    english = tmp_path / "s140.csv"
    english.write_text(SENTIMENT140_ROWS)
    tweets = tmp_path / "afrisenti_pcm_dev.tsv"
    tweets.write_text("ID\ttweet\tlabel\npcm_1\tUna do well, God bless una\tpositive\n")
    vader = tmp_path / "tweets_GroundTruth.txt"
    vader.write_text("".join(f"{i}\t-3.1\tThis is terrible, worst service ever, I am angry {i}\n" for i in range(10)))
    dev_rows = len(evaluation.english_sentiment_rows(vader)[0])
    out = io.StringIO()
    call_command("ai_eval", "sentiment", "--data", str(tweets), str(english), str(vader), stdout=out)
    printed = out.getvalue()
    assert f"tweets_GroundTruth.txt (dev rows): positive/negative accuracy 1.0000 on {dev_rows}; " in printed
    assert 0 < dev_rows < 10
    assert "pcm      weighted F1 1.0000" in printed
    assert "s140.csv (all rows): positive/negative accuracy 1.0000 on 2; weighted F1" in printed
    with pytest.raises(CommandError, match="FileNotFoundError"):
        call_command("ai_eval", "sentiment", "--data", str(tmp_path / "missing.tsv"), stdout=io.StringIO())
