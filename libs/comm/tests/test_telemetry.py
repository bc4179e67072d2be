"""One request through two real services is one trace; `/metrics` counts it by route template."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn.logging
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from comm.http.client import ServiceClient
from comm.logs import log_config
from comm.metrics import setup_metrics
from comm.settings import CommSettings
from comm.telemetry import LOG_FORMAT, NO_NATIVE_TELEMETRY, TracingMiddleware, install_log_trace_ids, tracer_provider
from comm.testing import serve

log = logging.getLogger("telemetry-test")


class Item(BaseModel):
    id: int
    name: str


def _backend(exporter: InMemorySpanExporter) -> FastAPI:
    provider = tracer_provider(CommSettings(service_name="backend-test"), span_processor=SimpleSpanProcessor(exporter))
    app = FastAPI(telemetry=NO_NATIVE_TELEMETRY)
    setup_metrics(app, "backend-test")
    app.add_middleware(TracingMiddleware, tracer_provider=provider)

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> Item:
        log.warning("serving item %s", item_id)
        return Item(id=item_id, name="thing")

    return app


def _front(exporter: InMemorySpanExporter, backend_url: str) -> FastAPI:
    settings = CommSettings(service_name="front-test")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with ServiceClient(
            downstream="backend", base_url=backend_url, settings=settings, tracer_provider=provider
        ) as client:
            app.state.backend = client
            yield

    provider = tracer_provider(settings, span_processor=SimpleSpanProcessor(exporter))
    app = FastAPI(lifespan=lifespan, telemetry=NO_NATIVE_TELEMETRY)
    app.add_middleware(TracingMiddleware, tracer_provider=provider)

    @app.get("/front/{item_id}")
    async def front(item_id: int) -> Item:
        backend: ServiceClient = app.state.backend
        return await backend.get("/items/{item_id}", path_params={"item_id": item_id}, response_model=Item)

    return app


async def test_one_trace_across_two_services_and_metrics_by_template(caplog: pytest.LogCaptureFixture) -> None:
    exporter = InMemorySpanExporter()
    async with (
        serve(_backend(exporter)) as backend_url,
        serve(_front(exporter, backend_url)) as front_url,
        httpx.AsyncClient(base_url=front_url) as client,
    ):
        assert (await client.get("/front/42")).json() == {"id": 42, "name": "thing"}
        assert (await client.get(f"{backend_url}/no/such/path")).status_code == 404
        metrics = (await client.get(f"{backend_url}/metrics")).text

    spans = exporter.get_finished_spans()
    front = next(span for span in spans if span.name == "GET /front/{item_id}")
    client_span = next(span for span in spans if span.kind is trace.SpanKind.CLIENT)
    backend = next(span for span in spans if span.name == "GET /items/{item_id}" and span.kind is trace.SpanKind.SERVER)
    assert front.resource.attributes["service.name"] == "front-test"
    assert backend.resource.attributes["service.name"] == "backend-test"
    assert front.context.trace_id == client_span.context.trace_id == backend.context.trace_id
    assert client_span.parent is not None
    assert client_span.parent.span_id == front.context.span_id
    assert backend.parent is not None
    assert backend.parent.span_id == client_span.context.span_id

    record = next(record for record in caplog.records if record.getMessage() == "serving item 42")
    assert record.trace_id == format(backend.context.trace_id, "032x")  # type: ignore[attr-defined]
    assert record.span_id == format(backend.context.span_id, "016x")  # type: ignore[attr-defined]

    assert (
        'http_requests_total{method="GET",path="/items/{item_id}",service="backend-test",status="200"} 1.0' in metrics
    )
    assert 'http_requests_total{method="GET",path="none",service="backend-test",status="404"} 1.0' in metrics
    assert (
        'http_request_duration_seconds_count{method="GET",path="/items/{item_id}",service="backend-test"} 1.0'
        in metrics
    )
    assert "/no/such/path" not in metrics


async def test_a_request_is_one_server_span_with_its_route_status_and_error() -> None:
    """TracingMiddleware is the app's only server span (FastAPI's native telemetry is off), with the stable HTTP
    attributes; a failure is an error span with the exception; probes are not traced."""
    exporter = InMemorySpanExporter()
    backend = _backend(exporter)

    @backend.get("/broken")
    async def broken() -> None:
        raise RuntimeError("out of order")

    async with serve(backend) as backend_url, httpx.AsyncClient(base_url=backend_url) as client:
        assert (await client.get("/items/7", params={"q": "x"})).status_code == 200
        assert (await client.get("/no/such/path")).status_code == 404
        assert (await client.get("/broken")).status_code == 500
        assert (await client.get("/metrics")).status_code == 200

    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert sorted(spans) == ["GET", "GET /broken", "GET /items/{item_id}"]  # one each; no span for /metrics
    item = spans["GET /items/{item_id}"]
    assert item.kind is trace.SpanKind.SERVER
    assert item.parent is None
    assert dict(item.attributes or {}) == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": "/items/7",
        "network.protocol.version": "1.1",
        "http.route": "/items/{item_id}",
        "http.response.status_code": 200,
    }
    assert item.status.status_code is trace.StatusCode.UNSET
    unmatched = spans["GET"]
    assert unmatched.attributes is not None
    assert unmatched.attributes["http.response.status_code"] == 404
    assert "http.route" not in unmatched.attributes
    failed = spans["GET /broken"]
    assert failed.attributes is not None
    assert failed.status.status_code is trace.StatusCode.ERROR
    assert (failed.attributes["http.response.status_code"], failed.attributes["error.type"]) == (500, "500")
    assert [event.name for event in failed.events] == ["exception"]


def test_log_records_outside_a_span_carry_placeholder_ids(caplog: pytest.LogCaptureFixture) -> None:
    tracer_provider(CommSettings(service_name="quiet-test"))
    log.warning("no span here")
    assert caplog.records[-1].trace_id == "0"  # type: ignore[attr-defined]


def test_otlp_exporter_is_added_when_an_endpoint_is_set() -> None:
    settings = CommSettings(service_name="export-test", otel_exporter_otlp_endpoint="http://127.0.0.1:4318")
    provider = tracer_provider(settings)
    processors = provider._active_span_processor._span_processors
    assert [type(processor).__name__ for processor in processors] == ["BatchSpanProcessor"]
    provider.shutdown()


_TEXT = log_config(service="telemetry-test", level="info", log_format="text")


def test_service_log_lines_and_access_lines_show_the_trace() -> None:
    install_log_trace_ids()  # what `python -m <service>` does first
    access = uvicorn.logging.AccessFormatter(_TEXT["formatters"]["access"]["fmt"], use_colors=False)
    with TracerProvider().get_tracer("test").start_as_current_span("request") as span:
        request = logging.getLogger("uvicorn.access").makeRecord(
            "uvicorn.access",
            logging.INFO,
            __file__,
            1,
            '%s - "%s %s HTTP/%s" %d',
            ("1.2.3.4:5", "GET", "/", "1.1", 200),
            None,
        )
        record = log.makeRecord(log.name, logging.INFO, __file__, 1, "handled", (), None)
    ids = f"trace_id={span.get_span_context().trace_id:032x} span_id={span.get_span_context().span_id:016x}"
    assert access.format(request).endswith(f'"GET / HTTP/1.1" 200 OK {ids}')
    assert f"telemetry-test {ids} handled" in logging.Formatter(LOG_FORMAT).format(record)


def test_sampling_follows_otel_traces_sampler_and_unsampled_requests_still_log_their_ids(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")  # record nothing
    provider = tracer_provider(CommSettings(service_name="sampled-test"))
    assert "ParentBased{root:TraceIdRatioBased{0" in provider.sampler.get_description()
    with provider.get_tracer("test").start_as_current_span("request") as span:
        log.warning("not recorded, still traced")
    context = span.get_span_context()
    assert not span.is_recording()
    assert context.is_valid
    assert caplog.records[-1].trace_id == format(context.trace_id, "032x")  # type: ignore[attr-defined]
