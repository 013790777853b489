"""ctypes binding to the taskbeat_alg C library (clib/): the only module that imports ctypes.

Every C signature is declared once, in _SIGNATURES. C errors come back through an
out-buffer and a return code and are raised here as NativeError subclasses. Every call
holds the library's mutex only briefly and never waits, so it may run on the event loop.
"""

import ctypes
import enum
import functools
import struct
from dataclasses import dataclass
from importlib import resources
from typing import Any, NamedTuple

EXPECTED_API_VERSION = 3
LIBRARY_FILENAME = "libtaskbeat_alg.so"
MAX_INPUT_BYTES = 65536
MAX_HANDLE = 2**64 - 1

_ERROR_BUFFER_BYTES = 1024
# Most outputs fit; a longer text is fetched with tb_read_text at its exact size.
_TEXT_BUFFER_BYTES = 4096
_DRAIN_BATCH = 1024

# tb_result codes (taskbeat_alg.h)
_TB_OK = 0
_TB_EINVAL = -1
_TB_EHANDLE = -2
_TB_EPOLL = -3


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


# Index = tb_state value in C.
_STATES_BY_CODE = (
    JobState.QUEUED,
    JobState.RUNNING,
    JobState.SUCCEEDED,
    JobState.FAILED,
    JobState.CANCELLED,
)


@dataclass(frozen=True, slots=True)
class NativeJobStatus:
    """A job's state; `output` is set once it succeeded, `error` once it failed or was cancelled."""

    state: JobState
    progress: int
    output: str | None
    error: str | None


class JobChange(NamedTuple):
    """A job whose progress or state changed since the last drain, as it is now."""

    handle: int
    state: JobState
    progress: int
    finished_at_us: int  # unix microseconds of the job's finish, by the library; 0 before


class NativeError(Exception):
    """Base for every error from the native library."""


class InvalidInputError(NativeError):
    """submit/validate refused the input; str(error) is the library's message."""


class PollError(NativeError):
    """One poll failed (e.g. injected with poll_errors); the caller retries."""


class InvalidHandleError(NativeError):
    """Unknown, freed or stale handle."""


_ERRORS_BY_CODE: dict[int, type[NativeError]] = {
    _TB_EINVAL: InvalidInputError,
    _TB_EHANDLE: InvalidHandleError,
    _TB_EPOLL: PollError,
}


class _Status(ctypes.Structure):
    _fields_ = [
        ("state", ctypes.c_int32),
        ("progress", ctypes.c_int32),
        ("text_len", ctypes.c_uint64),
    ]


class _Change(ctypes.Structure):
    _fields_ = [
        ("handle", ctypes.c_uint64),
        ("state", ctypes.c_int32),
        ("progress", ctypes.c_int32),
        ("finished_at_us", ctypes.c_uint64),
    ]


# One tb_change as bytes, to unpack a drained batch in one call rather than field by field.
_CHANGE_LAYOUT = struct.Struct("=QiiQ")
assert _CHANGE_LAYOUT.size == ctypes.sizeof(_Change)

_u64_p = ctypes.POINTER(ctypes.c_uint64)
_ERR = [ctypes.c_char_p, ctypes.c_size_t]  # char *err, size_t errlen

# name -> (restype, argtypes)
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "tb_version": (ctypes.c_int, []),
    "tb_init": (ctypes.c_int, [*_ERR]),
    "tb_shutdown": (None, []),
    "tb_validate": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_size_t, *_ERR]),
    "tb_submit": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_size_t, _u64_p, *_ERR]),
    "tb_poll": (
        ctypes.c_int,
        [ctypes.c_uint64, ctypes.POINTER(_Status), ctypes.c_char_p, ctypes.c_size_t, *_ERR],
    ),
    "tb_read_text": (
        ctypes.c_int,
        [ctypes.c_uint64, ctypes.c_char_p, ctypes.c_size_t, _u64_p, *_ERR],
    ),
    "tb_cancel": (ctypes.c_int, [ctypes.c_uint64, *_ERR]),
    "tb_free": (ctypes.c_int, [ctypes.c_uint64, *_ERR]),
    "tb_notify_fd": (ctypes.c_int, [ctypes.POINTER(ctypes.c_int), *_ERR]),
    "tb_drain_changes": (ctypes.c_size_t, [ctypes.POINTER(_Change), ctypes.c_size_t]),
}


def _declare(cdll: ctypes.CDLL) -> None:
    for name, (restype, argtypes) in _SIGNATURES.items():
        function = getattr(cdll, name)
        function.restype = restype
        function.argtypes = argtypes


def _raise_for(code: int, err: ctypes.Array[ctypes.c_char]) -> None:
    if code == _TB_OK:
        return
    message = err.value.decode("utf-8", errors="replace") or f"native error {code}"
    raise _ERRORS_BY_CODE.get(code, NativeError)(message)


def _encode_input(input_json: str) -> bytes:
    try:
        return input_json.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"input is not valid UTF-8: {exc.reason}") from exc


def _check_handle(handle: int) -> None:
    if isinstance(handle, bool) or not isinstance(handle, int) or not 0 < handle <= MAX_HANDLE:
        raise InvalidHandleError(f"not a job handle: {handle!r}")


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


