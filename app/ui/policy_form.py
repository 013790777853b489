"""The algorithm page's policy form: the fields an admin edits, read back into the changes
a `PATCH /v1/algorithms/{name}` would carry. Nothing is checked here: the values go to
AlgorithmService as typed, so the page refuses exactly what the API refuses (422)."""

import typing
from dataclasses import dataclass
from typing import Any

from app.domain.errors import InvalidRequest
from app.domain.policy import Policy, RetryCause

RETRY_CAUSES: tuple[str, ...] = typing.get_args(RetryCause)
RETRY_ON = "retry_on"
RETRY_ON_SHOWN = "retry_on_shown"  # the form had the checkboxes (none ticked: [])


@dataclass(frozen=True, slots=True)
class FormField:
    name: str
    label: str
    kind: type  # int or float
    step: str


# What the form edits, in its order; `paused` and `paused_until` have their own buttons.
FIELDS = (
    FormField("max_active", "max_active: runs at once over the cluster", int, "1"),
    FormField("max_waiting", "max_waiting: backlog before creates get 429", int, "1"),
    FormField("priority", "priority of new tasks (0-9)", int, "1"),
    FormField("max_attempts", "max_attempts: runs per task", int, "1"),
    FormField("timeout_s", "timeout_s: default per task", int, "1"),
    FormField("max_timeout_s", "max_timeout_s: most a create may ask", int, "1"),
    FormField("retry_base_s", "retry_base_s: first backoff", float, "any"),
    FormField("retry_max_s", "retry_max_s: longest backoff", float, "any"),
    FormField("poll_interval_s", "poll_interval_s", float, "any"),
)


def _typed(text: str, kind: type) -> Any:
    """The number a field holds; the text itself when it is none (the service says why)."""
    try:
        return int(text) if kind is int else float(text)
    except ValueError:
        return text


def changes_of(form: dict[str, list[str]], current: Policy) -> dict[str, Any]:
    """The fields whose value differs from the policy in force; an emptied field goes back
    to its configured value (null, as in the API)."""
    changes: dict[str, Any] = {}
    for field in FIELDS:
        if field.name not in form:
            continue
        text = form[field.name][0].strip()
        value = None if text == "" else _typed(text, field.kind)
        if value != getattr(current, field.name):
            changes[field.name] = value
    if RETRY_ON_SHOWN in form:
        causes = form.get(RETRY_ON, [])
        if set(causes) != set(current.retry_on):
            changes[RETRY_ON] = causes
    return changes


def pause_seconds(text: str) -> float | None:
    """The `for_s` of a pause: empty for a pause until resumed."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidRequest(f"for_s: not a number of seconds: {text[:40]!r}") from None
