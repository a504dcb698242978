/*
 * test_ops.c - unit tests of the op list (ops.c): the byte codec, the text
 * form and format detection, and the executor's oracle.
 *
 * usage: test_ops [TEST_NAME...] [--seed N]   (or AMM_TEST_SEED=N); no name runs all.
 * Randomised tests print their seed; rerun with it to reproduce.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

static uint64_t rng_state;
static int failures;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "  %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
            failures++;                                                       \
            return;                                                           \
        }                                                                     \
    } while (0)

static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int same_list(const amm_op_list *a, const amm_op_list *b, size_t *where) {
    for (size_t i = 0; i < a->count && i < b->count; i++) {
        if (memcmp(&a->ops[i], &b->ops[i], sizeof a->ops[i]) != 0) {
            *where = i;
            return 0;
        }
    }
    *where = a->count < b->count ? a->count : b->count;
    return a->count == b->count;
}

/* Random bytes decode to a list that encodes back to bytes decoding to the same list. */
static void test_codec_round_trip(void) {
    for (int round = 0; round < 500; round++) {
        uint8_t bytes[300];
        size_t len = rnd() % sizeof bytes;
        amm_ops_mode mode = (amm_ops_mode)(rnd() & 1);
        for (size_t i = 0; i < len; i++) bytes[i] = (uint8_t)rnd();
        amm_op_list a = {0}, b = {0};
        uint8_t *enc;
        size_t enc_len, where;
        char err[200];
        CHECK(amm_ops_decode(bytes, len, mode, 0, &a) == 0, "decode failed");
        CHECK(amm_ops_encode(&a, mode, &enc, &enc_len, err, sizeof err) == 0, "encode failed: %s", err);
        CHECK(amm_ops_decode(enc, enc_len, mode, 0, &b) == 0, "decode of the encoding failed");
        CHECK(same_list(&a, &b, &where), "round %d: lists differ at op %zu (%zu vs %zu ops)", round, where, a.count,
              b.count);
        CHECK(enc_len <= len, "the encoding (%zu bytes) is longer than the input (%zu)", enc_len, len);
        free(enc);
        amm_ops_free(&a);
        amm_ops_free(&b);
    }
}

/* format then parse gives the same list; and the JSON form names every op. */
static void test_text_round_trip(void) {
    for (int round = 0; round < 200; round++) {
        uint8_t bytes[200];
        size_t len = rnd() % sizeof bytes, pos = 0, cap = 1 << 16, where;
        for (size_t i = 0; i < len; i++) bytes[i] = (uint8_t)rnd();
        amm_op_list a = {0}, b = {0};
        char *text = malloc(cap), err[200], line[256];
        CHECK(text != NULL, "no memory");
        CHECK(amm_ops_decode(bytes, len, AMM_OPS_FULL, 0, &a) == 0, "decode failed");
        for (size_t i = 0; i < a.count; i++) {
            amm_op_format(&a.ops[i], i, line, sizeof line);
            pos += (size_t)snprintf(text + pos, cap - pos, "%s -> 0x1234\n", line);
            amm_op_format_json(&a.ops[i], i, line, sizeof line);
            CHECK(strstr(line, amm_op_kind_name(a.ops[i].kind)) != NULL, "JSON %s lacks the op name", line);
        }
        CHECK(amm_ops_parse_text(text, pos, &b, err, sizeof err) == 0, "parse failed: %s", err);
        CHECK(same_list(&a, &b, &where), "round %d: lists differ at op %zu", round, where);
        free(text);
        amm_ops_free(&a);
        amm_ops_free(&b);
    }
}

/* A truncated last op is dropped; every prefix decodes without error. */
static void test_decode_truncated(void) {
    const uint8_t alloc_large[] = {0x00, 0x01, 0xE4, 0x93, 0xE0, 0x07, 0x00}; /* alloc slot=1 size=300000 align=64 */
    for (size_t n = 0; n <= sizeof alloc_large; n++) {
        amm_op_list l = {0};
        CHECK(amm_ops_decode(alloc_large, n, AMM_OPS_BASIC, 0, &l) == 0, "decode failed");
        CHECK(l.count == (n == sizeof alloc_large), "%zu bytes gave %zu ops", n, l.count);
        if (l.count) CHECK(l.ops[0].size == 300000 && l.ops[0].align == 64, "decoded size %llu align %llu",
                           (unsigned long long)l.ops[0].size, (unsigned long long)l.ops[0].align);
        amm_ops_free(&l);
    }
}

static void expect_parse_error(const char *text, const char *want) {
    amm_op_list l = {0};
    char err[200] = "";
    int rc = amm_ops_parse_text(text, strlen(text), &l, err, sizeof err);
    amm_ops_free(&l);
    CHECK(rc == -1 && strstr(err, want) != NULL, "parsing \"%s\": rc %d, error \"%s\", wanted \"%s\"", text, rc, err,
          want);
}

