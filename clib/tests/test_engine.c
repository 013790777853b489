/* test_engine.c: jobs run, step, fail, cancel and free as the switches say, from any thread. */
#define _GNU_SOURCE
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void test_version(void) {
    CHECK(tb_version() == TB_API_VERSION);
    CHECK_OK(tb_init(err, sizeof err));
    CHECK_OK(tb_init(err, sizeof err));
}

static void test_hello_world(void) {
    char text[64];
    tb_handle h = submit("{\"duration_ms\": 200, \"steps\": 4}");
    tb_status st = wait_finished(h, 3000, text, sizeof text);
    CHECK(st.state == TB_SUCCEEDED);
    CHECK(st.progress == 100);
    CHECK(st.text_len == 11);
    CHECK(strcmp(text, "hello world") == 0);
    CHECK_OK(tb_free(h, err, sizeof err));
}

static void test_defaults_take_three_seconds(void) {
    tb_status st;
    tb_handle h = submit("{}");
    CHECK_OK(tb_poll(h, &st, NULL, 0, err, sizeof err));
    CHECK(st.state == TB_RUNNING && st.progress == 0);
    sleep_ms(400);
    CHECK_OK(tb_poll(h, &st, NULL, 0, err, sizeof err));
    CHECK(st.state == TB_RUNNING && st.progress == 10);
    CHECK_OK(tb_free(h, err, sizeof err));
}

static void test_progress_advances(void) {
    tb_status st;
    tb_handle h = submit("{\"duration_ms\": 1000, \"steps\": 10, \"output\": \"done\"}");
    int last = -1, distinct = 0;
    double deadline = now_ms() + 3000;
    char text[16];
    while (now_ms() < deadline) {
        CHECK_OK(tb_poll(h, &st, text, sizeof text, err, sizeof err));
        CHECK(st.progress >= last);
        CHECK(st.progress % 10 == 0);
        if (st.progress != last) distinct++;
        last = st.progress;
        if (st.state == TB_SUCCEEDED) break;
        sleep_ms(20);
    }
    CHECK(st.state == TB_SUCCEEDED && strcmp(text, "done") == 0);
    CHECK(distinct >= 6); /* saw progress move through several steps */
    CHECK_OK(tb_free(h, err, sizeof err));
}

static void test_zero_duration_finishes_at_once(void) {
    tb_status st;
    tb_handle h = submit("{\"duration_ms\": 0}");
    CHECK_OK(tb_poll(h, &st, NULL, 0, err, sizeof err));
    CHECK(st.state == TB_SUCCEEDED && st.progress == 100);
    CHECK_OK(tb_free(h, err, sizeof err));
}

static void test_cancel_is_fast(void) {
    const char *inputs[] = {"{\"duration_ms\": 10000}", "{\"duration_ms\": 10000, \"mode\": \"spin\"}"};
    for (int k = 0; k < 2; k++) {
        char text[32];
        tb_status st;
        tb_handle h = submit(inputs[k]);
        sleep_ms(50);
        double t0 = now_ms();
        CHECK_OK(tb_cancel(h, err, sizeof err));
        st = wait_finished(h, 1000, text, sizeof text);
        double took = now_ms() - t0;
        CHECK(st.state == TB_CANCELLED);
        CHECK(strcmp(text, "cancelled") == 0);
        CHECK(took < 100);
        CHECK_OK(tb_cancel(h, err, sizeof err)); /* again: a no-op */
        CHECK_OK(tb_poll(h, &st, NULL, 0, err, sizeof err));
        CHECK(st.state == TB_CANCELLED);
        CHECK_OK(tb_free(h, err, sizeof err));
    }
}

