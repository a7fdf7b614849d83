"""Just enough PromQL reading to find the metric names a query uses."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

from bridge.metrics import Metrics

_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
     "inf", "nan", "atan2"}
)
#: Parts of a query that hold no metric names: strings, label matchers, ranges, label lists.
_NOISE = re.compile(
    r'"(?:[^"\\]|\\.)*"'
    r"|'(?:[^'\\]|\\.)*'"
    r"|\{[^}]*\}"
    r"|\[[^\]]*\]"
    r"|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
)
_IDENT = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects (function names, keywords and label names excluded)."""
    bare = _NOISE.sub(" ", expr)
    return {m.group(1) for m in _IDENT.finditer(bare) if not m.group(2) and m.group(1).lower() not in _KEYWORDS}


def exported_names() -> set[str]:
    """Every series name a fresh ``Metrics`` exports (counters with ``_total``, histogram parts)."""
    registry = CollectorRegistry()
    Metrics(registry)
    names: set[str] = set()
    for family in registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names
