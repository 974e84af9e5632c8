"""Prometheus metrics of a worker process, served on SEARCHHUB_WORKER_METRICS_PORT."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

JOBS = Counter("searchhub_jobs_total", "Index job attempts by outcome.", ["outcome"])
JOB_DURATION = Histogram(
    "searchhub_job_duration_seconds",
    "Duration of an attempt, claim to final write.",
    ["outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
QUEUE_DEPTH = Gauge("searchhub_queue_depth", "Jobs waiting in the arq queue (due or deferred).")