/* Cancelled spin jobs give their workers back at once: a new job starts running. */
static void test_cancel_frees_workers_fast(void) {
    long cores = worker_cores();
    tb_handle hs[64];
    for (long k = 0; k < cores; k++) hs[k] = submit("{\"hang\": true, \"mode\": \"spin\"}");
    sleep_ms(50);
    tb_handle next = submit("{\"duration_ms\": 5000, \"mode\": \"spin\"}");
    tb_status st;
    CHECK_OK(tb_poll(next, &st, NULL, 0, err, sizeof err));
    CHECK(st.state == TB_QUEUED);
    double t0 = now_ms();
    for (long k = 0; k < cores; k++) CHECK_OK(tb_cancel(hs[k], err, sizeof err));
    while (now_ms() - t0 < 1000) {
        CHECK_OK(tb_poll(next, &st, NULL, 0, err, sizeof err));
        if (st.state == TB_RUNNING) break;
        sleep_ms(1);
    }
    CHECK(st.state == TB_RUNNING);
    CHECK(now_ms() - t0 < 100);
    for (long k = 0; k < cores; k++) CHECK_OK(tb_free(hs[k], err, sizeof err));
    CHECK_OK(tb_free(next, err, sizeof err));
}

static void test_cancel_finished_is_noop(void) {
    tb_status st;
    tb_handle h = submit("{\"duration_ms\": 0}");
    CHECK_OK(tb_cancel(h, err, sizeof err));
    CHECK_OK(tb_poll(h, &st, NULL, 0, err, sizeof err));
    CHECK(st.state == TB_SUCCEEDED);
    CHECK_OK(tb_free(h, err, sizeof err));
}

static void test_fail_at_step(void) {
    char text[64];
    tb_handle h = submit("{\"duration_ms\": 300, \"steps\": 10, \"fail_at_step\": 4, "
                         "\"fail_message\": \"disk on fire\"}");
    tb_status st = wait_finished(h, 3000, text, sizeof text);
    CHECK(st.state == TB_FAILED);
    CHECK(st.progress == 30);
    CHECK(strcmp(text, "disk on fire") == 0);
    CHECK_OK(tb_free(h, err, sizeof err));

    h = submit("{\"duration_ms\": 50, \"steps\": 2, \"fail_at_step\": 2, \"mode\": \"spin\"}");
    st = wait_finished(h, 3000, text, sizeof text);
    CHECK(st.state == TB_FAILED);
    CHECK(strcmp(text, "injected failure at step 2") == 0);
    CHECK_OK(tb_free(h, err, sizeof err));
}

static void test_fail_attempts(void) {
    char text[80];
    tb_handle h = submit("{\"duration_ms\": 20, \"fail_attempts\": 2, \"attempt\": 2}");
    tb_status st = wait_finished(h, 3000, text, sizeof text);
    CHECK(st.state == TB_FAILED);
    CHECK(strcmp(text, "injected failure on attempt 2 (fail_attempts 2)") == 0);
    CHECK_OK(tb_free(h, err, sizeof err));

    h = submit("{\"duration_ms\": 20, \"fail_attempts\": 2, \"attempt\": 3}");
    st = wait_finished(h, 3000, text, sizeof text);
    CHECK(st.state == TB_SUCCEEDED);
    CHECK_OK(tb_free(h, err, sizeof err));
    CHECK(tb_validate("{\"attempt\": 0}", 14, err, sizeof err) == TB_EINVAL);
}

static void test_poll_errors(void) {
    tb_status st;
    tb_handle h = submit("{\"duration_ms\": 0, \"poll_errors\": 3}");
    for (int k = 0; k < 3; k++) {
        err[0] = '\0';
        CHECK(tb_poll(h, &st, NULL, 0, err, sizeof err) == TB_EPOLL);
        CHECK(strstr(err, "injected poll error") != NULL);
    }
    CHECK_OK(tb_poll(h, &st, NULL, 0, err, sizeof err));
    CHECK(st.state == TB_SUCCEEDED);
    CHECK_OK(tb_free(h, err, sizeof err));
}

