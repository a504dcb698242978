/*
 * test_stats.c - statistics equal what the test computes itself (from its
 * own bookkeeping and from the walker), the fragmentation formulas of
 * DESIGN.md, the walker's order, coverage and serials, the defragment
 * report's before/after, amm_print, and the JSON dump (checked by
 * a small hand-written JSON parser, and by python3's json module if present).
 */
#include "../harness.h"

#include <sys/resource.h>

/* no quarantine, no reuse lists: every free merges at once */
#define NOQ "quarantine=0,quarantine_blocks=0,region_size=64K,reuse=0"

static double fabs_(double x) { return x < 0 ? -x : x; } /* no libm needed */

/* ---- what the walker sees ---- */

typedef struct tally {
    size_t visited;
    size_t live, live_bytes, quarantined, quarantine_bytes;
    size_t free_spans, free_bytes, largest_free;
    size_t pool_slots, pool_live;
    size_t large;         /* live blocks with their own mapping */
    size_t order_errors, tile_errors;
    size_t region;
    uintptr_t next_raw;   /* where the next heap chunk of this region must start */
    int have_region;
} tally;

static int tally_visit(const amm_block_info *b, void *user)
{
    tally *t = (tally *)user;
    t->visited++;
    if (b->origin == AMM_ORIGIN_HEAP) {
        if (t->have_region && t->region == b->region_index && (uintptr_t)b->raw != t->next_raw)
            t->tile_errors++;               /* chunks tile their region (I1) */
        t->have_region = 1;
        t->region = b->region_index;
        t->next_raw = (uintptr_t)b->raw + b->raw_size;
    } else {
        t->have_region = 0;
    }
    if (b->origin == AMM_ORIGIN_POOL)
        t->pool_slots++;
    switch (b->state) {
    case AMM_BLOCK_LIVE:
        t->large += b->origin == AMM_ORIGIN_LARGE;
        t->live++;
        t->live_bytes += b->size;
        t->pool_live += b->origin == AMM_ORIGIN_POOL;
        if (b->user < b->raw || (uintptr_t)b->user + b->size > (uintptr_t)b->raw + b->raw_size)
            t->order_errors++;
        break;
    case AMM_BLOCK_QUARANTINED:
        t->quarantined++;
        t->quarantine_bytes += b->raw_size;
        break;
    case AMM_BLOCK_FREE:
        if (b->origin == AMM_ORIGIN_HEAP) {
            t->free_spans++;
            t->free_bytes += b->size;
            if (b->size > t->largest_free)
                t->largest_free = b->size;
        }
        break;
    }
    return 0;
}

static tally walk_tally(amm_manager *m)
{
    tally t;
    memset(&t, 0, sizeof t);
    EXPECT_EQ(amm_walk(m, tally_visit, &t), t.visited);
    EXPECT_EQ(t.order_errors, 0);
    EXPECT_EQ(t.tile_errors, 0);
    return t;
}

/* Stats against the walker and against the formulas. */
static void expect_stats_consistent(amm_manager *m)
{
    amm_stats st;
    tally t = walk_tally(m);
    amm_get_stats(m, &st);
    EXPECT_EQ(st.live_blocks, t.live);
    EXPECT_EQ(st.live_bytes, t.live_bytes);
    EXPECT_EQ(st.quarantine_blocks, t.quarantined);
    EXPECT_EQ(st.quarantine_bytes, t.quarantine_bytes);
    EXPECT_EQ(st.free_bytes, t.free_bytes);
    EXPECT_EQ(st.largest_free, t.largest_free);
    EXPECT_EQ(st.pool_slots, t.pool_slots);
    EXPECT_EQ(st.pool_slots_used, t.pool_live);
    EXPECT_EQ(st.large_count, t.large);
    EXPECT_LE(st.live_bytes + st.quarantine_bytes, st.reserved_bytes);
    EXPECT_LE(st.reuse_bytes, st.free_bytes);
    EXPECT_LE(st.resident_bytes, st.reserved_bytes);
    EXPECT_GE(st.peak_live_bytes, st.live_bytes);
    if (st.free_bytes)
        EXPECT_LT(fabs_(st.external_frag - (1.0 - (double)st.largest_free / (double)st.free_bytes)), 1e-9);
    else
        EXPECT_EQ(st.external_frag, 0.0);
    if (st.reserved_bytes)
        EXPECT_LT(fabs_(st.overhead - (double)(st.reserved_bytes - st.live_bytes) / (double)st.reserved_bytes), 1e-9);
    else
        EXPECT_EQ(st.overhead, 0.0);
    EXPECT_EQ(st.faults, amm_fault_count(m));
}

