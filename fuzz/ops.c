/*
 * ops.c - the op list: storage, the byte codec, the text and JSON forms,
 * content detection and file loading.
 *
 * Everything is driven by the two tables in ops.h: AMM_OP_KINDS gives each
 * kind its ordered field list, and one codec per field type turns bytes into
 * a value (decode_field) and back (encode_field).  The text printer, parser
 * and JSON printer walk the same lists, so the forms cannot drift: for every
 * list L of representable ops, decode(encode(L)) == L and
 * parse(format(L)) == L (checked by tests/fuzz and the corpus generator).
 */
#define _POSIX_C_SOURCE 200809L
#include "ops.h"

#include <amm/trace.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- tables ------------------------------------------------------------ */

static const char *const kind_names[] = {
#define AMM__X(e, name, ...) name,
    AMM_OP_KINDS(AMM__X)
#undef AMM__X
};

static const amm_op_field kind_fields[][AMM_OP_MAX_FIELDS] = {
#define AMM__X(e, name, ...) {__VA_ARGS__},
    AMM_OP_KINDS(AMM__X)
#undef AMM__X
};

static const char *const field_names[] = {
#define AMM__X(e, name) name,
    AMM_OP_FIELDS(AMM__X)
#undef AMM__X
};

static const char *const api_names[] = {
#define AMM__X(e, name) name,
    AMM_OP_APIS(AMM__X)
#undef AMM__X
};

_Static_assert(sizeof kind_names / sizeof kind_names[0] == AMM_OP_KIND_COUNT, "one name per kind");
_Static_assert(sizeof field_names / sizeof field_names[0] == AMM_OPF__END, "one name per field");
_Static_assert(AMM_OP_KIND_COUNT <= 256, "the opcode is one byte");

/* The alignment byte's values: default, the powers of two 1..64 KiB, then bad ones. */
static const uint64_t align_values[24] = {
    0,     1,     2,     4,     8,     16,    32,   64,   128,   256,   512,    1024,
    2048,  4096,  8192,  16384, 32768, 65536, 3,    24,   48,    1000,  65537, (uint64_t)1 << 21};

/* Names of the bits of the flags (alloc) and dflags (defragment) fields. */
static const char *const alloc_flag_names[] = {"movable", "nopool", "zero"};
static const char *const defrag_flag_names[] = {"release", "compact"};

const char *amm_op_kind_name(amm_op_kind kind) {
    return (unsigned)kind < AMM_OP_KIND_COUNT ? kind_names[kind] : "unknown";
}

int amm_op_kind_from_name(const char *name, size_t len) {
    for (size_t i = 0; i < AMM_OP_KIND_COUNT; i++) {
        if (strlen(kind_names[i]) == len && memcmp(kind_names[i], name, len) == 0) return (int)i;
    }
    return -1;
}

size_t amm_ops_mode_kinds(amm_ops_mode mode) {
    return mode == AMM_OPS_FULL ? AMM_OP_DECODABLE : AMM_OP_FIRST_MISUSE;
}

int amm_op_is_misuse(amm_op_kind kind) { return kind >= AMM_OP_FIRST_MISUSE; }

const char *amm_ops_format_name(amm_ops_format f) {
    static const char *const names[] = {"auto", "raw", "text", "trace"};
    return (unsigned)f < 4 ? names[f] : "unknown";
}