static void test_hang_and_cancel(void) {
    tb_status st;
    tb_handle h = submit("{\"duration_ms\": 100, \"steps\": 4, \"hang\": true}");
    sleep_ms(400);
    CHECK_OK(tb_poll(h, &st, NULL, 0, err, sizeof err));
    CHECK(st.state == TB_RUNNING);
    CHECK(st.progress == 75); /* every step but the last */
    CHECK_OK(tb_cancel(h, err, sizeof err));
    CHECK_OK(tb_poll(h, &st, NULL, 0, err, sizeof err));
    CHECK(st.state == TB_CANCELLED);
    CHECK_OK(tb_free(h, err, sizeof err));

    h = submit("{\"duration_ms\": 0, \"hang\": true, \"mode\": \"spin\"}");
    sleep_ms(50);
    CHECK_OK(tb_poll(h, &st, NULL, 0, err, sizeof err));
    CHECK(st.state == TB_RUNNING);
    CHECK_OK(tb_free(h, err, sizeof err)); /* frees a job a worker is spinning */
}

static void test_spin_and_queueing(void) {
    long cores = worker_cores();
    tb_handle hs[65];
    int n = (int)cores + 1;
    for (int k = 0; k < n; k++) hs[k] = submit("{\"duration_ms\": 300, \"mode\": \"spin\"}");
    /* Every worker takes one job; the last waits (polled, as workers start at their pace). */
    int queued = 0, running = 0;
    double deadline = now_ms() + 250;
    while (running < n - 1 && now_ms() < deadline) {
        sleep_ms(5);
        queued = running = 0;
        for (int k = 0; k < n; k++) {
            tb_status st;
            CHECK_OK(tb_poll(hs[k], &st, NULL, 0, err, sizeof err));
            queued += st.state == TB_QUEUED;
            running += st.state == TB_RUNNING;
        }
    }
    CHECK(queued == 1 && running == n - 1);
    for (int k = 0; k < n; k++) {
        char text[32];
        tb_status st = wait_finished(hs[k], 5000, text, sizeof text);
        CHECK(st.state == TB_SUCCEEDED && st.progress == 100);
        CHECK(strcmp(text, "hello world") == 0);
        CHECK_OK(tb_free(hs[k], err, sizeof err));
    }
}

static void test_free_queued_and_running(void) {
    tb_handle hs[80];
    for (int k = 0; k < 80; k++)
        hs[k] = submit(k % 2 ? "{\"duration_ms\": 5000, \"mode\": \"spin\"}" : "{\"duration_ms\": 5000}");
    for (int k = 79; k >= 0; k--) CHECK_OK(tb_free(hs[k], err, sizeof err));
}

static void test_freed_handles_refused(void) {
    tb_status st;
    tb_handle h = submit("{\"duration_ms\": 0}");
    CHECK_OK(tb_free(h, err, sizeof err));
    CHECK(tb_free(h, err, sizeof err) == TB_EHANDLE);
    CHECK(strstr(err, "unknown or freed handle") != NULL);
    CHECK(tb_poll(h, &st, NULL, 0, err, sizeof err) == TB_EHANDLE);
    CHECK(tb_cancel(h, err, sizeof err) == TB_EHANDLE);
    uint64_t len;
    CHECK(tb_read_text(h, NULL, 0, &len, err, sizeof err) == TB_EHANDLE);
    CHECK(tb_poll(0, &st, NULL, 0, err, sizeof err) == TB_EHANDLE);
    CHECK(tb_poll(UINT64_MAX, &st, NULL, 0, err, sizeof err) == TB_EHANDLE);
    /* The slot is reused by the next job, but the old handle stays dead. */
    tb_handle h2 = submit("{\"duration_ms\": 0}");
    CHECK((h2 & 0xFFFFFFFFu) == (h & 0xFFFFFFFFu));
    CHECK(h2 != h);
    CHECK(tb_free(h, err, sizeof err) == TB_EHANDLE);
    CHECK_OK(tb_poll(h2, &st, NULL, 0, err, sizeof err));
    CHECK_OK(tb_free(h2, err, sizeof err));
}

/* Several threads submit, poll, cancel and free, including each other's and
 * stale handles. Every call must answer TB_OK or TB_EHANDLE, never crash. */
enum { SHARED = 64 };
static _Atomic tb_handle shared_handles[SHARED];
static atomic_int unexpected;

