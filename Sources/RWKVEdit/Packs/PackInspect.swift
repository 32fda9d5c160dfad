import Foundation

extension EditPack {
    /// Mean σ_X,h = ‖w_X,h‖ over the vocabulary, per head (rows: layers of the pack, columns: heads).
    public func sigmaHeat() throws -> [[Double]] {
        let hs = heads, m = manifest
        var sum = [Double](repeating: 0, count: hs.count)
        let names = try values().map(\.name)
        for x in names {
            let w = try vocabEntry(x)
            // In double precision: squares of finite f32 entries can overflow f32.
            for i in 0..<hs.count { sum[i] += w.vector(i).reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
        }
        let nl = m.layers[1] - m.layers[0] + 1
        return (0..<nl).map { l in (0..<m.nHead).map { h in sum[l * m.nHead + h] / Double(max(names.count, 1)) } }
    }

    /// Mean |cos(u₁ pair, u₁ composed)| per head over up to `maxPairs` stored pair entries, and the count used.
    public func composedVsPairCosine(maxPairs: Int = 500) throws -> (perHead: [HeadIndex: Double], pairs: Int) {
        let rows = try db.query("SELECT a, b FROM pair_entries ORDER BY a, b LIMIT ?", [.int(Int64(maxPairs))])
        var sum: [HeadIndex: Double] = [:]
        var n = 0
        for r in rows {
            guard r.count == 2, let a = r[0].text, let b = r[1].text, let p = try pairEntry(a, b) else { continue }
            let c = try composedPair(a, b)
            for (h, t) in p {
                guard let u = c[h]?.u else { continue }
                sum[h, default: 0] += abs(zip(u, t.u).reduce(0.0) { $0 + Double($1.0) * Double($1.1) })
            }
            n += 1
        }
        return (sum.mapValues { $0 / Double(max(n, 1)) }, n)
    }

    /// Number of rows per table.
    public func counts() throws -> [String: Int] {
        var out: [String: Int] = [:]
        for t in ["vocab", "staged", "vocab_entries", "pair_entries"] {
            out[t] = try db.query("SELECT count(*) FROM \(t)").first?.first?.int ?? 0
        }
        return out
    }
}
