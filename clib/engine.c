/*
 * engine.c: the threads and the public API (see taskbeat_alg.h for the contract).
 *
 * One struct (tb_engine) owns every resource: the job table, the timer heap,
 * the spin queue, the notifier, the threads. One mutex guards all of it; the
 * timer thread and the workers each wait on their own condition variable.
 * Public calls hold the mutex only for table and queue updates, never while
 * parsing input or waiting.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_WORKERS 64
#define SPIN_CHUNK_NS 200000ULL /* a spin worker checks for cancel this often */

static const char DEFAULT_OUTPUT[] = "hello world";
static const char CANCELLED_TEXT[] = "cancelled";

typedef struct tb_engine {
    pthread_mutex_t mu;
    pthread_cond_t timer_cv;     /* timer thread: heap changed or stopping */
    pthread_cond_t work_cv;      /* workers: spin queue changed or stopping */
    bool started;
    bool stopping;
    atomic_bool stop_flag;       /* read by spinning workers without the mutex */

    pthread_t timer_thread;
    pthread_t workers[MAX_WORKERS];
    int nworkers;

    job_table table;
    timer_heap heap;             /* sleeping jobs by next step deadline */
    tb_list spin_queue;          /* spin jobs waiting for a worker, oldest first */
    tb_notifier notifier;        /* jobs changed since the last drain, and the fd */
} tb_engine;

static tb_engine engine = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .table = JOB_TABLE_INIT,
    .notifier = {.fd = -1},
};

/* Sum of every spin worker's last result, so the burn loop cannot be elided. */
static _Atomic uint64_t spin_sink;

static bool is_finished(tb_state s) {
    return s == TB_SUCCEEDED || s == TB_FAILED || s == TB_CANCELLED;
}

/* --- job state changes (mutex held) -------------------------------- */

/* Moves the job to a finished state and tells the notifier. */
static void finish_locked(tb_job *job, tb_state state) {
    job->state = state;
    job->finished_at_us = tb_unix_us();
    if (state == TB_SUCCEEDED) {
        job->progress = 100;
        if (job->opt.output) {
            job->text = job->opt.output;
            job->text_len = job->opt.output_len;
        } else {
            job->text = DEFAULT_OUTPUT;
            job->text_len = sizeof DEFAULT_OUTPUT - 1;
        }
    } else if (state == TB_FAILED) {
        if (job->opt.fail_message) {
            job->text = job->opt.fail_message;
            job->text_len = job->opt.fail_message_len;
        } else if (job->opt.attempt <= job->opt.fail_attempts) {
            int n = snprintf(job->default_fail, sizeof job->default_fail,
                             "injected failure on attempt %d (fail_attempts %d)",
                             (int)job->opt.attempt, (int)job->opt.fail_attempts);
            job->text = job->default_fail;
            job->text_len = (size_t)n;
        } else {
            int n = snprintf(job->default_fail, sizeof job->default_fail,
                             "injected failure at step %d", (int)job->opt.fail_at_step);
            job->text = job->default_fail;
            job->text_len = (size_t)n;
        }
    } else {
        job->text = CANCELLED_TEXT;
        job->text_len = sizeof CANCELLED_TEXT - 1;
    }
    notifier_mark(&engine.notifier, job);
}

static uint64_t step_deadline(const tb_job *job, int32_t step) {
    uint64_t total_ns = (uint64_t)job->opt.duration_ms * 1000000ULL;
    return job->start_ns + total_ns * (uint64_t)step / (uint64_t)job->opt.steps;
}

/* Completes every step whose time has come. Returns the deadline of the next
 * step, or NO_DEADLINE when the job finished or hangs with no step left. */
static uint64_t advance_locked(tb_job *job, uint64_t now) {
    while (job->state == TB_RUNNING) {
        int32_t next = job->step + 1;
        if (job->opt.hang && next == job->opt.steps) return NO_DEADLINE; /* never the last */
        uint64_t deadline = step_deadline(job, next);
        if (deadline > now) return deadline;
        if (next == job->opt.fail_at_step) {
            finish_locked(job, TB_FAILED);
            return NO_DEADLINE;
        }
        job->step = next;
        job->progress = (int32_t)((int64_t)next * 100 / job->opt.steps);
        notifier_mark(&engine.notifier, job);
        if (next == job->opt.steps) finish_locked(job, TB_SUCCEEDED);
    }
    return NO_DEADLINE;
}

