"""``--fail-on`` rules: bias thresholds that fail a pipeline step (e.g. ``CI>0.9``, ``abs(DPL)>0.1``)."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from sagestack.errors import ConfigError

_RULE = re.compile(r"^\s*(abs\(\s*([A-Za-z]+)\s*\)|([A-Za-z]+))\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)\s*$")
_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


@dataclass(frozen=True)
class Rule:
    """One threshold on one metric: the metric (optionally its absolute value) compared to a limit."""

    text: str
    metric: str
    absolute: bool
    op: str
    limit: float

    def violated_by(self, value: float | None) -> bool:
        """True if ``value`` breaks the rule; an undefined (None) value never does."""
        if value is None:
            return False
        return _OPS[self.op](abs(value) if self.absolute else value, self.limit)


def parse_rule(text: str, known_metrics: set[str]) -> Rule:
    """Parse ``METRIC OP NUMBER`` or ``abs(METRIC) OP NUMBER``.

    Raises:
        ConfigError: the rule is malformed or names an unknown metric.
    """
    match = _RULE.match(text)
    if not match:
        raise ConfigError(f"bad --fail-on rule {text!r}; write it like 'CI>0.9' or 'abs(DPL)>0.1'")
    metric = (match.group(2) or match.group(3)).upper()
    if metric not in known_metrics:
        raise ConfigError(f"--fail-on rule {text!r} names unknown metric {metric}; known: {', '.join(sorted(known_metrics))}")
    return Rule(text.strip(), metric, bool(match.group(2)), match.group(4), float(match.group(5)))


def violations(rules: list[Rule], analysis: dict) -> list[str]:
    """Every (rule, facet value) that an ``analysis.json`` document breaks, as readable lines."""
    found = []
    for stage in ("pre_training_bias_metrics", "post_training_bias_metrics"):
        for facet, entries in analysis.get(stage, {}).get("facets", {}).items():
            for entry in entries:
                for metric in entry["metrics"]:
                    for rule in rules:
                        if metric["name"] == rule.metric and rule.violated_by(metric["value"]):
                            found.append(f"{rule.text}: {metric['name']} = {metric['value']:.4g} for {_where(facet, entry)}")
    return found


def _where(facet: str, entry: dict) -> str:
    """``cat = x`` for a one-vs-rest facet's value; the key alone (``cat=x,y``, ``age>40``) when it names d."""
    # Facets are keyed by their spec; a key with sensitive values or a threshold already says
    # which rows are d, and "cat=x,y = x,y" would only repeat it.
    if "=" in facet or ">" in facet:
        return facet
    return f"{facet} = {entry['value_or_threshold']}"


def split_rules(text: str) -> list[str]:
    """Rules packed in one string, ';'-separated (pipeline parameters are strings): ``'CI>0.95;abs(DPL)>0.2'``."""
    return [rule.strip() for rule in text.split(";") if rule.strip()]
