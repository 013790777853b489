/*
 * test_notifier.c: the notify fd and tb_drain_changes: every step and finish
 * wakes the caller, changes are coalesced per job, and none is ever lost.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int notify_fd(void) {
    int fd = -1;
    CHECK_OK(tb_notify_fd(&fd, err, sizeof err));
    CHECK(fd >= 0);
    drain_all();
    CHECK(!fd_readable(fd, 0));
    return fd;
}

/* The one change of `h` a single drain returns (CHECKs there is exactly one, of h). */
static tb_change drain_one(tb_handle h) {
    tb_change out[4] = {{0}};
    size_t n = tb_drain_changes(out, 4);
    CHECK(n == 1 && out[0].handle == h);
    return out[0];
}

static void test_steps_and_finish_wake_the_caller(void) {
    int fd = notify_fd();
    tb_handle h = submit("{\"duration_ms\": 300, \"steps\": 10}");
    int last = 0, steps_seen = 0, finishes = 0;
    double t0 = now_ms();
    while (finishes == 0 && now_ms() - t0 < 3000) {
        if (!fd_readable(fd, 1000)) continue;
        tb_change c = drain_one(h);
        CHECK(c.progress > last); /* a drain reports only what moved */
        last = c.progress;
        if (c.state == TB_RUNNING) steps_seen++;
        else finishes++;
        CHECK(!fd_readable(fd, 0));
    }
    CHECK(finishes == 1 && last == 100);
    CHECK(steps_seen >= 5); /* steps 30 ms apart are each drained, not only the finish */
    CHECK(tb_drain_changes((tb_change[1]){{0}}, 1) == 0);
    CHECK_OK(tb_free(h, err, sizeof err));
}

static void test_changes_are_coalesced(void) {
    int fd = notify_fd();
    tb_handle h = submit("{\"duration_ms\": 100, \"steps\": 10, \"hang\": true}");
    sleep_ms(250); /* nine steps done, nothing drained */
    CHECK(fd_readable(fd, 0));
    tb_change c = drain_one(h);
    CHECK(c.state == TB_RUNNING && c.progress == 90);
    CHECK(!fd_readable(fd, 50)); /* hangs: no more steps */
    CHECK_OK(tb_cancel(h, err, sizeof err));
    c = drain_one(h);
    CHECK(c.state == TB_CANCELLED && c.progress == 90);
    CHECK_OK(tb_free(h, err, sizeof err));
}

static void test_finish_right_after_a_step_is_not_lost(void) {
    int fd = notify_fd();
    /* The last step and the finish come together: one change, the finish. */
    tb_handle h = submit("{\"duration_ms\": 40, \"steps\": 2}");
    sleep_ms(100);
    tb_change c = drain_one(h);
    CHECK(c.state == TB_SUCCEEDED && c.progress == 100);
    CHECK_OK(tb_free(h, err, sizeof err));
    /* Drained after the step, then finished: the finish comes as a change of its own. */
    h = submit("{\"duration_ms\": 200, \"steps\": 2}");
    CHECK(fd_readable(fd, 2000));
    c = drain_one(h);
    CHECK(c.state == TB_RUNNING && c.progress == 50);
    CHECK(fd_readable(fd, 2000));
    c = drain_one(h);
    CHECK(c.state == TB_SUCCEEDED && c.progress == 100);
    CHECK_OK(tb_free(h, err, sizeof err));
    /* A step, then a failure right after. */
    h = submit("{\"duration_ms\": 40, \"steps\": 4, \"fail_at_step\": 4}");
    sleep_ms(100);
    c = drain_one(h);
    CHECK(c.state == TB_FAILED && c.progress == 75);
    CHECK_OK(tb_free(h, err, sizeof err));
}

static uint64_t unix_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}

static void test_a_finish_says_when_it_happened(void) {
    int fd = notify_fd();
    uint64_t submitted_us = unix_us();
    tb_handle h = submit("{\"duration_ms\": 200, \"steps\": 2}");
    CHECK(fd_readable(fd, 2000));
    tb_change c = drain_one(h);
    CHECK(c.state == TB_RUNNING && c.finished_at_us == 0); /* a step is no finish */
    CHECK(fd_readable(fd, 2000));
    c = drain_one(h);
    uint64_t drained_us = unix_us();
    CHECK(c.state == TB_SUCCEEDED);
    CHECK(c.finished_at_us >= submitted_us + 200 * 1000 && c.finished_at_us <= drained_us);
    CHECK_OK(tb_free(h, err, sizeof err));
    /* A cancel is a finish too, stamped when it was asked. */
    h = submit("{\"duration_ms\": 60000}");
    uint64_t cancel_us = unix_us();
    CHECK_OK(tb_cancel(h, err, sizeof err));
    c = drain_one(h);
    CHECK(c.state == TB_CANCELLED && c.finished_at_us >= cancel_us && c.finished_at_us <= unix_us());
    CHECK_OK(tb_free(h, err, sizeof err));
}

