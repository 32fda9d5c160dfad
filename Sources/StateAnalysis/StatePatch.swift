import RWKVEdit

/// Activation patching on recurrent states: copy a donor's WKV matrices into a base state.
public enum StatePatch {
    /// `base` with the WKV matrices of `heads` taken from `donor`.
    public static func patched(_ base: State, from donor: State, heads: [HeadIndex]) throws -> State {
        try base.requireCompatible(with: donor)
        var s = base
        for h in heads {
            let o = s.wkvOffset(layer: h.layer, head: h.head)
            s.wkv.replaceSubrange(o..<(o + s.headElementCount), with: donor.wkv[o..<(o + s.headElementCount)])
        }
        return s
    }

    /// The patch sites of a sweep: every layer, every block of `blockSize` layers (plus the two
    /// halves), or every head.
    public enum Granularity: String, CaseIterable, Sendable { case layer, block, head }

    public static func sites(_ g: Granularity, config c: ModelConfig, blockSize: Int) -> [(name: String, heads: [HeadIndex])] {
        func layers(_ r: Range<Int>) -> [HeadIndex] { r.flatMap { l in (0..<c.nHead).map { HeadIndex(layer: l, head: $0) } } }
        switch g {
        case .layer:
            return (0..<c.nLayer).map { ("layer \($0)", layers($0..<($0 + 1))) }
        case .block:
            let size = max(1, blockSize)
            var out = stride(from: 0, to: c.nLayer, by: size).map { a -> (String, [HeadIndex]) in
                let b = min(c.nLayer, a + size)
                return ("layers \(a)-\(b - 1)", layers(a..<b))
            }
            out.append(("lower half \(0)-\(c.nLayer / 2 - 1)", layers(0..<(c.nLayer / 2))))
            out.append(("upper half \(c.upperHalfLayers.lowerBound)-\(c.upperHalfLayers.upperBound)", layers(c.upperHalfLayers.lowerBound..<c.nLayer)))
            return out
        case .head:
            return layers(0..<c.nLayer).map { ("layer \($0.layer) head \($0.head)", [$0]) }
        }
    }
}
