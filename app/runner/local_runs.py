"""What the replica's loops (heartbeat, sweeper) work with: the runner's local runs, seen
through a narrow protocol so that the loops never import the runner, and the other parts
(the replica's metrics among them, so that what a loop ends is counted)."""

from dataclasses import dataclass
from typing import Protocol

from app.core.config import Settings
from app.domain.policy import Policy
from app.live.state import LiveState
from app.live.updates import UpdateHub
from app.observe.metrics import Metrics
from app.store import TaskStore


class LocalRuns(Protocol):
    """The runs of this replica (implemented by app.runner.runner.Runner)."""

    @property
    def accepting(self) -> bool:
        """Whether it takes new runs (False once draining)."""

    def is_local(self, task_id: str) -> bool:
        """Whether `task_id` holds one of this replica's run slots now."""

    def cancel_undelivered(self, task_id: str) -> bool:
        """Whether `task_id` runs here and its algorithm has not taken a cancel yet."""

    def policy_of(self, algorithm: str) -> Policy:
        """The policy in force for `algorithm`."""

    async def work_queued(self) -> None:
        """Tells every replica that tasks wait in the queue."""

    async def cancel_local(self, task_id: str) -> object: ...

    def fence(self, *, held: frozenset[str], before_s: float) -> None:
        """Stops, writing nothing, the runs started before `before_s` whose task this
        replica no longer holds."""

    def active_counts(self) -> dict[str, int]: ...

    def running_progress(self) -> dict[str, int]: ...

    def running_attempts(self) -> dict[str, tuple[int, int]]: ...

    def progress_to_save(self) -> list[tuple[str, int, int]]: ...

    def algorithm_names(self) -> list[str]: ...


@dataclass(frozen=True)
class LoopParts:
    """What each of the replica's loops works with: given once by the composition root."""

    settings: Settings
    store: TaskStore
    live: LiveState
    updates: UpdateHub
    runs: LocalRuns
    replica_id: str
    metrics: Metrics
