
/// Head-level arithmetic on WKV states.
public enum StateDelta {
    /// S_b − S_a for one head, value-major n×n.
    public static func head(_ a: State, _ b: State, _ h: HeadIndex) throws -> [Float] {
        let o = a.wkvOffset(layer: h.layer, head: h.head), count = a.headElementCount
        guard a.isCompatible(with: b), (0..<a.nLayer).contains(h.layer), (0..<a.nHead).contains(h.head) else {
            throw EditError.invalid("head delta: layer \(h.layer), head \(h.head) is not a head of both states (\(a.nLayer) layers × \(a.nHead) heads, and \(b.nLayer) × \(b.nHead))")
        }
        return [Float](unsafeUninitializedCapacity: count) { d, initialized in
            a.wkv.withUnsafeBufferPointer { x in
                b.wkv.withUnsafeBufferPointer { y in for i in 0..<count { d[i] = y[o + i] - x[o + i] } }
            }
            initialized = count
        }
    }

    /// S_h += α · M (M value-major n×n).
    public static func add(_ m: [Float], scaled alpha: Float, to s: inout State, at h: HeadIndex) {
        let o = s.wkvOffset(layer: h.layer, head: h.head)
        s.wkv.withUnsafeMutableBufferPointer { w in
            for i in 0..<m.count { w[o + i] += alpha * m[i] }
        }
    }

    /// σ·u·vᵀ as a value-major n×n matrix.
    public static func outer(_ r: RankOne) throws -> [Float] {
        let n = r.u.count
        guard r.v.count == n else {
            throw EditError.invalid("rank-one matrix: a value direction of \(n) values and a key direction of \(r.v.count); a head's are equal")
        }
        return [Float](unsafeUninitializedCapacity: n * n) { m, initialized in
            r.v.withUnsafeBufferPointer { v in
                for i in 0..<n { let a = r.sigma * r.u[i]; for j in 0..<n { m[i * n + j] = a * v[j] } }
            }
            initialized = n * n
        }
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
