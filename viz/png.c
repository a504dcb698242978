/*
 * png.c - the minimal PNG writer of png.h.
 *
 * Layout: signature, IHDR, one IDAT holding a zlib stream of stored deflate
 * blocks (each: 1 header byte, LEN, ~LEN, then raw bytes), IEND.  The zlib
 * stream is 2 header bytes (0x78 0x01), the blocks, and the Adler-32 of the
 * uncompressed data (filter byte 0 + the row's pixels, per row).  The IDAT
 * length is known up front, so the file is streamed row by row and the CRC
 * computed on the fly: memory use is one row.
 */
#include "png.h"

#include <stdlib.h>
#include <string.h>

#define VPNG_STORED_MAX 65535u

uint32_t vpng_crc32(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

uint32_t vpng_adler32(uint32_t adler, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint32_t a = adler & 0xFFFFu, b = adler >> 16;
    for (size_t i = 0; i < len; i++) {
        a = (a + p[i]) % 65521u;
        b = (b + a) % 65521u;
    }
    return (b << 16) | a;
}

/* A chunk being written: its CRC runs over type + data. */
typedef struct vpng_out {
    FILE *f;
    uint32_t crc;
    int err;
} vpng_out;

static void put_bytes(vpng_out *o, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, o->f) != n) o->err = 1;
    o->crc = vpng_crc32(o->crc, p, n);
}

static void be32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

static void chunk_begin(vpng_out *o, const char *type, uint32_t len)
{
    uint8_t b[4];
    be32(b, len);
    if (fwrite(b, 1, 4, o->f) != 4) o->err = 1;
    o->crc = 0;
    put_bytes(o, type, 4);
}

static void chunk_end(vpng_out *o)
{
    uint8_t b[4];
    be32(b, o->crc);
    if (fwrite(b, 1, 4, o->f) != 4) o->err = 1;
}

/* Emits uncompressed bytes into stored blocks; `left` counts bytes still owed in the stream. */
typedef struct vpng_deflate {
    vpng_out *o;
    uint64_t left;      /* uncompressed bytes not yet emitted */
    uint32_t in_block;  /* bytes left in the current stored block */
    uint32_t adler;
} vpng_deflate;

static void deflate_put(vpng_deflate *d, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (d->in_block == 0) {
            uint32_t blen = d->left > VPNG_STORED_MAX ? VPNG_STORED_MAX : (uint32_t)d->left;
            uint8_t hdr[5] = {d->left <= VPNG_STORED_MAX ? 1 : 0, (uint8_t)blen, (uint8_t)(blen >> 8),
                              (uint8_t)~blen, (uint8_t)(~blen >> 8)};
            put_bytes(d->o, hdr, sizeof hdr);
            d->in_block = blen;
        }
        size_t take = n < d->in_block ? n : d->in_block;
        put_bytes(d->o, p, take);
        d->adler = vpng_adler32(d->adler, p, take);
        d->in_block -= (uint32_t)take;
        d->left -= take;
        p += take;
        n -= take;
    }
}

int vpng_write(FILE *out, const uint8_t *pixels, int w, int h, size_t pitch, int channels)
{
    if (!out || !pixels || w <= 0 || h <= 0 || (channels != 3 && channels != 4) || w > (1 << 24) || h > (1 << 24) ||
        pitch < (size_t)w * (size_t)channels)
        return -1;
    uint64_t row_bytes = (uint64_t)w * (uint64_t)channels + 1u;
    uint64_t raw = row_bytes * (uint64_t)h;
    uint64_t blocks = (raw + VPNG_STORED_MAX - 1) / VPNG_STORED_MAX;
    uint64_t idat = 2 + raw + blocks * 5 + 4;
    if (idat > 0x7FFFFFFFu) return -1;

    vpng_out o = {out, 0, 0};
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    if (fwrite(sig, 1, 8, out) != 8) return -1;

    uint8_t ihdr[13];
    be32(ihdr, (uint32_t)w);
    be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;                          /* bit depth */
    ihdr[9] = channels == 4 ? 6 : 2;      /* colour type: RGBA or RGB */
    ihdr[10] = ihdr[11] = ihdr[12] = 0;   /* deflate, adaptive filters, no interlace */
    chunk_begin(&o, "IHDR", sizeof ihdr);
    put_bytes(&o, ihdr, sizeof ihdr);
    chunk_end(&o);

    chunk_begin(&o, "IDAT", (uint32_t)idat);
    static const uint8_t zhdr[2] = {0x78, 0x01};
    put_bytes(&o, zhdr, 2);
    vpng_deflate d = {&o, raw, 0, 1};
    const uint8_t filter = 0;
    for (int y = 0; y < h; y++) {
        deflate_put(&d, &filter, 1);
        deflate_put(&d, pixels + (size_t)y * pitch, (size_t)w * (size_t)channels);
    }
    uint8_t ad[4];
    be32(ad, d.adler);
    put_bytes(&o, ad, 4);
    chunk_end(&o);

    chunk_begin(&o, "IEND", 0);
    chunk_end(&o);
    return o.err || ferror(out) ? -1 : 0;
}

int vpng_save(const char *path, const uint8_t *pixels, int w, int h, size_t pitch, int channels)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int rc = vpng_write(f, pixels, w, h, pitch, channels);
    if (fclose(f) != 0) rc = -1;
    return rc;
}