static void test_drain_limits_order_and_freed_jobs(void) {
    int fd = notify_fd();
    /* More changed than the caller takes: the rest wait, the fd stays readable. */
    tb_handle hs[5];
    for (int k = 0; k < 5; k++) hs[k] = submit("{\"duration_ms\": 0}");
    tb_change out[4];
    CHECK(fd_readable(fd, 0));
    CHECK(tb_drain_changes(out, 3) == 3);
    CHECK(out[0].handle == hs[0] && out[2].handle == hs[2]);
    CHECK(fd_readable(fd, 0));
    CHECK(tb_drain_changes(out, 3) == 2);
    CHECK(out[0].handle == hs[3] && out[1].handle == hs[4]);
    CHECK(out[1].state == TB_SUCCEEDED && out[1].progress == 100);
    CHECK(!fd_readable(fd, 0));
    for (int k = 0; k < 5; k++) CHECK_OK(tb_free(hs[k], err, sizeof err));
    /* A job freed before the drain is left out, and the fd quiets when it was the last. */
    tb_handle gone = submit("{\"duration_ms\": 0}");
    tb_handle kept = submit("{\"duration_ms\": 0}");
    CHECK_OK(tb_free(gone, err, sizeof err));
    (void)drain_one(kept);
    CHECK_OK(tb_free(kept, err, sizeof err));
    gone = submit("{\"duration_ms\": 0}");
    CHECK(fd_readable(fd, 0));
    CHECK_OK(tb_free(gone, err, sizeof err));
    CHECK(!fd_readable(fd, 0));
    /* A spin job's start (queued -> running) is a change too. */
    tb_handle spin = submit("{\"duration_ms\": 5000, \"steps\": 1, \"mode\": \"spin\"}");
    CHECK(fd_readable(fd, 1000));
    tb_change c = drain_one(spin);
    CHECK(c.state == TB_RUNNING && c.progress == 0);
    CHECK_OK(tb_free(spin, err, sizeof err));
    drain_all();
}

/* Per-job record of what the drains reported. */
typedef struct seen_job {
    int changes;
    int finishes;
    int last_progress;
    int last_state;
    bool after_finish; /* a change came after the finish */
    bool went_back;    /* progress did not move forward */
} seen_job;

/* Drains until `expected` jobs finished or timeout_ms passed, recording each change. The
 * handles' slots index `seen` (all jobs are alive, so slots are distinct). */
static int drain_until_finished(int fd, int expected, int timeout_ms, seen_job *seen,
                                size_t nseen, int *wakeups) {
    tb_change buf[512];
    int finished = 0;
    double t0 = now_ms();
    while (finished < expected && now_ms() - t0 < timeout_ms) {
        if (!fd_readable(fd, 100)) continue;
        (*wakeups)++;
        size_t n;
        while ((n = tb_drain_changes(buf, 512)) > 0) {
            for (size_t k = 0; k < n; k++) {
                uint32_t slot = (uint32_t)buf[k].handle;
                if (slot >= nseen) {
                    CHECK(slot < nseen);
                    continue;
                }
                seen_job *s = &seen[slot];
                if (s->finishes > 0) s->after_finish = true;
                if (buf[k].progress <= s->last_progress && buf[k].state == TB_RUNNING)
                    s->went_back = true;
                s->changes++;
                s->last_progress = buf[k].progress;
                s->last_state = buf[k].state;
                if (buf[k].state >= TB_SUCCEEDED) {
                    s->finishes++;
                    finished++;
                }
            }
        }
    }
    return finished;
}