TEST(counts_follow_operations)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    amm_stats st;
    void *p[10];
    size_t bytes = 0;
    amm_get_stats(m, &st);
    EXPECT_EQ(st.live_blocks, 0);
    EXPECT_EQ(st.live_bytes, 0);
    EXPECT_EQ(st.total_allocs, 0);
    for (int i = 0; i < 10; i++) {
        p[i] = amm_alloc(m, (size_t)(i + 1) * 10, 0);
        ASSERT_NOT_NULL(p[i]);
        bytes += (size_t)(i + 1) * 10;
        amm_get_stats(m, &st);
        EXPECT_EQ(st.live_blocks, (size_t)i + 1);
        EXPECT_EQ(st.live_bytes, bytes);
        EXPECT_EQ(st.peak_live_bytes, bytes);
        EXPECT_EQ(st.total_allocs, (size_t)i + 1);
        expect_stats_consistent(m);
    }
    for (int i = 0; i < 10; i += 2) {
        EXPECT_EQ(amm_free(m, p[i]), 0);
        bytes -= (size_t)(i + 1) * 10;
        expect_stats_consistent(m);
    }
    amm_get_stats(m, &st);
    EXPECT_EQ(st.live_blocks, 5);
    EXPECT_EQ(st.live_bytes, bytes);
    EXPECT_EQ(st.peak_live_bytes, 550);
    EXPECT_EQ(st.total_frees, 5);
    EXPECT_EQ(st.region_count, 1);
    EXPECT_EQ(st.reserved_bytes, 65536);
    EXPECT_GT(st.external_frag, 0.0);       /* holes between live blocks */
    for (int i = 1; i < 10; i += 2)
        EXPECT_EQ(amm_free(m, p[i]), 0);
    amm_get_stats(m, &st);
    EXPECT_EQ(st.live_bytes, 0);
    EXPECT_EQ(st.free_bytes, 65536);        /* all coalesced again */
    EXPECT_EQ(st.largest_free, 65536);
    EXPECT_EQ(st.external_frag, 0.0);
    EXPECT_EQ(st.overhead, 1.0);
    expect_stats_consistent(m);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(fragmentation_figures)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    amm_stats st;
    void *p[8];
    /* 8 chunks of 16 + 100 + 16 -> 144 bytes; free 1, 3 and 4: holes of 144 and 288 */
    for (int i = 0; i < 8; i++)
        ASSERT_NOT_NULL(p[i] = amm_alloc(m, 100, 0));
    EXPECT_EQ(amm_free(m, p[1]), 0);
    EXPECT_EQ(amm_free(m, p[3]), 0);
    EXPECT_EQ(amm_free(m, p[4]), 0);
    EXPECT_HEAP(m, "[U144 F144 U144 F288 U144 U144 U144 F*]");
    amm_get_stats(m, &st);
    EXPECT_EQ(st.free_bytes, 65536 - 5 * 144);
    EXPECT_EQ(st.largest_free, 65536 - 8 * 144);
    EXPECT_LT(fabs_(st.external_frag - (1.0 - (65536.0 - 8 * 144) / (65536.0 - 5 * 144))), 1e-9);
    EXPECT_LT(fabs_(st.overhead - (65536.0 - 500) / 65536.0), 1e-9);
    expect_stats_consistent(m);
    for (int i = 0; i < 8; i++)
        if (i != 1 && i != 3 && i != 4)
            EXPECT_EQ(amm_free(m, p[i]), 0);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(walker_visits_everything)
{
    h_faults f;
    amm_manager *m = h_new_manager("quarantine=1M,large_threshold=64K,region_size=64K", &f);
    amm_pool *pool = amm_pool_create(m, 32, 5, 16);
    void *heap[30], *large, *slots[3];
    tally t;
    ASSERT_NOT_NULL(pool);
    for (int i = 0; i < 30; i++)
        ASSERT_NOT_NULL(heap[i] = amm_alloc_flags(m, 3000, 0, AMM_ALLOC_NO_POOL)); /* two regions */
    ASSERT_NOT_NULL(large = amm_alloc(m, 100000, 0));
    for (int i = 0; i < 3; i++)
        ASSERT_NOT_NULL(slots[i] = amm_alloc(m, 32, 0));
    for (int i = 0; i < 30; i += 3)
        EXPECT_EQ(amm_free(m, heap[i]), 0); /* quarantined */
    EXPECT_EQ(amm_free(m, slots[0]), 0);
    t = walk_tally(m);
    EXPECT_EQ(t.live, 20 + 1 + 2);
    EXPECT_EQ(t.quarantined, 10 + 1);
    EXPECT_EQ(t.pool_slots, 5);
    EXPECT_EQ(t.large, 1);
    EXPECT_EQ(t.live - t.pool_live, 20 + 1);
    EXPECT_GE(t.free_spans, 2);             /* the free tail of each region */
    expect_stats_consistent(m);
    {
        amm_stats st;
        amm_get_stats(m, &st);
        EXPECT_GE(st.region_count, 2);
    }
    for (int i = 0; i < 30; i++)
        if (i % 3)
            EXPECT_EQ(amm_free(m, heap[i]), 0);
    EXPECT_EQ(amm_free(m, large), 0);
    EXPECT_EQ(amm_free(m, slots[1]), 0);
    EXPECT_EQ(amm_free(m, slots[2]), 0);
    expect_stats_consistent(m);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(kept_chunks_count_as_free_space)
{
    h_faults f;
    amm_manager *m = h_new_manager("quarantine=0,quarantine_blocks=0,region_size=64K,reuse=4K", &f);
    enum { N = 65536 / 48 };                /* 48-byte chunks fill the region: no free span left */
    static void *p[N];
    amm_stats st;
    for (int i = 0; i < N; i++)
        ASSERT_NOT_NULL(p[i] = amm_alloc(m, 16, 0));
    EXPECT_EQ(amm_free(m, p[7]), 0);        /* kept for reuse: still a free span of 48 bytes */
    EXPECT_EQ(amm_free(m, p[9]), 0);
    amm_get_stats(m, &st);
    EXPECT_EQ(st.region_count, 1);
    EXPECT_EQ(st.reuse_bytes, 96);
    EXPECT_EQ(st.free_bytes, 96);
    EXPECT_EQ(st.largest_free, 48);
    expect_stats_consistent(m);
    for (int i = 0; i < N; i++) {
        if (i != 7 && i != 9)
            EXPECT_EQ(amm_free(m, p[i]), 0);
    }
    expect_stats_consistent(m);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

static int stop_at_first(const amm_block_info *b, void *user)
{
    (void)b;
    (*(size_t *)user)++;
    return 1;
}

TEST(walker_stops_when_asked)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    size_t calls = 0;
    for (int i = 0; i < 5; i++)
        ASSERT_NOT_NULL(amm_alloc(m, 16, 0));
    EXPECT_EQ(amm_walk(m, stop_at_first, &calls), 1);
    EXPECT_EQ(calls, 1);
    amm_destroy(m);
}

/* ---- JSON ---- */

typedef struct json {
    const char *s;
    const char *err;
    int depth;
} json;

static void json_ws(json *j)
{
    while (*j->s == ' ' || *j->s == '\n' || *j->s == '\r' || *j->s == '\t')
        j->s++;
}

static int json_value(json *j);

static int json_fail(json *j, const char *why)
{
    if (!j->err)
        j->err = why;
    return -1;
}

static int json_string(json *j)
{
    if (*j->s != '"')
        return json_fail(j, "expected a string");
    j->s++;
    while (*j->s != '"') {
        if ((unsigned char)*j->s < 0x20)
            return json_fail(j, "control character or end inside a string");
        if (*j->s == '\\') {
            j->s++;
            if (*j->s == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", j->s[i]) || !j->s[i])
                        return json_fail(j, "bad \\u escape");
                j->s += 4;
            } else if (!*j->s || !strchr("\"\\/bfnrt", *j->s)) {
                return json_fail(j, "bad escape");
            }
        }
        j->s++;
    }
    j->s++;
    return 0;
}

static int json_number(json *j)
{
    const char *start = j->s;
    if (*j->s == '-')
        j->s++;
    if (*j->s == '0')
        j->s++;
    else if (*j->s >= '1' && *j->s <= '9')
        while (*j->s >= '0' && *j->s <= '9')
            j->s++;
    else
        return json_fail(j, "bad number");
    if (*j->s == '.') {
        j->s++;
        if (*j->s < '0' || *j->s > '9')
            return json_fail(j, "bad fraction");
        while (*j->s >= '0' && *j->s <= '9')
            j->s++;
    }
    if (*j->s == 'e' || *j->s == 'E') {
        j->s++;
        if (*j->s == '+' || *j->s == '-')
            j->s++;
        if (*j->s < '0' || *j->s > '9')
            return json_fail(j, "bad exponent");
        while (*j->s >= '0' && *j->s <= '9')
            j->s++;
    }
    return j->s > start ? 0 : -1;
}

static int json_list(json *j, char close, int keyed)
{
    j->s++;
    json_ws(j);
    if (*j->s == close) {
        j->s++;
        return 0;
    }
    for (;;) {
        json_ws(j);
        if (keyed) {
            if (json_string(j))
                return -1;
            json_ws(j);
            if (*j->s != ':')
                return json_fail(j, "expected ':'");
            j->s++;
        }
        if (json_value(j))
            return -1;
        json_ws(j);
        if (*j->s == ',') {
            j->s++;
            continue;
        }
        if (*j->s == close) {
            j->s++;
            return 0;
        }
        return json_fail(j, "expected ',' or a closing bracket");
    }
}

static int json_value(json *j)
{
    int r;
    json_ws(j);
    if (++j->depth > 64)
        return json_fail(j, "nested too deep");
    switch (*j->s) {
    case '{': r = json_list(j, '}', 1); break;
    case '[': r = json_list(j, ']', 0); break;
    case '"': r = json_string(j); break;
    case 't': r = strncmp(j->s, "true", 4) ? json_fail(j, "bad literal") : (j->s += 4, 0); break;
    case 'f': r = strncmp(j->s, "false", 5) ? json_fail(j, "bad literal") : (j->s += 5, 0); break;
    case 'n': r = strncmp(j->s, "null", 4) ? json_fail(j, "bad literal") : (j->s += 4, 0); break;
    default: r = json_number(j); break;
    }
    j->depth--;
    return r;
}

/* Returns 0 if text is exactly one JSON value, else -1 with *why and *where. */
static int json_validate(const char *text, const char **why, size_t *where)
{
    json j = {text, NULL, 0};
    int r = json_value(&j);
    json_ws(&j);
    if (r == 0 && *j.s)
        r = json_fail(&j, "text after the value");
    *why = j.err ? j.err : "ok";
    *where = (size_t)(j.s - text);
    return r;
}

/* The number after "key": inside the object that follows "section":. */
static long long json_number_in(const char *text, const char *section, const char *key)
{
    char pat[64];
    const char *s;
    snprintf(pat, sizeof pat, "\"%s\"", section);
    s = strstr(text, pat);
    if (!s)
        return -1;
    snprintf(pat, sizeof pat, "\"%s\"", key);
    s = strstr(s, pat);
    if (!s)
        return -1;
    s += strlen(pat);
    while (*s == ' ' || *s == ':')
        s++;
    return strtoll(s, NULL, 10);
}

static char *dump_json(amm_manager *m, char *path, size_t path_len)
{
    FILE *out;
    long n;
    char *text;
    int fd;
    snprintf(path, path_len, "/tmp/amm-test-stats-XXXXXX");
    fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    out = fdopen(fd, "w+");
    if (!out)
        return NULL;
    amm_dump_json(m, out);
    fflush(out);
    n = ftell(out);
    text = (char *)malloc((size_t)n + 1);
    if (text) {
        rewind(out);
        text[fread(text, 1, (size_t)n, out)] = '\0';
    }
    fclose(out);
    return text;
}

TEST(json_tiny_parser_self_check)
{
    /* the checker must be able to fail */
    static const char *const bad[] = {"{", "{\"a\" 1}", "[1,]", "{\"a\":01}", "\"x", "[1] 2", "nul", "{\"a\":1,}"};
    static const char *const good[] = {"{}", "[]", "{\"a\":[1,2.5,-3e2,true,false,null,\"x\\n\"]}", " 0 "};
    const char *why;
    size_t where;
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++)
        EXPECT_EQ(json_validate(bad[i], &why, &where), -1);
    for (unsigned i = 0; i < sizeof good / sizeof good[0]; i++)
        EXPECT_EQ(json_validate(good[i], &why, &where), 0);
}

