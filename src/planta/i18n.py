"""planta's one message catalogue, read by the CLI and the web UI alike.

Each language is one set of keys, kept in JSON files in two places:

    planta/locale/<lang>.json      what the CLI says: command output, reports, errors, the card
    planta/ui/locale/<lang>.json   the words on the web pages

Both files of a language are loaded into one mapping (a key lives in exactly one of them; a
test keeps the two languages' key sets, and their ``{placeholders}``, equal). English is the
reference; a key missing from another language falls back to English, then to the key itself,
so nothing breaks on a missing message.

The language: ``PLANTA_LANG`` over ``[ui] lang`` in planta.toml (see :mod:`planta.settings`);
in the browser, ``?lang=`` or the ``planta_lang`` cookie over those.

>>> translator("es")("nav.audit")
'Auditoría'
>>> translator("en")("version.title", version=3)
'Version 3'
>>> env_lang({"PLANTA_LANG": "es_ES.UTF-8"})
'es'
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from planta.settings import LANGS

PACKAGE_DIR = Path(__file__).parent
# The CLI's (and shared) messages first, then the web pages'.
LOCALE_DIRS = (PACKAGE_DIR / "locale", PACKAGE_DIR / "ui" / "locale")
DEFAULT_LANG = "en"

Translate = Callable[..., str]


def catalogue_files(lang: str) -> list[Path]:
    """The JSON files that together hold ``lang``'s messages."""
    return [folder / f"{lang}.json" for folder in LOCALE_DIRS if (folder / f"{lang}.json").exists()]


@cache
def catalogue(lang: str) -> Mapping[str, str]:
    """Every message of ``lang`` (one of :data:`planta.settings.LANGS`), key → text."""
    if lang not in LANGS:
        raise KeyError(f"no catalogue for language {lang!r}; known: {', '.join(LANGS)}")
    data: dict[str, str] = {}
    for path in catalogue_files(lang):
        with path.open(encoding="utf-8") as fh:
            data.update(json.load(fh))
    return data


def translator(lang: str) -> Translate:
    """``t(key, **kw)`` for one language: the message with ``{placeholders}`` filled in.

    Plurals: where the catalogue also has ``<key>.one``, that form is said when the count is 1
    (the count is the first of :data:`COUNTS` among the values), and ``<key>`` otherwise.

    >>> t = translator("es")
    >>> t("cli.score.rejected", rows="1")[:40], t("cli.score.rejected", rows="3")[:40]
    ('1 fila no se puntuó porque incumple el c', '3 filas no se puntuaron porque incumplen')
    """
    messages = catalogue(lang if lang in LANGS else DEFAULT_LANG)
    english = catalogue(DEFAULT_LANG)

    def t(key: str, /, **kw: Any) -> str:
        text = messages.get(f"{key}.one") if kw and _is_one(kw) else None
        text = text or messages.get(key) or english.get(key) or key
        return text.format(**kw) if kw else text

    t.lang = lang if lang in LANGS else DEFAULT_LANG  # type: ignore[attr-defined]
    return t


# The values that count what a sentence speaks of, in the order looked for.
COUNTS = ("n", "rows", "count", "k")


def _is_one(values: Mapping[str, Any]) -> bool:
    """True when the sentence counts exactly one thing (see :func:`translator`)."""
    for name in COUNTS:
        if name in values:
            return str(values[name]).replace(",", "").strip() == "1"
    return False


def said(key: str, /, **params: Any) -> dict[str, Any]:
    """A sentence as data, said later in any language: its key and its values (JSON-able).

    A value may be a sentence itself, or a list (``{"items": [...]}``, joined with commas and
    "and" in the language that says it, or with ``"sep"`` when it has one).

    >>> doc = said("err.versions.span", low=1, high=3)
    >>> say(doc, translator("es")), say(doc, translator("en"))
    ('tiene las versiones de la 1 a la 3', 'it has versions 1 to 3')
    """
    return {"key": key, "params": params}


