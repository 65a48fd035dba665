from __future__ import annotations

from pathlib import Path

import numpy as np

from apps.ai.sentiment import Mix, Mixes, Probabilities, analyse_sentiment, evidence_combine


def test_emoji_only() -> None:
    assert analyse_sentiment("😡😡").label == "negative"
    assert analyse_sentiment("🙏").label == "positive"
    assert analyse_sentiment("😡").score < 0 < analyse_sentiment("🙏").score


def test_emoji_tilts_text() -> None:
    assert analyse_sentiment("my order 😡").score < analyse_sentiment("my order 🙏").score


def test_multilingual_polarity() -> None:
    for positive, negative in [
        ("Thank you so much, great service, I love it!", "This is terrible, worst service ever, I am angry"),
        ("Asante sana, huduma nzuri kabisa", "Huduma mbaya sana, nimekasirika"),
        ("Una do well, God bless una", "Una no get sense, dis service bad well well"),
    ]:
        good, bad = analyse_sentiment(positive), analyse_sentiment(negative)
        assert -1.0 <= bad.score < good.score <= 1.0
        assert good.label == "positive"


def test_clear_labels() -> None:
    assert analyse_sentiment("This is terrible, worst service ever, I am angry").label == "negative"
    assert analyse_sentiment("Una no get sense, dis service bad well well").label == "negative"


def test_ngram_features_carry_a_copy_for_the_language() -> None:
    from apps.ai.ngrams import ngram_features
    from apps.ai.sentiment import NGRAM_DIM, head_language, sentiment_features

    hausa = "Allah ya kara maka lafiya, mun gode sosai"
    assert head_language(hausa) == "ha"
    shared, _ = ngram_features(hausa, dim=NGRAM_DIM)
    indices, values = sentiment_features(hausa)
    assert len(values) == len(indices)
    assert len(indices) == 2 * len(shared) and (indices[: len(shared)] == shared).all()
    assert (sentiment_features(hausa, "ha")[0] == indices).all()
    # A detected language the heads never saw gets no copy (the copies are the training languages').
    assert (sentiment_features(hausa, "fr")[0] == shared).all()


def test_given_vector_gives_the_same_result() -> None:
    from apps.ai.embeddings import embed_query

    text = "Huduma mbaya sana, nimekasirika"
    assert analyse_sentiment(text, vector=embed_query(text)) == analyse_sentiment(text)


def test_mixes_round_trip_and_follow_the_language(tmp_path: Path) -> None:
    mixes = Mixes(trained=Mix(0.8, 0.1, 0.3), english=Mix(0.5, 0.2, 0.5), other=Mix(0.3, 0.35, 0.8))
    mixes.save(tmp_path / "mix.json")
    assert Mixes.load(tmp_path / "mix.json") == mixes
    assert mixes.for_language("ha") == mixes.for_language("pcm") == mixes.trained
    assert mixes.for_language("en") == mixes.english
    assert mixes.for_language("fr") == mixes.for_language(None) == mixes.other


def test_heads_and_emoji_combine_as_the_mix_says() -> None:
    ngram = np.array([0.2, 0.5, 0.3], dtype=np.float32)
    embed = np.array([0.6, 0.2, 0.2], dtype=np.float32)
    heads = 0.25 * ngram + 0.75 * embed
    unchanged = evidence_combine("my order 😡😡", lambda: (ngram, embed), Mix(0.25, 0.0, 0.0))
    assert np.allclose(unchanged, heads)
    tilted = evidence_combine("my order 😡😡", lambda: (ngram, embed), Mix(0.25, 0.2, 0.3))
    # Two emoji at 0.2 each, capped at 0.3: 30 % of an all-negative vote.
    assert np.allclose(tilted, 0.7 * heads + 0.3 * np.array([1.0, 0.0, 0.0]))


def test_nothing_but_emoji_never_runs_the_heads() -> None:
    def heads() -> tuple[Probabilities, Probabilities]:
        raise AssertionError("the heads ran on a message without words")

    proba = evidence_combine("😡 😡!", heads, Mix(0.7, 0.0, 0.0))
    assert np.allclose(proba, [1.0, 0.0, 0.0])


def test_the_language_chooses_the_mix() -> None:
    # Mixes differ (committed artifact), so a message scored as Hausa and as French (a language
    # the heads never saw: the other mix, and no per-language n-gram copy) differ.
    from apps.ai.sentiment import _heads_get

    mixes = _heads_get().mixes
    assert mixes.trained != mixes.other
    text = "Allah ya kara maka lafiya, mun gode sosai"
    assert analyse_sentiment(text, language="ha") == analyse_sentiment(text)  # guessed: Hausa
    assert analyse_sentiment(text, language="ha").probabilities != analyse_sentiment(text, language="fr").probabilities


# Customer-support messages (not tweets, which the heads were trained on), clear-cut, in the
# product's languages. Written for this test; labelled by their writer.
SUPPORT_MESSAGES: list[tuple[str, str]] = [
    ("This is terrible, worst service ever, I am angry", "negative"),
    ("I have been waiting for two weeks and nobody answers me. Very disappointed.", "negative"),
    ("Your agent was rude and hung up on me", "negative"),
    ("You charged me twice and I still have no refund, this is unacceptable", "negative"),
    ("Thank you so much, the problem is solved!", "positive"),
    ("Great service, the delivery came early. Well done!", "positive"),
    ("I love the new app, it is very easy to use", "positive"),
    ("Thanks a lot for your quick help 🙏", "positive"),
    ("C'est inadmissible, ma commande n'est jamais arrivée", "negative"),
    ("Merci beaucoup, le service est excellent", "positive"),
    ("Je suis très déçu du service client", "negative"),
    ("Asante sana, huduma nzuri kabisa", "positive"),
    ("Huduma mbaya sana, nimekasirika", "negative"),
    ("Nimesubiri wiki mbili na bado sijapata mzigo wangu, hii ni mbaya", "negative"),
    ("Nagode sosai, kun taimaka min sosai", "positive"),
    ("Wannan aiki bai yi kyau ba, na yi fushi sosai", "negative"),
    ("E se gan, ise yin dara pupo", "positive"),
    ("Una do well, God bless una", "positive"),
    ("Una no get sense, dis service bad well well", "negative"),
    ("I don tire for una wahala, my money don lost", "negative"),
    ("Muito obrigado, o atendimento foi excelente", "positive"),
    ("Péssimo serviço, estou muito irritado", "negative"),
    ("😡😡😡", "negative"),
    ("👍", "positive"),
]


def test_support_messages_get_the_right_polarity() -> None:
    """At least 85 % of the clear-cut support messages lean the right way (21 of 24 on 2026-12-01).

    Known misses (docs/architecture.md): two Swahili complaints and a Hausa one, whose words
    the tweet-trained n-gram head reads as positive or neutral.
    """
    from apps.ai.language import detect_language

    misses = []
    for text, gold in SUPPORT_MESSAGES:
        result = analyse_sentiment(text, language=detect_language(text).code)
        if (result.score > 0) != (gold == "positive") or result.score == 0:
            misses.append((text, gold, round(result.score, 2)))
    assert len(misses) <= 0.15 * len(SUPPORT_MESSAGES), misses
