/*
 * A tiny program built against an *installed* amm, once through the CMake
 * package (find_package(amm)) and once through pkg-config, by
 * tests/install/check-install.sh.  It uses both public headers and prints one
 * line the script compares: "amm consumer ok: amm MAJOR.MINOR.PATCH".
 */
#include <amm/amm.h>
#include <amm/mem_manager.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int fail(const char *what)
{
    fprintf(stderr, "consumer: %s\n", what);
    return 1;
}

/* The full API: an aligned block, written, recognised, freed, heap healthy. */
static int check_amm_api(void)
{
    amm_manager *m = amm_create(NULL);
    if (m == NULL)
        return fail("amm_create(NULL) returned NULL");
    int bad = 0;
    unsigned char *p = amm_alloc(m, 100, 64);
    if (p == NULL || ((uintptr_t)p & 63u) != 0) {
        bad += fail("amm_alloc(100, 64) gave no 64-aligned block");
    } else {
        memset(p, 0x5A, 100);
        if (!amm_owns(m, p) || amm_size(m, p) != 100)
            bad += fail("amm_owns/amm_size do not recognise the block");
        if (amm_free(m, p) != 0)
            bad += fail("amm_free refused a valid block");
    }
    if (amm_check(m) != 0 || amm_fault_count(m) != 0)
        bad += fail("amm_check or amm_fault_count report problems");
    amm_destroy(m);
    return bad;
}

/* The seed's API through <amm/mem_manager.h>. */
static int check_seed_api(void)
{
    MemoryManager *mm = create_memory_manager();
    if (mm == NULL)
        return fail("create_memory_manager returned NULL");
    int bad = 0;
    int *a = allocate_memory(mm, 8 * sizeof(int), 16);
    if (a == NULL || ((uintptr_t)a & 15u) != 0) {
        bad += fail("allocate_memory gave no 16-aligned block");
    } else {
        for (int i = 0; i < 8; i++)
            a[i] = i * i;
        int *b = copy_memory(mm, a, 8 * sizeof(int));
        if (b == NULL || memcmp(a, b, 8 * sizeof(int)) != 0)
            bad += fail("copy_memory did not copy the block");
        deallocate_memory(mm, b);
        deallocate_memory(mm, a);
    }
    free_memory_manager(mm);
    return bad;
}

int main(void)
{
    int bad = check_amm_api() + check_seed_api();
    if (bad != 0)
        return 1;
    printf("amm consumer ok: amm %d.%d.%d\n", AMM_VERSION_MAJOR, AMM_VERSION_MINOR, AMM_VERSION_PATCH);
    return 0;
}