TEST(json_dump_parses)
{
    h_faults f;
    amm_manager *m = h_new_manager("quarantine=1M,large_threshold=64K", &f);
    char path[64];
    char *text;
    const char *why;
    size_t where;
    amm_stats st;
    void *a, *b, *c;
    ASSERT_NOT_NULL(amm_pool_create(m, 32, 4, 16));
    ASSERT_NOT_NULL(a = amm_alloc(m, 24, 0));
    ASSERT_NOT_NULL(b = amm_alloc(m, 300, 64));
    ASSERT_NOT_NULL(c = amm_alloc(m, 70000, 0));
    EXPECT_EQ(amm_retain(m, b), 2u);
    EXPECT_EQ(amm_free(m, a), 0);
    amm_get_stats(m, &st);
    text = dump_json(m, path, sizeof path);
    ASSERT_NOT_NULL(text);
    if (json_validate(text, &why, &where) != 0) {
        h_fail(__FILE__, __LINE__, "JSON dump does not parse: %s at byte %zu: ...%.60s", why, where,
               text + where);
    }
    EXPECT_CONTAINS(text, "\"options\"");
    EXPECT_CONTAINS(text, "\"stats\"");
    EXPECT_CONTAINS(text, "\"pools\"");
    EXPECT_CONTAINS(text, "\"blocks\"");
#define X(field, unit, desc) EXPECT_CONTAINS(text, "\"" #field "\"");
    AMM_STATS_COUNTS(X)
    AMM_STATS_RATIOS(X)
#undef X
    EXPECT_EQ(json_number_in(text, "stats", "live_blocks"), (long long)st.live_blocks);
    EXPECT_EQ(json_number_in(text, "stats", "live_bytes"), (long long)st.live_bytes);
    EXPECT_EQ(json_number_in(text, "stats", "reserved_bytes"), (long long)st.reserved_bytes);
    EXPECT_EQ(json_number_in(text, "options", "canary"), 16);
    if (system("command -v python3 >/dev/null 2>&1") == 0) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "python3 -c 'import json,sys; json.load(open(sys.argv[1]))' %s", path);
        EXPECT_EQ(system(cmd), 0);
    } else {
        printf("    (python3 not found: only the built-in parser checked the dump)\n");
    }
    free(text);
    remove(path);
    EXPECT_EQ(amm_release(m, b), 1u);
    EXPECT_EQ(amm_free(m, b), 0);
    EXPECT_EQ(amm_free(m, c), 0);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(json_dump_of_empty_manager)
{
    amm_manager *m = h_new_manager("", NULL);
    char path[64];
    char *text = dump_json(m, path, sizeof path);
    const char *why;
    size_t where;
    ASSERT_NOT_NULL(text);
    EXPECT_EQ(json_validate(text, &why, &where), 0);
    EXPECT_EQ(json_number_in(text, "stats", "live_blocks"), 0);
    free(text);
    remove(path);
    amm_destroy(m);
}

