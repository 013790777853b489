/*
 * taskbeat_alg.c: see taskbeat_alg.h for the contract.
 *
 * One struct (tb_engine) owns every resource: the job table, the timer heap,
 * the spin queue, the finished queue, the threads and the notify fd. One
 * mutex guards all of it; the timer thread and the workers each wait on their
 * own condition variable. Public calls hold the mutex only for table and
 * queue updates, never while parsing input or waiting.
 */
#define _GNU_SOURCE
#include "taskbeat_alg.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef __linux__
#include <sys/eventfd.h>
#endif

#define DEFAULT_DURATION_MS 3000
#define MAX_DURATION_MS (24LL * 60 * 60 * 1000)
#define DEFAULT_STEPS 10
#define MAX_STEPS 1000
#define MAX_POLL_ERRORS 1000000
#define MAX_JOBS (1u << 24)
#define MAX_WORKERS 64
#define SPIN_CHUNK_NS 200000ULL /* a spin worker checks for cancel this often */
#define NO_DEADLINE UINT64_MAX

static const char DEFAULT_OUTPUT[] = "hello world";
static const char CANCELLED_TEXT[] = "cancelled";

/* ------------------------------------------------------------------ */
/* errors and clocks                                                  */

static int set_err(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int set_err(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Copies len bytes of src into dst (cap bytes), truncated, NUL-terminated. */
static void copy_text(char *dst, size_t cap, const char *src, size_t len) {
    if (dst == NULL || cap == 0) return;
    size_t n = len < cap - 1 ? len : cap - 1;
    if (n > 0) memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ------------------------------------------------------------------ */
/* job options and the JSON input parser                              */

typedef enum { MODE_SLEEP = 0, MODE_SPIN = 1 } job_mode;

typedef struct job_options {
    int64_t duration_ms;
    int32_t steps;
    job_mode mode;
    int32_t fail_at_step;   /* 0: never fails */
    int64_t poll_errors;
    bool hang;
    char *fail_message;     /* owned; NULL: the default message */
    size_t fail_message_len;
    char *output;           /* owned; NULL: DEFAULT_OUTPUT */
    size_t output_len;
} job_options;

static void options_free(job_options *opt) {
    free(opt->fail_message);
    free(opt->output);
    opt->fail_message = NULL;
    opt->output = NULL;
}

typedef struct parser {
    const unsigned char *p;
    const unsigned char *end;
    char *err;
    size_t errlen;
} parser;

/* A parsed scalar value. `str` is owned by whoever holds the value. */
typedef enum { VAL_STRING, VAL_INT, VAL_NONINT, VAL_BOOL, VAL_NULL } value_kind;

typedef struct value {
    value_kind kind;
    char *str;
    size_t str_len;
    int64_t i;
    bool overflow;
    bool b;
} value;

static void skip_ws(parser *ps) {
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static size_t offset_of(const parser *ps, const unsigned char *start) {
    return (size_t)(ps->p - start);
}

/* Appends one code point as UTF-8. */
static size_t put_utf8(char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int read_hex4(parser *ps, uint32_t *out) {
    if (ps->end - ps->p < 4) return -1;
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = ps->p[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return -1;
    }
    ps->p += 4;
    *out = v;
    return 0;
}

/* Length of the valid UTF-8 sequence at p (at most `avail` bytes), 0 if invalid. */
static size_t utf8_seq_len(const unsigned char *p, size_t avail) {
    unsigned char c = p[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
    else return 0;
    if (avail < n) return 0;
    for (size_t k = 1; k < n; k++) {
        if ((p[k] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[k] & 0x3F);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return n;
}

/* Parses a JSON string at ps->p (which is at the opening quote) into a new
 * malloc'd UTF-8 buffer (NUL-terminated; may contain NULs from \u0000). */
static int parse_string(parser *ps, const unsigned char *start, char **out, size_t *out_len) {
    ps->p++; /* opening quote */
    /* Escapes never grow: the decoded form fits in the raw span. */
    const unsigned char *scan = ps->p;
    while (scan < ps->end && *scan != '"') scan += (*scan == '\\' && scan + 1 < ps->end) ? 2 : 1;
    if (scan >= ps->end)
        return set_err(ps->err, ps->errlen, TB_EINVAL, "unterminated string at byte %zu",
                       offset_of(ps, start));
    char *buf = malloc((size_t)(scan - ps->p) + 1);
    if (buf == NULL) return set_err(ps->err, ps->errlen, TB_ENOMEM, "out of memory");
    size_t n = 0;
    for (;;) {
        if (ps->p >= ps->end) {
            free(buf);
            return set_err(ps->err, ps->errlen, TB_EINVAL, "unterminated string");
        }
        unsigned char c = *ps->p;
        if (c == '"') {
            ps->p++;
            break;
        }
        if (c < 0x20) {
            free(buf);
            return set_err(ps->err, ps->errlen, TB_EINVAL,
                           "control character in string at byte %zu", offset_of(ps, start));
        }
        if (c != '\\') {
            size_t len = utf8_seq_len(ps->p, (size_t)(ps->end - ps->p));
            if (len == 0) {
                free(buf);
                return set_err(ps->err, ps->errlen, TB_EINVAL,
                               "invalid UTF-8 in string at byte %zu", offset_of(ps, start));
            }
            memcpy(buf + n, ps->p, len);
            n += len;
            ps->p += len;
            continue;
        }
        size_t esc_at = offset_of(ps, start);
        ps->p++;
        if (ps->p >= ps->end) {
            free(buf);
            return set_err(ps->err, ps->errlen, TB_EINVAL, "unterminated string");
        }
        c = *ps->p++;
        switch (c) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/': buf[n++] = '/'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (read_hex4(ps, &cp) != 0) {
                free(buf);
                return set_err(ps->err, ps->errlen, TB_EINVAL,
                               "invalid \\u escape at byte %zu", esc_at);
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                free(buf);
                return set_err(ps->err, ps->errlen, TB_EINVAL,
                               "lone low surrogate in \\u escape at byte %zu", esc_at);
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                    free(buf);
                    return set_err(ps->err, ps->errlen, TB_EINVAL,
                                   "lone high surrogate in \\u escape at byte %zu", esc_at);
                }
                ps->p += 2;
                if (read_hex4(ps, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
                    free(buf);
                    return set_err(ps->err, ps->errlen, TB_EINVAL,
                                   "invalid surrogate pair at byte %zu", esc_at);
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            n += put_utf8(buf + n, cp);
            break;
        }
        default:
            free(buf);
            return set_err(ps->err, ps->errlen, TB_EINVAL, "invalid escape at byte %zu",
                           esc_at);
        }
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return TB_OK;
}

/* Parses a JSON number; integers without fraction/exponent become VAL_INT. */
static int parse_number(parser *ps, const unsigned char *start, value *v) {
    size_t at = offset_of(ps, start);
    bool neg = false;
    if (ps->p < ps->end && *ps->p == '-') {
        neg = true;
        ps->p++;
    }
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
        return set_err(ps->err, ps->errlen, TB_EINVAL, "invalid number at byte %zu", at);
    uint64_t mag = 0;
    bool overflow = false;
    if (*ps->p == '0') {
        ps->p++;
        if (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            return set_err(ps->err, ps->errlen, TB_EINVAL,
                           "invalid number (leading zero) at byte %zu", at);
    } else {
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
            unsigned d = (unsigned)(*ps->p - '0');
            if (mag > (UINT64_MAX - d) / 10) overflow = true;
            else mag = mag * 10 + d;
            ps->p++;
        }
    }
    bool integral = true;
    if (ps->p < ps->end && *ps->p == '.') {
        integral = false;
        ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
            return set_err(ps->err, ps->errlen, TB_EINVAL, "invalid number at byte %zu", at);
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        integral = false;
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
            return set_err(ps->err, ps->errlen, TB_EINVAL, "invalid number at byte %zu", at);
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    }
    v->kind = integral ? VAL_INT : VAL_NONINT;
    v->overflow = overflow || mag > (uint64_t)INT64_MAX;
    v->i = v->overflow ? 0 : (neg ? -(int64_t)mag : (int64_t)mag);
    return TB_OK;
}

static bool match_literal(parser *ps, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n) != 0) return false;
    ps->p += n;
    return true;
}

static int parse_value(parser *ps, const unsigned char *start, const char *field, value *v) {
    memset(v, 0, sizeof *v);
    if (ps->p >= ps->end)
        return set_err(ps->err, ps->errlen, TB_EINVAL, "missing value for field \"%s\"", field);
    unsigned char c = *ps->p;
    if (c == '"') {
        v->kind = VAL_STRING;
        return parse_string(ps, start, &v->str, &v->str_len);
    }
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(ps, start, v);
    if (match_literal(ps, "true")) {
        v->kind = VAL_BOOL;
        v->b = true;
        return TB_OK;
    }
    if (match_literal(ps, "false")) {
        v->kind = VAL_BOOL;
        return TB_OK;
    }
    if (match_literal(ps, "null")) {
        v->kind = VAL_NULL;
        return TB_OK;
    }
    if (c == '{' || c == '[')
        return set_err(ps->err, ps->errlen, TB_EINVAL,
                       "field \"%s\": nested objects and arrays are not supported", field);
    return set_err(ps->err, ps->errlen, TB_EINVAL, "invalid value for field \"%s\" at byte %zu",
                   field, offset_of(ps, start));
}

static const char *kind_name(value_kind k) {
    switch (k) {
    case VAL_STRING: return "a string";
    case VAL_INT: return "an integer";
    case VAL_NONINT: return "a non-integer number";
    case VAL_BOOL: return "a boolean";
    case VAL_NULL: return "null";
    }
    return "a value";
}

static int want_int(parser *ps, const char *field, const value *v, int64_t lo, int64_t hi,
                    int64_t *out) {
    if (v->kind != VAL_INT)
        return set_err(ps->err, ps->errlen, TB_EINVAL, "field \"%s\" must be an integer, not %s",
                       field, kind_name(v->kind));
    if (v->overflow || v->i < lo || v->i > hi)
        return set_err(ps->err, ps->errlen, TB_EINVAL,
                       "field \"%s\" must be between %lld and %lld", field, (long long)lo,
                       (long long)hi);
    *out = v->i;
    return TB_OK;
}

enum {
    F_DURATION = 1 << 0,
    F_STEPS = 1 << 1,
    F_MODE = 1 << 2,
    F_FAIL_AT = 1 << 3,
    F_FAIL_MSG = 1 << 4,
    F_POLL_ERRORS = 1 << 5,
    F_HANG = 1 << 6,
    F_OUTPUT = 1 << 7
};

static const struct {
    const char *name;
    int bit;
} FIELDS[] = {
    {"duration_ms", F_DURATION}, {"steps", F_STEPS},           {"mode", F_MODE},
    {"fail_at_step", F_FAIL_AT}, {"fail_message", F_FAIL_MSG}, {"poll_errors", F_POLL_ERRORS},
    {"hang", F_HANG},            {"output", F_OUTPUT},
};

/* Applies one field's value to opt; takes ownership of v->str on success. */
static int apply_field(parser *ps, int bit, const char *name, value *v, job_options *opt) {
    if (v->kind == VAL_NULL) return TB_OK; /* null means "use the default" */
    int64_t n;
    int rc;
    switch (bit) {
    case F_DURATION:
        return want_int(ps, name, v, 0, MAX_DURATION_MS, &opt->duration_ms);
    case F_STEPS:
        if ((rc = want_int(ps, name, v, 1, MAX_STEPS, &n)) != TB_OK) return rc;
        opt->steps = (int32_t)n;
        return TB_OK;
    case F_FAIL_AT:
        if ((rc = want_int(ps, name, v, 1, MAX_STEPS, &n)) != TB_OK) return rc;
        opt->fail_at_step = (int32_t)n;
        return TB_OK;
    case F_POLL_ERRORS:
        return want_int(ps, name, v, 0, MAX_POLL_ERRORS, &opt->poll_errors);
    case F_HANG:
        if (v->kind != VAL_BOOL)
            return set_err(ps->err, ps->errlen, TB_EINVAL,
                           "field \"hang\" must be a boolean, not %s", kind_name(v->kind));
        opt->hang = v->b;
        return TB_OK;
    case F_MODE:
        if (v->kind != VAL_STRING)
            return set_err(ps->err, ps->errlen, TB_EINVAL,
                           "field \"mode\" must be a string, not %s", kind_name(v->kind));
        if (strcmp(v->str, "sleep") == 0 && v->str_len == 5) opt->mode = MODE_SLEEP;
        else if (strcmp(v->str, "spin") == 0 && v->str_len == 4) opt->mode = MODE_SPIN;
        else
            return set_err(ps->err, ps->errlen, TB_EINVAL,
                           "field \"mode\" must be \"sleep\" or \"spin\"");
        return TB_OK;
    case F_FAIL_MSG:
    case F_OUTPUT:
        if (v->kind != VAL_STRING)
            return set_err(ps->err, ps->errlen, TB_EINVAL, "field \"%s\" must be a string, not %s",
                           name, kind_name(v->kind));
        if (bit == F_OUTPUT) {
            opt->output = v->str;
            opt->output_len = v->str_len;
        } else {
            opt->fail_message = v->str;
            opt->fail_message_len = v->str_len;
        }
        v->str = NULL;
        return TB_OK;
    }
    return set_err(ps->err, ps->errlen, TB_EINVAL, "internal error: field %s", name);
}

/* Parses and checks an input document into *opt (zeroed and defaulted here).
 * On success the caller owns opt's strings (options_free). */
static int parse_input(const char *input, size_t len, job_options *opt, char *err,
                       size_t errlen) {
    memset(opt, 0, sizeof *opt);
    opt->duration_ms = DEFAULT_DURATION_MS;
    opt->steps = DEFAULT_STEPS;
    opt->mode = MODE_SLEEP;
    if (input == NULL && len > 0) return set_err(err, errlen, TB_EINVAL, "input is NULL");
    if (len > TB_MAX_INPUT_BYTES)
        return set_err(err, errlen, TB_EINVAL, "input is %zu bytes; the limit is %d bytes", len,
                       TB_MAX_INPUT_BYTES);
    const unsigned char *start = (const unsigned char *)input;
    parser ps = {start, start + len, err, errlen};
    int seen = 0;
    int rc = TB_OK;

    skip_ws(&ps);
    if (ps.p >= ps.end) return set_err(err, errlen, TB_EINVAL, "input is empty; expected a JSON object");
    if (*ps.p != '{') return set_err(err, errlen, TB_EINVAL, "input must be a JSON object");
    ps.p++;
    skip_ws(&ps);
    if (ps.p < ps.end && *ps.p == '}') {
        ps.p++;
    } else {
        for (;;) {
            skip_ws(&ps);
            if (ps.p >= ps.end || *ps.p != '"') {
                rc = set_err(err, errlen, TB_EINVAL, "expected a field name at byte %zu",
                             offset_of(&ps, start));
                goto fail;
            }
            char *key = NULL;
            size_t key_len = 0;
            if ((rc = parse_string(&ps, start, &key, &key_len)) != TB_OK) goto fail;
            int bit = 0;
            const char *name = NULL;
            for (size_t k = 0; k < sizeof FIELDS / sizeof FIELDS[0]; k++) {
                if (strlen(FIELDS[k].name) == key_len && memcmp(FIELDS[k].name, key, key_len) == 0) {
                    bit = FIELDS[k].bit;
                    name = FIELDS[k].name;
                }
            }
            if (bit == 0) {
                rc = set_err(err, errlen, TB_EINVAL,
                             "unknown field \"%.64s\" (known: duration_ms, steps, mode, "
                             "fail_at_step, fail_message, poll_errors, hang, output)",
                             key);
                free(key);
                goto fail;
            }
            free(key);
            if (seen & bit) {
                rc = set_err(err, errlen, TB_EINVAL, "duplicate field \"%s\"", name);
                goto fail;
            }
            seen |= bit;
            skip_ws(&ps);
            if (ps.p >= ps.end || *ps.p != ':') {
                rc = set_err(err, errlen, TB_EINVAL, "expected ':' after \"%s\"", name);
                goto fail;
            }
            ps.p++;
            skip_ws(&ps);
            value v;
            if ((rc = parse_value(&ps, start, name, &v)) != TB_OK) goto fail;
            rc = apply_field(&ps, bit, name, &v, opt);
            free(v.str);
            if (rc != TB_OK) goto fail;
            skip_ws(&ps);
            if (ps.p < ps.end && *ps.p == ',') {
                ps.p++;
                continue;
            }
            if (ps.p < ps.end && *ps.p == '}') {
                ps.p++;
                break;
            }
            rc = set_err(err, errlen, TB_EINVAL, "expected ',' or '}' at byte %zu",
                         offset_of(&ps, start));
            goto fail;
        }
    }
    skip_ws(&ps);
    if (ps.p != ps.end) {
        rc = set_err(err, errlen, TB_EINVAL, "unexpected data after the JSON object at byte %zu",
                     offset_of(&ps, start));
        goto fail;
    }
    if (opt->fail_at_step > opt->steps) {
        rc = set_err(err, errlen, TB_EINVAL,
                     "field \"fail_at_step\" (%d) must not exceed steps (%d)", opt->fail_at_step,
                     opt->steps);
        goto fail;
    }
    return TB_OK;
fail:
    options_free(opt);
    return rc;
}

/* ------------------------------------------------------------------ */
/* jobs and the engine                                                */

typedef struct tb_job {
    job_options opt;
    uint32_t slot;
    uint32_t gen;
    tb_state state;
    int32_t step;          /* steps completed */
    int32_t progress;
    uint64_t start_ns;
    size_t heap_idx;       /* index in the timer heap, or SIZE_MAX */
    struct tb_job *qprev;  /* spin queue links */
    struct tb_job *qnext;
    bool queued;           /* on the spin queue */
    bool on_worker;        /* a worker is spinning it: the worker frees it if released */
    bool released;         /* tb_free() was called while on a worker */
    atomic_bool stop;      /* tells the spinning worker to stop */
    const char *text;      /* output or error once finished; points into opt or statics */
    size_t text_len;
    char default_fail[48];
} tb_job;

typedef struct slot_entry {
    tb_job *job;    /* NULL when free */
    uint32_t gen;   /* generation of the handle that owns it; 0 when free */
    uint32_t next_free;
} slot_entry;

typedef struct heap_entry {
    uint64_t deadline_ns;
    tb_job *job;
} heap_entry;

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

    slot_entry *slots;           /* job table indexed by slot */
    uint32_t nslots;
    uint32_t cap_slots;
    uint32_t free_head;          /* first free slot, or UINT32_MAX */
    uint32_t next_gen;           /* never reset, so handles stay unique across shutdowns */

    heap_entry *heap;            /* min-heap of sleeping jobs' next step deadlines */
    size_t heap_len;
    size_t heap_cap;

    tb_job *queue_head;          /* spin jobs waiting for a worker */
    tb_job *queue_tail;

    tb_handle *finished;         /* handles finished but not yet drained */
    size_t fin_head;
    size_t fin_len;              /* entries in [fin_head, fin_len) are pending */
    size_t fin_cap;

    int notify_rfd;              /* eventfd, or the read end of a pipe */
    int notify_wfd;              /* same eventfd, or the write end */
} tb_engine;

static tb_engine engine = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .free_head = UINT32_MAX,
    .notify_rfd = -1,
    .notify_wfd = -1,
};

/* --- notify fd ---------------------------------------------------- */

static int notify_open(char *err, size_t errlen) {
#ifdef __linux__
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) return set_err(err, errlen, TB_ESYS, "eventfd: %s", strerror(errno));
    engine.notify_rfd = engine.notify_wfd = fd;
#else
    int fds[2];
    if (pipe(fds) != 0) return set_err(err, errlen, TB_ESYS, "pipe: %s", strerror(errno));
    for (int k = 0; k < 2; k++) {
        fcntl(fds[k], F_SETFL, fcntl(fds[k], F_GETFL) | O_NONBLOCK);
        fcntl(fds[k], F_SETFD, FD_CLOEXEC);
    }
    engine.notify_rfd = fds[0];
    engine.notify_wfd = fds[1];
#endif
    return TB_OK;
}

static void notify_close(void) {
    if (engine.notify_rfd >= 0) close(engine.notify_rfd);
    if (engine.notify_wfd >= 0 && engine.notify_wfd != engine.notify_rfd) close(engine.notify_wfd);
    engine.notify_rfd = engine.notify_wfd = -1;
}

static void notify_raise(void) {
#ifdef __linux__
    uint64_t one = 1;
    ssize_t r = write(engine.notify_wfd, &one, sizeof one);
#else
    char one = 1;
    ssize_t r = write(engine.notify_wfd, &one, 1);
#endif
    (void)r; /* EAGAIN: already readable, which is all we want */
}

static void notify_clear(void) {
    char buf[64];
    while (read(engine.notify_rfd, buf, sizeof buf) > 0) {
    }
}

/* --- job table ---------------------------------------------------- */

static tb_job *lookup_locked(tb_handle h) {
    uint32_t slot = (uint32_t)(h & 0xFFFFFFFFu);
    uint32_t gen = (uint32_t)(h >> 32);
    if (gen == 0 || slot >= engine.nslots) return NULL;
    slot_entry *s = &engine.slots[slot];
    if (s->gen != gen || s->job == NULL) return NULL;
    return s->job;
}

static int slot_alloc_locked(tb_job *job, char *err, size_t errlen) {
    uint32_t slot;
    if (engine.free_head != UINT32_MAX) {
        slot = engine.free_head;
        engine.free_head = engine.slots[slot].next_free;
    } else {
        if (engine.nslots >= MAX_JOBS)
            return set_err(err, errlen, TB_ENOMEM, "too many jobs (limit %u)", MAX_JOBS);
        if (engine.nslots == engine.cap_slots) {
            uint32_t cap = engine.cap_slots ? engine.cap_slots * 2 : 1024;
            slot_entry *s = realloc(engine.slots, (size_t)cap * sizeof *s);
            if (s == NULL) return set_err(err, errlen, TB_ENOMEM, "out of memory");
            engine.slots = s;
            engine.cap_slots = cap;
        }
        slot = engine.nslots++;
    }
    if (++engine.next_gen == 0) engine.next_gen = 1;
    engine.slots[slot].job = job;
    engine.slots[slot].gen = engine.next_gen;
    engine.slots[slot].next_free = UINT32_MAX;
    job->slot = slot;
    job->gen = engine.next_gen;
    return TB_OK;
}

static void slot_release_locked(uint32_t slot) {
    engine.slots[slot].job = NULL;
    engine.slots[slot].gen = 0;
    engine.slots[slot].next_free = engine.free_head;
    engine.free_head = slot;
}

static tb_handle handle_of(const tb_job *job) {
    return ((tb_handle)job->gen << 32) | job->slot;
}

static void job_destroy(tb_job *job) {
    options_free(&job->opt);
    free(job);
}

/* --- timer heap --------------------------------------------------- */

static void heap_set(size_t i, heap_entry e) {
    engine.heap[i] = e;
    e.job->heap_idx = i;
}

static void heap_sift_up(size_t i) {
    heap_entry e = engine.heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (engine.heap[parent].deadline_ns <= e.deadline_ns) break;
        heap_set(i, engine.heap[parent]);
        i = parent;
    }
    heap_set(i, e);
}

static void heap_sift_down(size_t i) {
    heap_entry e = engine.heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= engine.heap_len) break;
        if (child + 1 < engine.heap_len &&
            engine.heap[child + 1].deadline_ns < engine.heap[child].deadline_ns)
            child++;
        if (e.deadline_ns <= engine.heap[child].deadline_ns) break;
        heap_set(i, engine.heap[child]);
        i = child;
    }
    heap_set(i, e);
}

