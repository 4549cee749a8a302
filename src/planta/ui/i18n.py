"""The UI's side of planta's one message catalogue (:mod:`planta.i18n`).

The catalogue itself, its loader and ``t(key, **kw)`` live in :mod:`planta.i18n`, shared with
the CLI. The words on the pages stay in this package, one JSON file per language:

    locale/en.json   the reference: every key the pages use
    locale/es.json   the same keys, in Spanish (a test keeps the two key sets equal)

A visitor may pick another language than the project's with ``?lang=es``; the choice is kept
in the ``planta_lang`` cookie so the next page stays in it.

>>> translator("es")("nav.audit")
'Auditoría'
"""

from __future__ import annotations

from pathlib import Path

from planta.i18n import DEFAULT_LANG, Translate, catalogue, choose_lang, translator

LOCALE_DIR = Path(__file__).with_name("locale")
LANG_COOKIE = "planta_lang"

__all__ = ["DEFAULT_LANG", "LANG_COOKIE", "LOCALE_DIR", "Translate", "catalogue", "choose_lang",
           "translator"]
