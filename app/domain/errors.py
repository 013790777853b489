"""The few exceptions the service raises; the API turns each into one HTTP answer."""


class TaskbeatError(Exception):
    """Base: `code` and `status_code` shape the error envelope."""

    code = "internal_error"
    status_code = 500

    @property
    def headers(self) -> dict[str, str]:
        """Headers the answer must carry (Retry-After, WWW-Authenticate, ...)."""
        return {}


class NotFound(TaskbeatError):
    code = "not_found"
    status_code = 404


class Conflict(TaskbeatError):
    code = "conflict"
    status_code = 409


class InvalidRequest(TaskbeatError):
    code = "invalid_request"
    status_code = 422


class Saturated(TaskbeatError):
    """The replica's backlog is full: the client should retry later."""

    code = "saturated"
    status_code = 429

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class StoreUnavailable(TaskbeatError):
    code = "store_unavailable"
    status_code = 503


class Unauthorized(TaskbeatError):
    """A callback without a valid, fresh, first-seen signature."""

    code = "unauthorized"
    status_code = 401

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Taskbeat-Signature realm="callbacks"'}


class InvalidCursor(ValueError):
    """A page cursor this service did not give out: bad input, never a store fault (422)."""


class NotAuthenticated(TaskbeatError):
    """No key, or not a key in force (malformed, unknown, revoked, expired)."""

    code = "unauthorized"
    status_code = 401

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="taskbeat"'}


class Forbidden(TaskbeatError):
    """A key in force whose role may not do this."""

    code = "forbidden"
    status_code = 403


class LimitExceeded(Saturated):
    """A key over its requests per second or unfinished tasks."""

    code = "limit_exceeded"
