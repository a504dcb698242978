/*
 * test_options.c - the options table: defaults, AMM_OPTIONS parsing (every
 * type: sizes with K/M/G, unsigned, booleans, on_error, strings), and a clear
 * error naming the key for every bad pair, never a silent skip.
 */
#include "../harness.h"

TEST(defaults_match_table)
{
    amm_config cfg;
    memset(&cfg, 0x5A, sizeof cfg);
    amm_config_defaults(&cfg);
#define H_DEF_SIZE(f, d) EXPECT_EQ(cfg.f, (size_t)(d))
#define H_DEF_UINT(f, d) EXPECT_EQ(cfg.f, (size_t)(d))
#define H_DEF_BOOL(f, d) EXPECT_EQ(cfg.f, (int)(d))
#define H_DEF_ONERR(f, d) EXPECT_EQ(cfg.f, (amm_on_error)(d))
#define H_DEF_STR(f, d) EXPECT_TRUE(cfg.f == NULL || cfg.f[0] == '\0')
#define X(field, tag, def, lo, hi, help) H_DEF_##tag(field, def);
    AMM_OPTIONS_TABLE(X)
#undef X
    EXPECT_TRUE(cfg.on_fault == NULL);
    EXPECT_EQ(cfg.canary, 16);
    EXPECT_EQ(cfg.on_error, AMM_ON_ERROR_REPORT);
}

TEST(parse_every_type)
{
    amm_config cfg;
    char err[256] = "";
    amm_config_defaults(&cfg);
    ASSERT_EQ(amm_config_parse(&cfg,
                               "canary=32,quarantine=2M,quarantine_blocks=10,on_error=abort,fill=off,"
                               "region_size=128K,large_threshold=1G,check_every=5,sample_every=0,"
                               "trace=file:/tmp/amm-test.trace",
                               err, sizeof err),
              0);
    EXPECT_STREQ(err, "");
    EXPECT_EQ(cfg.canary, 32);
    EXPECT_EQ(cfg.quarantine, (size_t)2 << 20);
    EXPECT_EQ(cfg.quarantine_blocks, 10);
    EXPECT_EQ(cfg.on_error, AMM_ON_ERROR_ABORT);
    EXPECT_EQ(cfg.fill, 0);
    EXPECT_EQ(cfg.region_size, (size_t)128 << 10);
    EXPECT_EQ(cfg.large_threshold, (size_t)1 << 30);
    EXPECT_EQ(cfg.check_every, 5);
    EXPECT_EQ(cfg.sample_every, 0);
    ASSERT_NOT_NULL(cfg.trace);
    EXPECT_STREQ(cfg.trace, "file:/tmp/amm-test.trace");
}

TEST(parse_booleans_and_on_error)
{
    static const struct {
        const char *text;
        int value;
    } bools[] = {{"fill=on", 1}, {"fill=off", 0}, {"fill=1", 1}, {"fill=0", 0}, {"fill=true", 1}, {"fill=false", 0}};
    amm_config cfg;
    for (unsigned i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        amm_config_defaults(&cfg);
        cfg.fill = !bools[i].value;
        EXPECT_EQ(amm_config_parse(&cfg, bools[i].text, NULL, 0), 0);
        EXPECT_EQ(cfg.fill, bools[i].value);
    }
    amm_config_defaults(&cfg);
    EXPECT_EQ(amm_config_parse(&cfg, "on_error=abort", NULL, 0), 0);
    EXPECT_EQ(cfg.on_error, AMM_ON_ERROR_ABORT);
    EXPECT_EQ(amm_config_parse(&cfg, "on_error=report", NULL, 0), 0);
    EXPECT_EQ(cfg.on_error, AMM_ON_ERROR_REPORT);
}

TEST(parse_size_suffixes)
{
    static const struct {
        const char *text;
        size_t value;
    } sizes[] = {{"quarantine=0", 0},          {"quarantine=4096", 4096}, {"quarantine=1K", 1024},
                 {"quarantine=3M", 3u << 20}, {"quarantine=2G", (size_t)2 << 30}};
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        amm_config cfg;
        char err[128] = "";
        amm_config_defaults(&cfg);
        EXPECT_EQ(amm_config_parse(&cfg, sizes[i].text, err, sizeof err), 0);
        EXPECT_EQ(cfg.quarantine, sizes[i].value);
        EXPECT_STREQ(err, "");
    }
}

TEST(null_and_empty_change_nothing)
{
    amm_config a, b;
    amm_config_defaults(&a);
    amm_config_defaults(&b);
    EXPECT_EQ(amm_config_parse(&a, NULL, NULL, 0), 0);
    EXPECT_EQ(amm_config_parse(&a, "", NULL, 0), 0);
    EXPECT_EQ(a.canary, b.canary);
    EXPECT_EQ(a.quarantine, b.quarantine);
    EXPECT_EQ(a.region_size, b.region_size);
    EXPECT_EQ(a.fill, b.fill);
}

