import CKernels
import Foundation

/// The leading singular triplet of a head matrix: Δ ≈ σ·u·vᵀ, u in value space (rows), v in key space (columns).
public struct RankOne: Sendable, Equatable {
    public var sigma: Float
    public var u: [Float]
    public var v: [Float]

    public init(sigma: Float, u: [Float], v: [Float]) {
        self.sigma = sigma; self.u = u; self.v = v
    }
}

/// A full singular value decomposition of an n×n head matrix (row-major, value-major).
public struct HeadSVD: Sendable {
    public let n: Int
    /// Singular values, largest first.
    public let sigma: [Float]
    /// Left singular vectors as rows: u_k = uRows[k*n ..< (k+1)*n].
    public let uRows: [Float]
    /// Right singular vectors as rows: v_k = vRows[k*n ..< (k+1)*n].
    public let vRows: [Float]

    public func u(_ k: Int) -> [Float] { Array(uRows[(k * n)..<((k + 1) * n)]) }
    public func v(_ k: Int) -> [Float] { Array(vRows[(k * n)..<((k + 1) * n)]) }
    public var top: RankOne { RankOne(sigma: sigma[0], u: u(0), v: v(0)) }

    /// Share of the energy in the first component: σ₁² / Σσ_k².
    public var r1: Float {
        let total = sigma.reduce(0) { $0 + $1 * $1 }
        return total > 0 ? sigma[0] * sigma[0] / total : 0
    }

