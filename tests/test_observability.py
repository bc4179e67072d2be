"""The observability config against the running code (docs/architecture.md §5).

Every metric a Grafana panel, a dashboard variable or a Prometheus alert rule queries must be one the apps export:
the queries are parsed as PromQL (promql-parser, not a regex) and their metric names and labels checked against a
live `/metrics` scrape of the five apps, started by the `stack` fixture and given some traffic first (a user, an
article, a comment, a 404), so the labelled series exist. The image's HEALTHCHECK runs against the live apps too.
"""

import asyncio
import json
import re
import socket
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import yaml
from prometheus_client.parser import text_string_to_metric_families
from tests.conftest import SERVICES, Stack
from tests.test_deployment import healthcheck_command

from comm.events.testing import wait_until

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = sorted((ROOT / "infra" / "grafana" / "dashboards").glob("*.json"))
ALERTS = ROOT / "infra" / "prometheus" / "alerts.yml"
# Series Prometheus itself writes for every scrape target: no app exports them.
SCRAPE_SERIES = {"up"}
_GRAFANA_INTERVALS = re.compile(r"\$\{?__(?:rate_interval|interval|range)\}?")
_GRAFANA_VARIABLE = re.compile(r"\$\{?\w+\}?")
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<expr>.+),\s*(?P<label>\w+)\s*\)\s*$")


# ---- the queries ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    where: str  # e.g. "blog-platform.json: panel 'Request rate'"
    expr: str  # PromQL, Grafana's variables replaced
    labels: tuple[str, ...] = ()  # labels the query reads beyond its PromQL (label_values' label)


def promql(expr: str) -> str:
    """Grafana's interval variables as a duration, its template variables (used inside label matchers) as `.*`."""
    return _GRAFANA_VARIABLE.sub(".*", _GRAFANA_INTERVALS.sub("5m", expr))


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # panels inside a collapsed row


def dashboard_queries(path: Path) -> list[Query]:
    dashboard = json.loads(path.read_text())
    queries = []
    for panel in _panels(dashboard["panels"]):
        if panel["type"] == "row":
            continue
        assert panel.get("targets"), f"{path.name}: panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            queries.append(Query(f"{path.name}: panel {panel['title']!r}", promql(target["expr"])))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            match = _LABEL_VALUES.match(query)
            assert match, f"{path.name}: variable {variable['name']}: expected label_values(<selector>, <label>)"
            where = f"{path.name}: variable {variable['name']!r}"
            queries.append(Query(where, promql(match["expr"]), (match["label"],)))
    return queries


def alert_queries() -> list[Query]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [Query(f"alerts.yml: {rule['alert']}", rule["expr"]) for group in groups for rule in group["rules"]]


def all_queries() -> list[Query]:
    return [query for path in DASHBOARDS for query in dashboard_queries(path)] + alert_queries()


@dataclass(frozen=True)
class Selector:
    metric: str
    labels: frozenset[str]  # from its matchers and from the `by (...)` of the aggregations around it


def selectors(expr: str) -> list[Selector]:
    """The metric selectors of a PromQL expression, with the labels the expression reads from each."""
    return list(_selectors(promql_parser.parse(expr), frozenset()))


def _selectors(node: promql_parser.Expr, grouped: frozenset[str]) -> Iterator[Selector]:
    """Depth first; `grouped` holds the `by (...)` labels of the aggregations around `node`."""
    p = promql_parser
    if isinstance(node, p.VectorSelector):
        matchers = node.matchers.matchers
        name = node.name or next(m.value for m in matchers if m.name == "__name__")
        yield Selector(name, grouped | {m.name for m in matchers if m.name != "__name__"})
    elif isinstance(node, p.MatrixSelector):
        yield from _selectors(node.vector_selector, grouped)
    elif isinstance(node, p.AggregateExpr):
        by = node.modifier is not None and node.modifier.type == p.AggModifierType.By
        yield from _selectors(node.expr, grouped | set(node.modifier.labels) if by else grouped)
    elif isinstance(node, p.Call):
        for arg in node.args:
            yield from _selectors(arg, grouped)
    elif isinstance(node, p.BinaryExpr):
        yield from _selectors(node.lhs, grouped)
        yield from _selectors(node.rhs, grouped)
    elif isinstance(node, p.ParenExpr | p.UnaryExpr | p.SubqueryExpr):
        yield from _selectors(node.expr, grouped)
    elif not isinstance(node, p.NumberLiteral | p.StringLiteral):
        raise TypeError(f"unexpected PromQL node {type(node).__name__}: extend _selectors")


def test_every_panel_and_rule_is_valid_promql_over_named_metrics() -> None:
    queries = all_queries()
    assert DASHBOARDS
    assert len(queries) >= 20
    for query in queries:
        assert selectors(query.expr), f"{query.where}: no metric in {query.expr!r}"


def test_the_dashboard_covers_requests_errors_latency_events_outbox_and_breakers() -> None:
    metrics = {s.metric for path in DASHBOARDS for q in dashboard_queries(path) for s in selectors(q.expr)}
    assert {
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "error_total",
        "events_published_total",
        "events_consumed_total",
        "outbox_backlog",
        "outbox_oldest_pending_age_seconds",
        "circuit_breaker_state",
    } <= metrics


