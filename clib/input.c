/*
 * input.c: a job's input document (JSON) parsed into job_options.
 *
 * Hand-written on purpose: it works on a byte buffer with an explicit length,
 * decodes \uXXXX escapes (surrogate pairs included) to UTF-8 and rejects
 * invalid UTF-8, so arbitrary bytes get an error message, never a crash (the
 * tests fuzz it). Only flat objects of scalars are accepted.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_DURATION_MS 3000
#define MAX_DURATION_MS (24LL * 60 * 60 * 1000)
#define DEFAULT_STEPS 10
#define MAX_STEPS 1000
#define MAX_POLL_ERRORS 1000000
#define MAX_ATTEMPTS 1000000

void tb_options_free(job_options *opt) {
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
        return tb_set_err(ps->err, ps->errlen, TB_EINVAL, "unterminated string at byte %zu",
                       offset_of(ps, start));
    char *buf = malloc((size_t)(scan - ps->p) + 1);
    if (buf == NULL) return tb_set_err(ps->err, ps->errlen, TB_ENOMEM, "out of memory");
    size_t n = 0;
    for (;;) {
        if (ps->p >= ps->end) {
            free(buf);
            return tb_set_err(ps->err, ps->errlen, TB_EINVAL, "unterminated string");
        }
        unsigned char c = *ps->p;
        if (c == '"') {
            ps->p++;
            break;
        }
        if (c < 0x20) {
            free(buf);
            return tb_set_err(ps->err, ps->errlen, TB_EINVAL,
                           "control character in string at byte %zu", offset_of(ps, start));
        }
        if (c != '\\') {
            size_t len = utf8_seq_len(ps->p, (size_t)(ps->end - ps->p));
            if (len == 0) {
                free(buf);
                return tb_set_err(ps->err, ps->errlen, TB_EINVAL,
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
            return tb_set_err(ps->err, ps->errlen, TB_EINVAL, "unterminated string");
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
                return tb_set_err(ps->err, ps->errlen, TB_EINVAL,
                               "invalid \\u escape at byte %zu", esc_at);
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                free(buf);
                return tb_set_err(ps->err, ps->errlen, TB_EINVAL,
                               "lone low surrogate in \\u escape at byte %zu", esc_at);
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                    free(buf);
                    return tb_set_err(ps->err, ps->errlen, TB_EINVAL,
                                   "lone high surrogate in \\u escape at byte %zu", esc_at);
                }
                ps->p += 2;
                if (read_hex4(ps, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
                    free(buf);
                    return tb_set_err(ps->err, ps->errlen, TB_EINVAL,
                                   "invalid surrogate pair at byte %zu", esc_at);
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            n += put_utf8(buf + n, cp);
            break;
        }
        default:
            free(buf);
            return tb_set_err(ps->err, ps->errlen, TB_EINVAL, "invalid escape at byte %zu",
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
        return tb_set_err(ps->err, ps->errlen, TB_EINVAL, "invalid number at byte %zu", at);
    uint64_t mag = 0;
    bool overflow = false;
    if (*ps->p == '0') {
        ps->p++;
        if (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            return tb_set_err(ps->err, ps->errlen, TB_EINVAL,
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
            return tb_set_err(ps->err, ps->errlen, TB_EINVAL, "invalid number at byte %zu", at);
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        integral = false;
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
            return tb_set_err(ps->err, ps->errlen, TB_EINVAL, "invalid number at byte %zu", at);
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
        return tb_set_err(ps->err, ps->errlen, TB_EINVAL, "missing value for field \"%s\"", field);
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
        return tb_set_err(ps->err, ps->errlen, TB_EINVAL,
                       "field \"%s\": nested objects and arrays are not supported", field);
    return tb_set_err(ps->err, ps->errlen, TB_EINVAL, "invalid value for field \"%s\" at byte %zu",
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
        return tb_set_err(ps->err, ps->errlen, TB_EINVAL, "field \"%s\" must be an integer, not %s",
                       field, kind_name(v->kind));
    if (v->overflow || v->i < lo || v->i > hi)
        return tb_set_err(ps->err, ps->errlen, TB_EINVAL,
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
    F_OUTPUT = 1 << 7,
    F_FAIL_ATTEMPTS = 1 << 8,
    F_ATTEMPT = 1 << 9
};

static const struct {
    const char *name;
    int bit;
} FIELDS[] = {
    {"duration_ms", F_DURATION}, {"steps", F_STEPS},           {"mode", F_MODE},
    {"fail_at_step", F_FAIL_AT}, {"fail_message", F_FAIL_MSG}, {"poll_errors", F_POLL_ERRORS},
    {"hang", F_HANG},            {"output", F_OUTPUT},
    {"fail_attempts", F_FAIL_ATTEMPTS}, {"attempt", F_ATTEMPT},
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
    case F_FAIL_ATTEMPTS:
    case F_ATTEMPT:
        if ((rc = want_int(ps, name, v, bit == F_ATTEMPT ? 1 : 0, MAX_ATTEMPTS, &n)) != TB_OK)
            return rc;
        if (bit == F_ATTEMPT) opt->attempt = (int32_t)n;
        else opt->fail_attempts = (int32_t)n;
        return TB_OK;
    case F_HANG:
        if (v->kind != VAL_BOOL)
            return tb_set_err(ps->err, ps->errlen, TB_EINVAL,
                           "field \"hang\" must be a boolean, not %s", kind_name(v->kind));
        opt->hang = v->b;
        return TB_OK;
    case F_MODE:
        if (v->kind != VAL_STRING)
            return tb_set_err(ps->err, ps->errlen, TB_EINVAL,
                           "field \"mode\" must be a string, not %s", kind_name(v->kind));
        if (strcmp(v->str, "sleep") == 0 && v->str_len == 5) opt->mode = MODE_SLEEP;
        else if (strcmp(v->str, "spin") == 0 && v->str_len == 4) opt->mode = MODE_SPIN;
        else
            return tb_set_err(ps->err, ps->errlen, TB_EINVAL,
                           "field \"mode\" must be \"sleep\" or \"spin\"");
        return TB_OK;
    case F_FAIL_MSG:
    case F_OUTPUT:
        if (v->kind != VAL_STRING)
            return tb_set_err(ps->err, ps->errlen, TB_EINVAL, "field \"%s\" must be a string, not %s",
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
    return tb_set_err(ps->err, ps->errlen, TB_EINVAL, "internal error: field %s", name);
}

/* See internal.h. */
int tb_parse_input(const char *input, size_t len, job_options *opt, char *err,
                   size_t errlen) {
    memset(opt, 0, sizeof *opt);
    opt->duration_ms = DEFAULT_DURATION_MS;
    opt->steps = DEFAULT_STEPS;
    opt->mode = MODE_SLEEP;
    opt->attempt = 1;
    if (input == NULL && len > 0) return tb_set_err(err, errlen, TB_EINVAL, "input is NULL");
    if (len > TB_MAX_INPUT_BYTES)
        return tb_set_err(err, errlen, TB_EINVAL, "input is %zu bytes; the limit is %d bytes", len,
                       TB_MAX_INPUT_BYTES);
    const unsigned char *start = (const unsigned char *)input;
    parser ps = {start, start + len, err, errlen};
    int seen = 0;
    int rc = TB_OK;

    skip_ws(&ps);
    if (ps.p >= ps.end) return tb_set_err(err, errlen, TB_EINVAL, "input is empty; expected a JSON object");
    if (*ps.p != '{') return tb_set_err(err, errlen, TB_EINVAL, "input must be a JSON object");
    ps.p++;
    skip_ws(&ps);
    if (ps.p < ps.end && *ps.p == '}') {
        ps.p++;
    } else {
        for (;;) {
            skip_ws(&ps);
            if (ps.p >= ps.end || *ps.p != '"') {
                rc = tb_set_err(err, errlen, TB_EINVAL, "expected a field name at byte %zu",
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
                rc = tb_set_err(err, errlen, TB_EINVAL,
                             "unknown field \"%.64s\" (known: duration_ms, steps, mode, "
                             "fail_at_step, fail_message, poll_errors, hang, output, "
                             "fail_attempts, attempt)",
                             key);
                free(key);
                goto fail;
            }
            free(key);
            if (seen & bit) {
                rc = tb_set_err(err, errlen, TB_EINVAL, "duplicate field \"%s\"", name);
                goto fail;
            }
            seen |= bit;
            skip_ws(&ps);
            if (ps.p >= ps.end || *ps.p != ':') {
                rc = tb_set_err(err, errlen, TB_EINVAL, "expected ':' after \"%s\"", name);
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
            rc = tb_set_err(err, errlen, TB_EINVAL, "expected ',' or '}' at byte %zu",
                         offset_of(&ps, start));
            goto fail;
        }
    }
    skip_ws(&ps);
    if (ps.p != ps.end) {
        rc = tb_set_err(err, errlen, TB_EINVAL, "unexpected data after the JSON object at byte %zu",
                     offset_of(&ps, start));
        goto fail;
    }
    if (opt->fail_at_step > opt->steps) {
        rc = tb_set_err(err, errlen, TB_EINVAL,
                     "field \"fail_at_step\" (%d) must not exceed steps (%d)", opt->fail_at_step,
                     opt->steps);
        goto fail;
    }
    if (opt->attempt <= opt->fail_attempts) opt->fail_at_step = 1; /* this attempt fails */
    return TB_OK;
fail:
    tb_options_free(opt);
    return rc;
}