static int heap_push_locked(tb_job *job, uint64_t deadline_ns) {
    if (engine.heap_len == engine.heap_cap) {
        size_t cap = engine.heap_cap ? engine.heap_cap * 2 : 1024;
        heap_entry *h = realloc(engine.heap, cap * sizeof *h);
        if (h == NULL) return TB_ENOMEM;
        engine.heap = h;
        engine.heap_cap = cap;
    }
    size_t i = engine.heap_len++;
    engine.heap[i] = (heap_entry){deadline_ns, job};
    heap_sift_up(i);
    if (job->heap_idx == 0) pthread_cond_signal(&engine.timer_cv); /* new earliest deadline */
    return TB_OK;
}

static void heap_remove_locked(tb_job *job) {
    size_t i = job->heap_idx;
    if (i == SIZE_MAX) return;
    job->heap_idx = SIZE_MAX;
    size_t last = --engine.heap_len;
    if (i == last) return;
    heap_entry moved = engine.heap[last];
    heap_set(i, moved);
    if (i > 0 && engine.heap[(i - 1) / 2].deadline_ns > moved.deadline_ns) heap_sift_up(i);
    else heap_sift_down(i);
}

/* --- spin queue --------------------------------------------------- */

static void queue_push_locked(tb_job *job) {
    job->qnext = NULL;
    job->qprev = engine.queue_tail;
    if (engine.queue_tail) engine.queue_tail->qnext = job;
    else engine.queue_head = job;
    engine.queue_tail = job;
    job->queued = true;
    pthread_cond_signal(&engine.work_cv);
}

