import CLapacke
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

    /// LAPACK's divide-and-conquer SVD (sgesdd) of a square n×n row-major matrix.
    public init(matrix: [Float], n: Int) throws {
        precondition(matrix.count == n * n, "HeadSVD needs an n×n matrix")
        self.n = n
        var a = matrix
        var s = [Float](repeating: 0, count: n)
        var u = [Float](repeating: 0, count: n * n)
        var vt = [Float](repeating: 0, count: n * n)
        let info = LAPACKE_sgesdd(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "A")), Int32(n), Int32(n), &a, Int32(n),
                                  &s, &u, Int32(n), &vt, Int32(n))
        guard info == 0 else { throw EditError.numerical("sgesdd failed (info \(info))") }
        sigma = s
        // U is row-major with singular vectors in columns; store them as rows.
        var uT = [Float](repeating: 0, count: n * n)
        for i in 0..<n { for k in 0..<n { uT[k * n + i] = u[i * n + k] } }
        uRows = uT
        vRows = vt
    }

    /// Only the leading triplet, by power iteration on ΔᵀΔ (cheap on hot paths); falls back to the
    /// full SVD when the iteration does not settle (σ₁ ≈ σ₂).
    public static func leading(matrix m: [Float], n: Int) throws -> RankOne {
        var norm2: Float = 0
        for x in m { norm2 += x * x }
        if norm2 == 0 { return RankOne(sigma: 0, u: [Float](repeating: 0, count: n), v: [Float](repeating: 0, count: n)) }
        // Start from the largest row of Δ (the direction most of ΔᵀΔ's mass points along).
        var best = 0
        var bestNorm: Float = -1
        for i in 0..<n {
            var s: Float = 0
            for j in 0..<n { s += m[i * n + j] * m[i * n + j] }
            if s > bestNorm { bestNorm = s; best = i }
        }
        var v = Array(m[(best * n)..<((best + 1) * n)])
        normalize(&v)
        var u = [Float](repeating: 0, count: n)
        var sigma: Float = 0
        for _ in 0..<300 {
            for i in 0..<n { var s: Float = 0; for j in 0..<n { s += m[i * n + j] * v[j] }; u[i] = s }   // u = Δv
            let su = normalize(&u)
            var nv = [Float](repeating: 0, count: n)
            for i in 0..<n { let ui = u[i]; for j in 0..<n { nv[j] += m[i * n + j] * ui } }             // v = Δᵀu
            let s = normalize(&nv)
            var change: Float = 0
            for j in 0..<n { change = max(change, abs(nv[j] - v[j])) }
            v = nv
            sigma = s
            if change < 1e-6, abs(s - su) <= 1e-5 * max(s, 1e-30) { return RankOne(sigma: sigma, u: u, v: v) }
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
