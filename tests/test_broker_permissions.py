"""The broker users of infra/rabbitmq/definitions.json, enforced by this machine's real RabbitMQ.

The users, permissions and topic permissions of the definitions (the k8s overlay's are the same: tests/test_k8s.py)
are loaded with `rabbitmqctl` into a vhost of this run's own, under user names of this run's own
(`<run>-<service>`), and removed afterwards. Each service then does what its code does on the broker, through
comm's own calls: the relay's exchanges, every consumer queue with its retry and dead-letter queues, a publish of
each event the service's code produces, a retry and a parking. And what it must not do is refused by the broker:
another service's routing key on `blog.events`, another service's queue, a binding to events it does not consume
(`user.created` carries the user's email).
"""

import json
import re
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused

from auth.settings import AuthSettings
from blog.consumers import build_consumers as blog_consumers
from blog.settings import BlogSettings
from comm.events.broker import Broker, connect, declare_consumer_queue
from comm.events.consumer import Consumer
from comm.events.models import EVENT_TYPES
from comm.settings import CommSettings
from comment.consumers import authors as comment_authors
from comment.consumers import post_cleanup
from comment.settings import CommentSettings
from user.consumers import build_consumers as user_consumers
from user.settings import UserSettings

ROOT = Path(__file__).resolve().parents[1]
DEFINITIONS = json.loads((ROOT / "infra" / "rabbitmq" / "definitions.json").read_text())
SETTINGS: dict[str, type[CommSettings]] = {
    "auth": AuthSettings,
    "blog": BlogSettings,
    "user": UserSettings,
    "comment": CommentSettings,
}


def published_by(service: str) -> set[str]:
    """The routing keys of the events whose model the service's code builds (`PostDeleted(`, ...)."""
    code = "\n".join(path.read_text() for path in (ROOT / "services" / service / "src").rglob("*.py"))
    return {model.routing_key for model in EVENT_TYPES if re.search(rf"\b{model.__name__}\(", code)}


def consumers(settings: CommSettings) -> list[Consumer]:
    """The service's consumers as it builds them (not started): their queues and routing keys."""
    if isinstance(settings, BlogSettings):
        return blog_consumers(settings, None)  # type: ignore[arg-type]
    if isinstance(settings, UserSettings):
        return user_consumers(settings, None)  # type: ignore[arg-type]
    if isinstance(settings, CommentSettings):
        return [post_cleanup(settings, None), comment_authors(settings, None)]  # type: ignore[arg-type]
    return []


def consumed_by(service: str) -> set[str]:
    settings = SETTINGS[service]()
    return {key for consumer in consumers(settings) for key in consumer.routing_keys}


@pytest.mark.parametrize("service", list(SETTINGS))
def test_topic_permissions_are_exactly_what_the_code_publishes_and_consumes(service: str) -> None:
    """On `blog.events`: `write` admits the routing keys the service's code produces and no other event's,
    `read` (checked when a queue is bound) the ones its consumers bind and no other."""
    (topic,) = [p for p in DEFINITIONS["topic_permissions"] if p["user"] == service]
    assert topic["exchange"] == "blog.events"
    every = {model.routing_key for model in EVENT_TYPES}
    assert {key for key in every if re.search(topic["write"], key)} == published_by(service)
    assert {key for key in every if re.search(topic["read"], key)} == consumed_by(service)


def rabbitmqctl(*arguments: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *arguments], check=True, capture_output=True, text=True)


@dataclass(frozen=True)
class Vhost:
    """This run's vhost with the definitions' users in it, each under `<prefix>-<name>`."""

    name: str
    prefix: str
    passwords: dict[str, str]

    def settings(self, service: str) -> CommSettings:
        url = f"amqp://{self.prefix}-{service}:{self.passwords[service]}@127.0.0.1:5672/{self.name}"
        return SETTINGS[service](rabbitmq_url=url)