static void queue_remove_locked(tb_job *job) {
    if (!job->queued) return;
    if (job->qprev) job->qprev->qnext = job->qnext;
    else engine.queue_head = job->qnext;
    if (job->qnext) job->qnext->qprev = job->qprev;
    else engine.queue_tail = job->qprev;
    job->qprev = job->qnext = NULL;
    job->queued = false;
}

/* --- finished queue ----------------------------------------------- */

static void finished_push_locked(tb_handle h) {
    if (engine.fin_len == engine.fin_cap) {
        if (engine.fin_head > 0) { /* compact before growing */
            memmove(engine.finished, engine.finished + engine.fin_head,
                    (engine.fin_len - engine.fin_head) * sizeof(tb_handle));
            engine.fin_len -= engine.fin_head;
            engine.fin_head = 0;
        }
        if (engine.fin_len == engine.fin_cap) {
            size_t cap = engine.fin_cap ? engine.fin_cap * 2 : 1024;
            tb_handle *f = realloc(engine.finished, cap * sizeof *f);
            if (f == NULL) {
                /* The poller still sees the state; only the wake-up is lost. */
                notify_raise();
                return;
            }
            engine.finished = f;
            engine.fin_cap = cap;
        }
    }
    bool was_empty = engine.fin_head == engine.fin_len;
    engine.finished[engine.fin_len++] = h;
    if (was_empty) notify_raise();
}