/* Every bad pair: refused, and the message names the key (and the text). */
TEST(bad_pairs_named_in_error)
{
    static const struct {
        const char *text;
        const char *named; /* what the message must mention */
    } bad[] = {
        {"bogus=1", "bogus"},
        {"canary=abc", "canary"},
        {"canary=", "canary"},
        {"canary", "canary"},
        {"canary=16Q", "canary"},
        {"canary=-16", "canary"},
        {"canary=8192", "canary"},          /* above the table's maximum */
        {"canary=12", "canary"},            /* not a multiple of 8 */
        {"quarantine=99999999999999999999", "quarantine"},
        {"quarantine=20000000000G", "quarantine"},
        {"quarantine_blocks=1K5", "quarantine_blocks"},
        {"region_size=1K", "region_size"},  /* below the minimum */
        {"large_threshold=1", "large_threshold"},
        {"on_error=explode", "on_error"},
        {"fill=maybe", "fill"},
        {"fill=", "fill"},
        {"check_every=x", "check_every"},
        {"=5", "=5"},
        {"canary=32,fill=2", "fill"},
    };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        amm_config cfg;
        char err[256] = "";
        amm_config_defaults(&cfg);
        EXPECT_EQ(amm_config_parse(&cfg, bad[i].text, err, sizeof err), -1);
        EXPECT_CONTAINS(err, bad[i].named);
        if (atomic_load(&h_st.failures))
            printf("    for options \"%s\": error \"%s\"\n", bad[i].text, err);
    }
}

TEST(pairs_before_the_bad_one_apply)
{
    amm_config cfg;
    char err[256] = "";
    amm_config_defaults(&cfg);
    EXPECT_EQ(amm_config_parse(&cfg, "canary=32,quarantine=0,bogus=1,fill=off", err, sizeof err), -1);
    EXPECT_EQ(cfg.canary, 32);
    EXPECT_EQ(cfg.quarantine, 0);
    EXPECT_CONTAINS(err, "bogus");
}

TEST(error_buffer_bounds)
{
    amm_config cfg;
    char small[8];
    amm_config_defaults(&cfg);
    EXPECT_EQ(amm_config_parse(&cfg, "bogus_long_option_name=1", NULL, 0), -1);
    memset(small, 'x', sizeof small);
    EXPECT_EQ(amm_config_parse(&cfg, "bogus_long_option_name=1", small, sizeof small), -1);
    EXPECT_NOT_NULL(memchr(small, '\0', sizeof small)); /* truncated, terminated */
}

TEST(long_trace_value)
{
    amm_config cfg;
    char text[600], err[256] = "";
    memcpy(text, "trace=file:/", 12);
    memset(text + 12, 'a', 500);
    text[512] = '\0';
    amm_config_defaults(&cfg);
    /* longer than trace_buf: refused with a message, never overrun */
    EXPECT_EQ(amm_config_parse(&cfg, text, err, sizeof err), -1);
    EXPECT_CONTAINS(err, "trace");
}

TEST(create_refuses_out_of_range_config)
{
    amm_config cfg;
    h_faults f;
    h_capture cap;
    char out[1024];
    amm_manager *m;
    amm_config_defaults(&cfg);
    h_faults_clear(&f);
    cfg.on_fault = h_fault_recorder;
    cfg.on_fault_user = &f;
    cfg.canary = 100000;                    /* above the maximum */
    ASSERT_EQ(h_capture_begin(&cap), 0);
    m = amm_create(&cfg);
    h_capture_end(&cap, out, sizeof out);
    EXPECT_NULL(m);
    amm_destroy(m);
    EXPECT_TRUE(f.kinds[AMM_ERR_BAD_OPTION] == 1 || strstr(out, "bad-option") != NULL);
}

TEST(environment_options_apply_and_bad_pair_is_reported)
{
    h_capture cap;
    char out[1024];
    amm_manager *m;
    void *p;
    amm_block_info info;
    ASSERT_EQ(setenv("AMM_OPTIONS", "canary=32,bogus=1,quarantine=0,quarantine_blocks=0", 1), 0);
    ASSERT_EQ(h_capture_begin(&cap), 0);
    m = amm_create(NULL);
    h_capture_end(&cap, out, sizeof out);
    unsetenv("AMM_OPTIONS");
    ASSERT_NOT_NULL(m);
    EXPECT_CONTAINS(out, "bad-option");
    EXPECT_CONTAINS(out, "bogus");
    EXPECT_EQ(strncmp(out, "amm: ", 5), 0);
    p = amm_alloc(m, 16, 0);
    ASSERT_NOT_NULL(p);
    ASSERT_TRUE(h_block_info(m, p, &info));
    EXPECT_EQ(info.raw_size, 32 + 16 + 32);   /* canary=32 applied */
    EXPECT_EQ(amm_free(m, p), 0);
    EXPECT_EQ(h_block_info(m, p, &info), 0);  /* quarantine=0 applied, after the bad pair */
    EXPECT_EQ(amm_check(m), 0);
    amm_destroy(m);
}

TEST(help_lists_every_option)
{
    FILE *tmp = tmpfile();
    char text[8192];
    ASSERT_NOT_NULL(tmp);
    amm_options_print_help(tmp);
    h_read_back(tmp, text, sizeof text);
#define X(field, tag, def, lo, hi, help) EXPECT_CONTAINS(text, #field);
    AMM_OPTIONS_TABLE(X)
#undef X
}