static void set_err(char *err, size_t err_len, const char *fmt, ...) {
    if (!err || !err_len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* ---- list storage ------------------------------------------------------ */

int amm_ops_push(amm_op_list *l, const amm_op *op) {
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        amm_op *grown = realloc(l->ops, cap * sizeof *grown);
        if (!grown) return -1;
        l->ops = grown;
        l->cap = cap;
    }
    l->ops[l->count++] = *op;
    return 0;
}

void amm_ops_free(amm_op_list *l) {
    free(l->ops);
    l->ops = NULL;
    l->count = l->cap = 0;
}

/* ---- field access ------------------------------------------------------ */

static uint64_t field_get(const amm_op *op, amm_op_field f) {
    switch (f) {
    case AMM_OPF_SLOT: return op->slot;
    case AMM_OPF_SRC:
    case AMM_OPF_POOL: return op->src;
    case AMM_OPF_SIZE:
    case AMM_OPF_BSIZE: return op->size;
    case AMM_OPF_ALIGN: return op->align;
    case AMM_OPF_COUNT:
    case AMM_OPF_FAILS: return op->n;
    case AMM_OPF_FLAGS:
    case AMM_OPF_DFLAGS:
    case AMM_OPF_API: return op->flags;
    case AMM_OPF_ON:
    case AMM_OPF_MODE:
    case AMM_OPF_K:
    case AMM_OPF_AFTER: return op->k;
    default: return 0;
    }
}

/* The largest value a field holds in an amm_op. */
static uint64_t field_max(amm_op_field f) {
    switch (f) {
    case AMM_OPF_SLOT:
    case AMM_OPF_SRC: return AMM_OPS_MAX_SLOT - 1;
    case AMM_OPF_POOL:
    case AMM_OPF_FLAGS:
    case AMM_OPF_DFLAGS: return UINT32_MAX;
    case AMM_OPF_ON:
    case AMM_OPF_MODE: return 1;
    case AMM_OPF_API: return AMM_API_COUNT - 1;
    default: return UINT64_MAX;
    }
}

static void field_set(amm_op *op, amm_op_field f, uint64_t v) {
    switch (f) {
    case AMM_OPF_SLOT: op->slot = (uint32_t)v; break;
    case AMM_OPF_SRC:
    case AMM_OPF_POOL: op->src = (uint32_t)v; break;
    case AMM_OPF_SIZE:
    case AMM_OPF_BSIZE: op->size = v; break;
    case AMM_OPF_ALIGN: op->align = v; break;
    case AMM_OPF_COUNT:
    case AMM_OPF_FAILS: op->n = v; break;
    case AMM_OPF_FLAGS:
    case AMM_OPF_DFLAGS:
    case AMM_OPF_API: op->flags = (uint32_t)v; break;
    case AMM_OPF_ON:
    case AMM_OPF_MODE:
    case AMM_OPF_K:
    case AMM_OPF_AFTER: op->k = v; break;
    default: break;
    }
}

/* ---- byte codec -------------------------------------------------------- */

typedef struct byte_reader {
    const uint8_t *p;
    size_t len, pos;
} byte_reader;

static int rd(byte_reader *r, uint64_t *b) {
    if (r->pos >= r->len) return -1;
    *b = r->p[r->pos++];
    return 0;
}

static int decode_size(byte_reader *r, uint64_t *v) {
    uint64_t b0, b1, b2;
    if (rd(r, &b0)) return -1;
    if (b0 < 0x80) {
        *v = b0;
        return 0;
    }
    if (rd(r, &b1)) return -1;
    if (b0 < 0xE0) {
        *v = (b0 - 0x80) << 8 | b1;
        return 0;
    }
    if (rd(r, &b2)) return -1;
    *v = ((b0 - 0xE0) << 16 | b1 << 8 | b2) % (AMM_OPS_MAX_SIZE + 1);
    return 0;
}

/* Decodes one field; -1 if the input ends first. */
static int decode_field(byte_reader *r, amm_op_field f, uint64_t *v) {
    uint64_t b, b1;
    if (f == AMM_OPF_SIZE) return decode_size(r, v);
    if (rd(r, &b)) return -1;
    switch (f) {
    case AMM_OPF_SLOT:
    case AMM_OPF_SRC: *v = b % AMM_OPS_SLOTS; break;
    case AMM_OPF_POOL: *v = b % AMM_OPS_POOLS; break;
    case AMM_OPF_BSIZE:
        if (rd(r, &b1)) return -1;
        *v = 1 + ((b << 8 | b1) % 512);
        break;
    case AMM_OPF_COUNT: *v = 1 + b % 32; break;
    case AMM_OPF_ALIGN: *v = align_values[b % 24]; break;
    case AMM_OPF_FLAGS: *v = b & 7; break;
    case AMM_OPF_DFLAGS: *v = b & 3; break;
    case AMM_OPF_ON:
    case AMM_OPF_MODE: *v = b & 1; break;
    case AMM_OPF_FAILS: *v = 1 + b % 8; break;
    case AMM_OPF_API: *v = b % AMM_API_COUNT; break;
    default: *v = b; break; /* K, AFTER */
    }
    return 0;
}

/* Encodes one field into out (up to 3 bytes); -1 if v has no byte form. */
static int encode_field(amm_op_field f, uint64_t v, uint8_t out[3], size_t *n) {
    *n = 1;
    switch (f) {
    case AMM_OPF_SIZE:
        if (v < 0x80) {
            out[0] = (uint8_t)v;
        } else if (v < (uint64_t)0x60 << 8) {
            out[0] = (uint8_t)(0x80 + (v >> 8));
            out[1] = (uint8_t)v;
            *n = 2;
        } else if (v <= AMM_OPS_MAX_SIZE) {
            out[0] = (uint8_t)(0xE0 + (v >> 16));
            out[1] = (uint8_t)(v >> 8);
            out[2] = (uint8_t)v;
            *n = 3;
        } else {
            return -1;
        }
        return 0;
    case AMM_OPF_BSIZE:
        if (v < 1 || v > 512) return -1;
        out[0] = (uint8_t)((v - 1) >> 8);
        out[1] = (uint8_t)(v - 1);
        *n = 2;
        return 0;
    case AMM_OPF_ALIGN:
        for (size_t i = 0; i < 24; i++) {
            if (align_values[i] == v) {
                out[0] = (uint8_t)i;
                return 0;
            }
        }
        return -1;
    case AMM_OPF_SLOT:
    case AMM_OPF_SRC: if (v >= AMM_OPS_SLOTS) return -1; break;
    case AMM_OPF_POOL: if (v >= AMM_OPS_POOLS) return -1; break;
    case AMM_OPF_COUNT:
        if (v < 1 || v > 32) return -1;
        v -= 1;
        break;
    case AMM_OPF_FLAGS: if (v > 7) return -1; break;
    case AMM_OPF_DFLAGS: if (v > 3) return -1; break;
    case AMM_OPF_ON:
    case AMM_OPF_MODE: if (v > 1) return -1; break;
    case AMM_OPF_FAILS:
        if (v < 1 || v > 8) return -1;
        v -= 1;
        break;
    case AMM_OPF_API: if (v >= AMM_API_COUNT) return -1; break;
    default: if (v > 255) return -1; break;
    }
    out[0] = (uint8_t)v;
    return 0;
}

int amm_ops_decode(const uint8_t *data, size_t len, amm_ops_mode mode, size_t max_ops, amm_op_list *out) {
    byte_reader r = {data, len, 0};
    size_t kinds = amm_ops_mode_kinds(mode);
    uint64_t b;
    while ((max_ops == 0 || out->count < max_ops) && rd(&r, &b) == 0) {
        amm_op op;
        memset(&op, 0, sizeof op);
        op.kind = (amm_op_kind)(b % kinds);
        int whole = 1;
        for (size_t i = 0; i < AMM_OP_MAX_FIELDS && kind_fields[op.kind][i] != AMM_OPF_NONE; i++) {
            uint64_t v;
            if (decode_field(&r, kind_fields[op.kind][i], &v)) {
                whole = 0;
                break;
            }
            field_set(&op, kind_fields[op.kind][i], v);
        }
        if (!whole) break; /* a truncated last op is dropped */
        if (amm_ops_push(out, &op)) return -1;
    }
    return 0;
}

int amm_ops_encode(const amm_op_list *l, amm_ops_mode mode, uint8_t **out, size_t *len, char *err, size_t err_len) {
    size_t cap = l->count * (1 + 3 * AMM_OP_MAX_FIELDS) + 1;
    uint8_t *buf = malloc(cap);
    size_t n = 0;
    *out = NULL;
    *len = 0;
    if (!buf) {
        set_err(err, err_len, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < l->count; i++) {
        const amm_op *op = &l->ops[i];
        if ((size_t)op->kind >= amm_ops_mode_kinds(mode)) {
            set_err(err, err_len, "op #%zu: %s has no byte form for this target (misuse ops: --target fuzz_misuse)",
                    i, amm_op_kind_name(op->kind));
            free(buf);
            return -1;
        }
        buf[n++] = (uint8_t)op->kind;
        for (size_t j = 0; j < AMM_OP_MAX_FIELDS && kind_fields[op->kind][j] != AMM_OPF_NONE; j++) {
            amm_op_field f = kind_fields[op->kind][j];
            size_t w;
            if (encode_field(f, field_get(op, f), buf + n, &w)) {
                set_err(err, err_len, "op #%zu: %s=%llu has no byte form", i, field_names[f],
                        (unsigned long long)field_get(op, f));
                free(buf);
                return -1;
            }
            n += w;
        }
    }
    *out = buf;
    *len = n;
    return 0;
}

/* ---- text form --------------------------------------------------------- */

/* Appends to buf at *pos, never past len (snprintf-style length accounting). */
static void put(char *buf, size_t len, size_t *pos, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(*pos < len ? buf + *pos : NULL, *pos < len ? len - *pos : 0, fmt, ap);
    va_end(ap);
    if (w > 0) *pos += (size_t)w;
}

static void put_flags(char *buf, size_t len, size_t *pos, uint64_t v, const char *const *names, size_t count) {
    if (v == 0 || v >> count) {
        put(buf, len, pos, "%llu", (unsigned long long)v);
        return;
    }
    const char *sep = "";
    for (size_t i = 0; i < count; i++) {
        if (v & (1u << i)) {
            put(buf, len, pos, "%s%s", sep, names[i]);
            sep = "|";
        }
    }
}

static void put_value(char *buf, size_t len, size_t *pos, amm_op_field f, uint64_t v, int json) {
    int named = f == AMM_OPF_FLAGS || f == AMM_OPF_DFLAGS || f == AMM_OPF_API;
    if (named && json) put(buf, len, pos, "\"");
    if (json && v == 0 && (f == AMM_OPF_FLAGS || f == AMM_OPF_DFLAGS)) {
        /* JSON: no flags is "" (the text form writes 0) */
    } else if (f == AMM_OPF_FLAGS) {
        put_flags(buf, len, pos, v, alloc_flag_names, 3);
    } else if (f == AMM_OPF_DFLAGS) {
        put_flags(buf, len, pos, v, defrag_flag_names, 2);
    } else if (f == AMM_OPF_API && v < AMM_API_COUNT) {
        put(buf, len, pos, "%s", api_names[v]);
    } else {
        put(buf, len, pos, "%llu", (unsigned long long)v);
    }
    if (named && json) put(buf, len, pos, "\"");
}

/* The text form ("#3 free slot=1") or the JSON form ({"n":3,"op":"free","slot":1}). */
static int format_op(const amm_op *op, size_t index, char *buf, size_t len, int json) {
    size_t pos = 0;
    if (len) buf[0] = '\0';
    put(buf, len, &pos, json ? "{\"n\":%zu,\"op\":\"%s\"" : "#%zu %s", index, amm_op_kind_name(op->kind));
    for (size_t i = 0; (unsigned)op->kind < AMM_OP_KIND_COUNT && i < AMM_OP_MAX_FIELDS; i++) {
        amm_op_field f = kind_fields[op->kind][i];
        if (f == AMM_OPF_NONE) break;
        put(buf, len, &pos, json ? ",\"%s\":" : " %s=", field_names[f]);
        put_value(buf, len, &pos, f, field_get(op, f), json);
    }
    if (op->addr) put(buf, len, &pos, json ? ",\"addr\":\"0x%llx\"" : " -> 0x%llx", (unsigned long long)op->addr);
    if (json) put(buf, len, &pos, "}");
    return (int)pos;
}

int amm_op_format(const amm_op *op, size_t index, char *buf, size_t len) { return format_op(op, index, buf, len, 0); }

int amm_op_format_json(const amm_op *op, size_t index, char *buf, size_t len) {
    return format_op(op, index, buf, len, 1);
}

/* A token of a line: [s, s+n). */
typedef struct tok {
    const char *s;
    size_t n;
} tok;

static int tok_eq(tok t, const char *lit) { return strlen(lit) == t.n && memcmp(t.s, lit, t.n) == 0; }

/* Parses an unsigned decimal or 0x-hex number filling all of t. */
static int parse_uint(tok t, uint64_t *v) {
    char tmp[32];
    if (t.n == 0 || t.n >= sizeof tmp || !isdigit((unsigned char)t.s[0])) return -1;
    memcpy(tmp, t.s, t.n);
    tmp[t.n] = '\0';
    char *end;
    errno = 0;
    unsigned long long x = strtoull(tmp, &end, 0);
    if (errno || *end) return -1;
    *v = x;
    return 0;
}

/* Parses "a|b|c" names (bit i = names[i]) or a number. */
static int parse_flags(tok t, const char *const *names, size_t count, uint64_t *v) {
    if (parse_uint(t, v) == 0) return 0;
    *v = 0;
    size_t i = 0;
    while (i <= t.n) {
        size_t j = i;
        while (j < t.n && t.s[j] != '|') j++;
        tok part = {t.s + i, j - i};
        size_t b = 0;
        while (b < count && !tok_eq(part, names[b])) b++;
        if (b == count) return -1;
        *v |= (uint64_t)1 << b;
        i = j + 1;
    }
    return 0;
}

static int parse_value(amm_op_field f, tok t, uint64_t *v) {
    if (f == AMM_OPF_FLAGS) return parse_flags(t, alloc_flag_names, 3, v);
    if (f == AMM_OPF_DFLAGS) return parse_flags(t, defrag_flag_names, 2, v);
    if (f == AMM_OPF_API) {
        for (size_t i = 0; i < AMM_API_COUNT; i++) {
            if (tok_eq(t, api_names[i])) {
                *v = i;
                return 0;
            }
        }
    }
    return parse_uint(t, v);
}

/* Splits the line [s, e) into whitespace-separated tokens (at most max). */
static size_t tokenize(const char *s, const char *e, tok *toks, size_t max) {
    size_t n = 0;
    while (s < e) {
        while (s < e && isspace((unsigned char)*s)) s++;
        if (s == e) break;
        const char *b = s;
        while (s < e && !isspace((unsigned char)*s)) s++;
        if (n < max) toks[n] = (tok){b, (size_t)(s - b)};
        n++;
    }
    return n;
}

/* A line's tokens without the "#N" prefix, "->" tail and "//" comments.  0 tokens: comment/blank. */
static size_t op_tokens(const char *s, const char *e, tok *toks, size_t max) {
    for (const char *c = s; c + 1 < e; c++) {
        if ((c[0] == '/' && c[1] == '/') || (c[0] == '-' && c[1] == '>')) {
            e = c;
            break;
        }
    }
    size_t n = tokenize(s, e, toks, max);
    if (n > max) return n; /* caller reports it */
    if (n && toks[0].s[0] == '#') {
        if (toks[0].n < 2 || !isdigit((unsigned char)toks[0].s[1])) return 0; /* "# comment" */
        memmove(toks, toks + 1, (n - 1) * sizeof *toks);
        n--;
    }
    return n;
}

static int parse_line(tok *toks, size_t n, amm_op *op, size_t line, char *err, size_t err_len) {
    int kind = amm_op_kind_from_name(toks[0].s, toks[0].n);
    if (kind < 0) {
        set_err(err, err_len, "line %zu: unknown op '%.*s'", line, (int)(toks[0].n > 40 ? 40 : toks[0].n), toks[0].s);
        return -1;
    }
    memset(op, 0, sizeof *op);
    op->kind = (amm_op_kind)kind;
    for (size_t i = 1; i < n; i++) {
        const char *eq = memchr(toks[i].s, '=', toks[i].n);
        tok key = {toks[i].s, eq ? (size_t)(eq - toks[i].s) : toks[i].n};
        size_t j = 0;
        while (j < AMM_OP_MAX_FIELDS && kind_fields[kind][j] != AMM_OPF_NONE &&
               !tok_eq(key, field_names[kind_fields[kind][j]]))
            j++;
        if (!eq || j == AMM_OP_MAX_FIELDS || kind_fields[kind][j] == AMM_OPF_NONE) {
            set_err(err, err_len, "line %zu: %s takes no field '%.*s'", line, kind_names[kind],
                    (int)(key.n > 40 ? 40 : key.n), key.s);
            return -1;
        }
        amm_op_field f = kind_fields[kind][j];
        tok val = {eq + 1, toks[i].n - key.n - 1};
        uint64_t v;
        if (parse_value(f, val, &v) || v > field_max(f)) {
            set_err(err, err_len, "line %zu: bad value for %s: '%.*s'", line, field_names[f],
                    (int)(val.n > 40 ? 40 : val.n), val.s);
            return -1;
        }
        field_set(op, f, v);
    }
    return 0;
}

int amm_ops_parse_text(const char *text, size_t len, amm_op_list *out, char *err, size_t err_len) {
    const char *p = text, *end = text + len;
    size_t line = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        tok toks[1 + AMM_OP_MAX_FIELDS + 1];
        size_t max = sizeof toks / sizeof toks[0];
        line++;
        size_t n = op_tokens(p, e, toks, max);
        if (n > max) {
            set_err(err, err_len, "line %zu: too many fields", line);
            return -1;
        }
        if (n) {
            amm_op op;
            if (parse_line(toks, n, &op, line, err, err_len)) return -1;
            if (amm_ops_push(out, &op)) {
                set_err(err, err_len, "out of memory at line %zu", line);
                return -1;
            }
        }
        p = nl ? nl + 1 : end;
    }
    return 0;
}

/* ---- detection and loading --------------------------------------------- */

/* Printable ASCII and whitespace only.  (A raw input can be printable by
 * chance: amm-replay --format raw forces the byte decoder.) */
static int looks_like_text(const uint8_t *data, size_t len) {
    for (size_t i = 0; i < len; i++) {
        uint8_t c = data[i];
        if (!(c == '\n' || c == '\r' || c == '\t' || (c >= 0x20 && c < 0x7F))) return 0;
    }
    return len > 0;
}

amm_ops_format amm_ops_detect(const uint8_t *data, size_t len) {
    if (len >= 8 && memcmp(data, AMM_TRACE_MAGIC, 8) == 0) return AMM_FMT_TRACE;
    if (looks_like_text(data, len)) return AMM_FMT_TEXT;
    return AMM_FMT_RAW;
}

int amm_ops_load(const uint8_t *data, size_t len, amm_ops_format format, amm_ops_mode mode, amm_op_list *out,
                 amm_ops_format *used, char *err, size_t err_len) {
    if (format == AMM_FMT_AUTO) format = amm_ops_detect(data, len);
    if (used) *used = format;
    switch (format) {
    case AMM_FMT_TEXT: return amm_ops_parse_text((const char *)data, len, out, err, err_len);
    case AMM_FMT_TRACE: return amm_ops_from_trace(data, len, out, NULL, NULL, NULL, err, err_len);
    default:
        if (amm_ops_decode(data, len, mode, 0, out) == 0) return 0;
        set_err(err, err_len, "out of memory decoding %zu bytes", len);
        return -1;
    }
}

int amm_read_file(const char *path, size_t max, uint8_t **data, size_t *len, char *err, size_t err_len) {
    *data = NULL;
    *len = 0;
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        set_err(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    int oom = buf == NULL, rc = 0;
    while (!oom && n <= max) {
        if (n == cap) {
            uint8_t *grown = realloc(buf, cap * 2);
            if (!grown) {
                oom = 1;
                break;
            }
            buf = grown;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (oom) {
        set_err(err, err_len, "%s: out of memory reading it", path);
        rc = -1;
    } else if (ferror(f)) {
        set_err(err, err_len, "%s: cannot read: %s", path, strerror(errno));
        rc = -1;
    } else if (n > max) {
        set_err(err, err_len, "%s: larger than the %zu-byte limit", path, max);
        rc = -1;
    }
    if (f != stdin) fclose(f);
    if (rc) {
        free(buf);
        return -1;
    }
    *data = buf;
    *len = n;
    return 0;
}