def test_the_alerts_cover_errors_outbox_parking_and_breakers() -> None:
    metrics = {s.metric for q in alert_queries() for s in selectors(q.expr)}
    assert {"http_requests_total", "outbox_oldest_pending_age_seconds", "events_consumed_total"} <= metrics
    assert "circuit_breaker_state" in metrics
    assert any('outcome="parked"' in q.expr for q in alert_queries())


# ---- the live scrape ------------------------------------------------------------------------------------------------


@dataclass
class Scrape:
    declared: set[str]  # every sample name a family declares (counter x: x_total; histogram x: x_bucket, ...)
    labels: dict[str, set[str]]  # sample name -> label names seen on its samples


SAMPLE_NAMES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum"),
}


def parse_scrapes(texts: list[str]) -> Scrape:
    scrape = Scrape(declared=set(), labels=defaultdict(set))
    for text in texts:
        for family in text_string_to_metric_families(text):
            scrape.declared.update(family.name + suffix for suffix in SAMPLE_NAMES.get(family.type, ("",)))
            for sample in family.samples:
                scrape.labels[sample.name].update(sample.labels)
    return scrape


async def consumed(client: httpx.AsyncClient, stack: Stack) -> float:
    text = (await client.get(stack.metrics_url("user"))).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "events_consumed_total"
    )


async def drive_traffic(api: httpx.AsyncClient) -> None:
    """A user (user.created), an article (post.published), a comment (comment.created) and a 404."""
    name = f"obs{uuid.uuid4().hex[:10]}"
    body = {"user": {"username": name, "email": f"{name}@mail.com", "password": "password"}}
    response = await api.post("/users", json=body)
    assert response.status_code == 201, response.text
    auth = {"Authorization": f"Token {response.json()['user']['token']}"}
    article = {"article": {"title": f"Metrics {name}", "description": "d", "body": "b", "tagList": ["metrics"]}}
    response = await api.post("/articles", json=article, headers=auth)
    assert response.status_code == 201, response.text
    slug = response.json()["article"]["slug"]
    response = await api.post(f"/articles/{slug}/comments", json={"comment": {"body": "counted"}}, headers=auth)
    assert response.status_code == 200, response.text
    assert (await api.get(f"/articles/{slug}-missing")).status_code == 404


async def test_every_queried_metric_is_exported_by_the_apps(stack: Stack, api: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        before = await consumed(client, stack)
        await drive_traffic(api)

        async def events_consumed() -> bool:  # the user.created and comment.created deliveries
            return await consumed(client, stack) >= before + 2

        await wait_until(events_consumed, within=30, interval=0.2)
        responses = await asyncio.gather(*(client.get(stack.metrics_url(s)) for s in SERVICES))
    assert [r.status_code for r in responses] == [200] * len(SERVICES)
    scrape = parse_scrapes([response.text for response in responses])

    missing, unlabelled = [], []
    for query in all_queries():
        for selector in selectors(query.expr):
            if selector.metric in SCRAPE_SERIES:
                continue
            if selector.metric not in scrape.declared:
                missing.append(f"{query.where}: {selector.metric}")
            elif not scrape.labels.get(selector.metric):
                missing.append(f"{query.where}: {selector.metric} (declared, but no series after the traffic)")
            elif absent := (selector.labels | set(query.labels)) - scrape.labels[selector.metric]:
                unlabelled.append(f"{query.where}: {selector.metric} has no label(s) {sorted(absent)}")
    assert (missing, unlabelled) == ([], [])


def test_the_scrape_check_notices_a_metric_the_code_does_not_export() -> None:
    text = '# HELP http_requests_total x\n# TYPE http_requests_total counter\nhttp_requests_total{service="a"} 1\n'
    scrape = parse_scrapes([text])
    names = {
        s.metric for s in selectors("sum by (service) (rate(http_requests_totals[5m])) / rate(http_requests_total[5m])")
    }
    assert names - scrape.declared == {"http_requests_totals"}
    assert "http_requests" not in scrape.declared
    assert "http_requests_total" in scrape.declared


# ---- the image's HEALTHCHECK --------------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


async def healthcheck(service: str, port: int) -> int | None:
    """Run the Dockerfile's HEALTHCHECK command as the container would, the app's port in <SERVICE>_LISTEN_PORT."""
    command = healthcheck_command()
    assert command[0] == "python"
    env = {"SERVICE": service, f"{service.upper()}_LISTEN_PORT": str(port), "PATH": "/usr/bin:/bin"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, *command[1:], env=env, stderr=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(process.wait(), 30)


async def test_the_image_healthcheck_passes_on_live_apps_and_fails_without_one(stack: Stack) -> None:
    statuses = await asyncio.gather(*(healthcheck(s, stack.ports[s]) for s in SERVICES))
    assert dict(zip(SERVICES, statuses, strict=True)) == dict.fromkeys(SERVICES, 0)
    assert await healthcheck("gateway", closed_port()) != 0


async def test_the_gateway_keeps_its_metrics_off_the_public_port(stack: Stack, api: httpx.AsyncClient) -> None:
    assert (await api.get("/tags")).status_code == 200
    async with httpx.AsyncClient(timeout=10) as client:
        public = await client.get(f"{stack.url('gateway')}/metrics")
        private = await client.get(stack.metrics_url("gateway"))
    assert public.status_code == 404
    assert public.json() == {"errors": {"body": ["Not Found"]}}
    served = {
        sample.labels["path"]
        for family in text_string_to_metric_families(private.text)
        for sample in family.samples
        if sample.name == "http_requests_total" and sample.labels["service"] == "gateway"
    }
    assert "/api/tags" in served
