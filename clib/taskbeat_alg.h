/*
 * taskbeat_alg: the "hello" algorithm as a non-blocking C engine.
 *
 * Simulates "sleep 3 seconds, then output hello world". tb_submit() returns a
 * handle at once; the job runs on the library's own threads (one timer thread
 * for sleeping jobs, a worker pool for CPU-burning "spin" jobs). The caller
 * polls, cancels and frees by handle, and waits on tb_notify_fd(): it becomes
 * readable when some job's progress or state changed, and tb_drain_changes()
 * says which jobs, with their state and progress.
 *
 * Threading: every function may be called from any thread at any time; each
 * holds one internal mutex briefly and never sleeps or waits on a job.
 *
 * Errors: functions return TB_OK (0) or a negative tb_result. When `err` is
 * not NULL and `errlen` > 0, a NUL-terminated message (truncated to fit) is
 * written there on error. The caller owns every buffer it passes in; the
 * library never keeps a pointer to a caller buffer after a call returns.
 */
#ifndef TASKBEAT_ALG_H
#define TASKBEAT_ALG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library exports these functions only (it is built with -fvisibility=hidden). */
#define TB_API __attribute__((visibility("default")))

/* Bumped whenever a signature or struct below changes; callers check it. */
#define TB_API_VERSION 3

/* Largest accepted input document, in bytes. */
#define TB_MAX_INPUT_BYTES 65536

typedef uint64_t tb_handle; /* generation << 32 | slot; 0 is never valid */

typedef enum tb_result {
    TB_OK = 0,
    TB_EINVAL = -1,    /* input refused by submit/validate */
    TB_EHANDLE = -2,   /* unknown, freed or stale handle */
    TB_EPOLL = -3,     /* poll failed (injected by poll_errors); retry */
    TB_ENOMEM = -4,    /* out of memory or job table full */
    TB_ESYS = -5,      /* a system call failed (threads, eventfd) */
    TB_ESTATE = -6     /* the job is not in a state that allows the call */
} tb_result;

typedef enum tb_state {
    TB_QUEUED = 0,     /* spin job waiting for a free worker */
    TB_RUNNING = 1,
    TB_SUCCEEDED = 2,  /* text is the output */
    TB_FAILED = 3,     /* text is the error message */
    TB_CANCELLED = 4   /* text is "cancelled" */
} tb_state;

typedef struct tb_status {
    int32_t state;     /* a tb_state */
    int32_t progress;  /* 0..100 */
    uint64_t text_len; /* bytes of the job's text (finished jobs), 0 otherwise */
} tb_status;

/* One changed job, as tb_drain_changes() reports it. */
typedef struct tb_change {
    tb_handle handle;
    int32_t state;     /* a tb_state, as it is at the drain */
    int32_t progress;  /* 0..100, as it is at the drain */
    uint64_t finished_at_us; /* CLOCK_REALTIME (unix) microseconds of the job's finish;
                                0 while it has not finished */
} tb_change;

/* TB_API_VERSION of the built library. */
TB_API int tb_version(void);

/* Starts the threads and the notify fd. Optional: every other call does it
 * on first use. Safe to call again. */
TB_API int tb_init(char *err, size_t errlen);

/* Cancels and frees every job, joins the threads, closes the notify fd.
 * Every outstanding handle becomes invalid. The next call starts afresh.
 * Must not race with other calls (meant for tests and process teardown). */
TB_API void tb_shutdown(void);

/* Checks `input` (len bytes of JSON; need not be NUL-terminated) exactly as
 * tb_submit does, without starting anything. */
TB_API int tb_validate(const char *input, size_t len, char *err, size_t errlen);

/* Starts a job from `input` and stores its handle in *out_handle. The job
 * belongs to the caller until tb_free(). */
TB_API int tb_submit(const char *input, size_t len, tb_handle *out_handle,
                     char *err, size_t errlen);

/* Reads the job's status into *out. For a finished job the text (output or
 * error) is copied into `text` (textcap bytes, NUL-terminated, truncated to
 * fit; may be NULL/0) and its full length is out->text_len: when it did not
 * fit, call tb_read_text() with a larger buffer. Returns TB_EPOLL while
 * injected poll errors remain (each poll consumes one). */
TB_API int tb_poll(tb_handle handle, tb_status *out, char *text, size_t textcap,
                   char *err, size_t errlen);

/* Copies a finished job's text into `text` (textcap bytes, NUL-terminated,
 * truncated to fit) and its full length into *out_len. Not subject to
 * poll_errors. TB_ESTATE if the job has not finished. */
TB_API int tb_read_text(tb_handle handle, char *text, size_t textcap,
                        uint64_t *out_len, char *err, size_t errlen);

/* Stops the job: it reports TB_CANCELLED at once (a spin job's worker stops
 * within about a millisecond). A no-op for a finished job. */
TB_API int tb_cancel(tb_handle handle, char *err, size_t errlen);

/* Releases the job, cancelling it first if it is still running. The handle
 * is invalid afterwards; freeing it again returns TB_EHANDLE. */
TB_API int tb_free(tb_handle handle, char *err, size_t errlen);

/* Stores in *out_fd a file descriptor (an eventfd) that is readable while
 * changed jobs wait to be drained. The library owns it: never read, write or
 * close it. */
TB_API int tb_notify_fd(int *out_fd, char *err, size_t errlen);

/* Moves up to `max` jobs whose progress or state changed since the last drain
 * into `out` and returns how many, in the order of their first change. Each
 * job appears at most once per drain (coalesced: a job that moved three steps
 * shows once), with its state and progress as they are now; a finish is never
 * lost, even right after a step. Changes are: a step done, queued -> running,
 * and finishing (succeeded, failed, cancelled). Freed jobs are left out. The
 * fd stays readable while more remain. */
TB_API size_t tb_drain_changes(tb_change *out, size_t max);

#ifdef __cplusplus
}
#endif

#endif /* TASKBEAT_ALG_H */
