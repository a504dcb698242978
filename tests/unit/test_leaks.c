/*
 * test_leaks.c - amm_leak_report: the blocks still live, grouped by
 * allocation site, most bytes first; the leaks option at amm_destroy.
 *
 * Run one test: ./test_leaks <name> [--seed N].
 */
#include "harness.h"

/* Runs amm_leak_report(m, tmpfile, max_sites) and returns what it wrote in buf. */
static size_t report_text(amm_manager *m, size_t max_sites, char *buf, size_t len)
{
    FILE *tmp = tmpfile();
    size_t live;
    if (!tmp) {
        buf[0] = '\0';
        return (size_t)-1;
    }
    live = amm_leak_report(m, tmp, max_sites);
    h_read_back(tmp, buf, len);
    return live;
}

TEST(nothing_live_nothing_written)
{
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    char text[256];
    EXPECT_EQ(report_text(m, 0, text, sizeof text), 0);
    EXPECT_STREQ(text, "");
    EXPECT_EQ(amm_free(m, amm_alloc(m, 10, 0)), 0); /* freed (even in quarantine) is not a leak */
    EXPECT_EQ(report_text(m, 0, text, sizeof text), 0);
    EXPECT_STREQ(text, "");
    EXPECT_EQ(amm_leak_report(NULL, stderr, 0), 0);
    amm_destroy(m);
}

TEST(grouped_by_site_most_bytes_first)
{
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    amm_pool *pool = amm_pool_create(m, 32, 4, 16);
    void *a[3], *b, *c, *freed, *s;
    char text[1024];
    ASSERT_NOT_NULL(pool);
    for (int i = 0; i < 3; i++)
        a[i] = amm_alloc_at(m, 24, 0, AMM_ALLOC_NO_POOL, "dir/parser.c", 88); /* 72 bytes, one site */
    b = amm_alloc_at(m, 500, 0, 0, "other/lexer.c", 12);                      /* 500 bytes */
    c = amm_alloc_at(m, 7, 0, 0, NULL, 0);                                     /* no site */
    freed = amm_alloc_at(m, 1000, 0, 0, "dir/parser.c", 90);
    s = amm_pool_alloc_at(m, pool, 30, 0, "dir/pool_user.c", 5);               /* a pool slot */
    ASSERT_NOT_NULL(a[2]);
    ASSERT_NOT_NULL(b);
    ASSERT_NOT_NULL(c);
    ASSERT_NOT_NULL(s);
    EXPECT_EQ(amm_free(m, freed), 0);
    EXPECT_EQ(amm_retain(m, b), 2u); /* shared: still one block */
    EXPECT_EQ(report_text(m, 0, text, sizeof text), 6);
    EXPECT_STREQ(text, "amm: leak: 500 bytes in 1 block allocated at lexer.c:12\n"
                       "amm: leak: 72 bytes in 3 blocks allocated at parser.c:88\n"
                       "amm: leak: 30 bytes in 1 block allocated at pool_user.c:5\n"
                       "amm: leak: 7 bytes in 1 block allocated at an unknown site\n"
                       "amm: leak summary: 609 bytes in 6 blocks still live, from 4 sites\n");
    /* at most two sites listed */
    EXPECT_EQ(report_text(m, 2, text, sizeof text), 6);
    EXPECT_STREQ(text, "amm: leak: 500 bytes in 1 block allocated at lexer.c:12\n"
                       "amm: leak: 72 bytes in 3 blocks allocated at parser.c:88\n"
                       "amm: leak summary: 609 bytes in 6 blocks still live, from 4 sites (2 not shown)\n");
    /* out NULL only counts */
    EXPECT_EQ(amm_leak_report(m, NULL, 0), 6);
    EXPECT_FAULTS(&f, 0);
    EXPECT_HEALTHY(m);
    amm_destroy(m); /* leaks off (the default): nothing printed */
}

TEST(same_file_name_in_two_directories_prints_whole_paths)
{
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    char text[1024];
    ASSERT_NOT_NULL(amm_alloc_at(m, 300, 0, 0, "net/util.c", 12));
    ASSERT_NOT_NULL(amm_alloc_at(m, 200, 0, 0, "disk/util.c", 12));
    ASSERT_NOT_NULL(amm_alloc_at(m, 100, 0, 0, "disk/util.c", 40));
    ASSERT_NOT_NULL(amm_alloc_at(m, 50, 0, 0, "src/main.c", 3));
    EXPECT_EQ(report_text(m, 0, text, sizeof text), 4);
    EXPECT_STREQ(text, "amm: leak: 300 bytes in 1 block allocated at net/util.c:12\n"
                       "amm: leak: 200 bytes in 1 block allocated at disk/util.c:12\n"
                       "amm: leak: 100 bytes in 1 block allocated at disk/util.c:40\n"
                       "amm: leak: 50 bytes in 1 block allocated at main.c:3\n"
                       "amm: leak summary: 650 bytes in 4 blocks still live, from 4 sites\n");
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(many_blocks_many_sites)
{
    /* 2000 blocks over 37 lines of one file: every site once, bytes adding up */
    h_faults f;
    amm_manager *m = h_new_manager("quarantine=0,quarantine_blocks=0", &f);
    static char text[16384];
    size_t want_bytes = 0;
    h_rng r = h_rng_make(h_seed());
    for (int i = 0; i < 2000; i++) {
        size_t n = (size_t)h_rand_range(&r, 1, 64);
        ASSERT_NOT_NULL(amm_alloc_at(m, n, 0, 0, "many.c", 1 + (int)(h_rand(&r) % 37)));
        want_bytes += n;
    }
    EXPECT_EQ(report_text(m, 0, text, sizeof text), 2000);
    {
        size_t lines = 0, bytes = 0, prev = (size_t)-1;
        const char *p = text;
        while ((p = strstr(p, "amm: leak: ")) != NULL) {
            size_t b = 0;
            ASSERT_EQ(sscanf(p, "amm: leak: %zu", &b), 1);
            EXPECT_LE(b, prev); /* most bytes first */
            prev = b;
            bytes += b;
            lines++;
            p++;
        }
        EXPECT_EQ(lines, 37);
        EXPECT_EQ(bytes, want_bytes);
        EXPECT_NOT_NULL(strstr(text, "still live, from 37 sites\n"));
    }
    amm_destroy(m);
}

TEST(destroy_reports_with_the_option)
{
    h_faults f;
    amm_manager *m = h_new_manager("leaks=on", &f);
    h_capture cap;
    char text[512];
    ASSERT_NOT_NULL(amm_alloc_at(m, 40, 0, 0, "app.c", 7));
    ASSERT_EQ(h_capture_begin(&cap), 0);
    amm_destroy(m);
    h_capture_end(&cap, text, sizeof text);
    EXPECT_STREQ(text, "amm: leak: 40 bytes in 1 block allocated at app.c:7\n"
                       "amm: leak summary: 40 bytes in 1 block still live, from 1 site\n");
    /* and nothing when all was freed */
    m = h_new_manager("leaks=on", &f);
    EXPECT_EQ(amm_free(m, amm_alloc(m, 40, 0)), 0);
    ASSERT_EQ(h_capture_begin(&cap), 0);
    amm_destroy(m);
    h_capture_end(&cap, text, sizeof text);
    EXPECT_STREQ(text, "");
}
