/*
 * common.c: error messages, the monotonic clock and checked pthread calls.
 *
 * A pthread call that fails here means a broken mutex or condition variable
 * (EINVAL, EDEADLK, ...): the engine's invariants are gone, so the library
 * prints the call and aborts, as libuv does, rather than run on corrupted.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int tb_set_err(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

_Noreturn void tb_pthread_fatal(const char *call, int rc, const char *file, int line) {
    fprintf(stderr, "taskbeat_alg: %s failed at %s:%d: %s (%d)\n", call, file, line,
            strerror(rc), rc);
    fflush(stderr);
    abort();
}

void tb_mutex_lock(pthread_mutex_t *mu) { TB_PTHREAD_CHECK(pthread_mutex_lock(mu)); }

void tb_mutex_unlock(pthread_mutex_t *mu) { TB_PTHREAD_CHECK(pthread_mutex_unlock(mu)); }

void tb_cond_init_monotonic(pthread_cond_t *cv) {
    pthread_condattr_t attr;
    TB_PTHREAD_CHECK(pthread_condattr_init(&attr));
    TB_PTHREAD_CHECK(pthread_condattr_setclock(&attr, CLOCK_MONOTONIC));
    TB_PTHREAD_CHECK(pthread_cond_init(cv, &attr));
    TB_PTHREAD_CHECK(pthread_condattr_destroy(&attr));
}

void tb_cond_init(pthread_cond_t *cv) { TB_PTHREAD_CHECK(pthread_cond_init(cv, NULL)); }

void tb_cond_destroy(pthread_cond_t *cv) { TB_PTHREAD_CHECK(pthread_cond_destroy(cv)); }

void tb_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu) {
    TB_PTHREAD_CHECK(pthread_cond_wait(cv, mu));
}

void tb_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t deadline_ns) {
    struct timespec ts = {(time_t)(deadline_ns / 1000000000ULL),
                          (long)(deadline_ns % 1000000000ULL)};
    int rc = pthread_cond_timedwait(cv, mu, &ts);
    if (rc != 0 && rc != ETIMEDOUT) tb_pthread_fatal("pthread_cond_timedwait", rc, __FILE__, __LINE__);
}

void tb_cond_signal(pthread_cond_t *cv) { TB_PTHREAD_CHECK(pthread_cond_signal(cv)); }

void tb_cond_broadcast(pthread_cond_t *cv) { TB_PTHREAD_CHECK(pthread_cond_broadcast(cv)); }

void tb_thread_join(pthread_t thread) { TB_PTHREAD_CHECK(pthread_join(thread, NULL)); }

uint64_t tb_now_ns(void) {
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail on Linux; a zero time would only make steps due early. */
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t tb_unix_us(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}

void tb_copy_text(char *dst, size_t cap, const char *src, size_t len) {
    if (dst == NULL || cap == 0) return;
    size_t n = len < cap - 1 ? len : cap - 1;
    if (n > 0) memcpy(dst, src, n);
    dst[n] = '\0';
}
