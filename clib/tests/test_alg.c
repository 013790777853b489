/*
 * Tests for taskbeat_alg, run under ASan/UBSan by `make -C clib test`.
 * Each test is a function; CHECK records a failure and goes on. The last line
 * printed is "N passed, N failed".
 */
#define _GNU_SOURCE
#include "../taskbeat_alg.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int checks_failed;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            checks_failed++;                                                        \
        }                                                                           \
    } while (0)

#define CHECK_OK(expr)                                                                  \
    do {                                                                                \
        int rc_ = (expr);                                                               \
        if (rc_ != TB_OK) {                                                             \
            fprintf(stderr, "  %s:%d: %s returned %d (%s)\n", __FILE__, __LINE__, #expr, rc_, \
                    err);                                                               \
            checks_failed++;                                                            \
        }                                                                               \
    } while (0)

static char err[512];

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static tb_handle submit(const char *json) {
    tb_handle h = 0;
    CHECK_OK(tb_submit(json, strlen(json), &h, err, sizeof err));
    return h;
}

/* Polls until the job finishes or timeout_ms passes; returns the last status. */
static tb_status wait_finished(tb_handle h, int timeout_ms, char *text, size_t textcap) {
    tb_status st = {0};
    double deadline = now_ms() + timeout_ms;
    while (now_ms() < deadline) {
        int rc = tb_poll(h, &st, text, textcap, err, sizeof err);
        if (rc == TB_OK && st.state >= TB_SUCCEEDED) break;
        sleep_ms(5);
    }
    return st;
}

static bool fd_readable(int fd, int timeout_ms) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

/* Drains everything pending, so each test starts with a quiet fd. */
static void drain_all(void) {
    tb_handle buf[256];
    while (tb_drain_finished(buf, 256) > 0) {
    }
}

/* ------------------------------------------------------------------ */

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
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    if (cores > 64) cores = 64;
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
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    if (cores > 64) cores = 64;
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

static void test_long_output_and_unicode(void) {
    size_t n = 60000;
    char *json = malloc(n + 64);
    char *text = malloc(n + 1);
    int off = sprintf(json, "{\"duration_ms\": 0, \"output\": \"");
    for (size_t k = 0; k < n; k++) json[off + (int)k] = (char)('a' + k % 26);
    strcpy(json + off + n, "\"}");
    tb_handle h = submit(json);
    tb_status st;
    char small[16];
    CHECK_OK(tb_poll(h, &st, small, sizeof small, err, sizeof err));
    CHECK(st.state == TB_SUCCEEDED && st.text_len == n);
    CHECK(strcmp(small, "abcdefghijklmno") == 0); /* truncated, terminated */
    uint64_t len = 0;
    CHECK_OK(tb_read_text(h, text, n + 1, &len, err, sizeof err));
    CHECK(len == n && text[n - 1] == (char)('a' + (n - 1) % 26));
    CHECK_OK(tb_free(h, err, sizeof err));

    h = submit("{\"duration_ms\": 0, \"output\": \"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\\\ \xc3\xa9\"}");
    CHECK_OK(tb_poll(h, &st, text, n, err, sizeof err));
    CHECK(strcmp(text, "caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\" \\ \xc3\xa9") == 0);
    CHECK_OK(tb_free(h, err, sizeof err));

    h = submit("{\"duration_ms\": 1000}");
    CHECK(tb_read_text(h, text, n, &len, err, sizeof err) == TB_ESTATE);
    CHECK_OK(tb_free(h, err, sizeof err));
    free(json);
    free(text);
}

