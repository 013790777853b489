"""The exit statuses of every `taskbeat` command, as monitors and scripts read them."""

EXIT_OK = 0
EXIT_API_ERROR = 1  # an error answer of the API, or a wait that ran out of time
EXIT_STALE = 2  # `heartbeats`: some running task has not beaten for too long
EXIT_UNREACHABLE = 3  # the service (or, for `heartbeats`, Redis) cannot be reached
