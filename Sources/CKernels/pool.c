#include "rwkv_pool.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

enum { SPIN_ITERATIONS = 20000, OPEN = 1 << 30 };

struct rk_pool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    atomic_uint generation;  // bumped for every task
    atomic_int sleepers;
    atomic_int stop;
    // Task: OPEN bit while workers may still join, plus the number of workers inside it.
    atomic_int task_state;
    atomic_int next_chunk;
    int n_chunks;
    rk_chunk_fn fn;
    void *ctx;
};

typedef struct { rk_pool *pool; } worker_arg;

static void run_chunks(rk_pool *pool) {
    for (;;) {
        int c = atomic_fetch_add_explicit(&pool->next_chunk, 1, memory_order_relaxed);
        if (c >= pool->n_chunks) return;
        pool->fn(pool->ctx, c);
    }
}

/// Enters the current task if it is still open; a late worker must not touch a finished task.
static int join_task(rk_pool *pool) {
    int s = atomic_load(&pool->task_state);
    while (s & OPEN) {
        if (atomic_compare_exchange_weak(&pool->task_state, &s, s + 1)) return 1;
    }
    return 0;
}

static void *worker(void *p) {
    rk_pool *pool = ((worker_arg *)p)->pool;
    free(p);
    unsigned seen = 0; // generation 0 means "no task yet"
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&pool->generation, memory_order_acquire) == seen && !atomic_load(&pool->stop)) {
            if (++spins < SPIN_ITERATIONS) { CPU_RELAX(); continue; }
            pthread_mutex_lock(&pool->mutex);
            atomic_fetch_add(&pool->sleepers, 1);
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->mutex);
            atomic_fetch_sub(&pool->sleepers, 1);
            pthread_mutex_unlock(&pool->mutex);
        }
        if (atomic_load(&pool->stop)) return NULL;
        seen = atomic_load(&pool->generation);
        if (join_task(pool)) {
            run_chunks(pool);
            atomic_fetch_sub_explicit(&pool->task_state, 1, memory_order_release);
        }
    }
}

rk_pool *rk_pool_create(int n_threads) {
    rk_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    int n = n_threads < 1 ? 1 : n_threads;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->threads = calloc((size_t)n, sizeof(pthread_t));
    pool->n = 1;
    for (int i = 1; i < n && pool->threads; i++) {
        worker_arg *arg = malloc(sizeof *arg);
        if (!arg) break;
        arg->pool = pool;
        if (pthread_create(&pool->threads[i], NULL, worker, arg) != 0) { free(arg); break; }
        pool->n++; // fewer threads if the system refused some
    }
    return pool;
}

int rk_pool_size(const rk_pool *pool) { return pool->n; }

void rk_pool_run(rk_pool *pool, rk_chunk_fn fn, void *ctx, int n_chunks) {
    if (pool->n == 1 || n_chunks <= 1) {
        for (int c = 0; c < n_chunks; c++) fn(ctx, c);
        return;
    }
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n_chunks = n_chunks;
    atomic_store(&pool->next_chunk, 0);
    atomic_store(&pool->task_state, OPEN);
    pthread_mutex_lock(&pool->mutex);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    if (atomic_load(&pool->sleepers) > 0) pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    run_chunks(pool);
    // Close the task to late workers, then wait for those inside it to finish their chunks.
    atomic_fetch_and(&pool->task_state, ~OPEN);
    for (int spins = 0; atomic_load_explicit(&pool->task_state, memory_order_acquire) != 0; spins++) {
        if (spins < SPIN_ITERATIONS) CPU_RELAX(); else sched_yield();
    }
}

void rk_pool_destroy(rk_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 1; i < pool->n; i++) pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->wake);
    free(pool->threads);
    free(pool);
}
