"""One client request is one trace (docs/architecture.md §5), from the gateway to the last consumer, as exported.

The client sends a W3C `traceparent`; every app exports its spans over OTLP/HTTP to the test's receiver
(`stack.traces`). The trace must hold the client's trace id throughout, hang from the client's span, and reach
through HTTP calls and the outbox relay and broker to the consumer in another service.
"""

import contextlib
import secrets
import uuid
from collections.abc import Iterable

import httpx
from opentelemetry.trace import SpanKind
from tests.conftest import SERVICES, ExportedSpan, Stack
from tests.test_flows import new_article, signup

from comm.events.testing import wait_until

SERVER, CLIENT, PRODUCER, CONSUMER = SpanKind.SERVER, SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER


def traceparent() -> tuple[str, str, dict[str, str]]:
    """A new trace id, the client's span id, and the header that carries them."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, {"traceparent": f"00-{trace_id}-{span_id}-01"}


def is_closed(spans: list[ExportedSpan], *, client_span: str) -> bool:
    """Every span's parent is the client's span or a span of the trace (no parent missing from the export)."""
    known = {span.span_id for span in spans} | {client_span}
    return all(span.parent_span_id in known for span in spans)


async def collect(
    stack: Stack, trace_id: str, *, client_span: str, expected: Iterable[tuple[str, SpanKind, str]]
) -> list[ExportedSpan]:
    """The trace's spans once each expected (service, kind, name) is in and no parent is missing; bounded wait."""
    wanted = set(expected)

    def complete() -> bool:
        spans = stack.traces.spans_of(trace_id)
        return wanted <= {(s.service, s.kind, s.name) for s in spans} and is_closed(spans, client_span=client_span)

    with contextlib.suppress(AssertionError):  # the assertions below say what is missing
        await wait_until(complete, within=20)
    spans = stack.traces.spans_of(trace_id)
    seen = {(s.service, s.kind, s.name) for s in spans}
    assert wanted <= seen, f"missing {wanted - seen}; exported: {sorted(seen, key=str)}"
    return spans


def ancestry(span: ExportedSpan, spans: list[ExportedSpan]) -> list[tuple[str, SpanKind]]:
    """(service, kind) of the span and each of its ancestors within the trace, the span first."""
    by_id = {s.span_id: s for s in spans}
    chain: list[ExportedSpan] = [span]
    while chain[-1].parent_span_id in by_id:
        chain.append(by_id[chain[-1].parent_span_id])
    return [(s.service, s.kind) for s in chain]


def assert_one_tree(spans: list[ExportedSpan], *, client_span: str) -> ExportedSpan:
    """The spans form one tree under the gateway's server span, itself the child of the client's span; its root."""
    by_id = {s.span_id: s for s in spans}
    roots = [s for s in spans if s.parent_span_id not in by_id]
    assert [(r.service, r.kind, r.parent_span_id) for r in roots] == [("gateway", SERVER, client_span)], roots
    assert len(by_id) == len(spans), "a span id exported twice"
    return roots[0]


def services_logging(stack: Stack, trace_id: str) -> set[str]:
    """The apps whose log has a line of the trace."""
    return {s for s in SERVICES if f"trace_id={trace_id}" in (stack.logs / f"{s}.log").read_text(errors="replace")}


