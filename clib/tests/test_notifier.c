/* test_notifier.c: the notify fd and tb_drain_finished: every finish wakes the caller once. */
#define _GNU_SOURCE
#include "harness.h"

#include <stdlib.h>
#include <string.h>

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

const test_case NOTIFIER_TESTS[] = {
    {"notify_fd", test_notify_fd},
    {"ten_thousand_jobs", test_ten_thousand_jobs},
};
const size_t NOTIFIER_TESTS_COUNT = sizeof NOTIFIER_TESTS / sizeof NOTIFIER_TESTS[0];
