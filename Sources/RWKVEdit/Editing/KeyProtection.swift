/// Key directions an edit must leave alone, per head: an orthonormal set {c} for which every edit
/// matrix Δ (value-major, the column index is the key's) becomes Δ(I − Σ c cᵀ), so that
/// (S + αΔ)·c = S·c — a reading whose receptance lies along c reads the same state after the edit.
///
/// An edit by name protects the other statements of its property this way when every strength it
/// searched cost one of them its answer (`CollateralRecovery`): each statement's direction is the
/// leading key of its own probe pair, the statement with its value and with another one.
public struct KeyProtection: Sendable {
    public private(set) var directions: [HeadIndex: [[Float]]] = [:]
    /// How many statements' probe pairs gave a direction (each at most one per head).
    public private(set) var statements = 0

    public init() {}

    public var isEmpty: Bool { directions.isEmpty }

    /// Adds the leading key direction of the head delta S(new) − S(old) of each head; a direction
    /// already within the span held for that head (residual below 1e-4 of its norm) adds nothing.
    public mutating func add(_ probes: (old: State, new: State), heads: [HeadIndex], headSize n: Int) throws {
        var added = false
        for h in heads {
            if add(try HeadSVD.leading(matrix: try StateDelta.head(probes.old, probes.new, h), n: n).v, at: h) { added = true }
        }
        if added { statements += 1 }
    }

    /// Adds a key direction of head `h` (Gram–Schmidt against the ones held); false when it added nothing.
    @discardableResult
    public mutating func add(_ direction: [Float], at h: HeadIndex) -> Bool {
        var v = direction
        let norm = dot(v, v).squareRoot()
        guard norm > 0, norm.isFinite else { return false }
        for c in directions[h] ?? [] {
            let d = dot(v, c)
            for j in v.indices { v[j] -= d * c[j] }
        }
        let rest = dot(v, v).squareRoot()
        guard rest > 1e-4 * norm else { return false }
        directions[h, default: []].append(v.map { $0 / rest })
        return true
    }

    /// Δ ← Δ(I − Σ c cᵀ) for head `h`'s directions (Δ value-major n×n).
    public func project(_ m: inout [Float], at h: HeadIndex, headSize n: Int) throws {
        guard let cs = directions[h] else { return }
        guard m.count == n * n, cs.allSatisfy({ $0.count == n }) else {
            throw EditError.invalid("key protection: a head matrix of \(m.count) values and key directions of \(cs.map(\.count)) values for heads of \(n)")
        }
        m.withUnsafeMutableBufferPointer { m in
            for c in cs {
                c.withUnsafeBufferPointer { c in
                    for i in 0..<n {
                        var d: Float = 0
                        for j in 0..<n { d += m[i * n + j] * c[j] }
                        for j in 0..<n { m[i * n + j] -= d * c[j] }
                    }
                }
            }
        }
    }
}