static void test_parse_errors(void) {
    expect_parse_error("alloc slot=1\nfrob slot=2\n", "line 2: unknown op 'frob'");
    expect_parse_error("alloc slot=-1\n", "bad value for slot");
    expect_parse_error("alloc slot=1048576\n", "bad value for slot");
    expect_parse_error("alloc slot=1 flags=movable|sticky\n", "bad value for flags");
    expect_parse_error("check slot=1\n", "check takes no field 'slot'");
    expect_parse_error("free slot\n", "free takes no field 'slot'");
    expect_parse_error("alloc slot=1 size=1 align=1 flags=0 k=3 k=4\n", "too many fields");
    amm_op_list l = {0};
    char err[200];
    const char *ok = "// comment\n# comment\n\n#7 alloc slot=2 size=0x10 flags=movable|zero -> 0x55\nfree slot=2 // bye\n";
    CHECK(amm_ops_parse_text(ok, strlen(ok), &l, err, sizeof err) == 0, "parse failed: %s", err);
    CHECK(l.count == 2 && l.ops[0].size == 16 && l.ops[0].flags == 5 && l.ops[1].kind == AMM_OP_FREE,
          "parsed %zu ops", l.count);
    amm_ops_free(&l);
}

static void test_detect(void) {
    const uint8_t trace[] = "AMMTRACE\x01\x00", text[] = "alloc slot=1\n", raw[] = {0x00, 0x01, 0x10, 0x05, 0x00};
    CHECK(amm_ops_detect(trace, sizeof trace - 1) == AMM_FMT_TRACE, "trace not detected");
    CHECK(amm_ops_detect(text, sizeof text - 1) == AMM_FMT_TEXT, "text not detected");
    CHECK(amm_ops_detect(raw, sizeof raw) == AMM_FMT_RAW, "raw not detected");
    CHECK(amm_ops_detect(raw, 0) == AMM_FMT_RAW, "empty input is not raw");
}

/* The executor passes a clean list and fails a damaged one, naming the op. */
static void test_exec_oracle(void) {
    const char *clean = "alloc slot=0 size=40\nrealloc slot=0 size=4000\nfree slot=0\n";
    const char *bad = "alloc slot=0 size=40\nscribble slot=0 k=39\ncheck\nfree slot=0\n";
    amm_op_list l = {0};
    amm_exec_result r;
    char err[200];
    CHECK(amm_ops_parse_text(clean, strlen(clean), &l, err, sizeof err) == 0, "%s", err);
    CHECK(amm_exec_run(&l, NULL, &r) == AMM_EXEC_CLEAN, "clean list: %s", r.message);
    CHECK(r.ops_run == 3 && r.ops_skipped == 0 && r.peak_live_bytes == 4000, "ran %zu skipped %zu peak %zu", r.ops_run,
          r.ops_skipped, r.peak_live_bytes);
    amm_ops_free(&l);
    CHECK(amm_ops_parse_text(bad, strlen(bad), &l, err, sizeof err) == 0, "%s", err);
    CHECK(amm_exec_run(&l, NULL, &r) == AMM_EXEC_FAULT, "a scribble went unnoticed");
    CHECK(r.op_index == 1 && strstr(r.message, "byte 39") != NULL, "fault at op %zu: %s", r.op_index, r.message);
    amm_ops_free(&l);
}

typedef struct test {
    const char *name;
    void (*fn)(void);
} test;

static const test tests[] = {
    {"codec_round_trip", test_codec_round_trip}, {"text_round_trip", test_text_round_trip},
    {"decode_truncated", test_decode_truncated}, {"parse_errors", test_parse_errors},
    {"detect", test_detect},                     {"exec_oracle", test_exec_oracle},
};

int main(int argc, char **argv) {
    const char *env = getenv("AMM_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : 0x5eed;
    int named = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 0);
        else named = 1;
    }
    rng_state = seed ? seed : 1;
    printf("test_ops: seed %llu (AMM_TEST_SEED or --seed to change)\n", (unsigned long long)seed);
    int ran = 0;
    for (size_t t = 0; t < sizeof tests / sizeof tests[0]; t++) {
        int want = !named;
        for (int i = 1; i < argc; i++) want |= !strcmp(argv[i], tests[t].name);
        if (!want) continue;
        int before = failures;
        tests[t].fn();
        ran++;
        printf("%s %s\n", failures == before ? "ok  " : "FAIL", tests[t].name);
    }
    if (!ran) {
        fprintf(stderr, "test_ops: no test matches\n");
        return 2;
    }
    return failures ? 1 : 0;
}