static void test_ten_thousand_jobs_of_ten_steps(void) {
    enum { N = 10000, SEEN = 1 << 16 };
    tb_handle *hs = malloc(N * sizeof *hs);
    seen_job *seen = calloc(SEEN, sizeof *seen);
    int fd = notify_fd();
    double t0 = now_ms();
    for (int k = 0; k < N; k++) {
        char json[96];
        /* Every tenth fails at its last step: the failure right after a step. */
        snprintf(json, sizeof json, "{\"duration_ms\": %d, \"steps\": 10%s}",
                 200 + (k * 37) % 300, k % 10 ? "" : ", \"fail_at_step\": 10");
        hs[k] = submit(json);
        seen[(uint32_t)hs[k]].last_progress = -1;
    }
    double submit_ms = now_ms() - t0;
    int wakeups = 0;
    int finished = drain_until_finished(fd, N, 20000, seen, SEEN, &wakeups);
    double total_ms = now_ms() - t0;
    CHECK(finished == N);
    int bad = 0, changes = 0;
    for (int k = 0; k < N; k++) {
        const seen_job *s = &seen[(uint32_t)hs[k]];
        bool fails = k % 10 == 0;
        bool ok = s->finishes == 1 && !s->after_finish && !s->went_back && s->changes <= 10 &&
                  s->last_state == (fails ? TB_FAILED : TB_SUCCEEDED) &&
                  s->last_progress == (fails ? 90 : 100);
        bad += !ok;
        changes += s->changes;
    }
    CHECK(bad == 0);
    for (int k = 0; k < N; k++) CHECK_OK(tb_free(hs[k], err, sizeof err));
    printf("  10000 jobs x 10 steps: submitted in %.0f ms, all finished in %.0f ms, "
           "%d changes drained in %d wake-ups\n",
           submit_ms, total_ms, changes, wakeups);
    CHECK(total_ms < 5000);
    free(hs);
    free(seen);
}

/* Another thread drains in a tight loop while the timer steps and finishes
 * jobs, and while a third thread cancels some: each job ends exactly once. */
enum { RACE_JOBS = 2000, RACE_SEEN = 1 << 16 };
static tb_handle race_handles[RACE_JOBS];
static atomic_bool race_submitted;

static void *cancel_some(void *arg) {
    (void)arg;
    char e[256];
    while (!atomic_load(&race_submitted)) {
    }
    for (int k = 0; k < RACE_JOBS; k += 7) {
        int rc = tb_cancel(race_handles[k], e, sizeof e);
        if (rc != TB_OK) {
            fprintf(stderr, "  cancel: %s\n", e);
            return (void *)1;
        }
    }
    return NULL;
}

static void test_drains_racing_steps_and_cancels(void) {
    seen_job *seen = calloc(RACE_SEEN, sizeof *seen);
    int fd = notify_fd();
    pthread_t canceller;
    atomic_store(&race_submitted, false);
    CHECK(pthread_create(&canceller, NULL, cancel_some, NULL) == 0);
    for (int k = 0; k < RACE_JOBS; k++) {
        char json[96];
        snprintf(json, sizeof json, "{\"duration_ms\": %d, \"steps\": %d}", k % 50, 1 + k % 10);
        race_handles[k] = submit(json);
        seen[(uint32_t)race_handles[k]].last_progress = -1;
    }
    atomic_store(&race_submitted, true);
    int wakeups = 0;
    int finished = drain_until_finished(fd, RACE_JOBS, 10000, seen, RACE_SEEN, &wakeups);
    void *result = NULL;
    CHECK(pthread_join(canceller, &result) == 0 && result == NULL);
    CHECK(finished == RACE_JOBS);
    int bad = 0;
    for (int k = 0; k < RACE_JOBS; k++) {
        const seen_job *s = &seen[(uint32_t)race_handles[k]];
        bad += s->finishes != 1 || s->after_finish || s->went_back;
        CHECK_OK(tb_free(race_handles[k], err, sizeof err));
    }
    CHECK(bad == 0);
    CHECK(!fd_readable(fd, 0));
    free(seen);
}

const test_case NOTIFIER_TESTS[] = {
    {"steps_and_finish_wake_the_caller", test_steps_and_finish_wake_the_caller},
    {"changes_are_coalesced", test_changes_are_coalesced},
    {"finish_right_after_a_step_is_not_lost", test_finish_right_after_a_step_is_not_lost},
    {"a_finish_says_when_it_happened", test_a_finish_says_when_it_happened},
    {"drain_limits_order_and_freed_jobs", test_drain_limits_order_and_freed_jobs},
    {"ten_thousand_jobs_of_ten_steps", test_ten_thousand_jobs_of_ten_steps},
    {"drains_racing_steps_and_cancels", test_drains_racing_steps_and_cancels},
};
const size_t NOTIFIER_TESTS_COUNT = sizeof NOTIFIER_TESTS / sizeof NOTIFIER_TESTS[0];
