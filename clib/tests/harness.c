/* harness.c: the tests' helpers and main. */
#define _GNU_SOURCE
#include "harness.h"

#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int checks_failed;
char err[512];

double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

tb_handle submit(const char *json) {
    tb_handle h = 0;
    CHECK_OK(tb_submit(json, strlen(json), &h, err, sizeof err));
    return h;
}

tb_status wait_finished(tb_handle h, int timeout_ms, char *text, size_t textcap) {
    tb_status st = {0};
    double deadline = now_ms() + timeout_ms;
    while (now_ms() < deadline) {
        int rc = tb_poll(h, &st, text, textcap, err, sizeof err);
        if (rc == TB_OK && st.state >= TB_SUCCEEDED) break;
        sleep_ms(5);
    }
    return st;
}

bool fd_readable(int fd, int timeout_ms) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

void drain_all(void) {
    tb_change buf[256];
    while (tb_drain_changes(buf, 256) > 0) {
    }
}

long worker_cores(void) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    if (cores > 64) cores = 64;
    return cores;
}

static int run_group(const test_case *tests, size_t count, int *failed) {
    int passed = 0;
    for (size_t k = 0; k < count; k++) {
        int before = checks_failed;
        double t0 = now_ms();
        tests[k].fn();
        bool ok = checks_failed == before;
        printf("%s %s (%.0f ms)\n", ok ? "PASS" : "FAIL", tests[k].name, now_ms() - t0);
        fflush(stdout);
        if (ok) passed++;
        else (*failed)++;
    }
    return passed;
}

int main(void) {
    int passed = 0, failed = 0;
    passed += run_group(INPUT_TESTS, INPUT_TESTS_COUNT, &failed);
    passed += run_group(NOTIFIER_TESTS, NOTIFIER_TESTS_COUNT, &failed);
    passed += run_group(ENGINE_TESTS, ENGINE_TESTS_COUNT, &failed);
    tb_shutdown();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
