/*
 * threads.c - a plain pthread program (no amm) that allocates in one thread
 * and frees in another: THREADS threads swap blocks through a shared table,
 * each block stamped with its size and a pattern that is verified by whoever
 * frees it.  Run with and without libamm-preload.so; the output must be the
 * same ("threads: N blocks, 0 bad"), whatever the interleaving.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* posix_memalign */
#endif
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define ROUNDS 20000
#define SLOTS 256

typedef struct {
    size_t size;
    unsigned char seed;
} stamp; /* at the start of every block */

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *table[SLOTS];
static size_t checked, bad; /* under table_lock */

static uint64_t next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static unsigned char *make(uint64_t *rng) {
    size_t size = sizeof(stamp) + next(rng) % 2000;
    unsigned kind = (unsigned)(next(rng) % 3);
    unsigned char *p = NULL;
    if (kind == 0) p = malloc(size);
    else if (kind == 1) p = calloc(1, size);
    else if (posix_memalign((void **)&p, 64, size) != 0) p = NULL;
    if (!p) return NULL;
    stamp st = {size, (unsigned char)next(rng)};
    memcpy(p, &st, sizeof st);
    for (size_t i = sizeof st; i < size; i++) p[i] = (unsigned char)(st.seed + i);
    return p;
}

/* 1 if the block is intact; grows it by realloc half the time to move it. */
static int verify_and_free(unsigned char *p, uint64_t *rng) {
    stamp st;
    memcpy(&st, p, sizeof st);
    if (next(rng) % 2) {
        unsigned char *q = realloc(p, st.size + 100);
        if (!q) return 0;
        p = q;
    }
    int ok = 1;
    for (size_t i = sizeof st; i < st.size; i++) ok &= p[i] == (unsigned char)(st.seed + i);
    free(p);
    return ok;
}

static void *worker(void *arg) {
    uint64_t rng = 0x9E3779B97F4A7C15ull * ((uintptr_t)arg + 1);
    for (int r = 0; r < ROUNDS; r++) {
        unsigned char *mine = make(&rng);
        if (!mine) {
            fprintf(stderr, "threads: allocation failed\n");
            exit(1);
        }
        size_t slot = (size_t)(next(&rng) % SLOTS);
        pthread_mutex_lock(&table_lock);
        unsigned char *theirs = table[slot];
        table[slot] = mine;
        pthread_mutex_unlock(&table_lock);
        if (theirs) {
            int ok = verify_and_free(theirs, &rng);
            pthread_mutex_lock(&table_lock);
            checked++;
            bad += !ok;
            pthread_mutex_unlock(&table_lock);
        }
    }
    return NULL;
}

int main(void) {
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++) {
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0) {
            fprintf(stderr, "threads: pthread_create failed\n");
            return 1;
        }
    }
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    uint64_t rng = 1;
    for (int i = 0; i < SLOTS; i++) {
        if (table[i]) {
            checked++;
            bad += !verify_and_free(table[i], &rng);
        }
    }
    printf("threads: %zu blocks, %zu bad\n", checked, bad);
    return bad != 0;
}