/* Puts a sleeping job on the timer heap, waking the timer for a new earliest deadline. */
static int schedule_locked(tb_job *job, uint64_t deadline_ns) {
    bool earliest = false;
    int rc = timer_heap_push(&engine.heap, job, deadline_ns, &earliest);
    if (rc == TB_OK && earliest) tb_cond_signal(&engine.timer_cv);
    return rc;
}

/* Cancels a job that has not finished. */
static void cancel_locked(tb_job *job) {
    if (is_finished(job->state)) return;
    timer_heap_remove(&engine.heap, job);
    tb_list_remove(&engine.spin_queue, &job->spin_link);
    atomic_store(&job->stop, true);
    finish_locked(job, TB_CANCELLED);
}

/* --- threads -------------------------------------------------------- */

static void *timer_main(void *arg) {
    (void)arg;
    tb_mutex_lock(&engine.mu);
    while (!engine.stopping) {
        if (engine.heap.len == 0) {
            tb_cond_wait(&engine.timer_cv, &engine.mu);
            continue;
        }
        uint64_t now = tb_now_ns();
        heap_entry top = engine.heap.entries[0];
        if (top.deadline_ns > now) {
            tb_cond_wait_until(&engine.timer_cv, &engine.mu, top.deadline_ns);
            continue;
        }
        timer_heap_remove(&engine.heap, top.job);
        uint64_t next = advance_locked(top.job, now);
        if (next != NO_DEADLINE && schedule_locked(top.job, next) != TB_OK) {
            /* Out of memory for the heap: end the job rather than strand it. */
            top.job->opt.fail_at_step = top.job->step + 1;
            finish_locked(top.job, TB_FAILED);
        }
    }
    tb_mutex_unlock(&engine.mu);
    return NULL;
}

/* Burns CPU until until_ns; the result goes to spin_sink so it is not elided. */
static void burn_chunk(uint64_t until_ns) {
    uint64_t x = atomic_load_explicit(&spin_sink, memory_order_relaxed) + 1;
    while (tb_now_ns() < until_ns) {
        for (int k = 0; k < 1000; k++) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    }
    atomic_store_explicit(&spin_sink, x, memory_order_relaxed);
}

static void run_spin_job(tb_job *job) {
    for (;;) {
        tb_mutex_lock(&engine.mu);
        uint64_t next = advance_locked(job, tb_now_ns());
        bool done = job->state != TB_RUNNING;
        tb_mutex_unlock(&engine.mu);
        if (done) return;
        for (;;) {
            if (atomic_load(&job->stop) || atomic_load(&engine.stop_flag)) return;
            uint64_t now = tb_now_ns();
            if (now >= next) break;
            uint64_t until = now + SPIN_CHUNK_NS;
            burn_chunk(until < next ? until : next);
        }
    }
}

static void *worker_main(void *arg) {
    (void)arg;
    tb_mutex_lock(&engine.mu);
    while (!engine.stopping) {
        tb_link *link = tb_list_pop_front(&engine.spin_queue);
        if (link == NULL) {
            tb_cond_wait(&engine.work_cv, &engine.mu);
            continue;
        }
        tb_job *job = TB_CONTAINER_OF(link, tb_job, spin_link);
        job->state = TB_RUNNING;
        job->start_ns = tb_now_ns();
        job->on_worker = true;
        notifier_mark(&engine.notifier, job);
        tb_mutex_unlock(&engine.mu);

        run_spin_job(job);

        tb_mutex_lock(&engine.mu);
        job->on_worker = false;
        if (job->released) tb_job_destroy(job); /* tb_free() left it to us */
    }
    tb_mutex_unlock(&engine.mu);
    return NULL;
}

static int worker_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > MAX_WORKERS) n = MAX_WORKERS;
    return (int)n;
}

static void stop_threads_locked(void);