    /// One-sided Jacobi (Hestenes) SVD of a square n×n row-major matrix, in double precision: plane
    /// rotations orthogonalise the columns of A·V until every pair is orthogonal to working precision;
    /// then σ_k = ‖column k‖, u_k = column k / σ_k, v_k = column k of V. No LAPACK: the runtime needs
    /// only this and the heads are 64×64 (a few ms).
    public init(matrix: [Float], n: Int) throws {
        guard n > 0, matrix.count == n * n else {
            throw EditError.invalid("an SVD needs an n×n matrix; got \(matrix.count) values for n = \(n)")
        }
        guard matrix.allSatisfy({ $0.isFinite }) else { throw EditError.numerical("the matrix to decompose has a non-finite value") }
        self.n = n
        // Columns of A and of V, each contiguous: col[j*n + i] = A[i][j].
        var a = [Double](repeating: 0, count: n * n)
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { a[j * n + i] = Double(matrix[i * n + j]) } }
        for j in 0..<n { v[j * n + j] = 1 }
        let eps = 1e-15
        var converged = false
        a.withUnsafeMutableBufferPointer { a in
            v.withUnsafeMutableBufferPointer { v in
                for _ in 0..<60 {
                    var rotated = false
                    for p in 0..<(n - 1) {
                        for q in (p + 1)..<n {
                            let cp = a.baseAddress! + p * n, cq = a.baseAddress! + q * n
                            var alpha = 0.0, beta = 0.0, gamma = 0.0
                            for i in 0..<n { alpha += cp[i] * cp[i]; beta += cq[i] * cq[i]; gamma += cp[i] * cq[i] }
                            guard abs(gamma) > eps * (alpha * beta).squareRoot(), gamma != 0 else { continue }
                            rotated = true
                            let zeta = (beta - alpha) / (2 * gamma)
                            let t = (zeta >= 0 ? 1.0 : -1.0) / (abs(zeta) + (1 + zeta * zeta).squareRoot())
                            let c = 1 / (1 + t * t).squareRoot(), s = c * t
                            let vp = v.baseAddress! + p * n, vq = v.baseAddress! + q * n
                            for i in 0..<n {
                                let x = cp[i], y = cq[i]
                                cp[i] = c * x - s * y; cq[i] = s * x + c * y
                                let vx = vp[i], vy = vq[i]
                                vp[i] = c * vx - s * vy; vq[i] = s * vx + c * vy
                            }
                        }
                    }
                    if !rotated { converged = true; break }
                }
            }
        }
        guard converged else { throw EditError.numerical("the Jacobi SVD did not converge in 60 sweeps") }
        var norms = (0..<n).map { j in (0..<n).reduce(0.0) { $0 + a[j * n + $1] * a[j * n + $1] }.squareRoot() }
        let order = norms.indices.sorted { norms[$0] > norms[$1] }
        norms = order.map { norms[$0] }
        sigma = norms.map { Float($0) }
        var uRows = [Float](repeating: 0, count: n * n), vRows = [Float](repeating: 0, count: n * n)
        for (k, j) in order.enumerated() {
            let s = norms[k]
            for i in 0..<n {
                // A zero singular value leaves its u undetermined; report a zero vector rather than noise.
                uRows[k * n + i] = s > 0 ? Float(a[j * n + i] / s) : 0
                vRows[k * n + i] = Float(v[j * n + i])
            }
        }
        self.uRows = uRows
        self.vRows = vRows
    }

    /// Only the leading triplet, by power iteration on ΔᵀΔ (cheap on hot paths); falls back to the
    /// Jacobi SVD when the iteration does not settle (σ₁ ≈ σ₂).
    public static func leading(matrix m: [Float], n: Int) throws -> RankOne {
        guard n > 0, m.count == n * n else { throw EditError.invalid("leading: a \(n)×\(n) matrix needs \(n * n) values, not \(m.count)") }
        // Start from the largest row of Δ (the direction most of ΔᵀΔ's mass points along); the
        // transpose gives the second product of each iteration on the same kernel.
        let norm2 = m.withUnsafeBufferPointer(sumOfSquares)
        if norm2 == 0 { return RankOne(sigma: 0, u: [Float](repeating: 0, count: n), v: [Float](repeating: 0, count: n)) }
        var best = 0, bestNorm = -1.0
        var mt = [Float](repeating: 0, count: n * n)
        m.withUnsafeBufferPointer { p in
            mt.withUnsafeMutableBufferPointer { t in
                for i in 0..<n {
                    let s = sumOfSquares(UnsafeBufferPointer(rebasing: p[(i * n)..<((i + 1) * n)]))
                    if s > bestNorm { bestNorm = s; best = i }
                    for j in 0..<n { t[j * n + i] = p[i * n + j] }
                }
            }
        }
        var v = Array(m[(best * n)..<((best + 1) * n)])
        normalize(&v)
        // The two products per iteration run on the engine's matrix–vector kernel (Δ and Δᵀ as f32 rows).
        var u = [Float](repeating: 0, count: n), nv = [Float](repeating: 0, count: n)
        let f32 = DType.f32.kernelCode
        for _ in 0..<300 {
            m.withUnsafeBufferPointer { rk_matvec(f32, $0.baseAddress!, v, &u, Int64(n), 0, Int64(n)) }     // u = Δv
            let su = normalize(&u)
            mt.withUnsafeBufferPointer { rk_matvec(f32, $0.baseAddress!, u, &nv, Int64(n), 0, Int64(n)) }  // v = Δᵀu
            let s = normalize(&nv)
            var change: Float = 0
            for j in 0..<n { change = max(change, abs(nv[j] - v[j])) }
            swap(&v, &nv)
            if change < 1e-6, abs(s - su) <= 1e-5 * max(s, 1e-30) { return RankOne(sigma: s, u: u, v: v) }
        }
        return try HeadSVD(matrix: m, n: n).top
    }
}

@discardableResult
func normalize(_ x: inout [Float]) -> Float {
    var s: Float = 0
    for v in x { s += v * v }
    let norm = s.squareRoot()
    if norm > 0 { for i in x.indices { x[i] /= norm } }
    return norm
}

func dot(_ a: [Float], _ b: [Float]) -> Float {
    var s: Float = 0
    for i in a.indices { s += a[i] * b[i] }
    return s
}
