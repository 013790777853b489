"""When a heartbeat is stale: the one rule `taskbeat heartbeats` and the dashboard share."""

# Heartbeats are stored in whole seconds: the true beat lies within a second after the score.
BEAT_RESOLUTION_S = 1.0


def is_stale(*, beat_at_s: float, now_s: float, stale_after_s: float) -> bool:
    """True when a task's last beat (unix seconds, as stored) is older than `stale_after_s`
    (the replica's lease: just when the service itself moves the task on)."""
    return now_s - (beat_at_s + BEAT_RESOLUTION_S) > stale_after_s
