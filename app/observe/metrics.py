"""The replica's Prometheus metrics (prometheus-client), in a registry of its own.

Counters and histograms are fed by the runner and the service as things happen; the
gauges are read fresh at each scrape (`app.observe.scrape`). Labels are algorithm names,
statuses, causes and route templates: never a task id, so the series stay few.
"""

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from app.domain.models import StoredTask, TaskStatus, utcnow
from app.observe.lag_history import LagHistory

# Seconds from a few milliseconds (a free slot) to an hour (a long backlog).
WAIT_BUCKETS_S = (0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
# Seconds from a sub-second job to a task's default one-hour timeout.
RUN_BUCKETS_S = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# The loop's lag: a healthy loop stays under a millisecond or two.
LAG_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# A job's end to its task's final write committed: milliseconds when all is well.
NOTICE_BUCKETS_S = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
HTTP_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
CAUSE_NEW = "new"
CAUSE_RETRY = "retry"


class Metrics:
    """Every metric one replica exposes at /metrics."""

    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry(auto_describe=True)
        self.tasks_created = Counter(
            "taskbeat_tasks_created", "Tasks created here.", ["algorithm"], registry=registry
        )
        self.tasks_finished = Counter(
            "taskbeat_tasks_finished",
            "Tasks this replica finished, by final status.",
            ["algorithm", "status"],
            registry=registry,
        )
        self.task_attempts = Counter(
            "taskbeat_task_attempts",
            "Runs started here: cause new (first attempt) or retry (a later one).",
            ["algorithm", "cause"],
            registry=registry,
        )
        self.poll_failures = Counter(
            "taskbeat_poll_failures", "Failed polls of a job.", ["algorithm"], registry=registry
        )
        self.tasks_running = Gauge(
            "taskbeat_tasks_running", "Runs under way here.", ["algorithm"], registry=registry
        )
        self.tasks_waiting = Gauge(
            "taskbeat_tasks_waiting",
            "Tasks waiting in the one queue, over the cluster (read at the scrape).",
            ["algorithm"],
            registry=registry,
        )
        self.algorithm_paused = Gauge(
            "taskbeat_algorithm_paused",
            "1 while the algorithm is paused.",
            ["algorithm"],
            registry=registry,
        )
        self.task_wait_seconds = Histogram(
            "taskbeat_task_wait_seconds",
            "Seconds from a task's creation (or due time) to its first run's start.",
            ["algorithm"],
            buckets=WAIT_BUCKETS_S,
            registry=registry,
        )
        self.task_run_seconds = Histogram(
            "taskbeat_task_run_seconds",
            "Seconds a run took, by its final status.",
            ["algorithm", "status"],
            buckets=RUN_BUCKETS_S,
            registry=registry,
        )
        self.heartbeat_age_max = Gauge(
            "taskbeat_heartbeat_age_seconds_max",
            "Age of the oldest heartbeat among this replica's runs (0 with none).",
            registry=registry,
        )
        self.event_loop_lag = Histogram(
            "taskbeat_event_loop_lag_seconds",
            "How late a 50 ms sleep of the event loop woke up.",
            buckets=LAG_BUCKETS_S,
            registry=registry,
        )
        self.notice_latency = Histogram(
            "taskbeat_notice_latency_seconds",
            "From a job's end (the algorithm's own clock) to its run's final write committed.",
            buckets=NOTICE_BUCKETS_S,
            registry=registry,
        )
        self.lease_age = Gauge(
            "taskbeat_replica_lease_age_seconds",
            "Seconds since this replica last renewed its lease.",
            registry=registry,
        )
        self.http_requests = Counter(
            "taskbeat_http_requests",
            "HTTP requests answered, by route template.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.http_request_seconds = Histogram(
            "taskbeat_http_request_seconds",
            "Seconds to answer an HTTP request (a stream: until it ends).",
            ["route", "method"],
            buckets=HTTP_BUCKETS_S,
            registry=registry,
        )
        self.lag_history = LagHistory()

    # ----- what the service and the runner report -------------------------------------

    def task_created(self, algorithm: str) -> None:
        self.tasks_created.labels(algorithm).inc()

    def task_finished(self, algorithm: str, status: TaskStatus) -> None:
        """A task ended without a run of its own here (cancelled while pending, or ended
        by a takeover)."""
        self.tasks_finished.labels(algorithm, status.value).inc()

    def attempt_started(self, task: StoredTask) -> None:
        cause = CAUSE_NEW if task.attempt <= 1 else CAUSE_RETRY
        self.task_attempts.labels(task.algorithm, cause).inc()
        if task.attempt <= 1:
            waited_s = (utcnow() - task.created_at).total_seconds()
            self.task_wait_seconds.labels(task.algorithm).observe(max(0.0, waited_s))

    def run_finished(self, algorithm: str, status: TaskStatus, *, started_s: float) -> None:
        """A task's last run ended; `started_s` its monotonic start (0: it never started a
        job)."""
        self.task_finished(algorithm, status)
        self.attempt_ended(algorithm, status, started_s=started_s)

    def attempt_ended(self, algorithm: str, status: TaskStatus, *, started_s: float) -> None:
        """A run ended (its task may run again: a retry)."""
        if started_s:
            elapsed_s = time.monotonic() - started_s
            self.task_run_seconds.labels(algorithm, status.value).observe(elapsed_s)

    def poll_failed(self, algorithm: str) -> None:
        self.poll_failures.labels(algorithm).inc()

    def loop_lag_sampled(self, lag_ms: float) -> None:
        self.event_loop_lag.observe(lag_ms / 1000)
        self.lag_history.record(lag_ms)

    def run_noticed(self, latency_ms: float) -> None:
        self.notice_latency.observe(latency_ms / 1000)

    def http_answered(self, route: str, method: str, status: int, elapsed_s: float) -> None:
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_request_seconds.labels(route, method).observe(elapsed_s)
