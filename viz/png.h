/*
 * png.h - a minimal PNG writer (8-bit RGB or RGBA, no compression).
 *
 * The image data goes into zlib "stored" blocks (deflate type 0, at most
 * 65535 bytes each) with an Adler-32 trailer; every chunk carries its CRC-32.
 * Files are larger than compressed ones, never wrong, and need no zlib.
 */
#ifndef AMM_VIZ_PNG_H
#define AMM_VIZ_PNG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* CRC-32 (ISO 3309, as PNG uses) of len bytes, continuing from crc (start with 0). */
uint32_t vpng_crc32(uint32_t crc, const void *data, size_t len);
/* Adler-32 continuing from adler (start with 1). */
uint32_t vpng_adler32(uint32_t adler, const void *data, size_t len);

/*
 * Writes a w x h image whose rows are `pitch` bytes apart, each pixel
 * `channels` bytes (3: R,G,B; 4: R,G,B,A), to out.  Returns 0, or -1 on a bad
 * argument or a write error.
 */
int vpng_write(FILE *out, const uint8_t *pixels, int w, int h, size_t pitch, int channels);

/* The same to a file path.  Returns 0 or -1 (errno set by stdio). */
int vpng_save(const char *path, const uint8_t *pixels, int w, int h, size_t pitch, int channels);

#endif /* AMM_VIZ_PNG_H */
