"""Test support for event flows against the real broker: outages without touching it, inspection, cleanup.

Tests give every run its own exchange (`CommSettings(events_exchange=unique_name(...))`) and queues named after
it, and `delete_topology` removes them afterwards, so suites share the one RabbitMQ safely.
"""

import asyncio
import contextlib
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from pamqp import body as pamqp_body
from pamqp import commands, frame, header
from pamqp.base import Frame
from yarl import URL

from comm.events.broker import Topology
from comm.events.models import Event, encode_event

FrameT = TypeVar("FrameT", bound=Frame)


class TcpProxy:
    """A TCP forwarder to a real server that a test can cut and restore (a broker outage, the broker untouched), or
    hang and resume (a broker that stops answering without closing anything, as a frozen process does)."""

    def __init__(self, *, target_url: str) -> None:
        self._target = URL(target_url)
        self.port = 0  # chosen on the first open, kept across reopenings
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    def hang(self) -> None:
        """Stop forwarding in both directions; connections stay open and new ones are accepted, then left waiting."""
        self._flowing.clear()

    def resume(self) -> None:
        """Forward again what waited, and what comes."""
        self._flowing.set()

    @property
    def url(self) -> str:
        """The target URL, through the proxy."""
        return str(self._target.with_host("127.0.0.1").with_port(self.port))

    async def open(self) -> None:
        """Accept and forward connections (again)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and cut every forwarded connection, as a dead broker would."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in tuple(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._flowing.wait()
        try:
            upstream_reader, upstream_writer = await self.connect_upstream()
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, upstream_writer}
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer), return_exceptions=True
        )
        self._writers -= {writer, upstream_writer}

    async def connect_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The connection a new client's is forwarded to; subclasses choose among several targets."""
        return await asyncio.open_connection(self._target.host, self._target.port)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self._flowing.wait()
                if not (data := await reader.read(65536)):
                    return
                await self._flowing.wait()  # what was read as the proxy hung is held until it resumes
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()


async def wait_until(
    predicate: Callable[[], Awaitable[object] | object], *, within: float = 10.0, interval: float = 0.02
) -> None:
    """Poll `predicate` until it returns something truthy; AssertionError after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if await result if inspect.isawaitable(result) else result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(interval)


async def take_messages(*, url: str, queue: str) -> list[AbstractIncomingMessage]:
    """Remove and return every message now in `queue` (parking and unroutable queues in assertions)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        amqp_queue = await channel.get_queue(queue, ensure=True)
        messages = []
        while (message := await amqp_queue.get(no_ack=True, fail=False)) is not None:
            messages.append(message)
        return messages
    finally:
        await connection.close()


async def publish_event(
    exchange: aio_pika.abc.AbstractExchange, event: Event, *, app_id: str, message_id: uuid.UUID | None = None
) -> uuid.UUID:
    """Publish `event` with the properties a service's outbox relay sets (as `app_id`); returns its message id."""
    message_id = message_id or uuid.uuid4()
    message = aio_pika.Message(
        body=encode_event(event),
        message_id=str(message_id),
        type=event.routing_key,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        app_id=app_id,
    )
    await exchange.publish(message, routing_key=event.routing_key, mandatory=True)
    return message_id


async def publish_without_message_id(*, url: str, exchange: str, routing_key: str, body: bytes) -> None:
    """Publish as a producer built from the seed does: no message_id (aiormq would always add one)."""
    target = URL(url)
    reader, writer = await asyncio.open_connection(target.host, target.port or 5672)
    try:
        writer.write(frame.marshal(header.ProtocolHeader(), 0))
        await _expect(reader, commands.Connection.Start)
        response = f"\0{target.user or 'guest'}\0{target.password or 'guest'}"
        writer.write(frame.marshal(commands.Connection.StartOk(response=response), 0))
        tune = await _expect(reader, commands.Connection.Tune)
        writer.write(frame.marshal(commands.Connection.TuneOk(tune.channel_max, tune.frame_max, 0), 0))
        writer.write(frame.marshal(commands.Connection.Open(virtual_host=target.path[1:] or "/"), 0))
        await _expect(reader, commands.Connection.OpenOk)
        writer.write(frame.marshal(commands.Channel.Open(), 1))
        await _expect(reader, commands.Channel.OpenOk)
        properties = commands.Basic.Properties(content_type="application/json", delivery_mode=2)
        writer.write(frame.marshal(commands.Basic.Publish(exchange=exchange, routing_key=routing_key), 1))
        writer.write(frame.marshal(header.ContentHeader(0, len(body), properties), 1))
        writer.write(frame.marshal(pamqp_body.ContentBody(body), 1))
        # The broker handles a connection's frames in order: once Close-Ok is back, the publish was routed.
        writer.write(frame.marshal(commands.Connection.Close(200, "bye", 0, 0), 0))
        await _expect(reader, commands.Connection.CloseOk)
    finally:
        writer.close()


async def _expect(reader: asyncio.StreamReader, kind: type[FrameT]) -> FrameT:
    """Read frames until one of `kind` arrives."""
    while True:
        start = await reader.readexactly(7)  # type, channel, payload size
        rest = await reader.readexactly(int.from_bytes(start[3:7], "big") + 1)
        _, _, value = frame.unmarshal(start + rest)
        if isinstance(value, kind):
            return value


async def delete_topology(*, url: str, exchange: str, queues: Iterable[str] = ()) -> None:
    """Delete what `Broker` and `Consumer` declared for `exchange` and the consumers' `queues`."""
    topology = Topology(exchange=exchange)
    queue_names = [name for queue in queues for name in (queue, topology.retry_queue(queue), topology.dlq(queue))]
    connection = await aio_pika.connect(url)
    try:
        for name in [*queue_names, topology.unroutable]:
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                channel = await connection.channel()
                await channel.queue_delete(name)
                await channel.close()
        for name in (topology.exchange, topology.unroutable, topology.retry, topology.requeue):
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                channel = await connection.channel()
                await channel.exchange_delete(name)
                await channel.close()
    finally:
        await connection.close()
