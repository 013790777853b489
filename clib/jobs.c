/*
 * jobs.c: the job and the containers that hold it: the job table (slots
 * with generation-checked handles), the timer heap and intrusive lists.
 * None of them locks: the engine calls them with its mutex held.
 */
#include "internal.h"

#include <stdlib.h>

#define MAX_JOBS (1u << 24)

/* --- jobs ---------------------------------------------------------- */

tb_job *tb_job_new(void) {
    tb_job *job = calloc(1, sizeof *job);
    if (job == NULL) return NULL;
    job->heap_idx = SIZE_MAX;
    atomic_init(&job->stop, false);
    return job;
}

void tb_job_destroy(tb_job *job) {
    tb_options_free(&job->opt);
    free(job);
}

tb_handle tb_handle_of(const tb_job *job) { return ((tb_handle)job->gen << 32) | job->slot; }

/* --- intrusive lists ------------------------------------------------ */

void tb_list_push_back(tb_list *list, tb_link *link) {
    link->next = NULL;
    link->prev = list->tail;
    if (list->tail) list->tail->next = link;
    else list->head = link;
    list->tail = link;
    link->linked = true;
}

void tb_list_remove(tb_list *list, tb_link *link) {
    if (!link->linked) return;
    if (link->prev) link->prev->next = link->next;
    else list->head = link->next;
    if (link->next) link->next->prev = link->prev;
    else list->tail = link->prev;
    link->prev = link->next = NULL;
    link->linked = false;
}

tb_link *tb_list_pop_front(tb_list *list) {
    tb_link *link = list->head;
    if (link != NULL) tb_list_remove(list, link);
    return link;
}

/* --- job table ------------------------------------------------------ */

tb_job *job_table_lookup(const job_table *table, tb_handle h) {
    uint32_t slot = (uint32_t)(h & 0xFFFFFFFFu);
    uint32_t gen = (uint32_t)(h >> 32);
    if (gen == 0 || slot >= table->nslots) return NULL;
    const slot_entry *s = &table->slots[slot];
    if (s->gen != gen || s->job == NULL) return NULL;
    return s->job;
}

int job_table_add(job_table *table, tb_job *job, char *err, size_t errlen) {
    uint32_t slot;
    if (table->free_head != UINT32_MAX) {
        slot = table->free_head;
        table->free_head = table->slots[slot].next_free;
    } else {
        if (table->nslots >= MAX_JOBS)
            return tb_set_err(err, errlen, TB_ENOMEM, "too many jobs (limit %u)", MAX_JOBS);
        if (table->nslots == table->cap_slots) {
            uint32_t cap = table->cap_slots ? table->cap_slots * 2 : 1024;
            slot_entry *s = realloc(table->slots, (size_t)cap * sizeof *s);
            if (s == NULL) return tb_set_err(err, errlen, TB_ENOMEM, "out of memory");
            table->slots = s;
            table->cap_slots = cap;
        }
        slot = table->nslots++;
    }
    if (++table->next_gen == 0) table->next_gen = 1;
    table->slots[slot].job = job;
    table->slots[slot].gen = table->next_gen;
    table->slots[slot].next_free = UINT32_MAX;
    job->slot = slot;
    job->gen = table->next_gen;
    return TB_OK;
}

void job_table_remove(job_table *table, const tb_job *job) {
    slot_entry *s = &table->slots[job->slot];
    s->job = NULL;
    s->gen = 0;
    s->next_free = table->free_head;
    table->free_head = job->slot;
}

void job_table_clear(job_table *table) {
    for (uint32_t k = 0; k < table->nslots; k++) {
        if (table->slots[k].job) tb_job_destroy(table->slots[k].job);
    }
    free(table->slots);
    table->slots = NULL;
    table->nslots = table->cap_slots = 0;
    table->free_head = UINT32_MAX; /* next_gen stays: old handles stay dead */
}

/* --- timer heap ----------------------------------------------------- */

static void heap_set(timer_heap *heap, size_t i, heap_entry e) {
    heap->entries[i] = e;
    e.job->heap_idx = i;
}

static void heap_sift_up(timer_heap *heap, size_t i) {
    heap_entry e = heap->entries[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (heap->entries[parent].deadline_ns <= e.deadline_ns) break;
        heap_set(heap, i, heap->entries[parent]);
        i = parent;
    }
    heap_set(heap, i, e);
}

static void heap_sift_down(timer_heap *heap, size_t i) {
    heap_entry e = heap->entries[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= heap->len) break;
        if (child + 1 < heap->len &&
            heap->entries[child + 1].deadline_ns < heap->entries[child].deadline_ns)
            child++;
        if (e.deadline_ns <= heap->entries[child].deadline_ns) break;
        heap_set(heap, i, heap->entries[child]);
        i = child;
    }
    heap_set(heap, i, e);
}

int timer_heap_push(timer_heap *heap, tb_job *job, uint64_t deadline_ns, bool *earliest) {
    if (heap->len == heap->cap) {
        size_t cap = heap->cap ? heap->cap * 2 : 1024;
        heap_entry *entries = realloc(heap->entries, cap * sizeof *entries);
        if (entries == NULL) return TB_ENOMEM;
        heap->entries = entries;
        heap->cap = cap;
    }
    size_t i = heap->len++;
    heap->entries[i] = (heap_entry){deadline_ns, job};
    heap_sift_up(heap, i);
    *earliest = job->heap_idx == 0;
    return TB_OK;
}

void timer_heap_remove(timer_heap *heap, tb_job *job) {
    size_t i = job->heap_idx;
    if (i == SIZE_MAX) return;
    job->heap_idx = SIZE_MAX;
    size_t last = --heap->len;
    if (i == last) return;
    heap_entry moved = heap->entries[last];
    heap_set(heap, i, moved);
    if (i > 0 && heap->entries[(i - 1) / 2].deadline_ns > moved.deadline_ns) heap_sift_up(heap, i);
    else heap_sift_down(heap, i);
}

void timer_heap_clear(timer_heap *heap) {
    free(heap->entries);
    heap->entries = NULL;
    heap->len = heap->cap = 0;
}