/* Moves the job to a finished state and queues its notification. */
static void finish_locked(tb_job *job, tb_state state) {
    job->state = state;
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
    finished_push_locked(handle_of(job));
}

static bool is_finished(tb_state s) {
    return s == TB_SUCCEEDED || s == TB_FAILED || s == TB_CANCELLED;
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
        if (next == job->opt.steps) finish_locked(job, TB_SUCCEEDED);
    }
    return NO_DEADLINE;
}

/* --- threads ------------------------------------------------------ */

static void *timer_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&engine.mu);
    while (!engine.stopping) {
        if (engine.heap_len == 0) {
            pthread_cond_wait(&engine.timer_cv, &engine.mu);
            continue;
        }
        uint64_t now = now_ns();
        heap_entry top = engine.heap[0];
        if (top.deadline_ns > now) {
            struct timespec ts = {(time_t)(top.deadline_ns / 1000000000ULL),
                                  (long)(top.deadline_ns % 1000000000ULL)};
            pthread_cond_timedwait(&engine.timer_cv, &engine.mu, &ts);
            continue;
        }
        heap_remove_locked(top.job);
        uint64_t next = advance_locked(top.job, now);
        if (next != NO_DEADLINE && heap_push_locked(top.job, next) != TB_OK) {
            /* Out of memory for the heap: end the job rather than strand it. */
            top.job->opt.fail_at_step = top.job->step + 1;
            finish_locked(top.job, TB_FAILED);
        }
    }
    pthread_mutex_unlock(&engine.mu);
    return NULL;
}