TEST(defragment_reports_before_and_after)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    amm_defrag_report rep;
    amm_stats now;
    void *p[60];
    for (int i = 0; i < 60; i++)
        ASSERT_NOT_NULL(p[i] = amm_alloc(m, 3000, 0));
    for (int i = 0; i < 60; i++)
        if (i % 20)
            EXPECT_EQ(amm_free(m, p[i]), 0);
    amm_get_stats(m, &now);
    memset(&rep, 0xFF, sizeof rep);
    amm_defragment(m, AMM_DEFRAG_ALL, &rep);
    EXPECT_EQ(rep.before.live_blocks, now.live_blocks);
    EXPECT_EQ(rep.before.reserved_bytes, now.reserved_bytes);
    EXPECT_EQ(rep.before.free_bytes, now.free_bytes);
    amm_get_stats(m, &now);
    EXPECT_EQ(rep.after.live_blocks, 3);
    EXPECT_EQ(rep.after.reserved_bytes, now.reserved_bytes);
    EXPECT_LE(rep.after.reserved_bytes, rep.before.reserved_bytes);
    EXPECT_EQ(rep.before.reserved_bytes - rep.after.reserved_bytes >= rep.regions_released * 65536, 1);
    EXPECT_EQ(rep.blocks_moved, 0);         /* none were marked movable */
    expect_stats_consistent(m);
    for (int i = 0; i < 60; i += 20)
        EXPECT_EQ(amm_free(m, p[i]), 0);
    amm_defragment(m, AMM_DEFRAG_RELEASE, NULL);
    EXPECT_HEALTHY(m);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

