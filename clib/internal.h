/*
 * internal.h: what the library's files share and callers never see.
 *
 * input.c parses a job's options, jobs.c holds the containers (job table,
 * timer heap, intrusive lists), notifier.c the notify fd and the list of
 * changed jobs, engine.c the threads and the public API. common.c has the
 * error, clock and checked-pthread helpers.
 */
#ifndef TASKBEAT_INTERNAL_H
#define TASKBEAT_INTERNAL_H

#ifndef __linux__
#error "taskbeat_alg supports Linux only (eventfd, pthread_condattr_setclock): see clib/README.md"
#endif

#include "taskbeat_alg.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NO_DEADLINE UINT64_MAX

/* ------------------------------------------------------------------ */
/* common.c: errors, clocks, checked pthread calls                    */

/* Writes a message into err (when there is room) and returns code. */
int tb_set_err(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prints which pthread call failed and aborts: the library cannot go on
 * with a broken mutex or condition variable (libuv does the same). */
_Noreturn void tb_pthread_fatal(const char *call, int rc, const char *file, int line);

#define TB_PTHREAD_CHECK(call)                                       \
    do {                                                             \
        int tb_rc_ = (call);                                         \
        if (tb_rc_ != 0) tb_pthread_fatal(#call, tb_rc_, __FILE__, __LINE__); \
    } while (0)

void tb_mutex_lock(pthread_mutex_t *mu);
void tb_mutex_unlock(pthread_mutex_t *mu);
void tb_cond_init_monotonic(pthread_cond_t *cv);
void tb_cond_init(pthread_cond_t *cv);
void tb_cond_destroy(pthread_cond_t *cv);
void tb_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu);
/* Waits until the CLOCK_MONOTONIC time deadline_ns (cv from tb_cond_init_monotonic). */
void tb_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t deadline_ns);
void tb_cond_signal(pthread_cond_t *cv);
void tb_cond_broadcast(pthread_cond_t *cv);
void tb_thread_join(pthread_t thread);

uint64_t tb_now_ns(void); /* CLOCK_MONOTONIC */
uint64_t tb_unix_us(void); /* CLOCK_REALTIME, in microseconds */

/* Copies len bytes of src into dst (cap bytes), truncated, NUL-terminated. */
void tb_copy_text(char *dst, size_t cap, const char *src, size_t len);

/* ------------------------------------------------------------------ */
/* input.c: job options and the JSON input parser                     */

typedef enum { MODE_SLEEP = 0, MODE_SPIN = 1 } job_mode;

typedef struct job_options {
    int64_t duration_ms;
    int32_t steps;
    job_mode mode;
    int32_t fail_at_step;   /* 0: never fails */
    int32_t fail_attempts;  /* the first N attempts fail at once */
    int32_t attempt;        /* which attempt this job is (the service sets it); 1 first */
    int64_t poll_errors;
    bool hang;
    char *fail_message;     /* owned; NULL: the default message */
    size_t fail_message_len;
    char *output;           /* owned; NULL: the default output */
    size_t output_len;
} job_options;

/* Parses and checks an input document into *opt (zeroed and defaulted here).
 * On success the caller owns opt's strings (tb_options_free). */
int tb_parse_input(const char *input, size_t len, job_options *opt, char *err, size_t errlen);
void tb_options_free(job_options *opt);

/* ------------------------------------------------------------------ */
/* jobs.c: the job, the job table, the timer heap, intrusive lists    */

/* A link of an intrusive doubly-linked list; `linked` says whether it is on one. */
typedef struct tb_link {
    struct tb_link *prev;
    struct tb_link *next;
    bool linked;
} tb_link;

typedef struct tb_list {
    tb_link *head;
    tb_link *tail;
} tb_list;

void tb_list_push_back(tb_list *list, tb_link *link);
void tb_list_remove(tb_list *list, tb_link *link); /* a no-op when not linked */
tb_link *tb_list_pop_front(tb_list *list);          /* NULL when empty */
static inline bool tb_list_empty(const tb_list *list) { return list->head == NULL; }

#define TB_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

typedef struct tb_job {
    job_options opt;
    uint32_t slot;
    uint32_t gen;
    tb_state state;
    int32_t step;          /* steps completed */
    int32_t progress;
    uint64_t start_ns;
    uint64_t finished_at_us; /* tb_unix_us() when it finished; 0 before */
    size_t heap_idx;       /* index in the timer heap, or SIZE_MAX */
    tb_link spin_link;     /* on the spin queue while waiting for a worker */
    tb_link change_link;   /* on the notifier's list while a change waits to be drained */
    bool on_worker;        /* a worker is spinning it: the worker frees it if released */
    bool released;         /* tb_free() was called while on a worker */
    atomic_bool stop;      /* tells the spinning worker to stop */
    const char *text;      /* output or error once finished; points into opt or statics */
    size_t text_len;
    char default_fail[80];
} tb_job;

tb_job *tb_job_new(void);          /* zeroed, off every container; NULL when out of memory */
void tb_job_destroy(tb_job *job);  /* frees the job and its options */
tb_handle tb_handle_of(const tb_job *job);

typedef struct slot_entry {
    tb_job *job;    /* NULL when free */
    uint32_t gen;   /* generation of the handle that owns it; 0 when free */
    uint32_t next_free;
} slot_entry;

/* Slots indexed by handle; generations never repeat, so stale handles miss. */
typedef struct job_table {
    slot_entry *slots;
    uint32_t nslots;
    uint32_t cap_slots;
    uint32_t free_head;     /* first free slot, or UINT32_MAX */
    uint32_t next_gen;      /* never reset, so handles stay unique across shutdowns */
} job_table;

#define JOB_TABLE_INIT {.free_head = UINT32_MAX}

tb_job *job_table_lookup(const job_table *table, tb_handle h);
int job_table_add(job_table *table, tb_job *job, char *err, size_t errlen);
void job_table_remove(job_table *table, const tb_job *job);
void job_table_clear(job_table *table); /* destroys every job still in it */

typedef struct heap_entry {
    uint64_t deadline_ns;
    tb_job *job;
} heap_entry;

/* Min-heap of sleeping jobs' next step deadlines. */
typedef struct timer_heap {
    heap_entry *entries;
    size_t len;
    size_t cap;
} timer_heap;

/* TB_OK, or TB_ENOMEM. *earliest says whether the job now has the earliest deadline. */
int timer_heap_push(timer_heap *heap, tb_job *job, uint64_t deadline_ns, bool *earliest);
void timer_heap_remove(timer_heap *heap, tb_job *job); /* a no-op when not on it */
void timer_heap_clear(timer_heap *heap);

/* ------------------------------------------------------------------ */
/* notifier.c: the notify fd and the changed jobs behind it           */

/* Readable while some job changed (progress or state) and was not drained. */
typedef struct tb_notifier {
    int fd;           /* eventfd; -1 when closed */
    tb_list changed;  /* jobs in the order of their first change since the last drain */
} tb_notifier;

int notifier_open(tb_notifier *n, char *err, size_t errlen);
void notifier_close(tb_notifier *n);
/* Records that the job changed; a job already waiting keeps its place (coalesced). */
void notifier_mark(tb_notifier *n, tb_job *job);
/* Forgets the job (freed before it was drained). */
void notifier_forget(tb_notifier *n, tb_job *job);
/* The job whose change waits longest, taken off the list; NULL when none. */
tb_job *notifier_take(tb_notifier *n);
/* Clears the fd when nothing waits any more. */
void notifier_settle(tb_notifier *n);

#endif /* TASKBEAT_INTERNAL_H */