/* Burns CPU for about SPIN_CHUNK_NS; the result is kept so it is not elided. */
static void burn_chunk(uint64_t until_ns) {
    static volatile uint64_t sink;
    uint64_t x = sink + 1;
    while (now_ns() < until_ns) {
        for (int k = 0; k < 1000; k++) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    }
    sink = x;
}

static void run_spin_job(tb_job *job) {
    for (;;) {
        pthread_mutex_lock(&engine.mu);
        uint64_t next = advance_locked(job, now_ns());
        bool done = job->state != TB_RUNNING;
        pthread_mutex_unlock(&engine.mu);
        if (done) return;
        for (;;) {
            if (atomic_load(&job->stop) || atomic_load(&engine.stop_flag)) return;
            uint64_t now = now_ns();
            if (now >= next) break;
            uint64_t until = now + SPIN_CHUNK_NS;
            burn_chunk(until < next ? until : next);
        }
    }
}

static void *worker_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&engine.mu);
    while (!engine.stopping) {
        tb_job *job = engine.queue_head;
        if (job == NULL) {
            pthread_cond_wait(&engine.work_cv, &engine.mu);
            continue;
        }
        queue_remove_locked(job);
        job->state = TB_RUNNING;
        job->start_ns = now_ns();
        job->on_worker = true;
        pthread_mutex_unlock(&engine.mu);

        run_spin_job(job);

        pthread_mutex_lock(&engine.mu);
        job->on_worker = false;
        if (job->released) job_destroy(job); /* tb_free() left it to us */
    }
    pthread_mutex_unlock(&engine.mu);
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
    int rc;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&engine.timer_cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_cond_init(&engine.work_cv, NULL);
    engine.stopping = false;
    atomic_store(&engine.stop_flag, false);
    engine.nworkers = 0;
    if ((rc = notify_open(err, errlen)) != TB_OK) goto fail_cond;
    if ((rc = pthread_create(&engine.timer_thread, NULL, timer_main, NULL)) != 0) {
        rc = set_err(err, errlen, TB_ESYS, "pthread_create: %s", strerror(rc));
        notify_close();
        goto fail_cond;
    }
    engine.started = true; /* from here on, stop_threads_locked() undoes it */
    int want = worker_count();
    for (int k = 0; k < want; k++) {
        if ((rc = pthread_create(&engine.workers[k], NULL, worker_main, NULL)) != 0) {
            rc = set_err(err, errlen, TB_ESYS, "pthread_create: %s", strerror(rc));
            stop_threads_locked();
            return rc;
        }
        engine.nworkers++;
    }
    return TB_OK;
