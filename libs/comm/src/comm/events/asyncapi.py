"""The AsyncAPI 3 document of the events, generated from the registry (`EVENT_TYPES`): `make asyncapi`.

One channel per routing key on the topic exchange, one message per event with its payload schema (the externally
tagged body of comm.events.models, from the pydantic models) and the AMQP properties every message carries. Who
publishes and who consumes what is the platform's business, not the library's: docs/events.md has that table.

    python -m comm.events.asyncapi > docs/asyncapi.yaml
"""

import sys
from importlib.metadata import version
from typing import Any

from pydantic.json_schema import models_json_schema

from comm.events.models import EVENT_TYPES, Event
from comm.settings import CommSettings

SCHEMAS = "#/components/schemas/{model}"
_AMQP = {"bindingVersion": "0.3.0"}


def document(exchange: str | None = None) -> dict[str, Any]:
    """The document as a plain dict, for the exchange the services use by default."""
    exchange = exchange or CommSettings.model_fields["events_exchange"].get_default()
    _, definitions = models_json_schema([(model, "serialization") for model in EVENT_TYPES], ref_template=SCHEMAS)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Blog platform events",
            "version": version("comm"),
            "description": (
                f"Events on the `{exchange}` topic exchange, written through each producer's transactional outbox "
                "and consumed from durable quorum queues (docs/events.md). The body is externally tagged JSON; the "
                "event id is the AMQP message_id. Generated from comm.events.models by `make asyncapi`."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {"host": "localhost:5672", "protocol": "amqp", "protocolVersion": "0.9.1"},
        },
        "channels": {model.__name__: _channel(model, exchange) for model in EVENT_TYPES},
        "operations": {
            f"send{model.__name__}": {
                "action": "send",
                "channel": {"$ref": f"#/channels/{model.__name__}"},
                "messages": [{"$ref": f"#/channels/{model.__name__}/messages/{model.__name__}"}],
            }
            for model in EVENT_TYPES
        },
        "components": {
            "messages": {model.__name__: _message(model) for model in EVENT_TYPES},
            "schemas": definitions["$defs"],
        },
    }


def _channel(model: type[Event], exchange: str) -> dict[str, Any]:
    return {
        "address": model.routing_key,
        "messages": {model.__name__: {"$ref": f"#/components/messages/{model.__name__}"}},
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": {"name": exchange, "type": "topic", "durable": True, "autoDelete": False, "vhost": "/"},
                **_AMQP,
            }
        },
    }


def _message(model: type[Event]) -> dict[str, Any]:
    name = model.__name__
    return {
        "name": name,
        "title": model.routing_key,
        "summary": (model.__doc__ or "").strip().splitlines()[0],
        "contentType": "application/json",
        "correlationId": {"description": "The event id", "location": "$message.header#/message_id"},
        "headers": {
            "type": "object",
            "description": "AMQP headers: the W3C trace context of the request that caused the event",
            "properties": {"traceparent": {"type": "string"}, "tracestate": {"type": "string"}},
        },
        "payload": {
            "type": "object",
            "description": f'Externally tagged: `{{"{name}": {{...}}}}`',
            "properties": {name: {"$ref": SCHEMAS.format(model=name)}},
            "required": [name],
            "additionalProperties": False,
        },
        "bindings": {"amqp": {"contentEncoding": "utf-8", "messageType": model.routing_key, **_AMQP}},
    }


def main() -> None:
    import yaml  # type: ignore[import-untyped]  # a development tool's dependency, not the library's

    yaml.safe_dump(document(), sys.stdout, sort_keys=False, allow_unicode=True, width=120)


if __name__ == "__main__":
    main()
