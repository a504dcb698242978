/*
 * fuzz_options.c - libFuzzer target: arbitrary AMM_OPTIONS strings.
 *
 * The input (up to 4 KiB, cut at its first NUL) is parsed with
 * amm_config_parse.  Oracle: a refusal always comes with an error text; the
 * parse is deterministic (the same string on fresh configs gives the same
 * config); and an accepted config either makes a working manager (a few
 * allocations, frees, a check that finds nothing) or is refused by
 * amm_create with a report, never a crash.  Tracing is switched off so the
 * fuzzer never writes files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <amm/amm.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const char *input) {
    fprintf(stderr, "fuzz_options: %s (options \"%s\")\n", what, input);
    abort();
}

static void count_fault(const amm_report *r, void *user) {
    (void)r;
    ++*(size_t *)user;
}

/* A small workload on an accepted config. */
static void exercise(amm_config *cfg, const char *input) {
    size_t faults = 0;
    cfg->trace = NULL;
    cfg->on_error = AMM_ON_ERROR_REPORT;
    cfg->on_fault = count_fault;
    cfg->on_fault_user = &faults;
    amm_manager *m = amm_create(cfg);
    if (!m) return; /* refused (out-of-range value or no memory), reported */
    void *p[8];
    for (size_t i = 0; i < 8; i++) {
        p[i] = amm_alloc(m, i * 40, (size_t)1 << i);
        if (p[i]) memset(p[i], (int)i, i * 40);
    }
    for (size_t i = 0; i < 8; i += 2) amm_free(m, p[i]);
    size_t problems = amm_check(m);
    for (size_t i = 1; i < 8; i += 2) amm_free(m, p[i]);
    if (problems) die("amm_check found problems on a clean workload", input);
    if (faults) {
        size_t oom = 0;
        for (size_t i = 0; i < 8; i++) oom += p[i] == NULL;
        if (!oom) die("faults reported on a clean workload", input);
    }
    amm_destroy(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char input[4097];
    size_t n = size < sizeof input - 1 ? size : sizeof input - 1;
    memcpy(input, data, n);
    input[n] = '\0';
    amm_config a, b;
    char err_a[256] = "", err_b[256] = "";
    amm_config_defaults(&a);
    amm_config_defaults(&b);
    int ra = amm_config_parse(&a, input, err_a, sizeof err_a);
    int rb = amm_config_parse(&b, input, err_b, sizeof err_b);
    if (ra != rb || strcmp(err_a, err_b) != 0) die("two parses of the same string disagree", input);
    if (ra != 0 && ra != -1) die("amm_config_parse returned neither 0 nor -1", input);
    if (ra == -1 && !err_a[0]) die("a refusal without an error text", input);
    if (ra == 0) exercise(&a, input);
    return 0;
}
