"""Every Redis key of taskbeat, in one place. Monitors read these directly."""

from dataclasses import dataclass

HEARTBEAT_TTL_S = 24 * 3600
# How long an accepted callback signature is remembered: twice the signing tolerance.
CALLBACK_SEEN_TTL_S = 600
# How long a per-second request counter of a key outlives its second.
RATE_WINDOW_TTL_S = 2


@dataclass(frozen=True, slots=True)
class RedisKeys:
    prefix: str = "taskbeat:"

    def heartbeat(self, task_id: str) -> str:
        """string: unix seconds of the task's last heartbeat; TTL 24 h; deleted on finish."""
        return f"{self.prefix}hb:{task_id}"

    @property
    def heartbeats(self) -> str:
        """sorted set: member task_id, score its last heartbeat time."""
        return f"{self.prefix}heartbeats"

    def active(self, algorithm: str) -> str:
        """string (integer): tasks of that algorithm running now, over all replicas."""
        return f"{self.prefix}active:{algorithm}"

    def active_by_replica(self, algorithm: str) -> str:
        """hash: field replica id, value that replica's running tasks of the algorithm
        (`active:{algorithm}` is their sum, so a dead replica's share can be dropped)."""
        return f"{self.prefix}active-by-replica:{algorithm}"

    @property
    def replicas(self) -> str:
        """sorted set: member replica id, score its last beat (unix seconds, fractional)."""
        return f"{self.prefix}replicas"

    @property
    def progress(self) -> str:
        """hash: field task_id, value the running task's last progress (0-100)."""
        return f"{self.prefix}progress"

    @property
    def task_replica(self) -> str:
        """hash: field task_id, value the id of the replica running it (while it runs)."""
        return f"{self.prefix}task-replica"

    @property
    def sweeper_lock(self) -> str:
        """string: token of the replica sweeping now (expires on its own)."""
        return f"{self.prefix}lock:sweeper"

    @property
    def retention_lock(self) -> str:
        """string: token of the replica deleting expired finished tasks now (expires)."""
        return f"{self.prefix}lock:retention"

    @property
    def cancel_channel(self) -> str:
        """pub/sub channel: task ids whose cancel was asked on any replica."""
        return f"{self.prefix}cancel"

    @property
    def work_channel(self) -> str:
        """pub/sub channel: hints that tasks wait in the queue ("work"), that a policy
        changed ("policy") or that a schedule changed ("schedule"); the database stays the
        truth, a lost hint only delays."""
        return f"{self.prefix}work"

    @property
    def updates_channel(self) -> str:
        """pub/sub channel: JSON task updates (status changes, progress, callbacks) for waiters."""
        return f"{self.prefix}updates"

    def callback_seen(self, timestamp: str, signature: str) -> str:
        """string: a callback signature already accepted (replay guard); expires after
        CALLBACK_SEEN_TTL_S."""
        return f"{self.prefix}callback-seen:{timestamp}:{signature}"

    def key_requests(self, key_id: str, second: int) -> str:
        """string (integer): requests of an API key in that unix second, over all replicas;
        expires after RATE_WINDOW_TTL_S."""
        return f"{self.prefix}rate:{key_id}:{second}"
