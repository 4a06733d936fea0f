"""zh-CN and English: Babel catalogues loaded at start-up, the locale chosen per request.

Templates never hold UI text; they call ``_("English source")`` and the catalogue in
``web/locale/<locale>/LC_MESSAGES/messages.po`` gives the translation. English is the
source language; its catalogue only names symbolic keys (``role.*``, ``error.*``).
The catalogues are generated from ``scripts/translations.py``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po

LOCALES = ("zh_CN", "en")
DEFAULT_LOCALE = "zh_CN"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
HTML_LANG = {"zh_CN": "zh-CN", "en": "en"}


@cache
def catalogue(locale: str) -> dict[str, str]:
    """msgid -> msgstr for ``locale`` (empty for the source language)."""
    path = LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return {}
    with path.open("rb") as fh:
        cat = read_po(fh, locale=locale)
    return {str(m.id): str(m.string) for m in cat if m.id and m.string and not m.fuzzy}


def gettext(locale: str, message: str, **params: object) -> str:
    """Translate ``message`` into ``locale``; ``%(name)s`` placeholders are filled from params."""
    text = catalogue(locale).get(message) or catalogue("en").get(message) or message
    return text % params if params else text


def negotiate(cookie_value: str | None, accept_language: str | None) -> str:
    """The locale from the ``lang`` cookie, else Accept-Language, else zh-CN."""
    if cookie_value in LOCALES:
        return cookie_value
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh_CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT_LOCALE
