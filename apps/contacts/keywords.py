"""STOP / START keywords in the languages of our markets, and the confirmations we send back."""

from __future__ import annotations

import re
import unicodedata

OPT_OUT = "opt_out"
OPT_IN = "opt_in"

# Whole-message keywords (case, accents and punctuation ignored), by language.
KEYWORDS: dict[str, dict[str, set[str]]] = {
    OPT_OUT: {
        "en": {"stop", "unsubscribe", "stop all", "opt out", "optout"},
        "fr": {"arret", "arreter", "stop", "desabonner", "desinscrire"},
        "pt": {"parar", "sair", "cancelar", "pare"},
        "sw": {"acha", "sitisha", "simamisha"},
        "ar": {"توقف", "الغاء", "إلغاء", "ايقاف", "إيقاف"},
    },
    OPT_IN: {
        "en": {"start", "subscribe", "unstop", "opt in", "optin"},
        "fr": {"commencer", "demarrer", "abonner"},
        "pt": {"comecar", "iniciar", "assinar"},
        "sw": {"anza", "jiunge"},
        "ar": {"ابدأ", "ابدا", "اشتراك"},
    },
}

CONFIRMATIONS: dict[str, dict[str, str]] = {
    OPT_OUT: {
        "en": "You will no longer receive marketing messages from us. Reply START to subscribe again.",
        "fr": "Vous ne recevrez plus nos messages promotionnels. Répondez COMMENCER pour vous réabonner.",
        "pt": "Não vai receber mais mensagens promocionais nossas. Responda COMEÇAR para voltar a subscrever.",
        "sw": "Hutapokea tena ujumbe wa matangazo kutoka kwetu. Jibu ANZA ili kujiunga tena.",
        "ar": "لن تتلقى رسائل تسويقية منا بعد الآن. أرسل ابدأ للاشتراك مجددًا.",
    },
    OPT_IN: {
        "en": "You are subscribed to our messages again. Reply STOP at any time to unsubscribe.",
        "fr": "Vous êtes de nouveau abonné à nos messages. Répondez STOP à tout moment pour vous désabonner.",
        "pt": "Voltou a subscrever as nossas mensagens. Responda PARAR a qualquer momento para cancelar.",
        "sw": "Umejiunga tena na ujumbe wetu. Jibu ACHA wakati wowote kujiondoa.",
        "ar": "تم اشتراكك في رسائلنا مجددًا. أرسل توقف في أي وقت لإلغاء الاشتراك.",
    },
}

_PUNCTUATION = re.compile(r"[\s\.\!\?,;:'\"\-_()]+")


def _normalise(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    # Strip Latin accents; keep Arabic letters (their marks are removed too, which is what we want).
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _PUNCTUATION.sub(" ", stripped).strip()


_INDEX: dict[str, tuple[str, str]] = {}
for _action, _by_language in KEYWORDS.items():
    for _language, _words in _by_language.items():
        for _word in _words:
            _INDEX.setdefault(_normalise(_word), (_action, _language))


def consent_keyword(text: str) -> tuple[str, str] | None:
    """(action, language) when the whole message is a STOP/START keyword, else None."""
    if not text or len(text) > 40:
        return None
    return _INDEX.get(_normalise(text))
