"""The client's errors: every error answer of the API, or a server out of reach."""


class TaskbeatClientError(Exception):
    """Base of the client's errors (the service's own errors live in app.domain.errors)."""


class TaskbeatAPIError(TaskbeatClientError):
    """The API answered with an error envelope `{"error": {"code", "message"}}`."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(f"{status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message


class TaskbeatConnectionError(TaskbeatClientError):
    """The server could not be reached (refused, timed out, name not resolved)."""
