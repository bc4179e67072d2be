"""Event metrics (docs/architecture.md §5) on the default Prometheus registry, exposed by every `/metrics`."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PUBLISHED = Counter(
    "events_published_total",
    "Events the outbox relay published and the broker confirmed.",
    ["service", "routing_key"],
)
EVENTS_CONSUMED = Counter(
    "events_consumed_total",
    "Deliveries a consumer settled, by outcome: ok, duplicate, retried, parked.",
    ["service", "queue", "routing_key", "outcome"],
)
EVENT_HANDLER_DURATION = Histogram(
    "event_handler_duration_seconds",
    "Time from delivery to settlement, handler transaction included.",
    ["service", "queue", "routing_key"],
)
OUTBOX_BACKLOG = Gauge("outbox_backlog", "Outbox rows not yet confirmed by the broker.", ["service"])
OUTBOX_OLDEST_PENDING_AGE = Gauge(
    "outbox_oldest_pending_age_seconds",
    "Age of the oldest outbox row not yet confirmed by the broker (0 when none).",
    ["service"],
)
WORKER_DEATHS = Counter(
    "worker_deaths_total",
    "Deaths of a supervised relay or consumer loop, each followed by a restart (comm.events.supervision).",
    ["service", "worker"],
)
EVENTS_UNROUTABLE = Gauge(
    "events_unroutable_messages",
    "Messages in the events exchange's unroutable queue, as a relay last saw it (bounded: the oldest dropped).",
    ["service"],
)
