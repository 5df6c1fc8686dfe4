"""Helpers shared by the deployment tests (static ones here, the real-Prometheus one in tests/e2e).

Not a test module: the tests put this folder on ``sys.path`` and import it by name.

``metric_names(expr)`` is a small PromQL-aware extractor, enough for the expressions this repository
writes: it expands Grafana's ``$service`` variable over the five services and a ``__name__=~"a_(x|y)_b"``
matcher into its names, drops strings, label matchers, grouping clauses, durations, numbers, functions
and keywords, and returns what is left: the metric names the expression queries.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import in_ci

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("registry", "sampling", "ballots", "scoring", "publishing")
PROMETHEUS = ROOT / "deploy/prometheus"
DASHBOARDS = ROOT / "deploy/grafana/dashboards"
# Series Prometheus makes itself rather than scraping them.
SYNTHETIC = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped"}

_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset",
             "bool", "inf", "nan", "atan2"}
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME_MATCHER = re.compile(r'__name__\s*(=~|=)\s*"([^"]*)"')
_GRAFANA_RANGES = re.compile(r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}")


def require_tool(name: str) -> str:
    """The tool's path; without it the test fails under CI (``.ci/run`` installs it) and skips elsewhere."""
    found = shutil.which(name)
    if found is None:
        if in_ci():
            pytest.fail(f"CI must run {name}, but it is not installed: see .ci/run (Debian package prometheus)")
        pytest.skip(f"{name} not installed (apt-get install prometheus)")
    return found


def _expand_name_regex(pattern: str) -> list[str]:
    """``sipas_(a|b)_x`` -> [sipas_a_x, sipas_b_x]; anything fancier is refused rather than guessed."""
    group = re.fullmatch(r"([\w:]*)\(([\w:|]+)\)([\w:]*)", pattern)
    if group is None:
        assert re.fullmatch(r"[\w:]+", pattern), f"__name__ regex too clever for this extractor: {pattern}"
        return [pattern]
    head, alternatives, tail = group.groups()
    return [head + alt + tail for alt in alternatives.split("|")]


def variants(expr: str) -> list[str]:
    """The expression with Grafana's range variables fixed and ``$service`` expanded over every service."""
    expr = _GRAFANA_RANGES.sub("5m", expr)
    if "$service" in expr or "${service}" in expr:
        return [expr.replace("${service}", s).replace("$service", s) for s in SERVICES]
    return [expr]


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()
    for text in variants(expr):
        for op, value in _NAME_MATCHER.findall(text):
            names.update(_expand_name_regex(value) if op == "=~" else [value])
        text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', text)  # strings
        text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
        text = _GROUPING.sub(" ", text)  # label lists
        text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
        assert "$" not in text, f"unexpanded Grafana variable in {text!r}"
        for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?", text):
            word, call = match.group(1), match.group(2)
            if call or word.lower() in _KEYWORDS or re.fullmatch(r"\d+\w*", word):
                continue
            names.add(word)
    return names


def rule_groups() -> list[dict]:
    return yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]


def rule_expressions() -> Iterator[tuple[str, str]]:
    for group in rule_groups():
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def recorded_names() -> set[str]:
    return {rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule}


def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: dict) -> Iterator[dict]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    """(where, expression) for every panel target and every query variable of every dashboard."""
    for name, board in dashboards().items():
        for panel in panels(board):
            for target in panel.get("targets", []):
                yield f"{name}: {panel['title']}", target["expr"]
        for var in board.get("templating", {}).get("list", []):
            if var["type"] == "query":
                query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
                inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", query)
                yield f"{name}: ${var['name']}", inner.group(1) if inner else query


def queried_metrics() -> dict[str, set[str]]:
    """Metric name -> where it is queried (dashboards and rules); recorded and synthetic series left out."""
    found: dict[str, set[str]] = {}
    everything = [*dashboard_expressions(), *((f"alerts.yml: {n}", e) for n, e in rule_expressions())]
    for where, expr in everything:
        for name in metric_names(expr):
            if name not in SYNTHETIC and ":" not in name:
                found.setdefault(name, set()).add(where)
    return found


def exported_names(metrics_text: str) -> set[str]:
    """Every series name a ``/metrics`` page can yield, declared families included even before a sample."""
    from prometheus_client.parser import text_string_to_metric_families

    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("", "_sum", "_count", "_created"), "gauge": ("",), "info": ("_info",)}
    names: set[str] = set()
    for family in text_string_to_metric_families(metrics_text):
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names
