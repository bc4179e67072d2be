"""Log lines for every app: text or JSON lines (`LOG_FORMAT`), each with the current trace and span ids.

`python -m <service>` configures the root logger and uvicorn's loggers with `log_config` (comm.cli). Text is for a
terminal (`make run`); JSON (python-json-logger) is for a log collector (compose, Kubernetes): one object per line
with `timestamp` (UTC), `level`, `logger`, `message`, `service`, `trace_id`, `span_id` (the ids come from
comm.telemetry's record factory) and whatever `extra` a call adds. uvicorn's access lines are its own records, so
they come out in the same shape, the request line as their `message`.
"""

import copy
from typing import Any, Literal

import uvicorn.config
from pythonjsonlogger.json import JsonFormatter

from comm.telemetry import LOG_FORMAT

LogFormat = Literal["text", "json"]
_JSON_FIELDS = "{levelname}{name}{message}{trace_id}{span_id}"
_RENAMED = {"levelname": "level", "name": "logger"}
_NOT_EXTRA = ("color_message",)  # uvicorn's copy of a message with terminal colours


def json_formatter(service: str) -> JsonFormatter:
    """The JSON lines formatter, every line naming `service`."""
    return JsonFormatter(
        _JSON_FIELDS,
        style="{",
        rename_fields=_RENAMED,
        static_fields={"service": service},
        timestamp=True,
        reserved_attrs=[*JsonFormatter().reserved_attrs, *_NOT_EXTRA],
    )


def log_config(*, service: str, level: str, log_format: LogFormat) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the root logger and uvicorn's, in `log_format` (uvicorn sets its levels)."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    if log_format == "json":
        json = {"()": json_formatter, "service": service}
        config["formatters"] = {name: copy.copy(json) for name in ("app", "default", "access")}
    else:
        config["formatters"]["app"] = {"format": LOG_FORMAT}
        config["formatters"]["access"]["fmt"] += " trace_id=%(trace_id)s span_id=%(span_id)s"
    config["handlers"]["app"] = {"formatter": "app", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    config["root"] = {"handlers": ["app"], "level": level.upper()}
    return config
