/*
 * forkexec.c - fork while other threads are inside malloc and free, then
 * allocate in the child: with the allocator's lock inherited taken by a
 * thread that does not exist in the child, the child would hang (CTest's
 * timeout catches that).  Every other child execs this program again
 * ("forkexec child N"), which allocates and prints one line.  The parent
 * waits for each child in turn, so the output is the same on every run.
 * Its own atfork handlers, registered before its first malloc, allocate in
 * the prepare, parent and child phases: the allocator's fork handling must
 * leave malloc usable there (glibc's does).
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define HAMMERS 3
#define CHILDREN 40

static atomic_int stop;

static void *hammer(void *arg) {
    (void)arg;
    unsigned n = 0;
    while (!atomic_load(&stop)) {
        char *volatile p = malloc(16 + n++ % 4000); /* volatile: the pair cannot be optimised away */
        free(p);
    }
    return NULL;
}

/* The program's own fork handlers, which allocate. */
static void at_prepare(void) {
    char *volatile p = malloc(24);
    free(p);
}
static void at_parent(void) {
    char *volatile p = malloc(48);
    free(p);
}
static void at_child(void) {
    char *volatile p = malloc(96);
    if (p) p[0] = 1;
    free(p);
}

/* A little allocation work; returns a checksum so it cannot be optimised away. */
static unsigned churn(unsigned seed) {
    unsigned sum = 0;
    for (unsigned i = 0; i < 200; i++) {
        char *volatile p = malloc(1 + (seed + i) % 300);
        if (!p) return 0;
        p[0] = (char)i;
        sum += (unsigned char)p[0];
        free(p);
    }
    return sum;
}

static int run_child(const char *self, int i) {
    if (churn((unsigned)i) == 0) _exit(3);
    if (i % 2 == 0) _exit(0);
    char arg[16];
    snprintf(arg, sizeof arg, "%d", i);
    fflush(stdout);
    execl(self, self, "child", arg, (char *)NULL);
    _exit(4);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "child") == 0) {
        char *line = malloc(64);
        if (!line) return 1;
        snprintf(line, 64, "forkexec: child %s ran", argv[2]);
        puts(line);
        free(line);
        return 0;
    }
    alarm(60); /* a child that hangs in a fork handler hangs the parent in waitpid */
    if (pthread_atfork(at_prepare, at_parent, at_child) != 0) return 1; /* before the first malloc */
    pthread_t t[HAMMERS];
    for (int i = 0; i < HAMMERS; i++) pthread_create(&t[i], NULL, hammer, NULL);
    int failed = 0;
    for (int i = 0; i < CHILDREN; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) run_child("/proc/self/exe", i);
        int status = 0;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            printf("forkexec: child %d ended with status %d\n", i, status);
            failed++;
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < HAMMERS; i++) pthread_join(t[i], NULL);
    printf("forkexec: %d children, %d failed\n", CHILDREN, failed);
    return failed != 0;
}
