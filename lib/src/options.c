/*
 * options.c - the option table (AMM_OPTIONS_TABLE in amm.h) applied to an
 * amm_config from "key=value,key=value" strings and from the AMM_OPTIONS
 * environment variable.  Unknown keys and bad values are errors that name the
 * pair; nothing is silently ignored.  Parsing is O(length of the string).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

typedef enum opt_type { OPT_SIZE, OPT_UINT, OPT_BOOL, OPT_ONERR, OPT_STR } opt_type;

typedef struct opt_desc {
    const char *name;
    opt_type type;
    unsigned long long def, min, max;
    const char *help;
} opt_desc;

static const opt_desc options[] = {
#define AMM__X(field, type, def, min, max, help) {#field, OPT_##type, (unsigned long long)(def), min, max, help},
    AMM_OPTIONS_TABLE(AMM__X)
#undef AMM__X
};
#define OPTION_COUNT (sizeof options / sizeof options[0])

/* The numeric value of field i of cfg, through one switch generated from the table. */
static void set_field(amm_config *cfg, size_t i, unsigned long long v) {
    size_t k = 0;
#define AMM__X(field, type, def, min, max, help)                                    \
    if (i == k++) {                                                                  \
        set_##type(&cfg->field, v);                                                  \
        return;                                                                      \
    }
#define set_SIZE(p, v) (*(p) = (size_t)(v))
#define set_UINT(p, v) (*(p) = (size_t)(v))
#define set_BOOL(p, v) (*(p) = (int)(v))
#define set_ONERR(p, v) (*(p) = (amm_on_error)(v))
#define set_STR(p, v) ((void)(p), (void)(v))
    AMM_OPTIONS_TABLE(AMM__X)
#undef AMM__X
}

void amm_config_defaults(amm_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < OPTION_COUNT; i++) set_field(cfg, i, options[i].def);
    cfg->trace = NULL;
}

static void errf(char *err, size_t err_len, const char *fmt, const char *a, size_t alen, const char *b) {
    if (err && err_len) snprintf(err, err_len, fmt, (int)alen, a, b);
}

static int parse_number(const char *s, size_t len, int allow_suffix, unsigned long long *out) {
    if (len == 0 || !isdigit((unsigned char)s[0])) return -1;
    unsigned long long v = 0;
    size_t i = 0;
    for (; i < len && isdigit((unsigned char)s[i]); i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (ULLONG_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    unsigned shift = 0;
    if (i < len && allow_suffix) {
        switch (toupper((unsigned char)s[i])) {
        case 'K': shift = 10; break;
        case 'M': shift = 20; break;
        case 'G': shift = 30; break;
        default: return -1;
        }
        i++;
        if (i < len && (s[i] == 'i' || s[i] == 'I')) i++;
        if (i < len && (s[i] == 'b' || s[i] == 'B')) i++;
    }
    if (i != len) return -1;
    if (shift && v > (ULLONG_MAX >> shift)) return -1;
    *out = v << shift;
    return 0;
}

static int word_is(const char *s, size_t len, const char *w) {
    return strlen(w) == len && strncasecmp(s, w, len) == 0;
}

static int parse_value(const opt_desc *o, const char *s, size_t len, unsigned long long *v) {
    switch (o->type) {
    case OPT_SIZE: return parse_number(s, len, 1, v);
    case OPT_UINT: return parse_number(s, len, 0, v);
    case OPT_BOOL:
        if (word_is(s, len, "1") || word_is(s, len, "on") || word_is(s, len, "true") || word_is(s, len, "yes")) *v = 1;
        else if (word_is(s, len, "0") || word_is(s, len, "off") || word_is(s, len, "false") || word_is(s, len, "no")) *v = 0;
        else return -1;
        return 0;
    case OPT_ONERR:
        if (word_is(s, len, "report")) *v = AMM_ON_ERROR_REPORT;
        else if (word_is(s, len, "abort")) *v = AMM_ON_ERROR_ABORT;
        else return -1;
        return 0;
    case OPT_STR: return 0;
    }
    return -1;
}

static const char *expected(opt_type t) {
    switch (t) {
    case OPT_SIZE: return "a size such as 16, 4K, 1M or 2G";
    case OPT_UINT: return "a whole number";
    case OPT_BOOL: return "on or off";
    case OPT_ONERR: return "report or abort";
    case OPT_STR: return "file:PATH, fd:N or unix:PATH";
    }
    return "?";
}

static int apply_pair(amm_config *cfg, const char *key, size_t klen, const char *val, size_t vlen, char *err,
                      size_t err_len) {
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const opt_desc *o = &options[i];
        if (!word_is(key, klen, o->name)) continue;
        if (o->type == OPT_STR) {
            if (vlen >= sizeof cfg->trace_buf) {
                errf(err, err_len, "option '%.*s': %s", key, klen, "value too long (255 bytes at most)");
                return -1;
            }
            memcpy(cfg->trace_buf, val, vlen);
            cfg->trace_buf[vlen] = '\0';
            cfg->trace = vlen ? cfg->trace_buf : NULL;
            return 0;
        }
        unsigned long long v = 0;
        if (parse_value(o, val, vlen, &v) != 0) {
            if (err && err_len) snprintf(err, err_len, "option '%.*s': bad value '%.*s', expected %s", (int)klen, key,
                                         (int)vlen, val, expected(o->type));
            return -1;
        }
        if (v < o->min || v > o->max) {
            if (err && err_len) snprintf(err, err_len, "option '%.*s': value %llu is out of range [%llu, %llu]",
                                         (int)klen, key, v, o->min, o->max);
            return -1;
        }
        if (strcmp(o->name, "canary") == 0 && v % 8 != 0) {
            if (err && err_len) snprintf(err, err_len, "option '%.*s': value %llu must be a multiple of 8", (int)klen, key, v);
            return -1;
        }
        set_field(cfg, i, v);
        return 0;
    }
    if (klen == 0) {
        if (err && err_len) snprintf(err, err_len, "option '=%.*s' has no key (expected key=value)", (int)vlen, val);
        return -1;
    }
    if (err && err_len) {
        size_t n = (size_t)snprintf(err, err_len, "unknown option '%.*s' (known:", (int)klen, key);
        for (size_t i = 0; i < OPTION_COUNT && n < err_len; i++) {
            n += (size_t)snprintf(err + n, err_len - n, "%s %s", i ? "," : "", options[i].name);
        }
        if (n < err_len) snprintf(err + n, err_len - n, ")");
    }
    return -1;
}

int amm_config_parse(amm_config *cfg, const char *s, char *err, size_t err_len) {
    if (err && err_len) err[0] = '\0';
    if (!cfg) return -1;
    if (!s) return 0;
    while (*s) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        const char *eq = memchr(s, '=', len);
        while (len && isspace((unsigned char)*s)) s++, len--;
        if (len == 0) {
            /* empty pair: allow stray commas */
        } else if (!eq) {
            if (err && err_len) snprintf(err, err_len, "option '%.*s' has no value (expected key=value)", (int)len, s);
            return -1;
        } else {
            size_t klen = (size_t)(eq - s), vlen = len - klen - 1;
            while (klen && isspace((unsigned char)s[klen - 1])) klen--;
            if (apply_pair(cfg, s, klen, eq + 1, vlen, err, err_len) != 0) return -1;
        }
        if (!end) break;
        s = end + 1;
    }
    return 0;
}

