"""The UI's message catalogue: one JSON file per language, one ``t(key, **kw)`` to read it.

    locale/en.json   the reference: every key the pages use
    locale/es.json   the same keys, in Spanish (a test keeps the two key sets equal)

The language is the project's (``PLANTA_LANG`` over ``[ui] lang`` in planta.toml, see
:mod:`planta.settings`), unless the visitor picks another with ``?lang=es``; the choice is
kept in the ``planta_lang`` cookie so the next page stays in it.

>>> t = translator("es")
>>> t("nav.audit")
'Auditoría'
>>> translator("en")("version.title", version=3)
'Version 3'
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from planta.settings import LANGS

LOCALE_DIR = Path(__file__).with_name("locale")
DEFAULT_LANG = "en"
LANG_COOKIE = "planta_lang"

Translate = Callable[..., str]


@cache
def catalogue(lang: str) -> Mapping[str, str]:
    """Every message of ``lang`` (one of :data:`planta.settings.LANGS`), key → text."""
    if lang not in LANGS:
        raise KeyError(f"no catalogue for language {lang!r}; known: {', '.join(LANGS)}")
    with (LOCALE_DIR / f"{lang}.json").open(encoding="utf-8") as fh:
        data: dict[str, str] = json.load(fh)
    return data


def translator(lang: str) -> Translate:
    """``t(key, **kw)`` for one language: the message with ``{placeholders}`` filled in.

    A key missing from ``lang`` falls back to English, then to the key itself, so a page never
    breaks on a missing message (the catalogue test catches those before a release).
    """
    messages = catalogue(lang)
    english = catalogue(DEFAULT_LANG)

    def t(key: str, **kw: Any) -> str:
        text = messages.get(key) or english.get(key) or key
        return text.format(**kw) if kw else text

    return t


def choose_lang(query: str | None, cookie: str | None, default: str) -> str:
    """The page's language: ``?lang=`` over the ``planta_lang`` cookie over the project's."""
    for value in (query, cookie, default):
        if value and value.lower() in LANGS:
            return value.lower()
    return DEFAULT_LANG


__all__ = ["DEFAULT_LANG", "LANG_COOKIE", "LOCALE_DIR", "Translate", "catalogue", "choose_lang",
           "translator"]