/* What amm_print prints, in text (NUL-terminated); its length. */
static size_t print_to_text(amm_manager *m, char *text, size_t len)
{
    FILE *tmp = tmpfile();
    text[0] = '\0';
    if (!tmp) return 0;
    amm_print(m, tmp);
    return h_read_back(tmp, text, len);
}

TEST(print_names_blocks_and_pools)
{
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    char text[16384];
    void *a;
    ASSERT_NOT_NULL(amm_pool_create(m, 48, 3, 16));
    ASSERT_NOT_NULL(a = amm_alloc(m, 12345, 0));
    EXPECT_GT(print_to_text(m, text, sizeof text), 0);
    EXPECT_CONTAINS(text, "12345");         /* the block's size */
    EXPECT_CONTAINS(text, "test_stats.c");  /* its site */
    EXPECT_EQ(amm_free(m, a), 0);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

/* A site with line 0 (no line known) prints as its name alone. */
TEST(print_site_without_line)
{
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    char text[16384];
    void *a, *b;
    ASSERT_NOT_NULL(a = amm_alloc_at(m, 321, 0, 0, "prog!make_it+0x1c", 0));
    ASSERT_NOT_NULL(b = amm_alloc_at(m, 123, 0, 0, "dir/app.c", 12));
    EXPECT_GT(print_to_text(m, text, sizeof text), 0);
    EXPECT_CONTAINS(text, " prog!make_it+0x1c\n");
    EXPECT_CONTAINS(text, " app.c:12\n");
    EXPECT_TRUE(strstr(text, ":0\n") == NULL);
    EXPECT_EQ(amm_free(m, a), 0);
    EXPECT_EQ(amm_free(m, b), 0);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

typedef struct serials {
    const void *ptr[4];
    uint64_t serial[4];
} serials;

static int serial_visit(const amm_block_info *b, void *user)
{
    serials *s = (serials *)user;
    for (int i = 0; i < 4; i++)
        if (b->state == AMM_BLOCK_LIVE && b->user == s->ptr[i])
            s->serial[i] = b->serial;
    return 0;
}

TEST(walker_serials_grow_with_age)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    serials s;
    memset(&s, 0, sizeof s);
    for (int i = 0; i < 4; i++)
        ASSERT_NOT_NULL(s.ptr[i] = amm_alloc(m, 10 + (size_t)i, 0));
    amm_walk(m, serial_visit, &s);
    for (int i = 1; i < 4; i++)
        EXPECT_LT(s.serial[i - 1], s.serial[i]);  /* smaller is older */
    EXPECT_GT(s.serial[0], 0);
    for (int i = 0; i < 4; i++)
        EXPECT_EQ(amm_free(m, (void *)s.ptr[i]), 0);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

/* Frees 30 touched 100000-byte blocks; returns resident bytes before and after. */
static void free_touched_blocks(const char *options, size_t *before, size_t *after)
{
    h_faults f;
    amm_manager *m = h_new_manager(options, &f);
    amm_stats st;
    void *keep, *big[30];
    ASSERT_NOT_NULL(keep = amm_alloc(m, 64, 0)); /* the region stays mapped */
    for (int i = 0; i < 30; i++) {
        ASSERT_NOT_NULL(big[i] = amm_alloc(m, 100000, 0));
        h_fill(big[i], 100000, (uint64_t)i);
    }
    amm_get_stats(m, &st);
    *before = st.resident_bytes;
    for (int i = 0; i < 30; i++)
        EXPECT_EQ(amm_free(m, big[i]), 0);
    amm_get_stats(m, &st);
    *after = st.resident_bytes;
    EXPECT_HEALTHY(m);
    {
        /* spans given back are reused as usual: their pages come back on touch */
        for (int i = 0; i < 30; i++) {
            ASSERT_NOT_NULL(big[i] = amm_alloc(m, 100000, 0));
            h_fill(big[i], 100000, (uint64_t)i + 100);
        }
        for (int i = 0; i < 30; i++) {
            EXPECT_EQ(h_verify(big[i], 100000, (uint64_t)i + 100), -1);
            EXPECT_EQ(amm_free(m, big[i]), 0);
        }
    }
    EXPECT_EQ(amm_free(m, keep), 0);
    EXPECT_FAULTS(&f, 0);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

TEST(freed_spans_give_pages_back)
{
    size_t before, after;
    /* purge on (64K spans): resident memory follows what is in use, with no amm_defragment */
    free_touched_blocks("quarantine=0,quarantine_blocks=0,region_size=4M,large_threshold=1M,purge=64K,purge_delay=0", &before, &after);
    EXPECT_GE(before, (size_t)30 * 100000);
    /* all but the last two purge batches' worth (the batch is reserved / 32 = 128K here) */
    EXPECT_LE(after + (size_t)30 * 100000 - ((size_t)512 << 10), before);
    /* purge on, but the first batch ended just now and the next may not end for 100 s: the pages stay */
    free_touched_blocks("quarantine=0,quarantine_blocks=0,region_size=4M,large_threshold=1M,purge=64K,purge_delay=100000",
                        &before, &after);
    EXPECT_GE(after + ((size_t)512 << 10), before);
    /* purge off: the pages stay */
    free_touched_blocks("quarantine=0,quarantine_blocks=0,region_size=4M,large_threshold=1M,purge=0", &before, &after);
    EXPECT_GE(after + ((size_t)64 << 10), before);
}

TEST(release_returns_resident_pages)
{
    h_faults f;
    /* purge=0: freed spans keep their pages until amm_defragment releases them */
    amm_manager *m = h_new_manager("quarantine=1M,region_size=4M,large_threshold=1M,purge=0", &f);
    amm_defrag_report rep;
    amm_stats st;
    void *keep, *big[30];
    ASSERT_NOT_NULL(keep = amm_alloc(m, 64, 0)); /* the region stays mapped */
    for (int i = 0; i < 30; i++) {
        ASSERT_NOT_NULL(big[i] = amm_alloc(m, 100000, 0));
        h_fill(big[i], 100000, (uint64_t)i); /* touched: resident */
    }
    amm_get_stats(m, &st);
    EXPECT_GE(st.resident_bytes, (size_t)30 * 100000);
    for (int i = 0; i < 30; i++)
        EXPECT_EQ(amm_free(m, big[i]), 0);   /* mostly held in quarantine */
    amm_defragment(m, AMM_DEFRAG_RELEASE, &rep);
    EXPECT_HEALTHY(m);
    EXPECT_EQ(rep.after.quarantine_blocks, 0); /* defragmenting empties the quarantine */
    EXPECT_GE(rep.bytes_released, (size_t)2 << 20);
    EXPECT_LE(rep.after.resident_bytes + ((size_t)2 << 20), rep.before.resident_bytes);
    EXPECT_EQ(rep.after.live_blocks, 1);
    EXPECT_EQ(amm_owns(m, keep), 1);
    EXPECT_EQ(amm_free(m, keep), 0);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

/* Purging reaches every dirty span: the gap an aligned allocation leaves in
 * front of it, and what is left of a span that one allocation after another
 * is carved from (it keeps its age, so it is purged once a batch goes by). */
TEST(purge_reaches_gaps_and_carved_spans)
{
    h_faults f;
    amm_manager *m = h_new_manager("purge=8K,purge_delay=0,quarantine=0,quarantine_blocks=0,region_size=1M", &f);
    amm_stats st;
    unsigned char *pin0 = amm_alloc(m, 16, 0), *a = amm_alloc(m, 200000, 0), *pin = amm_alloc(m, 16, 0), *al;
    void *small[200];
    ASSERT_NOT_NULL(pin0);
    ASSERT_NOT_NULL(a);
    ASSERT_NOT_NULL(pin);
    memset(a, 1, 200000);
    EXPECT_EQ(amm_free(m, a), 0);               /* a dirty 200 KB span */
    ASSERT_NOT_NULL(al = amm_alloc(m, 100, 65536)); /* carved from it, a ~57 KB gap in front */
    for (int k = 0; k < 200; k++) {             /* 10 MB freed: batch after batch */
        unsigned char *x = amm_alloc(m, 50000, 0);
        ASSERT_NOT_NULL(x);
        memset(x, 2, 50000);
        EXPECT_EQ(amm_free(m, x), 0);
        ASSERT_NOT_NULL(small[k] = amm_alloc(m, 16, 0));
    }
    amm_get_stats(m, &st);
    /* live: a few pages (the pins, the aligned block, 200 small blocks); the
     * last batch's 50 KB block may still be resident; the gap and the old
     * span's untouched tail are not */
    printf("    resident %zu bytes\n", st.resident_bytes);
    EXPECT_LE(st.resident_bytes, (size_t)128 << 10);
    for (int k = 0; k < 200; k++)
        EXPECT_EQ(amm_free(m, small[k]), 0);
    EXPECT_EQ(amm_free(m, al), 0);
    EXPECT_EQ(amm_free(m, pin), 0);
    EXPECT_EQ(amm_free(m, pin0), 0);
    EXPECT_FAULTS(&f, 0);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

/* rounds of alloc, touch, free of 128 KiB. */
static void churn_128k(amm_manager *m, int rounds)
{
    for (int k = 0; k < rounds; k++) {
        unsigned char *p = amm_alloc(m, 128 << 10, 0);
        ASSERT_NOT_NULL(p);
        memset(p, k, 128 << 10);
        EXPECT_EQ(amm_free(m, p), 0);
    }
}

/* A span in constant use is never purged: 300 rounds of alloc, touch, free
 * of 128 KiB, with a purge batch ending at nearly every free, must not fault
 * the block's 32 pages in again round after round. */
TEST(span_in_use_is_not_purged)
{
    h_faults f;
    amm_manager *m;
    struct rusage before, after;
    unsigned char *pin;
#ifdef H_VALGRIND
    if (RUNNING_ON_VALGRIND)
        SKIP("under Valgrind the page faults counted are Valgrind's own");
#endif
    m = h_new_manager("purge=8K,purge_delay=0,quarantine=0,quarantine_blocks=0", &f);
    pin = amm_alloc(m, 16, 0);
    ASSERT_NOT_NULL(pin);
    churn_128k(m, 3); /* warm: the span's pages are in */
    getrusage(RUSAGE_SELF, &before);
    churn_128k(m, 300);
    getrusage(RUSAGE_SELF, &after);
    printf("    %ld minor faults in 300 rounds\n", after.ru_minflt - before.ru_minflt);
    EXPECT_LT(after.ru_minflt - before.ru_minflt, 300); /* purged every round: 32 a round */
    EXPECT_EQ(amm_free(m, pin), 0);
    EXPECT_FAULTS(&f, 0);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}
