"""Prometheus metrics shared by every process.

With several workers, ``market serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
directory before any worker starts, and ``/metrics`` aggregates every process's files.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

HTTP_REQUESTS = Counter("market_http_requests_total", "HTTP requests handled", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "market_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
LOGIN_FAILURES = Counter("market_login_failures_total", "Failed sign-in attempts")
LOGIN_THROTTLED = Counter("market_login_throttled_total", "Sign-in attempts refused by the throttle")
WS_CONNECTIONS = Gauge("market_ws_connections", "Open websocket connections", multiprocess_mode="livesum")


def render() -> tuple[bytes, str]:
    """The exposition text, aggregated over all worker processes when running multi-process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


WS_DROPPED = Counter("market_ws_dropped_total", "Watchers dropped because their queue was full")
NOTIFY_LAG = Histogram(
    "market_notify_lag_seconds",
    "Time from a NOTIFY arriving to its events being queued for watchers",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
BIDS = Counter("market_bids_total", "Bids by outcome", ["outcome", "code"])
BID_LATENCY = Histogram(
    "market_bid_seconds",
    "Bid transaction latency (receipt to commit)",
    ["channel"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
CLOSER_LAG = Histogram(
    "market_closer_lag_seconds",
    "Time from an auction's end to its close",
    buckets=(0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30),
)
AUCTIONS_CLOSED = Counter("market_auctions_closed_total", "Auctions closed by outcome", ["outcome"])

# Operator console (issue 6).
BROADCAST_LAG = Histogram(
    "market_broadcast_lag_seconds",
    "Time from a NOTIFY arriving to the frame it caused being written to a websocket",
    ["channel"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
MONITOR_SNAPSHOT = Histogram(
    "market_monitor_snapshot_seconds",
    "Time to compute one operator monitor snapshot",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
SETTLEMENTS = Counter("market_settlements_total", "Settlement events applied to a lot, by type", ["type"])
LEDGER_PROBLEMS = Gauge(
    "market_ledger_problems",
    "Ledger invariant problems found by the last periodic reconcile",
    multiprocess_mode="livemax",
)
BID_CANCELLATIONS = Counter(
    "market_bid_cancellations_total", "Bid cancellations requested and decided", ["step"]
)