@pytest.fixture(scope="module")
def vhost() -> Iterator[Vhost]:
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not on this machine")
    run = f"lp-{secrets.token_hex(4)}"
    services = {user["name"] for user in DEFINITIONS["users"] if not user["tags"]}
    # Hex: a urlsafe password may start with '-', which rabbitmqctl takes for an option (exit 64, one run in 64).
    passwords = {service: secrets.token_hex(16) for service in services}
    created: list[str] = []
    rabbitmqctl("add_vhost", run)
    try:
        for service, password in passwords.items():
            rabbitmqctl("add_user", f"{run}-{service}", password)
            created.append(f"{run}-{service}")
        for permission in DEFINITIONS["permissions"]:
            if permission["user"] in services:
                rabbitmqctl(
                    "set_permissions",
                    *("-p", run, f"{run}-{permission['user']}"),
                    *(permission[kind] for kind in ("configure", "write", "read")),
                )
        for topic in DEFINITIONS["topic_permissions"]:
            rabbitmqctl(
                "set_topic_permissions",
                *("-p", run, f"{run}-{topic['user']}", topic["exchange"], topic["write"], topic["read"]),
            )
        yield Vhost(name=run, prefix=run, passwords=passwords)
    finally:
        for user in created:
            rabbitmqctl("delete_user", user)
        rabbitmqctl("delete_vhost", run)


@pytest.fixture
async def broker(vhost: Vhost, request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    """A broker connection as the relay opens it, for the service the test is parametrized with."""
    connected = await connect(settings=vhost.settings(request.param), role="test")
    try:
        yield connected
    finally:
        await connected.close()


async def publish(broker: Broker, exchange: str, routing_key: str) -> None:
    """One confirmed publish on a channel of its own (a refusal closes the channel)."""
    channel = await broker.connection.channel()
    try:
        target = channel.default_exchange if exchange == "" else await channel.get_exchange(exchange, ensure=False)
        await target.publish(aio_pika.Message(b"{}"), routing_key=routing_key)
    finally:
        if not channel.is_closed:
            await channel.close()


@pytest.mark.parametrize("broker", list(SETTINGS), indirect=True)
async def test_each_service_does_on_the_broker_what_its_code_does(broker: Broker, vhost: Vhost) -> None:
    """Its relay's exchanges (connect), its consumer queues as the consumers declare them, its own events on
    `blog.events`, a retry through X.retry and a parking in Q.dlq through the default exchange."""
    service = str(broker.connection.url.user).removeprefix(f"{vhost.prefix}-")
    settings = vhost.settings(service)
    for routing_key in sorted(published_by(service)):
        await publish(broker, broker.topology.exchange, routing_key)
    for consumer in consumers(settings):
        channel = await broker.connection.channel()
        await declare_consumer_queue(
            broker, channel, queue=consumer.queue, routing_keys=consumer.routing_keys, settings=settings
        )
        await channel.close()
        await publish(broker, broker.topology.retry, consumer.queue)
        await publish(broker, "", broker.topology.dlq(consumer.queue))
    assert published_by(service) or consumers(settings), service


@pytest.mark.parametrize(
    ("broker", "routing_key"),
    [("comment", "post.deleted"), ("auth", "post.deleted"), ("user", "user.created"), ("blog", "comment.deleted")],
    indirect=["broker"],
)
async def test_the_broker_refuses_another_services_routing_key(broker: Broker, routing_key: str) -> None:
    """E.g. comment's user publishing `post.deleted`, which would wipe a post's comments: the channel is closed."""
    with pytest.raises(ChannelAccessRefused, match=re.escape(routing_key)):
        await publish(broker, broker.topology.exchange, routing_key)


@pytest.mark.parametrize("broker", ["blog"], indirect=True)
async def test_blog_may_publish_post_deleted(broker: Broker) -> None:
    await publish(broker, broker.topology.exchange, "post.deleted")


@pytest.mark.parametrize(
    ("broker", "queue"),
    [("user", "comment.post-cleanup"), ("comment", "user.comment-counts"), ("blog", "blog.events.parked")],
    indirect=["broker"],
)
async def test_a_service_may_not_declare_another_services_queue(broker: Broker, queue: str) -> None:
    channel = await broker.connection.channel()
    with pytest.raises(ChannelAccessRefused, match=re.escape(queue)):
        await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})


@pytest.mark.parametrize(
    ("broker", "routing_key"), [("comment", "user.created"), ("blog", "comment.created")], indirect=["broker"]
)
async def test_a_service_may_not_bind_its_queue_to_events_it_does_not_consume(broker: Broker, routing_key: str) -> None:
    """Its own queue, but another service's events: refused when it binds (topic permissions' `read`)."""
    service = str(broker.connection.url.user).rsplit("-", 1)[-1]
    channel = await broker.connection.channel()
    queue = await channel.declare_queue(f"{service}.eavesdrop", durable=True, arguments={"x-queue-type": "quorum"})
    with pytest.raises(ChannelAccessRefused, match=re.escape(routing_key)):
        await queue.bind(broker.topology.exchange, routing_key)
