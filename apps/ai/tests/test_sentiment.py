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