int amm__config_check(const amm_config *cfg, char *err, size_t err_len) {
    amm_config probe = *cfg;
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const opt_desc *o = &options[i];
        unsigned long long v = 0;
        size_t k = 0;
#define AMM__X(field, type, def, min, max, help) \
        if (i == k++) v = (unsigned long long)get_##type(probe.field);
#define get_SIZE(x) (x)
#define get_UINT(x) (x)
#define get_BOOL(x) (x)
#define get_ONERR(x) (x)
#define get_STR(x) (0)
        AMM_OPTIONS_TABLE(AMM__X)
#undef AMM__X
        if (o->type != OPT_STR && (v < o->min || v > o->max)) {
            if (err && err_len) snprintf(err, err_len, "option '%s': value %llu is out of range [%llu, %llu]", o->name,
                                         v, o->min, o->max);
            return -1;
        }
    }
    return 0;
}

void amm__config_from_env(amm_config *cfg) {
    const char *env = getenv("AMM_OPTIONS");
    if (!env || !*env) return;
    /* Apply pair by pair so one bad pair does not hide the others. */
    char pair[512];
    while (*env) {
        const char *end = strchr(env, ',');
        size_t len = end ? (size_t)(end - env) : strlen(env);
        if (len >= sizeof pair) len = sizeof pair - 1;
        memcpy(pair, env, len);
        pair[len] = '\0';
        char err[384];
        if (amm_config_parse(cfg, pair, err, sizeof err) != 0) {
            char msg[448];
            snprintf(msg, sizeof msg, "AMM_OPTIONS: %s; ignored", err);
            amm__fault(NULL, AMM_ERR_BAD_OPTION, NULL, NULL, NULL, msg, 0, 0, NULL, 0);
        }
        if (!end) break;
        env = end + 1;
    }
}

void amm_options_print_help(FILE *out) {
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const opt_desc *o = &options[i];
        if (o->type == OPT_STR) fprintf(out, "  %-18s (default: off)  %s\n", o->name, o->help);
        else if (o->type == OPT_ONERR) fprintf(out, "  %-18s (default: report)  %s\n", o->name, o->help);
        else fprintf(out, "  %-18s (default: %llu)  %s\n", o->name, o->def, o->help);
    }
}
