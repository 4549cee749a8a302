"""Monitoring rules: when to raise an alert, and what to do about it.

A use case lists its rules in planta.toml:

    [[usecases.failure.rules]]
    name = "torque drift"                        # optional; the condition text by default
    when = "psi(torque_nm) > 0.2 for 2 windows"
    then = ["log", "webhook", "mqtt", "retrain"]
    resolve_after = 2                            # false windows before the alert resolves
                                                 # itself; 0: a person resolves it

The condition grammar (``and`` binds tighter than ``or``; parentheses group):

    rule        := expression [ "for" N ("window" | "windows") ]
    expression  := conjunction { "or" conjunction }
    conjunction := term { "and" term }
    term        := "(" expression ")" | signal op value
    signal      := name | name "(" field ")"          recall, psi(torque_nm), rejected_rate
    op          := ">" | ">=" | "<" | "<=" | "==" | "!="
    value       := number [ "%" ] | "objective"

``objective`` is the use case's own target for the signal's metric: ``estimated_recall <
objective`` with ``objective = "recall>=0.80"`` means ``estimated_recall < 0.80``. A monitor
window gives a flat ``{signal: value}`` mapping; a signal with no value in it makes the rule
"cannot be evaluated" (reported, never silently false). ``and``/``or`` follow three-valued
logic: ``a or b`` is true when ``a`` is true even if ``b`` has no value.

Everything here is pure: parsing happens when planta.toml is loaded, so a typo stops the
command that read it, with the rule, the position and what was expected.

>>> rule = parse_rule("psi(torque_nm) > 0.2 for 2 windows", name="torque drift")
>>> rule.windows, rule.signals
(2, ('psi(torque_nm)',))
>>> rule.evaluate({"psi(torque_nm)": 0.31}).result
True
>>> rule.evaluate({}).message
'cannot be evaluated: no value for psi(torque_nm)'
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from planta.core.spec import Objective
from planta.errors import ConfigError, keyed, phrase

ACTIONS = ("log", "webhook", "mqtt", "retrain")
OPS = (">=", "<=", "==", "!=", ">", "<")
DEFAULT_RESOLVE_AFTER = 2
# Prefixes and suffixes a signal may put around a metric name for ``objective`` to apply.
_METRIC_PREFIXES = ("estimated_", "realised_", "realized_")
_METRIC_SUFFIXES = ("_lower", "_upper", "_low", "_high")

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?%?)
  | (?P<op>>=|<=|==|!=|>|<)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<word>[A-Za-z_][A-Za-z0-9_.\-]*)
""", re.VERBOSE)
_KEYWORDS = frozenset({"and", "or", "for", "window", "windows", "objective"})


@dataclass(frozen=True)
class Comparison:
    """``signal op threshold``; ``from_objective`` says the threshold came from the objective."""

    signal: str
    op: str
    threshold: float
    from_objective: bool = False

    def __str__(self) -> str:
        return f"{self.signal} {self.op} {self.threshold:g}"


@dataclass(frozen=True)
class Junction:
    """Several conditions joined by ``and`` or ``or``."""

    op: str
    parts: tuple[Node, ...]


Node = Union[Comparison, Junction]  # noqa: UP007 - a runtime alias, read by dataclasses


@dataclass(frozen=True)
class Evaluation:
    """One rule on one window: ``result`` is True, False or None (cannot be evaluated)."""

    result: bool | None
    missing: tuple[str, ...] = ()
    values: Mapping[str, float] = field(default_factory=dict)

    @property
    def message(self) -> str:
        if self.result is None:
            return "cannot be evaluated: no value for " + ", ".join(self.missing)
        return "true" if self.result else "false"

    def to_dict(self) -> dict[str, Any]:
        return {"result": self.result, "message": self.message, "missing": list(self.missing),
                "values": dict(self.values)}


