/*
 * bench.h - amm-viz --bench N: frames per second with N live blocks and the
 * ingest rate (records per second) while rendering.  Prints its figures;
 * returns 0, or 1 if something could not be set up.
 */
#ifndef AMM_VIZ_BENCH_H
#define AMM_VIZ_BENCH_H

int vb_run(long nblocks, int w, int h, int headless, const char *font);

#endif /* AMM_VIZ_BENCH_H */