async def test_a_comment_is_one_trace_from_the_gateway_to_the_comment_count_consumer(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    author = await signup(api)
    slug = (await new_article(api, author))["slug"]
    reader = await signup(api, "reader")  # its token is new to the gateway: validated by auth in the traced request
    trace_id, client_span, header = traceparent()

    response = await api.post(
        f"/articles/{slug}/comments", json={"comment": {"body": "traced"}}, headers={**reader["auth"], **header}
    )
    assert response.status_code == 200, response.text

    counts_queue = f"{stack.env['USER_QUEUE_PREFIX']}.comment-counts"
    blog_authors, comment_authors = (f"{stack.env[f'{s}_QUEUE_PREFIX']}.authors" for s in ("BLOG", "COMMENT"))
    spans = await collect(
        stack,
        trace_id,
        client_span=client_span,
        expected=[
            ("gateway", SERVER, "POST /api/articles/{slug}/comments"),
            ("auth", SERVER, "POST /auth/validate"),
            ("blog", SERVER, "GET /posts/by-slug/{slug}"),
            ("comment", SERVER, "POST /posts/{post_id}/comments"),
            ("blog", SERVER, "GET /posts/{post_id}"),  # the comment service checks the post
            ("user", SERVER, "GET /profiles/{user_id}"),
            ("comment", PRODUCER, "publish comment.created"),
            ("user", CONSUMER, f"process {counts_queue}"),
            # The author's comment count changed: their profile goes out to blog's and comment's copies.
            ("user", PRODUCER, "publish profile.updated"),
            ("blog", CONSUMER, f"process {blog_authors}"),
            ("comment", CONSUMER, f"process {comment_authors}"),
        ],
    )
    assert {s.trace_id for s in spans} == {trace_id}
    assert {s.service for s in spans} == {"gateway", "auth", "blog", "comment", "user"}
    root = assert_one_tree(spans, client_span=client_span)
    assert root.name == "POST /api/articles/{slug}/comments"

    # Each service's server span is the child of its caller's client span.
    by_id = {s.span_id: s for s in spans}
    for server in (s for s in spans if s.kind is SERVER and s is not root):
        caller = by_id[server.parent_span_id]
        assert (caller.kind, caller.name) == (CLIENT, server.name), (server, caller)
        assert caller.service != server.service
    assert {s.service for s in spans if s.kind is CLIENT} == {"gateway", "comment"}

    consumer = next(s for s in spans if s.kind is CONSUMER and s.service == "user")
    assert ancestry(consumer, spans) == [
        ("user", CONSUMER),
        ("comment", PRODUCER),  # the comment service's relay, under the request that wrote the outbox row
        ("comment", SERVER),
        ("gateway", CLIENT),
        ("gateway", SERVER),
    ]
    copy = next(s for s in spans if s.kind is CONSUMER and s.service == "blog")
    assert ancestry(copy, spans)[:3] == [("blog", CONSUMER), ("user", PRODUCER), ("user", CONSUMER)]

    # Each app's access line (on for every app in the test stack) for its part of the request shows the trace.
    with contextlib.suppress(AssertionError):
        await wait_until(lambda: services_logging(stack, trace_id) == set(SERVICES), within=5)
    assert services_logging(stack, trace_id) == set(SERVICES)


async def test_registration_is_one_trace_from_the_gateway_to_the_profile_sync_consumer(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    name = f"traced{uuid.uuid4().hex[:10]}"
    trace_id, client_span, header = traceparent()

    response = await api.post(
        "/users",
        json={"user": {"username": name, "email": f"{name}@mail.com", "password": "password"}},
        headers=header,
    )
    assert response.status_code == 201, response.text

    sync_queue = f"{stack.env['USER_QUEUE_PREFIX']}.profile-sync"
    blog_authors, comment_authors = (f"{stack.env[f'{s}_QUEUE_PREFIX']}.authors" for s in ("BLOG", "COMMENT"))
    spans = await collect(
        stack,
        trace_id,
        client_span=client_span,
        expected=[
            ("gateway", SERVER, "POST /api/users"),
            ("auth", SERVER, "POST /auth/register"),
            ("user", SERVER, "PUT /profiles/{user_id}"),  # the gateway creates the profile at once
            ("auth", PRODUCER, "publish user.created"),
            ("user", CONSUMER, f"process {sync_queue}"),  # and the event is consumed all the same
            ("user", PRODUCER, "publish profile.updated"),  # the new profile, to blog's and comment's copies
            ("blog", CONSUMER, f"process {blog_authors}"),
            ("comment", CONSUMER, f"process {comment_authors}"),
        ],
    )
    assert {s.trace_id for s in spans} == {trace_id}
    assert {s.service for s in spans} == {"gateway", "auth", "user", "blog", "comment"}
    assert_one_tree(spans, client_span=client_span)
    consumer = next(s for s in spans if s.kind is CONSUMER and s.service == "user")
    assert ancestry(consumer, spans) == [
        ("user", CONSUMER),
        ("auth", PRODUCER),
        ("auth", SERVER),
        ("gateway", CLIENT),
        ("gateway", SERVER),
    ]


async def test_independent_downstream_calls_run_concurrently(stack: Stack, api: httpx.AsyncClient) -> None:
    """Creating an article: the post (blog) and its author's profile (user) do not wait for each other."""
    author = await signup(api)
    trace_id, client_span, header = traceparent()
    body = {"article": {"title": "Concurrent", "description": "d", "body": "b"}}
    response = await api.post("/articles", json=body, headers={**author["auth"], **header})
    assert response.status_code == 201, response.text

    spans = await collect(
        stack,
        trace_id,
        client_span=client_span,
        expected=[("gateway", CLIENT, "POST /posts"), ("gateway", CLIENT, "GET /profiles/{user_id}")],
    )
    post = next(s for s in spans if (s.service, s.kind, s.name) == ("gateway", CLIENT, "POST /posts"))
    profile = next(s for s in spans if (s.service, s.kind, s.name) == ("gateway", CLIENT, "GET /profiles/{user_id}"))
    # They overlap: each started before the other ended.
    assert post.start_ns < profile.end_ns
    assert profile.start_ns < post.end_ns
