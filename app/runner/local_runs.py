"""What the replica's loops (heartbeat, sweeper, cancels) need of the runner: its local
runs, seen through a narrow protocol so that the loops never import the runner."""

from typing import Protocol


class LocalRuns(Protocol):
    """The runs of this replica (implemented by app.runner.runner.Runner)."""

    @property
    def accepting(self) -> bool:
        """Whether it takes new runs (False once draining)."""

    @property
    def waiting_count(self) -> int: ...

    def is_local(self, task_id: str) -> bool:
        """Whether `task_id` holds one of this replica's run slots now."""

    def cancel_undelivered(self, task_id: str) -> bool:
        """Whether `task_id` runs here and its algorithm has not taken a cancel yet."""

    def enqueue(self, task_id: str) -> None: ...

    async def cancel_local(self, task_id: str) -> object: ...

    def fence(self, *, held: frozenset[str], before_s: float) -> None:
        """Stops, writing nothing, the runs started before `before_s` whose task this
        replica no longer holds."""

    def active_counts(self) -> dict[str, int]: ...

    def running_progress(self) -> dict[str, int]: ...

    def running_attempts(self) -> dict[str, tuple[int, int]]: ...

    def progress_to_save(self) -> list[tuple[str, int, int]]: ...

    def algorithm_names(self) -> list[str]: ...