static int start_locked(char *err, size_t errlen) {
    if (engine.started) return TB_OK;
    tb_cond_init_monotonic(&engine.timer_cv);
    tb_cond_init(&engine.work_cv);
    engine.stopping = false;
    atomic_store(&engine.stop_flag, false);
    engine.nworkers = 0;
    int rc = notifier_open(&engine.notifier, err, errlen);
    if (rc != TB_OK) goto fail_cond;
    if ((rc = pthread_create(&engine.timer_thread, NULL, timer_main, NULL)) != 0) {
        rc = tb_set_err(err, errlen, TB_ESYS, "pthread_create: %s", strerror(rc));
        notifier_close(&engine.notifier);
        goto fail_cond;
    }
    engine.started = true; /* from here on, stop_threads_locked() undoes it */
    int want = worker_count();
    for (int k = 0; k < want; k++) {
        if ((rc = pthread_create(&engine.workers[k], NULL, worker_main, NULL)) != 0) {
            rc = tb_set_err(err, errlen, TB_ESYS, "pthread_create: %s", strerror(rc));
            stop_threads_locked();
            return rc;
        }
        engine.nworkers++;
    }
    return TB_OK;
fail_cond:
    tb_cond_destroy(&engine.timer_cv);
    tb_cond_destroy(&engine.work_cv);
    return rc;
}

/* Joins every thread; drops and retakes the mutex so they can exit. */
static void stop_threads_locked(void) {
    engine.stopping = true;
    atomic_store(&engine.stop_flag, true);
    tb_cond_broadcast(&engine.timer_cv);
    tb_cond_broadcast(&engine.work_cv);
    tb_mutex_unlock(&engine.mu);
    tb_thread_join(engine.timer_thread);
    for (int k = 0; k < engine.nworkers; k++) tb_thread_join(engine.workers[k]);
    tb_mutex_lock(&engine.mu);
    engine.nworkers = 0;
    engine.started = false;
    notifier_close(&engine.notifier);
    tb_cond_destroy(&engine.timer_cv);
    tb_cond_destroy(&engine.work_cv);
}

/* Takes the mutex and makes sure the engine runs. */
static int enter(char *err, size_t errlen) {
    tb_mutex_lock(&engine.mu);
    int rc = start_locked(err, errlen);
    if (rc != TB_OK) tb_mutex_unlock(&engine.mu);
    return rc;
}

/* The job of a live handle, or NULL with TB_EHANDLE in *rc and err. */
static tb_job *find_locked(tb_handle handle, int *rc, char *err, size_t errlen) {
    tb_job *job = job_table_lookup(&engine.table, handle);
    if (job == NULL)
        *rc = tb_set_err(err, errlen, TB_EHANDLE, "unknown or freed handle %#llx",
                         (unsigned long long)handle);
    return job;
}

/* --- public API ----------------------------------------------------- */

int tb_version(void) { return TB_API_VERSION; }

int tb_init(char *err, size_t errlen) {
    int rc = enter(err, errlen);
    if (rc == TB_OK) tb_mutex_unlock(&engine.mu);
    return rc;
}

void tb_shutdown(void) {
    tb_mutex_lock(&engine.mu);
    if (engine.started) stop_threads_locked(); /* also empties the notifier's list */
    /* Released jobs still on a worker were destroyed by the worker before it exited. */
    job_table_clear(&engine.table);
    timer_heap_clear(&engine.heap);
    engine.spin_queue = (tb_list){NULL, NULL};
    tb_mutex_unlock(&engine.mu);
}

int tb_validate(const char *input, size_t len, char *err, size_t errlen) {
    job_options opt;
    int rc = tb_parse_input(input, len, &opt, err, errlen);
    if (rc == TB_OK) tb_options_free(&opt);
    return rc;
}

int tb_submit(const char *input, size_t len, tb_handle *out_handle, char *err, size_t errlen) {
    if (out_handle == NULL) return tb_set_err(err, errlen, TB_EINVAL, "out_handle is NULL");
    *out_handle = 0;
    tb_job *job = tb_job_new();
    if (job == NULL) return tb_set_err(err, errlen, TB_ENOMEM, "out of memory");
    int rc = tb_parse_input(input, len, &job->opt, err, errlen);
    if (rc != TB_OK || (rc = enter(err, errlen)) != TB_OK) {
        tb_job_destroy(job);
        return rc;
    }
    if ((rc = job_table_add(&engine.table, job, err, errlen)) != TB_OK) {
        tb_mutex_unlock(&engine.mu);
        tb_job_destroy(job);
        return rc;
    }
    if (job->opt.mode == MODE_SPIN) {
        job->state = TB_QUEUED;
        tb_list_push_back(&engine.spin_queue, &job->spin_link);
        tb_cond_signal(&engine.work_cv);
    } else {
        job->state = TB_RUNNING;
        job->start_ns = tb_now_ns();
        uint64_t next = advance_locked(job, job->start_ns);
        if (next != NO_DEADLINE && schedule_locked(job, next) != TB_OK) {
            notifier_forget(&engine.notifier, job);
            job_table_remove(&engine.table, job);
            tb_mutex_unlock(&engine.mu);
            tb_job_destroy(job);
            return tb_set_err(err, errlen, TB_ENOMEM, "out of memory");
        }
    }
    *out_handle = tb_handle_of(job);
    tb_mutex_unlock(&engine.mu);
    return TB_OK;
}

