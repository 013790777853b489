"""The native "hello" algorithm (clib/) and its event-loop glue."""

from app.native._lib import (
    EXPECTED_API_VERSION,
    MAX_INPUT_BYTES,
    InvalidHandleError,
    InvalidInputError,
    JobChange,
    JobState,
    NativeError,
    NativeJobStatus,
    NativeLibrary,
    PollError,
    load_library,
)
from app.native.watcher import JobWatcher

__all__ = [
    "EXPECTED_API_VERSION",
    "MAX_INPUT_BYTES",
    "InvalidHandleError",
    "InvalidInputError",
    "JobChange",
    "JobState",
    "JobWatcher",
    "NativeError",
    "NativeJobStatus",
    "NativeLibrary",
    "PollError",
    "load_library",
]