fail_cond:
    pthread_cond_destroy(&engine.timer_cv);
    pthread_cond_destroy(&engine.work_cv);
    return rc;
}

/* Joins every thread; drops and retakes the mutex so they can exit. */
static void stop_threads_locked(void) {
    engine.stopping = true;
    atomic_store(&engine.stop_flag, true);
    pthread_cond_broadcast(&engine.timer_cv);
    pthread_cond_broadcast(&engine.work_cv);
    pthread_mutex_unlock(&engine.mu);
    pthread_join(engine.timer_thread, NULL);
    for (int k = 0; k < engine.nworkers; k++) pthread_join(engine.workers[k], NULL);
    pthread_mutex_lock(&engine.mu);
    engine.nworkers = 0;
    engine.started = false;
    notify_close();
    pthread_cond_destroy(&engine.timer_cv);
    pthread_cond_destroy(&engine.work_cv);
}

/* Takes the mutex and makes sure the engine runs. */
static int enter(char *err, size_t errlen) {
    pthread_mutex_lock(&engine.mu);
    int rc = start_locked(err, errlen);
    if (rc != TB_OK) pthread_mutex_unlock(&engine.mu);
    return rc;
}

/* ------------------------------------------------------------------ */
/* public API                                                         */

int tb_version(void) { return TB_API_VERSION; }

