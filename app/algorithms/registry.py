"""Algorithm name -> adapter. Built at start from configuration, never from a request."""

from typing import Any

from app.algorithms.base import Algorithm, InputRejected
from app.domain.errors import InvalidRequest


class Registry:
    def __init__(self) -> None:
        self._algorithms: dict[str, Algorithm] = {}

    def add(self, algorithm: Algorithm) -> None:
        if algorithm.name in self._algorithms:
            raise ValueError(f"algorithm {algorithm.name!r} is registered twice")
        self._algorithms[algorithm.name] = algorithm

    def names(self) -> list[str]:
        return sorted(self._algorithms)

    def get(self, name: str) -> Algorithm:
        try:
            return self._algorithms[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise InvalidRequest(f"unknown algorithm {name!r} (known: {known})") from None

    def validate(self, name: str, payload: dict[str, Any]) -> None:
        """Raises InvalidRequest when the algorithm is unknown or refuses the input."""
        try:
            self.get(name).validate(payload)
        except InputRejected as exc:
            raise InvalidRequest(f"input refused by {name!r}: {exc}") from exc