int tb_poll(tb_handle handle, tb_status *out, char *text, size_t textcap, char *err,
            size_t errlen) {
    if (out == NULL) return tb_set_err(err, errlen, TB_EINVAL, "out is NULL");
    memset(out, 0, sizeof *out);
    tb_copy_text(text, textcap, "", 0);
    int rc = enter(err, errlen);
    if (rc != TB_OK) return rc;
    tb_job *job = find_locked(handle, &rc, err, errlen);
    if (job != NULL && job->opt.poll_errors > 0) {
        int64_t left = --job->opt.poll_errors;
        rc = tb_set_err(err, errlen, TB_EPOLL, "injected poll error (%lld more to come)",
                        (long long)left);
    } else if (job != NULL) {
        out->state = job->state;
        out->progress = job->progress;
        if (is_finished(job->state)) {
            out->text_len = job->text_len;
            tb_copy_text(text, textcap, job->text, job->text_len);
        }
    }
    tb_mutex_unlock(&engine.mu);
    return rc;
}

int tb_read_text(tb_handle handle, char *text, size_t textcap, uint64_t *out_len, char *err,
                 size_t errlen) {
    if (out_len) *out_len = 0;
    tb_copy_text(text, textcap, "", 0);
    int rc = enter(err, errlen);
    if (rc != TB_OK) return rc;
    tb_job *job = find_locked(handle, &rc, err, errlen);
    if (job != NULL && !is_finished(job->state)) {
        rc = tb_set_err(err, errlen, TB_ESTATE, "job has not finished");
    } else if (job != NULL) {
        if (out_len) *out_len = job->text_len;
        tb_copy_text(text, textcap, job->text, job->text_len);
    }
    tb_mutex_unlock(&engine.mu);
    return rc;
}

int tb_cancel(tb_handle handle, char *err, size_t errlen) {
    int rc = enter(err, errlen);
    if (rc != TB_OK) return rc;
    tb_job *job = find_locked(handle, &rc, err, errlen);
    if (job != NULL) cancel_locked(job);
    tb_mutex_unlock(&engine.mu);
    return rc;
}

int tb_free(tb_handle handle, char *err, size_t errlen) {
    int rc = enter(err, errlen);
    if (rc != TB_OK) return rc;
    tb_job *job = find_locked(handle, &rc, err, errlen);
    if (job != NULL) {
        cancel_locked(job);
        notifier_forget(&engine.notifier, job);
        job_table_remove(&engine.table, job);
        if (job->on_worker) job->released = true; /* the worker destroys it when it lets go */
        else tb_job_destroy(job);
        notifier_settle(&engine.notifier);
    }
    tb_mutex_unlock(&engine.mu);
    return rc;
}

int tb_notify_fd(int *out_fd, char *err, size_t errlen) {
    if (out_fd == NULL) return tb_set_err(err, errlen, TB_EINVAL, "out_fd is NULL");
    *out_fd = -1;
    int rc = enter(err, errlen);
    if (rc != TB_OK) return rc;
    *out_fd = engine.notifier.fd;
    tb_mutex_unlock(&engine.mu);
    return TB_OK;
}

size_t tb_drain_changes(tb_change *out, size_t max) {
    size_t n = 0;
    if (out == NULL || enter(NULL, 0) != TB_OK) return 0;
    tb_job *job;
    while (n < max && (job = notifier_take(&engine.notifier)) != NULL) {
        out[n++] = (tb_change){tb_handle_of(job), job->state, job->progress, job->finished_at_us};
    }
    notifier_settle(&engine.notifier);
    tb_mutex_unlock(&engine.mu);
    return n;
}