int tb_init(char *err, size_t errlen) {
    int rc = enter(err, errlen);
    if (rc == TB_OK) pthread_mutex_unlock(&engine.mu);
    return rc;
}

void tb_shutdown(void) {
    pthread_mutex_lock(&engine.mu);
    if (engine.started) stop_threads_locked();
    for (uint32_t k = 0; k < engine.nslots; k++) {
        if (engine.slots[k].job) job_destroy(engine.slots[k].job);
    }
    /* Released jobs still on a worker were destroyed by the worker before it exited. */
    free(engine.slots);
    free(engine.heap);
    free(engine.finished);
    engine.slots = NULL;
    engine.nslots = engine.cap_slots = 0;
    engine.free_head = UINT32_MAX;
    engine.heap = NULL;
    engine.heap_len = engine.heap_cap = 0;
    engine.queue_head = engine.queue_tail = NULL;
    engine.finished = NULL;
    engine.fin_head = engine.fin_len = engine.fin_cap = 0;
    pthread_mutex_unlock(&engine.mu);
}

int tb_validate(const char *input, size_t len, char *err, size_t errlen) {
    job_options opt;
    int rc = parse_input(input, len, &opt, err, errlen);
    if (rc == TB_OK) options_free(&opt);
    return rc;
}

int tb_submit(const char *input, size_t len, tb_handle *out_handle, char *err, size_t errlen) {
    if (out_handle == NULL) return set_err(err, errlen, TB_EINVAL, "out_handle is NULL");
    *out_handle = 0;
    tb_job *job = calloc(1, sizeof *job);
    if (job == NULL) return set_err(err, errlen, TB_ENOMEM, "out of memory");
    int rc = parse_input(input, len, &job->opt, err, errlen);
    if (rc != TB_OK) {
        free(job);
        return rc;
    }
    job->heap_idx = SIZE_MAX;
    atomic_init(&job->stop, false);

    if ((rc = enter(err, errlen)) != TB_OK) {
        job_destroy(job);
        return rc;
    }
    if ((rc = slot_alloc_locked(job, err, errlen)) != TB_OK) {
        pthread_mutex_unlock(&engine.mu);
        job_destroy(job);
        return rc;
    }
    if (job->opt.mode == MODE_SPIN) {
        job->state = TB_QUEUED;
        queue_push_locked(job);
    } else {
        job->state = TB_RUNNING;
        job->start_ns = now_ns();
        uint64_t next = advance_locked(job, job->start_ns);
        if (next != NO_DEADLINE && heap_push_locked(job, next) != TB_OK) {
            slot_release_locked(job->slot);
            pthread_mutex_unlock(&engine.mu);
            job_destroy(job);
            return set_err(err, errlen, TB_ENOMEM, "out of memory");
        }
    }
    *out_handle = handle_of(job);
    pthread_mutex_unlock(&engine.mu);
    return TB_OK;
}