def number(value: float, lang: str = DEFAULT_LANG, digits: int | None = None) -> str:
    """``value`` written for people reading ``lang``: ``digits`` decimals, or with None whole
    from 1,000 up and three significant digits below; thousands grouped.

    The marks are the catalogue's ``num.decimal`` and ``num.group``: Spanish writes the
    decimal comma and groups thousands with a point (es-ES). JSON and the API keep machine
    numbers, so use this only for words shown to a person.

    >>> number(1234.5, "es", 1), number(1234.5, "en", 1), number(0.0456, "es")
    ('1.234,5', '1,234.5', '0,0456')
    >>> number(84.0, "es", 0) + " %", number(2500000, "es"), number(float("nan"), "es")
    ('84 %', '2.500.000', 'nan')
    """
    v = float(value)
    if not math.isfinite(v):
        return f"{v:g}"
    if digits is not None:
        text = f"{v:,.{max(int(digits), 0)}f}"
    else:
        text = f"{v:,.0f}" if abs(v) >= 999.5 else f"{v:.3g}"
    messages = catalogue(lang if lang in LANGS else DEFAULT_LANG)
    return marks(text, messages.get("num.group", ","), messages.get("num.decimal", "."))


def marks(text: str, group: str, decimal: str) -> str:
    """A number written the English way ("1,234.5") with another language's marks.

    >>> marks("1,234.5", ".", ",")
    '1.234,5'
    """
    if (group, decimal) == (",", "."):
        return text
    return "".join(group if c == "," else decimal if c == "." else c for c in text)


def said_number(value: float, digits: int | None = None) -> dict[str, Any]:
    """A number as data (:func:`said`), written by :func:`say` in the reader's language.

    >>> say(said("perf.span.days", n=said_number(1.5, 1)), translator("es"))
    'tanda de 1,5 días'
    """
    return {"number": float(value), "digits": digits}


def say(doc: Any, t: Translate) -> str:
    """What :func:`said` recorded, in ``t``'s language; anything else as text."""
    if isinstance(doc, Mapping):
        if "number" in doc:
            return number(doc["number"], getattr(t, "lang", DEFAULT_LANG), doc.get("digits"))
        if "key" in doc:
            return t(str(doc["key"]), **{k: say(v, t) for k, v in (doc.get("params") or {}).items()})
        if "items" in doc:
            items = [say(item, t) for item in doc["items"]]
            if "sep" in doc or len(items) < 2:
                return str(doc.get("sep", "")).join(items)
            return ", ".join(items[:-1]) + t(str(doc.get("last", "list.and"))) + items[-1]
    return str(doc)


def said_lines(report: Mapping[str, Any], name: str, t: Translate) -> list[str]:
    """``report[name]``'s sentences in ``t``'s language, from ``report[name + "_said"]``.

    A report stored before its sentences were kept as data has only the English ones.
    """
    english = list(report.get(name) or ())
    docs = report.get(f"{name}_said")
    if isinstance(docs, list) and len(docs) == len(english):
        return [say(doc, t) for doc in docs]
    return [str(line) for line in english]


def normalise(value: str | None) -> str | None:
    """``es_ES.UTF-8`` → ``es``; None where ``value`` names no language planta speaks."""
    if not value:
        return None
    lang = value.split("_")[0].split(".")[0].split("-")[0].strip().lower()
    return lang if lang in LANGS else None


def env_lang(env: Mapping[str, str] | None = None) -> str:
    """The CLI's language: ``PLANTA_LANG`` when it names one planta speaks, else English.

    The CLI reads only the environment here, so that it can speak before (and without) a
    project; a project's ``[ui] lang`` applies to the pages it serves.
    """
    env = os.environ if env is None else env
    return normalise(env.get("PLANTA_LANG")) or DEFAULT_LANG


def choose_lang(query: str | None, cookie: str | None, default: str) -> str:
    """A page's language: ``?lang=`` over the ``planta_lang`` cookie over the project's."""
    for value in (query, cookie, default):
        if value and value.lower() in LANGS:
            return value.lower()
    return DEFAULT_LANG


__all__ = ["DEFAULT_LANG", "LOCALE_DIRS", "Translate", "catalogue", "catalogue_files",
           "choose_lang", "env_lang", "marks", "normalise", "number", "said", "said_lines",
           "said_number", "say", "translator"]