@dataclass(frozen=True)
class Rule:
    """A parsed rule: its condition, how many windows in a row, and its actions."""

    name: str
    when: str
    condition: Node
    windows: int = 1
    actions: tuple[str, ...] = ("log",)
    resolve_after: int = DEFAULT_RESOLVE_AFTER
    webhook_url: str | None = None
    mqtt_topic: str | None = None

    @property
    def signals(self) -> tuple[str, ...]:
        """The signals the condition reads, in order, each once."""
        out: list[str] = []
        for c in _comparisons(self.condition):
            if c.signal not in out:
                out.append(c.signal)
        return tuple(out)

    def evaluate(self, signals: Mapping[str, float | None]) -> Evaluation:
        """The condition on one window's signals (the ``for N windows`` part is not applied
        here: :func:`advance` counts the windows)."""
        values: dict[str, float] = {}
        missing: list[str] = []
        for name in self.signals:
            value = _number(signals.get(name))
            if value is None:
                missing.append(name)
            else:
                values[name] = value
        result = _evaluate(self.condition, values)
        return Evaluation(result=result, missing=tuple(missing) if result is None else (),
                          values=values)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "when": self.when, "then": list(self.actions),
                               "resolve_after": self.resolve_after}
        if self.webhook_url:
            out["webhook_url"] = self.webhook_url
        if self.mqtt_topic:
            out["mqtt_topic"] = self.mqtt_topic
        return out


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _comparisons(node: Node) -> Iterable[Comparison]:
    if isinstance(node, Comparison):
        yield node
    else:
        for part in node.parts:
            yield from _comparisons(part)


def _compare(value: float, op: str, threshold: float) -> bool:
    return {">": value > threshold, ">=": value >= threshold, "<": value < threshold,
            "<=": value <= threshold, "==": value == threshold,
            "!=": value != threshold}[op]


def _evaluate(node: Node, values: Mapping[str, float]) -> bool | None:
    if isinstance(node, Comparison):
        value = values.get(node.signal)
        return None if value is None else _compare(value, node.op, node.threshold)
    results = [_evaluate(part, values) for part in node.parts]
    # Kleene logic: a known answer wins over an unknown part only when it decides the whole.
    decisive = node.op == "or"
    if decisive in results:
        return decisive
    return None if None in results else not decisive


# -- parsing ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int  # 1-based character position in the condition text


