#ifndef RWKV_POOL_H
#define RWKV_POOL_H

/// Worker threads for data-parallel kernels. A task is split into chunks that the caller and the
/// workers claim from a shared counter, so a worker that is descheduled (a busy machine) delays
/// nothing: the caller runs the chunks itself and only waits for chunks already claimed.
/// Workers spin briefly between tasks (a decode step issues ~100 small tasks and waking a
/// sleeping thread costs tens of µs), then sleep, so an idle engine costs no CPU.
typedef struct rk_pool rk_pool;

/// Runs chunk `chunk_index` of a task.
typedef void (*rk_chunk_fn)(void *ctx, int chunk_index);

rk_pool *rk_pool_create(int n_threads);
void rk_pool_destroy(rk_pool *pool);
int rk_pool_size(const rk_pool *pool);

/// Runs fn for every chunk in [0, n_chunks) on the pool's threads and the caller; returns when all are done.
void rk_pool_run(rk_pool *pool, rk_chunk_fn fn, void *ctx, int n_chunks);

#endif