class NativeLibrary:
    """The loaded C library. Thread-safe; every method returns at once."""

    def __init__(self, cdll: ctypes.CDLL) -> None:
        _declare(cdll)
        self._c = cdll
        self.version: int = cdll.tb_version()
        if self.version != EXPECTED_API_VERSION:
            raise NativeError(
                f"native library API version {self.version}, expected {EXPECTED_API_VERSION}: "
                "rebuild it with `make clib`"
            )
        err = ctypes.create_string_buffer(_ERROR_BUFFER_BYTES)
        _raise_for(cdll.tb_init(err, len(err)), err)

    def validate(self, input_json: str) -> None:
        """Raises InvalidInputError when submit would refuse `input_json`."""
        data = _encode_input(input_json)
        err = ctypes.create_string_buffer(_ERROR_BUFFER_BYTES)
        _raise_for(self._c.tb_validate(data, len(data), err, len(err)), err)

    def submit(self, input_json: str) -> int:
        """Starts a job and returns its handle; free() it when done with it."""
        data = _encode_input(input_json)
        handle = ctypes.c_uint64(0)
        err = ctypes.create_string_buffer(_ERROR_BUFFER_BYTES)
        _raise_for(self._c.tb_submit(data, len(data), ctypes.byref(handle), err, len(err)), err)
        return int(handle.value)

    def poll(self, handle: int) -> NativeJobStatus:
        """The job's status; raises PollError for a failed poll, InvalidHandleError if freed."""
        _check_handle(handle)
        status = _Status()
        text = ctypes.create_string_buffer(_TEXT_BUFFER_BYTES)
        err = ctypes.create_string_buffer(_ERROR_BUFFER_BYTES)
        code = self._c.tb_poll(handle, ctypes.byref(status), text, len(text), err, len(err))
        _raise_for(code, err)
        state = _STATES_BY_CODE[status.state]
        if not state.finished:
            return NativeJobStatus(state=state, progress=status.progress, output=None, error=None)
        if status.text_len < len(text):
            message = _decode(text.raw[: status.text_len])
        else:
            message = self._read_text(handle, status.text_len)
        if state is JobState.SUCCEEDED:
            return NativeJobStatus(
                state=state, progress=status.progress, output=message, error=None
            )
        return NativeJobStatus(state=state, progress=status.progress, output=None, error=message)

    def _read_text(self, handle: int, text_len: int) -> str:
        text = ctypes.create_string_buffer(text_len + 1)
        length = ctypes.c_uint64(0)
        err = ctypes.create_string_buffer(_ERROR_BUFFER_BYTES)
        code = self._c.tb_read_text(handle, text, len(text), ctypes.byref(length), err, len(err))
        _raise_for(code, err)
        return _decode(text.raw[: length.value])

    def cancel(self, handle: int) -> None:
        """Stops the job (it reports CANCELLED at once); a no-op once it finished."""
        _check_handle(handle)
        err = ctypes.create_string_buffer(_ERROR_BUFFER_BYTES)
        _raise_for(self._c.tb_cancel(handle, err, len(err)), err)

    def free(self, handle: int) -> None:
        """Releases the job, cancelling it if still running; the handle is dead afterwards."""
        _check_handle(handle)
        err = ctypes.create_string_buffer(_ERROR_BUFFER_BYTES)
        _raise_for(self._c.tb_free(handle, err, len(err)), err)

    def notify_fd(self) -> int:
        """A file descriptor readable while changed jobs wait to be drained. Never close it."""
        fd = ctypes.c_int(-1)
        err = ctypes.create_string_buffer(_ERROR_BUFFER_BYTES)
        _raise_for(self._c.tb_notify_fd(ctypes.byref(fd), err, len(err)), err)
        return int(fd.value)

    def drain_changes(self) -> list[JobChange]:
        """Every job whose progress or state changed since the last drain, once each, with
        its state and progress now, in the order of their first change (freed ones left out)."""
        changes: list[JobChange] = []
        batch = (_Change * _DRAIN_BATCH)()
        make = JobChange._make  # 3x faster than JobChange(...): this runs per step of every job
        while True:
            count = int(self._c.tb_drain_changes(batch, _DRAIN_BATCH))
            raw = ctypes.string_at(batch, count * _CHANGE_LAYOUT.size)
            changes += [
                make((handle, _STATES_BY_CODE[state], progress, finished_at_us))
                for handle, state, progress, finished_at_us in _CHANGE_LAYOUT.iter_unpack(raw)
            ]
            if count < _DRAIN_BATCH:
                return changes


def _find_library() -> ctypes.CDLL:
    resource = resources.files("app.native").joinpath(LIBRARY_FILENAME)
    if resource.is_file():
        # dlopen keeps the mapping, so a temporary copy (zipped install) may go away.
        with resources.as_file(resource) as path:
            return ctypes.CDLL(str(path))
    raise NativeError(
        f"the taskbeat C library is not built (no {LIBRARY_FILENAME} in app/native): "
        "run `make clib`, or reinstall with `pip install -e .`"
    )


@functools.cache
def load_library() -> NativeLibrary:
    """Loads the C library once and checks its version; raises NativeError if it can't."""
    try:
        cdll = _find_library()
    except OSError as exc:
        raise NativeError(f"cannot load the taskbeat C library: {exc}") from exc
    return NativeLibrary(cdll)