static void *hammer(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg;
    char e[256];
    for (int iter = 0; iter < 10000; iter++) {
        int idx = rand_r(&seed) % SHARED;
        tb_handle h = atomic_load(&shared_handles[idx]);
        tb_status st;
        int rc = TB_OK;
        switch (rand_r(&seed) % 5) {
        case 0: {
            const char *in = rand_r(&seed) % 4 ? "{\"duration_ms\": 30, \"steps\": 3}"
                                               : "{\"duration_ms\": 20, \"mode\": \"spin\"}";
            tb_handle nh;
            rc = tb_submit(in, strlen(in), &nh, e, sizeof e);
            if (rc == TB_OK) {
                tb_handle old = atomic_exchange(&shared_handles[idx], nh);
                if (old) {
                    int r2 = tb_free(old, e, sizeof e);
                    if (r2 != TB_OK && r2 != TB_EHANDLE) atomic_fetch_add(&unexpected, 1);
                }
            }
            break;
        }
        case 1: rc = tb_poll(h, &st, NULL, 0, e, sizeof e); break;
        case 2: rc = tb_cancel(h, e, sizeof e); break;
        case 3: {
            tb_change buf[16];
            tb_drain_changes(buf, 16);
            break;
        }
        default:
            if (atomic_compare_exchange_strong(&shared_handles[idx], &h, 0) && h)
                rc = tb_free(h, e, sizeof e);
            break;
        }
        if (rc != TB_OK && rc != TB_EHANDLE) atomic_fetch_add(&unexpected, 1);
    }
    return NULL;
}

static void test_concurrent_calls(void) {
    pthread_t threads[6];
    for (int k = 0; k < 6; k++)
        CHECK(pthread_create(&threads[k], NULL, hammer, (void *)(uintptr_t)(k + 1)) == 0);
    for (int k = 0; k < 6; k++) CHECK(pthread_join(threads[k], NULL) == 0);
    CHECK(atomic_load(&unexpected) == 0);
    for (int k = 0; k < SHARED; k++) {
        tb_handle h = atomic_load(&shared_handles[k]);
        if (h) CHECK_OK(tb_free(h, err, sizeof err));
    }
    drain_all();
}

static void test_shutdown_and_restart(void) {
    tb_handle running = submit("{\"duration_ms\": 5000}");
    tb_handle spinning = submit("{\"duration_ms\": 5000, \"mode\": \"spin\"}");
    tb_handle done = submit("{\"duration_ms\": 0}");
    (void)done;
    sleep_ms(20);
    tb_shutdown(); /* frees all three */
    tb_status st;
    CHECK(tb_poll(running, &st, NULL, 0, err, sizeof err) == TB_EHANDLE);
    CHECK(tb_poll(spinning, &st, NULL, 0, err, sizeof err) == TB_EHANDLE);
    char text[16];
    tb_handle h = submit("{\"duration_ms\": 50}");
    CHECK(h != running && h != spinning && h != done);
    st = wait_finished(h, 2000, text, sizeof text);
    CHECK(st.state == TB_SUCCEEDED);
    CHECK_OK(tb_free(h, err, sizeof err));
}

const test_case ENGINE_TESTS[] = {
    {"version", test_version},
    {"hello_world", test_hello_world},
    {"defaults_take_three_seconds", test_defaults_take_three_seconds},
    {"progress_advances", test_progress_advances},
    {"zero_duration_finishes_at_once", test_zero_duration_finishes_at_once},
    {"cancel_is_fast", test_cancel_is_fast},
    {"cancel_frees_workers_fast", test_cancel_frees_workers_fast},
    {"cancel_finished_is_noop", test_cancel_finished_is_noop},
    {"fail_at_step", test_fail_at_step},
    {"fail_attempts", test_fail_attempts},
    {"poll_errors", test_poll_errors},
    {"hang_and_cancel", test_hang_and_cancel},
    {"spin_and_queueing", test_spin_and_queueing},
    {"free_queued_and_running", test_free_queued_and_running},
    {"freed_handles_refused", test_freed_handles_refused},
    {"concurrent_calls", test_concurrent_calls},
    {"shutdown_and_restart", test_shutdown_and_restart},
};
const size_t ENGINE_TESTS_COUNT = sizeof ENGINE_TESTS / sizeof ENGINE_TESTS[0];
