/* test_input.c: the input parser: every refusal names the problem, arbitrary bytes never crash. */
#define _GNU_SOURCE
#include "harness.h"

#include <stdlib.h>
#include <string.h>

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

const test_case INPUT_TESTS[] = {
    {"long_output_and_unicode", test_long_output_and_unicode},
    {"bad_inputs", test_bad_inputs},
    {"fuzz_parser", test_fuzz_parser},
};
const size_t INPUT_TESTS_COUNT = sizeof INPUT_TESTS / sizeof INPUT_TESTS[0];