int tb_poll(tb_handle handle, tb_status *out, char *text, size_t textcap, char *err,
            size_t errlen) {
    if (out == NULL) return set_err(err, errlen, TB_EINVAL, "out is NULL");
    memset(out, 0, sizeof *out);
    copy_text(text, textcap, "", 0);
    int rc = enter(err, errlen);
    if (rc != TB_OK) return rc;
    tb_job *job = lookup_locked(handle);
    if (job == NULL) {
        pthread_mutex_unlock(&engine.mu);
        return set_err(err, errlen, TB_EHANDLE, "unknown or freed handle %#llx",
                       (unsigned long long)handle);
    }
    if (job->opt.poll_errors > 0) {
        int64_t left = --job->opt.poll_errors;
        pthread_mutex_unlock(&engine.mu);
        return set_err(err, errlen, TB_EPOLL, "injected poll error (%lld more to come)",
                       (long long)left);
    }
    out->state = job->state;
    out->progress = job->progress;
    if (is_finished(job->state)) {
        out->text_len = job->text_len;
        copy_text(text, textcap, job->text, job->text_len);
    }
    pthread_mutex_unlock(&engine.mu);
    return TB_OK;
}

int tb_read_text(tb_handle handle, char *text, size_t textcap, uint64_t *out_len, char *err,
                 size_t errlen) {
    if (out_len) *out_len = 0;
    copy_text(text, textcap, "", 0);
    int rc = enter(err, errlen);
    if (rc != TB_OK) return rc;
    tb_job *job = lookup_locked(handle);
    if (job == NULL) rc = set_err(err, errlen, TB_EHANDLE, "unknown or freed handle %#llx",
                                  (unsigned long long)handle);
    else if (!is_finished(job->state))
        rc = set_err(err, errlen, TB_ESTATE, "job has not finished");
    else {
        if (out_len) *out_len = job->text_len;
        copy_text(text, textcap, job->text, job->text_len);
    }
    pthread_mutex_unlock(&engine.mu);
    return rc;
}

/* Cancels a job that has not finished. */
static void cancel_locked(tb_job *job) {
    if (is_finished(job->state)) return;
    heap_remove_locked(job);
    queue_remove_locked(job);
    atomic_store(&job->stop, true);
    finish_locked(job, TB_CANCELLED);
}

int tb_cancel(tb_handle handle, char *err, size_t errlen) {
    int rc = enter(err, errlen);
    if (rc != TB_OK) return rc;
    tb_job *job = lookup_locked(handle);
    if (job == NULL) rc = set_err(err, errlen, TB_EHANDLE, "unknown or freed handle %#llx",
                                  (unsigned long long)handle);
    else cancel_locked(job);
    pthread_mutex_unlock(&engine.mu);
    return rc;
}

int tb_free(tb_handle handle, char *err, size_t errlen) {
    int rc = enter(err, errlen);
    if (rc != TB_OK) return rc;
    tb_job *job = lookup_locked(handle);
    if (job == NULL) {
        pthread_mutex_unlock(&engine.mu);
        return set_err(err, errlen, TB_EHANDLE, "unknown or freed handle %#llx",
                       (unsigned long long)handle);
    }
    cancel_locked(job);
    slot_release_locked(job->slot);
    if (job->on_worker) job->released = true; /* the worker destroys it when it lets go */
    else job_destroy(job);
    pthread_mutex_unlock(&engine.mu);
    return TB_OK;
}

int tb_notify_fd(int *out_fd, char *err, size_t errlen) {
    if (out_fd == NULL) return set_err(err, errlen, TB_EINVAL, "out_fd is NULL");
    *out_fd = -1;
    int rc = enter(err, errlen);
    if (rc != TB_OK) return rc;
    *out_fd = engine.notify_rfd;
    pthread_mutex_unlock(&engine.mu);
    return TB_OK;
}

size_t tb_drain_finished(tb_handle *out, size_t max) {
    size_t n = 0;
    if (enter(NULL, 0) != TB_OK) return 0;
    while (engine.fin_head < engine.fin_len && n < max) {
        tb_handle h = engine.finished[engine.fin_head++];
        if (lookup_locked(h) != NULL) out[n++] = h;
    }
    if (engine.fin_head == engine.fin_len) {
        engine.fin_head = engine.fin_len = 0;
        notify_clear();
    }
    pthread_mutex_unlock(&engine.mu);
    return n;
}
