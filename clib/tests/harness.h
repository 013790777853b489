/*
 * harness.h: what the C tests share. Each test is a function; CHECK records a
 * failure and goes on. main (harness.c) runs every group and prints
 * "N passed, N failed" last.
 */
#ifndef TASKBEAT_TEST_HARNESS_H
#define TASKBEAT_TEST_HARNESS_H

#include "../taskbeat_alg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

extern int checks_failed;
extern char err[512];

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            checks_failed++;                                                          \
        }                                                                             \
    } while (0)

#define CHECK_OK(expr)                                                                      \
    do {                                                                                    \
        int rc_ = (expr);                                                                   \
        if (rc_ != TB_OK) {                                                                 \
            fprintf(stderr, "  %s:%d: %s returned %d (%s)\n", __FILE__, __LINE__, #expr, rc_, \
                    err);                                                                   \
            checks_failed++;                                                                \
        }                                                                                   \
    } while (0)

typedef struct test_case {
    const char *name;
    void (*fn)(void);
} test_case;

/* The groups, run in this order (the engine's last test shuts the library down). */
extern const test_case INPUT_TESTS[];
extern const size_t INPUT_TESTS_COUNT;
extern const test_case NOTIFIER_TESTS[];
extern const size_t NOTIFIER_TESTS_COUNT;
extern const test_case ENGINE_TESTS[];
extern const size_t ENGINE_TESTS_COUNT;

double now_ms(void);
void sleep_ms(int ms);
tb_handle submit(const char *json);
/* Polls until the job finishes or timeout_ms passes; returns the last status. */
tb_status wait_finished(tb_handle h, int timeout_ms, char *text, size_t textcap);
bool fd_readable(int fd, int timeout_ms);
/* Drains every pending change, so a test starts with a quiet fd. */
void drain_all(void);
long worker_cores(void); /* the library's worker count: one per core, at most 64 */

#endif
