
/// Head-level arithmetic on WKV states.
public enum StateDelta {
    /// S_b − S_a for one head, value-major n×n.
    public static func head(_ a: State, _ b: State, _ h: HeadIndex) -> [Float] {
        let x = a.wkvHead(layer: h.layer, head: h.head), y = b.wkvHead(layer: h.layer, head: h.head)
        return zip(y, x).map { $0 - $1 }
    }

    /// S_h += α · M (M value-major n×n).
    public static func add(_ m: [Float], scaled alpha: Float, to s: inout State, at h: HeadIndex) {
        let o = s.wkvOffset(layer: h.layer, head: h.head)
        s.wkv.withUnsafeMutableBufferPointer { w in
            for i in 0..<m.count { w[o + i] += alpha * m[i] }
        }
    }

    /// σ·u·vᵀ as a value-major n×n matrix.
    public static func outer(_ r: RankOne) -> [Float] {
        let n = r.u.count
        var m = [Float](repeating: 0, count: n * n)
        for i in 0..<n { let a = r.sigma * r.u[i]; for j in 0..<n { m[i * n + j] = a * r.v[j] } }
        return m
    }

    /// Rank-k reconstruction Σ_{k<rank} σ_k u_k v_kᵀ.
    public static func reconstruct(_ svd: HeadSVD, rank: Int) -> [Float] {
        let n = svd.n
        var m = [Float](repeating: 0, count: n * n)
        for k in 0..<min(rank, n) {
            let u = svd.u(k), v = svd.v(k), s = svd.sigma[k]
            for i in 0..<n { let a = s * u[i]; for j in 0..<n { m[i * n + j] += a * v[j] } }
        }
        return m
    }
}
