"""The jargon rule for the words planta shows, as a function the tests call on a page.

A *term* is a statistician's or ML engineer's word a process engineer should not need to know
(:data:`TERMS`: AUC, ROC, PSI, p-value, F1, recall, precision, RMSE, ...). A page may show a
term only with its plain-language line beside it, which means one of:

1. **a gloss in brackets**: the term stands inside ``( … )`` and the same text block has at
   least :data:`MIN_PLAIN_WORDS` plain words right before that bracket, as in
   "share of real cases caught (recall)" or "Ranking quality (ROC-AUC; 0.5 is a coin toss)";
2. **a gloss on hover**: the term stands inside an element whose ``title`` attribute holds at
   least :data:`MIN_PLAIN_WORDS` words, as in ``<abbr class="term" title="how far the mix of
   values moved">PSI</abbr>``.

A text block is the text of the innermost block element (p, li, td, th, label, h1…h6, option,
div, …) with its inline children (span, strong, a, abbr, …) joined in. What is not prose is not
read: the ``<head>``, scripts, styles, ``<code>`` and ``<pre>`` (commands to copy), and form
values. What a script will show is read: every ``data-*`` attribute holding words (the slider's
sentence, the wizard's trial line, confirmations) counts as a text block of its own. Column names in a user's own data are the user's words, not ours: pass them as
``allowed`` (e.g. a column called "PSI" in a sensor export).

>>> problems("<p>share of real cases caught (recall): 0.6</p>")
[]
>>> problems("<p>AUC 0.97</p>")
['AUC in: AUC 0.97']
>>> problems('<p><abbr class="term" title="how far the mix moved">PSI</abbr> 0.3</p>')
[]
>>> problems("<p>(recall) 0.6</p>")
['recall in: (recall) 0.6']
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

MIN_PLAIN_WORDS = 2
# Case-sensitive acronyms, then words matched in any case (English, then Spanish jargon).
_ACRONYMS = ["ROC-AUC", "PR-AUC", "AUC", "ROC", "PSI", "F1", "RMSE", "MAE", "MAPE", "R²", "R2",
             "SHAP", "KS", "ECE", "CV"]
_WORDS = ["p-value", "p value", "recall", "precision", "log loss", "log-loss", "log_loss",
          "neg_log_loss", "roc_auc", "pr_auc", "f1_macro", "Brier",
          "hyperparameter", "confusion matrix", "holdout", "hold-out", "cross-validation",
          "bootstrap", "F-score", "Kolmogorov", "valor p", "valor-p", "sensibilidad",
          "precisión", "exhaustividad", "hiperparámetro", "matriz de confusión",
          "validación cruzada"]
TERMS = _ACRONYMS + _WORDS
_TERM = re.compile("|".join(
    [rf"(?<![\w-]){re.escape(a)}(?![\w-])" for a in _ACRONYMS]
    + [rf"(?i:(?<![\w-]){re.escape(w)}(?:s|es)?(?![\w-]))" for w in _WORDS]))
_BLOCKS = {"p", "li", "td", "th", "dd", "dt", "h1", "h2", "h3", "h4", "h5", "h6", "label",
           "option", "div", "section", "caption", "figcaption", "button", "summary", "legend",
           "small", "blockquote", "header", "footer", "nav", "main", "form", "article", "ul",
           "ol", "table", "tr", "body", "fieldset"}
_SKIP = {"head", "script", "style", "code", "pre", "textarea", "svg"}
_VOID = {"br", "hr", "img", "input", "meta", "link", "wbr", "col", "source"}
_WORD = re.compile(r"[^\W\d_]{2,}")


@dataclass
class _Block:
    """A text block being read: its text so far, and the spans a ``title`` glosses."""

    text: str = ""
    glossed: list[tuple[int, int]] = field(default_factory=list)


class _Blocks(HTMLParser):
    """Collects text blocks as (text, [(start, end) of spans glossed by a title])."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool, bool]] = []   # tag, opens a block, has a gloss
        self.open: list[_Block] = []
        self.blocks: list[tuple[str, list[tuple[int, int]]]] = []
        self.skip = 0
        self.gloss_at: list[int] = []                    # start offsets of open glosses

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            return
        if tag in _SKIP:
            self.skip += 1
        for name, value in attrs:
            # Words for people have spaces; ids and metric keys ("roc_auc") do not.
            if name.startswith("data-") and value and " " in value.strip():
                self.blocks.append((value, []))
        title = dict(attrs).get("title") or ""
        gloss = len(_WORD.findall(title)) >= 3
        block = tag in _BLOCKS
        if block:
            self.open.append(_Block())
        if gloss and self.open:
            self.gloss_at.append(len(self.open[-1].text))
        self.stack.append((tag, block, gloss and bool(self.open)))

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID or not any(t == tag for t, _, _ in self.stack):
            return
        while self.stack:
            name, block, gloss = self.stack.pop()
            if name in _SKIP:
                self.skip -= 1
            if gloss and self.gloss_at and self.open:
                self.open[-1].glossed.append((self.gloss_at.pop(), len(self.open[-1].text)))
            if block and self.open:
                done = self.open.pop()
                self.blocks.append((done.text, done.glossed))
            if name == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.skip or not self.open:
            return
        self.open[-1].text += data


def _explained(text: str, start: int, end: int, glossed: list[tuple[int, int]]) -> bool:
    if any(a <= start and end <= b for a, b in glossed):
        return True
    opening = text.rfind("(", 0, start)
    if opening < 0 or text.rfind(")", 0, start) > opening or text.find(")", end) < 0:
        return False
    before = text[:opening]
    before = before[before.rfind(")") + 1:]          # only the words since the last bracket
    plain = [w for w in _WORD.findall(before) if not _TERM.fullmatch(w)]
    return len(plain) >= MIN_PLAIN_WORDS


def problems(html: str, allowed: frozenset[str] = frozenset()) -> list[str]:
    """Each unexplained term on the page, as ``'<term> in: <its text block>'``."""
    parser = _Blocks()
    parser.feed(html)
    parser.close()
    out = []
    for text, glossed in parser.blocks:
        for match in _TERM.finditer(text):
            if match.group(0) in allowed:
                continue
            if not _explained(text, match.start(), match.end(), glossed):
                out.append(f"{match.group(0)} in: {' '.join(text.split())[:160]}")
    return out


__all__ = ["MIN_PLAIN_WORDS", "TERMS", "problems"]