class _Parser:
    def __init__(self, text: str, where: dict[str, Any], objective: Objective | None) -> None:
        # ``where`` is a sentence as data (:func:`planta.errors.phrase`), said in each language.
        self.text, self.where, self.objective = text, where, objective
        self.tokens: list[_Token] = []
        self.i = 0
        self.tokens = _tokenize(text, self.fail)

    def fail(self, pos: int, expected: str, found: str | None = None,
             **values: Any) -> ConfigError:
        """``expected`` is a ``rules.expect.*`` key (``values`` fill it in)."""
        shown: Any = found if found is not None else (
            repr(self.tokens[self.i].text) if self.i < len(self.tokens) else
            phrase("rules.the_end"))
        key, joined = "rules.position", None
        if (0 < self.i < len(self.tokens)
                and self.tokens[self.i - 1].kind == "word" and self.tokens[self.i].kind == "word"
                and self.tokens[self.i].text not in _KEYWORDS
                and self.tokens[self.i - 1].text not in _KEYWORDS):
            key = "rules.position_joined"
            joined = f"{self.tokens[self.i - 1].text}_{self.tokens[self.i].text}"
        return keyed(ConfigError, key, where=self.where, pos=pos, text=repr(self.text),
                     expected=phrase(f"rules.expect.{expected}", **values), found=shown,
                     **({"joined": joined} if joined else {}))

    def peek(self, offset: int = 0) -> _Token | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def end_pos(self) -> int:
        return len(self.text) + 1

    def take(self, kind: str, expected: str, **values: Any) -> _Token:
        token = self.peek()
        if token is None or token.kind != kind:
            raise self.fail(token.pos if token else self.end_pos(), expected, **values)
        self.i += 1
        return token

    def is_word(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "word" and token.text.lower() in words

    def rule(self) -> tuple[Node, int]:
        node = self.expression()
        windows, had_for = 1, self.is_word("for")
        if had_for:
            self.i += 1
            token = self.take("number", "windows_after_for")
            try:
                windows = int(token.text)
            except ValueError:
                windows = 0
            if windows < 1 or token.text.endswith("%"):
                raise self.fail(token.pos, "windows_min", repr(token.text))
            if not self.is_word("window", "windows"):
                after = self.peek()
                raise self.fail(after.pos if after else self.end_pos(),
                                "windows_word")
            self.i += 1
        rest = self.peek()
        if rest is not None:
            expected = "end_after_for" if had_for else "and_or_for"
            raise self.fail(rest.pos, expected)
        return node, windows

    def expression(self) -> Node:
        parts = [self.conjunction()]
        while self.is_word("or"):
            self.i += 1
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else Junction("or", tuple(parts))

    def conjunction(self) -> Node:
        parts = [self.term()]
        while self.is_word("and"):
            self.i += 1
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else Junction("and", tuple(parts))

    def term(self) -> Node:
        token = self.peek()
        if token is not None and token.kind == "lparen":
            self.i += 1
            node = self.expression()
            self.take("rparen", "close", at=token.pos)
            return node
        if token is None or token.kind != "word" or token.text.lower() in _KEYWORDS:
            raise self.fail(token.pos if token else self.end_pos(),
                            "signal")
        self.i += 1
        signal = token.text.lower()
        nxt = self.peek()
        if nxt is not None and nxt.kind == "lparen":
            self.i += 1
            arg = self.take("word", "field")
            self.take("rparen", "rparen_field")
            signal = f"{signal}({arg.text})"
        op = self.take("op", "comparison", signal=repr(signal))
        value = self.peek()
        if value is not None and value.kind == "number":
            self.i += 1
            return Comparison(signal, op.text, _parse_number(value.text))
        if value is not None and value.kind == "word" and value.text.lower() == "objective":
            self.i += 1
            return Comparison(signal, op.text, self.objective_target(signal, value.pos), True)
        raise self.fail(value.pos if value else self.end_pos(), "value")

    def objective_target(self, signal: str, pos: int) -> float:
        metric = metric_of(signal)
        clauses = {c.metric: c for c in (self.objective.clauses if self.objective else ())}
        if metric not in clauses:
            have = self.objective.text if self.objective else "none"
            raise keyed(ConfigError, "rules.objective_target", where=self.where, pos=pos,
                        text=repr(self.text), metric=metric, have=repr(have), signal=signal)
        return clauses[metric].target


def metric_of(signal: str) -> str:
    """The objective metric a signal measures: ``estimated_recall`` → ``recall``.

    >>> metric_of("estimated_recall"), metric_of("recall_lower"), metric_of("psi(torque_nm)")
    ('recall', 'recall', 'psi(torque_nm)')
    """
    name = signal
    for prefix in _METRIC_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
    for suffix in _METRIC_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _parse_number(text: str) -> float:
    return float(text[:-1]) / 100 if text.endswith("%") else float(text)


def _tokenize(text: str, fail: Any) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise fail(pos + 1, "token", repr(text[pos]))
        kind = m.lastgroup or ""
        if kind != "space":
            tokens.append(_Token(kind, m.group(), pos + 1))
        pos = m.end()
    return tokens


def parse_rule(when: str, *, name: str | None = None, objective: Objective | None = None,
               actions: Sequence[str] = ("log",), resolve_after: int = DEFAULT_RESOLVE_AFTER,
               webhook_url: str | None = None, mqtt_topic: str | None = None,
               usecase: str | None = None) -> Rule:
    """Parse one rule's condition.

    Raises:
        ConfigError: the condition, an action or a setting cannot be read; the message names
            the rule, the position in the condition and what was expected there.

    >>> parse_rule("drift_share > 0.3 or (recall < 0.7 and rejected_rate > 5%)").signals
    ('drift_share', 'recall', 'rejected_rate')
    >>> try:
    ...     parse_rule("psi(torque_nm) > high", name="torque drift")
    ... except ConfigError as exc:
    ...     print(exc.message)
    Rule 'torque drift': at position 18 of 'psi(torque_nm) > high', expected a number or 'objective', found 'high'.
    """
    text = str(when or "").strip()
    label = name or text
    # The same words as data, for the errors said in the reader's language.
    said_where = (phrase("rules.where_of", rule=label, usecase=usecase) if usecase else
                  phrase("rules.where", rule=label))
    if not text:
        raise keyed(ConfigError, "rules.no_condition", where=said_where)
    parser = _Parser(text, said_where, objective)
    if not parser.tokens:
        raise keyed(ConfigError, "rules.no_condition", where=said_where)
    condition, windows = parser.rule()
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown:
        raise keyed(ConfigError, "rules.unknown_action", where=said_where,
                    action=repr(unknown[0]), known=", ".join(ACTIONS))
    if isinstance(resolve_after, bool) or not isinstance(resolve_after, int) or resolve_after < 0:
        raise keyed(ConfigError, "rules.resolve_after", where=said_where,
                    value=repr(resolve_after))
    if len(label) > 200:
        raise keyed(ConfigError, "rules.long_name", where=said_where)
    return Rule(name=label, when=text, condition=condition, windows=windows,
                actions=tuple(dict.fromkeys(actions)), resolve_after=resolve_after,
                webhook_url=webhook_url, mqtt_topic=mqtt_topic)


def parse_rules(usecase: str, entries: Any, objective: Objective | None) -> tuple[Rule, ...]:
    """The ``rules`` list of a use case's planta.toml table, parsed.

    Raises:
        ConfigError: an entry is not a table, has unknown keys, or does not parse; or two
            rules share a name.
    """
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise keyed(ConfigError, "rules.not_list", usecase=usecase)
    known = {"name", "when", "then", "resolve_after", "webhook_url", "mqtt_topic"}
    rules: list[Rule] = []
    for n, entry in enumerate(entries, start=1):
        if not isinstance(entry, Mapping):
            raise keyed(ConfigError, "rules.not_table", usecase=usecase, n=n)
        extra = sorted(set(entry) - known)
        if extra:
            raise keyed(ConfigError, "rules.unknown_key", usecase=usecase, n=n,
                        key=repr(extra[0]), known=", ".join(sorted(known)))
        then = entry.get("then", ["log"])
        if isinstance(then, str):
            then = [then]
        if not isinstance(then, list) or not all(isinstance(a, str) for a in then):
            raise keyed(ConfigError, "rules.then_list", usecase=usecase, n=n,
                        known=", ".join(ACTIONS))
        rules.append(parse_rule(
            str(entry.get("when", "")), name=entry.get("name") or None, objective=objective,
            actions=then, resolve_after=entry.get("resolve_after", DEFAULT_RESOLVE_AFTER),
            webhook_url=entry.get("webhook_url") or None,
            mqtt_topic=entry.get("mqtt_topic") or None, usecase=usecase))
    names = [r.name for r in rules]
    for name in names:
        if names.count(name) > 1:
            raise keyed(ConfigError, "rules.twice", usecase=usecase, name=repr(name))
    return tuple(rules)


# -- windows in a row ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Streak:
    """How many windows in a row a rule has been true and false (stored between windows)."""

    true_windows: int = 0
    false_windows: int = 0


def advance(streak: Streak, result: bool | None, rule: Rule, *, alert_active: bool
            ) -> tuple[Streak, str]:
    """Count one more window and say what it means for the rule's alert.

    Returns the new streak and one of ``"open"`` (raise a new alert), ``"repeat"`` (the active
    alert fired again), ``"resolve"`` (false long enough: the active alert resolves itself),
    ``"unknown"`` (the rule cannot be evaluated: streaks unchanged) or ``"none"``.

    >>> rule = parse_rule("recall < 0.7 for 2 windows", resolve_after=1)
    >>> s, what = advance(Streak(), True, rule, alert_active=False); what
    'none'
    >>> s, what = advance(s, True, rule, alert_active=False); what
    'open'
    >>> advance(s, False, rule, alert_active=True)[1]
    'resolve'
    """
    if result is None:
        return streak, "unknown"
    if result:
        new = Streak(true_windows=streak.true_windows + 1, false_windows=0)
        if new.true_windows < rule.windows:
            return new, "none"
        return new, "repeat" if alert_active else "open"
    new = Streak(true_windows=0, false_windows=streak.false_windows + 1)
    if alert_active and rule.resolve_after > 0 and new.false_windows >= rule.resolve_after:
        return new, "resolve"
    return new, "none"


__all__ = ["ACTIONS", "DEFAULT_RESOLVE_AFTER", "OPS", "Comparison", "Evaluation", "Junction",
           "Node", "Rule", "Streak", "advance", "metric_of", "parse_rule", "parse_rules"]
