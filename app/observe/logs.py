"""Logs a machine can read: TASKBEAT_LOG_FORMAT=json writes one JSON object a line, and
every line logged inside a run carries that run's task_id, attempt, algorithm and replica."""

import json
import logging
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
RUN_FIELDS = ("task_id", "attempt", "algorithm", "replica")


class Run(Protocol):
    """What a log line reads of a run (the runner's LocalRun)."""

    task_id: str
    attempt: int
    algorithm: str


@dataclass(frozen=True, slots=True)
class _BoundRun:
    run: Run  # read when a line is written: the attempt is known only once it starts
    replica: str


_current_run: ContextVar[_BoundRun | None] = ContextVar("taskbeat_run", default=None)


def bind_run(run: Run, replica_id: str) -> None:
    """Marks the calling task (and what it starts) as this run's: its log lines say so."""
    _current_run.set(_BoundRun(run, replica_id))


class RunContext(logging.Filter):
    """Puts the run's fields on every record logged inside it."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _current_run.get()
        if bound is not None:
            record.task_id = bound.run.task_id
            record.attempt = bound.run.attempt
            record.algorithm = bound.run.algorithm or None
            record.replica = bound.replica
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in RUN_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(*, level: str, log_format: str) -> None:
    """The root handler of `taskbeat serve`, text or JSON, with the run fields filled in."""
    handler = logging.StreamHandler()
    handler.addFilter(RunContext())
    text = logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(JsonFormatter() if log_format == "json" else text)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
