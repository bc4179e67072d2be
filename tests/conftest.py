"""The whole platform as local processes, started the way `make run` starts it (`python -m <service> serve
--migrate`), on fresh databases, a unique exchange and unique queue names; stopped and cleaned up afterwards.

Tests may kill and restart one service's process (by the pid this fixture started) and may cut the apps off
the broker: every app reaches RabbitMQ through a TCP proxy owned by the test run (`stack.broker`). The apps export
their spans over OTLP/HTTP to a receiver in the test process (`stack.traces`).
"""

import asyncio
import contextlib
import gzip
import os
import secrets
import signal
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.trace import SpanKind

from comm.events.testing import TcpProxy, delete_topology
from comm.settings import CommSettings
from comm.testing import free_port, serve, temporary_database, unique_name

SERVICES = ("auth", "user", "blog", "comment", "gateway")
WITH_DATABASE = ("auth", "user", "blog", "comment")
WITH_QUEUES = {"user": ("profile-sync", "comment-counts"), "comment": ("post-cleanup",)}


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


@dataclass
class Stack:
    """Five running apps; `url(service)` reaches one directly, `gateway` is the public entry point."""

    env: dict[str, str]
    ports: dict[str, int]
    logs: Path
    broker: TcpProxy
    traces: TraceReceiver
    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    @property
    def gateway(self) -> str:
        return f"{self.url('gateway')}/api"

    async def start(self, service: str) -> None:
        """Start one app and wait until it answers /ready."""
        with (self.logs / f"{service}.log").open("ab") as log:
            self.processes[service] = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                service,
                "serve",
                *(["--migrate"] if service in WITH_DATABASE else []),
                env=self.env,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        await self.wait_ready(service)

    async def wait_ready(self, service: str, within: float = 60.0) -> None:
        async with httpx.AsyncClient(timeout=2) as client:
            for _ in range(int(within / 0.1)):
                if self.processes[service].returncode is not None:
                    raise RuntimeError(f"{service} exited: see {self.logs / (service + '.log')}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url(service)}/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{service} not ready within {within} s")

    async def kill(self, service: str) -> None:
        """SIGKILL one app (only a process this fixture started)."""
        process = self.processes.pop(service)
        process.send_signal(signal.SIGKILL)
        await process.wait()

    async def stop_all(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
        self.processes.clear()


def _environment(
    *,
    databases: dict[str, str],
    ports: dict[str, int],
    exchange: str,
    prefix: str,
    broker_url: str,
    traces_url: str,
    logs: Path,
) -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(tuple(f"{s.upper()}_" for s in SERVICES))
    }
    env.update(
        {
            "RABBITMQ_URL": broker_url,
            "EVENTS_EXCHANGE": exchange,
            "INTERNAL_TOKEN_SECRET": secrets.token_hex(32),
            "AUTH_DEV_SIGNING_KEY_FILE": str(logs / "auth-signing-key.pem"),
            "USER_QUEUE_PREFIX": f"{prefix}.user",
            "COMMENT_QUEUE_PREFIX": f"{prefix}.comment",
            # Many users register and log in from 127.0.0.1 in one run; the login limit stays as shipped.
            "GATEWAY_RATE_LIMIT_REGISTER": "10000/minute",
            "GATEWAY_RATE_LIMIT_COMMENT_ANONYMOUS": "10000/minute",
            "GATEWAY_RATE_LIMIT_COMMENT": "10000/minute",
            "OTEL_EXPORTER_OTLP_ENDPOINT": traces_url,
            "OTEL_BSP_SCHEDULE_DELAY": "200",  # ms; spans reach `stack.traces` soon after they end
            "PYTHONUNBUFFERED": "1",  # log lines (uvicorn's access lines go to stdout) reach the log files at once
        }
    )
    for service in SERVICES:
        env[f"{service.upper()}_SERVICE_URL"] = f"http://127.0.0.1:{ports[service]}"
        env[f"{service.upper()}_PORT"] = str(ports[service])
        env[f"{service.upper()}_HOST"] = "127.0.0.1"
        env[f"{service.upper()}_EVENTS_RETRY_DELAY_SECONDS"] = "0.5"
        env[f"{service.upper()}_HTTP_BREAKER_RESET_TIMEOUT_SECONDS"] = "2"
    for service, url in databases.items():
        env[f"{service.upper()}_DATABASE_URL"] = url
    return env


@pytest.fixture(scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    logs = tmp_path_factory.mktemp("stack")
    exchange, prefix = unique_name("e2e.events"), unique_name("e2e")
    broker = TcpProxy(target_url=CommSettings().rabbitmq_url)
    await broker.open()
    async with contextlib.AsyncExitStack() as resources:
        databases = {s: await resources.enter_async_context(temporary_database(f"e2e_{s}")) for s in WITH_DATABASE}
        ports = {service: free_port() for service in SERVICES}
        traces = TraceReceiver()
        traces_url = await resources.enter_async_context(serve(traces.app))  # stops after the apps flushed theirs
        env = _environment(
            databases=databases,
            ports=ports,
            exchange=exchange,
            prefix=prefix,
            broker_url=broker.url,
            traces_url=traces_url,
            logs=logs,
        )
        stack = Stack(env=env, ports=ports, logs=logs, broker=broker, traces=traces)
        try:
            await asyncio.gather(*(stack.start(service) for service in SERVICES))
            yield stack
        finally:
            await stack.stop_all()
            await broker.close()
            queues = [
                f"{prefix}.{service}.{concern}" for service, concerns in WITH_QUEUES.items() for concern in concerns
            ]
            await delete_topology(url=CommSettings().rabbitmq_url, exchange=exchange, queues=queues)


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the public API, as a RealWorld front end calls it."""
    async with httpx.AsyncClient(base_url=stack.gateway, timeout=15) as client:
        yield client
