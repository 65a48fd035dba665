from __future__ import annotations

from apps.ai.sentiment import analyse_sentiment


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


def test_given_vector_gives_the_same_result() -> None:
    from apps.ai.embeddings import embed_query

    text = "Huduma mbaya sana, nimekasirika"
    assert analyse_sentiment(text, vector=embed_query(text)) == analyse_sentiment(text)
