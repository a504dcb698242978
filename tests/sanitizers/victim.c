/*
 * victim.c - a program that misuses amm blocks on purpose, for the
 * sanitizer tests: ASan must stop it at the faulting write with its own
 * report, and Valgrind must report an invalid write.
 *
 *   victim pool-overflow   writes one byte past a 20-byte pool block
 *   victim heap-underflow  writes one byte before a heap block
 *   victim use-after-free  writes into a freed (quarantined) pool block
 *   victim clean           uses blocks correctly (must pass under both tools)
 */
#include <amm/amm.h>
#include <stdio.h>
#include <string.h>

static void use(volatile char *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (char)i;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    amm_manager *m = amm_create(NULL);
    amm_pool *pool = amm_pool_create(m, 24, 8, 16);
    volatile char *slot = amm_pool_alloc_at(m, pool, 20, 0, __FILE__, __LINE__);
    volatile char *heap = amm_alloc(m, 100, 0);
    if (!m || !pool || !slot || !heap) return 3;
    use(slot, 20);
    use(heap, 100);
    if (strcmp(mode, "pool-overflow") == 0) {
        slot[20] = 1;
    } else if (strcmp(mode, "heap-underflow") == 0) {
        heap[-1] = 1;
    } else if (strcmp(mode, "use-after-free") == 0) {
        amm_free(m, (void *)slot);
        slot[3] = 1;
        slot = NULL;
    } else if (strcmp(mode, "clean") != 0) {
        fprintf(stderr, "usage: victim pool-overflow|heap-underflow|use-after-free|clean\n");
        return 2;
    }
    if (slot) amm_free(m, (void *)slot);
    amm_free(m, (void *)heap);
    amm_destroy(m);
    printf("victim: finished %s\n", mode);
    return 0;
}
