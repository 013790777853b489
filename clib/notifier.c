/*
 * notifier.c: the file descriptor the caller's event loop waits on, and the
 * list of jobs that changed (progress or state) since the last drain.
 *
 * Coalescing is by membership: a job is on the list at most once, keeping
 * the place of its first change, and the drain reads its state and progress
 * as they are then. So a job that stepped three times shows once, and a
 * finish right after a step is never lost: it is the state the drain reads.
 * The fd is an eventfd, raised when the list goes from empty to non-empty
 * and cleared when a drain empties it. Called with the engine's mutex held.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

int notifier_open(tb_notifier *n, char *err, size_t errlen) {
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) return tb_set_err(err, errlen, TB_ESYS, "eventfd: %s", strerror(errno));
    n->fd = fd;
    return TB_OK;
}

void notifier_close(tb_notifier *n) {
    if (n->fd >= 0) close(n->fd);
    n->fd = -1;
    while (tb_list_pop_front(&n->changed) != NULL) {
    }
}

static void raise_fd(const tb_notifier *n) {
    uint64_t one = 1;
    ssize_t r = write(n->fd, &one, sizeof one);
    (void)r; /* EAGAIN: the counter is full, so the fd is readable, which is all we want */
}

static void clear_fd(const tb_notifier *n) {
    uint64_t count;
    ssize_t r = read(n->fd, &count, sizeof count);
    (void)r; /* EAGAIN: already clear */
}

void notifier_mark(tb_notifier *n, tb_job *job) {
    if (job->change_link.linked) return; /* coalesced with the change already waiting */
    bool was_empty = tb_list_empty(&n->changed);
    tb_list_push_back(&n->changed, &job->change_link);
    if (was_empty && n->fd >= 0) raise_fd(n);
}

void notifier_forget(tb_notifier *n, tb_job *job) { tb_list_remove(&n->changed, &job->change_link); }

tb_job *notifier_take(tb_notifier *n) {
    tb_link *link = tb_list_pop_front(&n->changed);
    return link ? TB_CONTAINER_OF(link, tb_job, change_link) : NULL;
}

void notifier_settle(tb_notifier *n) {
    if (tb_list_empty(&n->changed) && n->fd >= 0) clear_fd(n);
}
