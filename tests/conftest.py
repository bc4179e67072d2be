"""The whole platform as local processes, started the way `make run` starts it (`python -m <service> serve
--migrate`), on fresh databases, a unique exchange and unique queue names; stopped and cleaned up afterwards
(comm.testing.local_platform, which the benchmarks use too).

Tests may kill and restart one service's process (by the pid this fixture started) and may cut the apps off
the broker: every app reaches RabbitMQ through a TCP proxy owned by the test run (`stack.broker`). The apps export
their spans over OTLP/HTTP to a receiver in the test process (`stack.traces`).
"""

import gzip
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.trace import SpanKind

from comm.events.testing import TcpProxy
from comm.settings import CommSettings
from comm.testing import SERVICES, LocalApps, local_platform, serve


@dataclass(frozen=True)
class ExportedSpan:
    trace_id: str  # 32 hex
    span_id: str  # 16 hex
    parent_span_id: str  # 16 hex, "" for a root span
    name: str
    kind: SpanKind
    service: str  # the resource's service.name
    start_ns: int
    end_ns: int


class TraceReceiver:
    """An OTLP/HTTP trace endpoint (`POST /v1/traces`, protobuf) keeping every span it is sent, in memory."""

    def __init__(self) -> None:
        self._traces: defaultdict[str, list[ExportedSpan]] = defaultdict(list)
        self.app = FastAPI()
        self.app.post("/v1/traces")(self._export)

    def spans_of(self, trace_id: str) -> list[ExportedSpan]:
        """The spans received so far of one trace (32 hex)."""
        return list(self._traces.get(trace_id, ()))

    async def _export(self, request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for span in (span for scope_spans in resource_spans.scope_spans for span in scope_spans.spans):
                self._traces[span.trace_id.hex()].append(_exported(span, resource["service.name"]))
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf")


def _exported(span: OtlpSpan, service: str) -> ExportedSpan:
    return ExportedSpan(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        name=span.name,
        kind=SpanKind[OtlpSpan.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_")],
        service=service,
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
    )


@dataclass(kw_only=True)
class Stack(LocalApps):
    """The five running apps (`gateway` is the public entry point), reaching RabbitMQ through `broker`, exporting
    their spans to `traces`."""

    broker: TcpProxy
    traces: TraceReceiver


def _test_settings(traces_url: str) -> dict[str, str]:
    """What the tests need of the apps beyond the platform's defaults: quick retries, spans, unbuffered logs."""
    return {
        # Many users register and log in from 127.0.0.1 in one run; the login limit stays as shipped.
        "GATEWAY_RATE_LIMIT_REGISTER": "10000/minute",
        "GATEWAY_RATE_LIMIT_COMMENT_ANONYMOUS": "10000/minute",
        "GATEWAY_RATE_LIMIT_COMMENT": "10000/minute",
        "OTEL_EXPORTER_OTLP_ENDPOINT": traces_url,
        # The tracing tests play a front end that starts the trace (services/gateway/tests/test_edge.py: the default).
        "GATEWAY_TRUST_TRACEPARENT": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # ms; spans reach `stack.traces` soon after they end
        "PYTHONUNBUFFERED": "1",  # log lines (uvicorn's access lines go to stdout) reach the log files at once
        **{f"{service.upper()}_EVENTS_RETRY_DELAY_SECONDS": "0.5" for service in SERVICES},
        **{f"{service.upper()}_HTTP_BREAKER_RESET_TIMEOUT_SECONDS": "2" for service in SERVICES},
        # Access lines from every app (only the gateway's are on by default), so the tests can read each app's
        # part of a request, with its trace id, in its log.
        **{f"{service.upper()}_ACCESS_LOG": "true" for service in SERVICES},
    }


@pytest.fixture(scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    broker = TcpProxy(target_url=CommSettings().rabbitmq_url)
    await broker.open()
    traces = TraceReceiver()
    try:
        async with (
            serve(traces.app) as traces_url,  # stops after the apps flushed theirs
            local_platform(
                partial(Stack, broker=broker, traces=traces),
                name="e2e",
                logs=tmp_path_factory.mktemp("stack"),
                broker_url=broker.url,
                extra_env=_test_settings(traces_url),
            ) as stack,
        ):
            yield stack
    finally:
        await broker.close()


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the public API, as a RealWorld front end calls it."""
    async with httpx.AsyncClient(base_url=stack.gateway, timeout=15) as client:
        yield client
