"""LOG_FORMAT=json: one JSON object per line, with the service, level, logger and the record's trace."""

import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from comm.logs import log_config
from comm.settings import CommSettings
from comm.telemetry import install_log_trace_ids


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """dictConfig replaces the root logger's handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def test_json_lines_carry_the_service_and_the_trace(restored_logging: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "json")
    settings = CommSettings(service_name="logs-test")
    assert settings.log_format == "json"
    config = log_config(service=settings.service_name, level="debug", log_format=settings.log_format)
    logging.config.dictConfig(config)
    install_log_trace_ids()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.getLogger().handlers[0].formatter)
    log = logging.getLogger("comm.logs-test")
    log.addHandler(handler)
    try:
        with TracerProvider().get_tracer("test").start_as_current_span("request") as span:
            log.debug("handled %s", "it", extra={"post_id": "p1"})
    finally:
        log.removeHandler(handler)
    line = json.loads(out.getvalue())
    context = span.get_span_context()
    assert line["message"] == "handled it"
    assert line["level"] == "DEBUG"
    assert line["logger"] == "comm.logs-test"
    assert line["service"] == "logs-test"
    assert line["trace_id"] == f"{context.trace_id:032x}"
    assert line["span_id"] == f"{context.span_id:016x}"
    assert line["post_id"] == "p1"
    assert line["timestamp"].endswith("+00:00")


def test_text_is_the_default_and_uvicorn_lines_follow_the_format() -> None:
    assert CommSettings().log_format == "text"
    config = log_config(service="s", level="info", log_format="json")
    assert {name: f["()"].__name__ for name, f in config["formatters"].items()} == {
        "app": "json_formatter",
        "default": "json_formatter",
        "access": "json_formatter",
    }
