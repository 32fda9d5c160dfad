import CKernels

/// Worker threads for the CPU kernels (see rwkv_pool.h for the scheduling).
final class ThreadPool: @unchecked Sendable {
    private let pool: OpaquePointer?
    let size: Int

    init(threads: Int) {
        pool = rk_pool_create(Int32(threads))
        size = pool.map { Int(rk_pool_size($0)) } ?? 1
    }

    deinit { if let pool { rk_pool_destroy(pool) } }

    /// Runs `body(chunk)` for every chunk in 0..<chunks, spread over the threads; waits for all.
    func run(chunks: Int, _ body: (Int) -> Void) {
        guard let pool, chunks > 1 else { for c in 0..<chunks { body(c) }; return }
        withoutActuallyEscaping(body) { escapable in
            var task = escapable
            withUnsafeMutablePointer(to: &task) { ctx in
                rk_pool_run(pool, { ctx, chunk in
                    guard let ctx else { return }
                    ctx.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(chunk))
                }, ctx, Int32(chunks))
            }
        }
    }
}