static void test_bad_inputs(void) {
    static const struct {
        const char *input;
        const char *message;
    } cases[] = {
        {"", "empty"},
        {"   ", "empty"},
        {"[]", "must be a JSON object"},
        {"42", "must be a JSON object"},
        {"{", "expected a field name"},
        {"{\"steps\": 3", "expected ',' or '}'"},
        {"{\"steps\" 3}", "expected ':'"},
        {"{\"steps\": }", "invalid value"},
        {"{\"steps\": 3,}", "expected a field name"},
        {"{\"steps\": 3} x", "unexpected data"},
        {"{\"bogus\": 1}", "unknown field \"bogus\""},
        {"{\"steps\": \"3\"}", "\"steps\" must be an integer, not a string"},
        {"{\"steps\": 2.5}", "must be an integer"},
        {"{\"steps\": 1e2}", "must be an integer"},
        {"{\"steps\": 0}", "\"steps\" must be between 1 and 1000"},
        {"{\"steps\": 1001}", "between 1 and 1000"},
        {"{\"duration_ms\": -1}", "\"duration_ms\" must be between 0"},
        {"{\"duration_ms\": 99999999999999999999999}", "must be between"},
        {"{\"duration_ms\": 86400001}", "must be between"},
        {"{\"poll_errors\": -2}", "\"poll_errors\" must be between"},
        {"{\"mode\": \"fast\"}", "\"sleep\" or \"spin\""},
        {"{\"mode\": 1}", "\"mode\" must be a string"},
        {"{\"hang\": 1}", "\"hang\" must be a boolean"},
        {"{\"output\": true}", "\"output\" must be a string"},
        {"{\"output\": {}}", "nested objects and arrays are not supported"},
        {"{\"output\": [1]}", "not supported"},
        {"{\"fail_at_step\": 11}", "must not exceed steps"},
        {"{\"fail_at_step\": 3, \"steps\": 2}", "must not exceed steps"},
        {"{\"steps\": 1, \"steps\": 2}", "duplicate field \"steps\""},
        {"{\"output\": \"abc}", "unterminated string"},
        {"{\"output\": \"a\\x\"}", "invalid escape"},
        {"{\"output\": \"\\u12\"}", "invalid \\u escape"},
        {"{\"output\": \"\\ud800\"}", "lone high surrogate"},
        {"{\"output\": \"\\udc00\"}", "lone low surrogate"},
        {"{\"output\": \"a\nb\"}", "control character"},
        {"{\"output\": \"\xff\"}", "invalid UTF-8"},
        {"{\"output\": \"\xed\xa0\x80\"}", "invalid UTF-8"},
        {"{\"steps\": 01}", "leading zero"},
        {"{\"steps\": -}", "invalid number"},
        {"{\"hang\": tru}", "invalid value"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        tb_handle h = 12345;
        err[0] = '\0';
        int rc = tb_submit(cases[k].input, strlen(cases[k].input), &h, err, sizeof err);
        if (rc != TB_EINVAL || h != 0 || strstr(err, cases[k].message) == NULL) {
            fprintf(stderr, "  bad input %zu (%s): rc=%d err=%s\n", k, cases[k].input, rc, err);
            checks_failed++;
        }
        err[0] = '\0';
        rc = tb_validate(cases[k].input, strlen(cases[k].input), err, sizeof err);
        CHECK(rc == TB_EINVAL && strstr(err, cases[k].message) != NULL);
    }
    /* Too large, even if well-formed. */
    size_t big = TB_MAX_INPUT_BYTES + 1;
    char *json = malloc(big);
    memset(json, ' ', big);
    json[0] = '{';
    json[big - 1] = '}';
    CHECK(tb_validate(json, big, err, sizeof err) == TB_EINVAL);
    CHECK(strstr(err, "limit is 65536 bytes") != NULL);
    json[big - 2] = '}';
    CHECK_OK(tb_validate(json, big - 1, err, sizeof err));
    free(json);
    /* An embedded NUL is just a bad byte. */
    CHECK(tb_validate("{}\0", 3, err, sizeof err) == TB_EINVAL);
    /* Good inputs, including null as "default". */
    const char *good[] = {
        "{}",
        " { \"duration_ms\" : 0 , \"steps\":1000,\"mode\":\"spin\",\"fail_at_step\":1000,"
        "\"fail_message\":\"x\",\"poll_errors\":0,\"hang\":false,\"output\":\"\"} ",
        "{\"steps\": null, \"output\": null}",
        "{\"duration_ms\": 86400000}",
    };
    for (size_t k = 0; k < sizeof good / sizeof good[0]; k++)
        CHECK_OK(tb_validate(good[k], strlen(good[k]), err, sizeof err));
    /* A tiny error buffer is truncated, never overrun. */
    char tiny[4] = {'x', 'x', 'x', 'x'};
    CHECK(tb_validate("[]", 2, tiny, sizeof tiny) == TB_EINVAL && tiny[3] == '\0');
    CHECK(tb_validate("[]", 2, NULL, 0) == TB_EINVAL);
}

static void test_fuzz_parser(void) {
    static const char seed[] =
        "{\"duration_ms\": 10, \"steps\": 5, \"mode\": \"sleep\", \"fail_message\": \"a\\u00e9\\n\", "
        "\"hang\": false, \"output\": \"x\", \"poll_errors\": 0, \"fail_at_step\": 5}";
    char buf[sizeof seed + 16];
    unsigned seedv = 12345;
    int accepted = 0;
    for (int round = 0; round < 20000; round++) {
        size_t len = sizeof seed - 1;
        memcpy(buf, seed, len);
        int mutations = 1 + rand_r(&seedv) % 4;
        for (int m = 0; m < mutations && len > 0; m++) {
            size_t at = (size_t)rand_r(&seedv) % len;
            switch (rand_r(&seedv) % 3) {
            case 0: buf[at] = (char)(rand_r(&seedv) & 0xFF); break;
            case 1: len = at; break; /* truncate */
            default: buf[at] = "{}[]\",:\\u0-e.tfn "[rand_r(&seedv) % 18]; break;
            }
        }
        if (tb_validate(buf, len, err, sizeof err) == TB_OK) accepted++;
        else CHECK(err[0] != '\0');
    }
    for (int round = 0; round < 5000; round++) {
        size_t len = (size_t)(rand_r(&seedv) % 64);
        for (size_t k = 0; k < len; k++) buf[k] = (char)(rand_r(&seedv) & 0xFF);
        tb_validate(buf, len, err, sizeof err);
    }
    CHECK(accepted > 0);
}

static void test_notify_fd(void) {
    int fd = -1;
    CHECK_OK(tb_notify_fd(&fd, err, sizeof err));
    CHECK(fd >= 0);
    drain_all();
    CHECK(!fd_readable(fd, 0));
    tb_handle h = submit("{\"duration_ms\": 150, \"steps\": 10}");
    CHECK(!fd_readable(fd, 100)); /* progress steps do not wake the caller */
    double t0 = now_ms();
    CHECK(fd_readable(fd, 2000));
    double woke = now_ms() - t0;
    CHECK(woke < 150);
    tb_handle out[4];
    CHECK(tb_drain_finished(out, 4) == 1 && out[0] == h);
    CHECK(!fd_readable(fd, 0));
    CHECK(tb_drain_finished(out, 4) == 0);

    /* More finished than the caller takes: the rest wait, the fd stays readable. */
    tb_handle hs[5];
    for (int k = 0; k < 5; k++) hs[k] = submit("{\"duration_ms\": 0}");
    CHECK(fd_readable(fd, 0));
    CHECK(tb_drain_finished(out, 3) == 3);
    CHECK(out[0] == hs[0] && out[2] == hs[2]);
    CHECK(fd_readable(fd, 0));
    CHECK(tb_drain_finished(out, 3) == 2);
    CHECK(out[0] == hs[3] && out[1] == hs[4]);
    CHECK(!fd_readable(fd, 0));

    /* A job freed before the drain is not reported. */
    tb_handle gone = submit("{\"duration_ms\": 0}");
    tb_handle kept = submit("{\"duration_ms\": 0}");
    CHECK_OK(tb_free(gone, err, sizeof err));
    CHECK(tb_drain_finished(out, 4) == 1 && out[0] == kept);
    CHECK(!fd_readable(fd, 0));

    /* Cancel notifies too. */
    tb_handle c = submit("{\"hang\": true}");
    CHECK(!fd_readable(fd, 20));
    CHECK_OK(tb_cancel(c, err, sizeof err));
    CHECK(fd_readable(fd, 0));
    CHECK(tb_drain_finished(out, 4) == 1 && out[0] == c);

    CHECK_OK(tb_free(h, err, sizeof err));
    for (int k = 0; k < 5; k++) CHECK_OK(tb_free(hs[k], err, sizeof err));
    CHECK_OK(tb_free(kept, err, sizeof err));
    CHECK_OK(tb_free(c, err, sizeof err));
}

static int cmp_handle(const void *a, const void *b) {
    tb_handle x = *(const tb_handle *)a, y = *(const tb_handle *)b;
    return (x > y) - (x < y);
}

static void test_ten_thousand_jobs(void) {
    enum { N = 10000 };
    tb_handle *hs = malloc(N * sizeof *hs);
    char *seen = calloc(N, 1);
    tb_handle *drained = calloc(N, sizeof *drained);
    int fd;
    CHECK_OK(tb_notify_fd(&fd, err, sizeof err));
    drain_all();
    double t0 = now_ms();
    for (int k = 0; k < N; k++) {
        char json[96];
        snprintf(json, sizeof json, "{\"duration_ms\": %d, \"steps\": 10}", 200 + (k * 37) % 300);
        hs[k] = submit(json);
    }
    double submit_ms = now_ms() - t0;
    int finished = 0, wakeups = 0;
    tb_handle buf[512];
    while (finished < N && now_ms() - t0 < 20000) {
        if (!fd_readable(fd, 1000)) continue;
        wakeups++;
        size_t n;
        while ((n = tb_drain_finished(buf, 512)) > 0) {
            for (size_t k = 0; k < n && finished < N; k++) drained[finished++] = buf[k];
        }
    }
    double total_ms = now_ms() - t0;
    CHECK(finished == N);
    /* Each job was reported exactly once. */
    qsort(drained, (size_t)finished, sizeof *drained, cmp_handle);
    tb_handle *sorted = malloc(N * sizeof *sorted);
    memcpy(sorted, hs, N * sizeof *sorted);
    qsort(sorted, N, sizeof *sorted, cmp_handle);
    CHECK(finished == N && memcmp(sorted, drained, N * sizeof *sorted) == 0);
    free(sorted);
    for (int k = 0; k < N; k++) {
        tb_status st;
        char text[16];
        CHECK_OK(tb_poll(hs[k], &st, text, sizeof text, err, sizeof err));
        if (st.state != TB_SUCCEEDED || st.progress != 100 || strcmp(text, "hello world") != 0) {
            seen[k] = 1;
        }
    }
    int bad = 0;
    for (int k = 0; k < N; k++) bad += seen[k];
    CHECK(bad == 0);
    for (int k = 0; k < N; k++) CHECK_OK(tb_free(hs[k], err, sizeof err));
    printf("  10000 jobs: submitted in %.0f ms, all finished in %.0f ms, %d wake-ups\n",
           submit_ms, total_ms, wakeups);
    CHECK(total_ms < 5000);
    free(hs);
    free(seen);
    free(drained);
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
            tb_handle buf[16];
            tb_drain_finished(buf, 16);
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
    for (int k = 0; k < 6; k++) pthread_create(&threads[k], NULL, hammer, (void *)(uintptr_t)(k + 1));
    for (int k = 0; k < 6; k++) pthread_join(threads[k], NULL);
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

int main(void) {
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"version", test_version},
        {"hello_world", test_hello_world},
        {"defaults_take_three_seconds", test_defaults_take_three_seconds},
        {"progress_advances", test_progress_advances},
        {"zero_duration_finishes_at_once", test_zero_duration_finishes_at_once},
        {"cancel_is_fast", test_cancel_is_fast},
        {"cancel_frees_workers_fast", test_cancel_frees_workers_fast},
        {"cancel_finished_is_noop", test_cancel_finished_is_noop},
        {"fail_at_step", test_fail_at_step},
        {"poll_errors", test_poll_errors},
        {"hang_and_cancel", test_hang_and_cancel},
        {"spin_and_queueing", test_spin_and_queueing},
        {"free_queued_and_running", test_free_queued_and_running},
        {"freed_handles_refused", test_freed_handles_refused},
        {"long_output_and_unicode", test_long_output_and_unicode},
        {"bad_inputs", test_bad_inputs},
        {"fuzz_parser", test_fuzz_parser},
        {"notify_fd", test_notify_fd},
        {"ten_thousand_jobs", test_ten_thousand_jobs},
        {"concurrent_calls", test_concurrent_calls},
        {"shutdown_and_restart", test_shutdown_and_restart},
    };
    int passed = 0, failed = 0;
    for (size_t k = 0; k < sizeof tests / sizeof tests[0]; k++) {
        int before = checks_failed;
        double t0 = now_ms();
        tests[k].fn();
        bool ok = checks_failed == before;
        printf("%s %s (%.0f ms)\n", ok ? "PASS" : "FAIL", tests[k].name, now_ms() - t0);
        fflush(stdout);
        if (ok) passed++;
        else failed++;
    }
    tb_shutdown();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
