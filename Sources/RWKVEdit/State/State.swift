import CKernels
import Foundation

/// The recurrent state of an RWKV-7 model: per layer the time-mix token-shift input (att_x_prev, [C]),
/// the WKV matrices ([H][N][N], value-major: wkv[h][i][j] with i the value index, j the key index)
/// and the channel-mix token-shift input (ffn_x_prev, [C]). A value type: copying branches it.
public struct State: Sendable, Equatable {
    public let nLayer: Int
    public let nEmbd: Int
    public let nHead: Int
    public let headSize: Int
    public var attXPrev: [Float]
    public var wkv: [Float]
    public var ffnXPrev: [Float]

    public init(config c: ModelConfig) {
        self.init(nLayer: c.nLayer, nEmbd: c.nEmbd, nHead: c.nHead, headSize: c.headSize)
    }

    public init(nLayer: Int, nEmbd: Int, nHead: Int, headSize: Int) {
        self.nLayer = nLayer; self.nEmbd = nEmbd; self.nHead = nHead; self.headSize = headSize
        attXPrev = [Float](repeating: 0, count: nLayer * nEmbd)
        ffnXPrev = attXPrev
        wkv = [Float](repeating: 0, count: nLayer * nHead * headSize * headSize)
    }

    public var headElementCount: Int { headSize * headSize }

    /// Offset of wkv[layer][head][0][0] in `wkv`.
    public func wkvOffset(layer: Int, head: Int) -> Int { (layer * nHead + head) * headElementCount }

    /// One head's WKV matrix, value-major [N][N].
    public func wkvHead(layer: Int, head: Int) -> ArraySlice<Float> {
        let o = wkvOffset(layer: layer, head: head)
        return wkv[o..<(o + headElementCount)]
    }

    public mutating func setWKVHead(layer: Int, head: Int, _ values: [Float]) throws {
        guard values.count == headElementCount, (0..<nLayer).contains(layer), (0..<nHead).contains(head) else {
            throw RWKVError.invalidArgument("setWKVHead: layer \(layer), head \(head) with \(values.count) values; the state has \(nLayer) layers × \(nHead) heads of \(headElementCount) values")
        }
        let o = wkvOffset(layer: layer, head: head)
        wkv.replaceSubrange(o..<(o + headElementCount), with: values)
    }

    /// All WKV matrices of one layer, [H][N][N].
    public func wkvLayer(_ layer: Int) -> ArraySlice<Float> {
        let n = nHead * headElementCount
        return wkv[(layer * n)..<((layer + 1) * n)]
    }

    /// Makes this state equal to `other`, a state of the same shape, by copying into its own buffers:
    /// no allocation when they are not shared.
    public mutating func overwrite(with other: State) throws {
        try requireCompatible(with: other)
        func copy(_ source: [Float], into target: inout [Float]) {
            target.withUnsafeMutableBufferPointer { t in
                source.withUnsafeBufferPointer { s in t.baseAddress!.update(from: s.baseAddress!, count: s.count) }
            }
        }
        copy(other.wkv, into: &wkv)
        copy(other.attXPrev, into: &attXPrev)
        copy(other.ffnXPrev, into: &ffnXPrev)
    }

    public func isCompatible(with other: State) -> Bool {
        nLayer == other.nLayer && nEmbd == other.nEmbd && nHead == other.nHead && headSize == other.headSize
    }

    /// Throws unless `other` has this state's shape (states of one model).
    public func requireCompatible(with other: State) throws {
        guard isCompatible(with: other) else {
            throw RWKVError.invalidArgument("states of different models: \(nLayer) layers × \(nHead) heads of \(headSize) (n_embd \(nEmbd)) against \(other.nLayer) × \(other.nHead) of \(other.headSize) (n_embd \(other.nEmbd))")
        }
    }

    /// `self − other`, every component.
    public func subtracting(_ other: State) throws -> State {
        try requireCompatible(with: other)
        var d = self
        for i in d.wkv.indices { d.wkv[i] -= other.wkv[i] }
        for i in d.attXPrev.indices { d.attXPrev[i] -= other.attXPrev[i]; d.ffnXPrev[i] -= other.ffnXPrev[i] }
        return d
    }

    /// Largest absolute difference over every component.
    public func maxAbsDifference(_ other: State) throws -> Float {
        try requireCompatible(with: other)
        var m: Float = 0
        for (a, b) in zip(wkv, other.wkv) { m = max(m, abs(a - b)) }
        for (a, b) in zip(attXPrev, other.attXPrev) { m = max(m, abs(a - b)) }
        for (a, b) in zip(ffnXPrev, other.ffnXPrev) { m = max(m, abs(a - b)) }
        return m
    }

    /// Frobenius norm of the WKV matrices of the given layers (those of the state among them; default all).
    public func wkvNorm(layers: Range<Int>? = nil) -> Float {
        let r = (layers ?? 0..<nLayer).clamped(to: 0..<nLayer)
        let n = nHead * headElementCount
        let s = wkv.withUnsafeBufferPointer { sumOfSquares(UnsafeBufferPointer(rebasing: $0[(r.lowerBound * n)..<(r.upperBound * n)])) }
        return Float(s.squareRoot())
    }
}

/// Σ x² accumulated in double precision (the kernels' rk_sum_squares); 0 for no values.
func sumOfSquares(_ x: UnsafeBufferPointer<Float>) -> Double {
    guard let p = x.baseAddress, !x.isEmpty else { return 0 }
    return rk_sum_squares(p, Int64(x.count))
}

extension State {
    /// Saves as safetensors with the keys of the official package's state dump:
    /// `layerN.att_x_prev` [C], `layerN.wkv` [H,N,N] (value-major), `layerN.ffn_x_prev` [C].
    public func save(to path: String, metadata: [String: String] = [:]) throws {
        var tensors: [(name: String, shape: [Int], values: [Float])] = []
        let C = nEmbd, hn = nHead * headElementCount
        for l in 0..<nLayer {
            tensors.append(("layer\(l).att_x_prev", [C], Array(attXPrev[(l * C)..<((l + 1) * C)])))
            tensors.append(("layer\(l).wkv", [nHead, headSize, headSize], Array(wkv[(l * hn)..<((l + 1) * hn)])))
            tensors.append(("layer\(l).ffn_x_prev", [C], Array(ffnXPrev[(l * C)..<((l + 1) * C)])))
        }
        var meta = metadata
        meta["layout"] = "wkv[head][value i][key j]"
        try SafeTensorsFile.write(tensors, metadata: meta, to: path)
    }

    /// Loads a state saved by `save` (or by the official package's dump script) for a model of `config`;
    /// `keyPrefix` selects one of several states stored in one file (e.g. "p7.").
    public static func load(from path: String, config c: ModelConfig, keyPrefix: String = "") throws -> State {
        try load(from: try SafeTensorsFile(path: path), shape: StateShape(c), keyPrefix: keyPrefix)
    }

    static func load(from file: SafeTensorsFile, shape c: StateShape, keyPrefix: String = "") throws -> State {
        let path = file.path
        var s = State(nLayer: c.nLayer, nEmbd: c.nEmbd, nHead: c.nHead, headSize: c.headSize)
        let C = c.nEmbd, hn = c.wkvPerLayer
        for l in 0..<c.nLayer {
            func read(_ key: String, _ n: Int) throws -> [Float] {
                let t = try file.tensor(keyPrefix + key)
                guard t.elementCount == n else {
                    throw RWKVError.shapeMismatch(file: path, name: key, expected: [n], found: t.shape)
                }
                let values = t.floats()
                try StateValues.checkFinite(values, file: path, tensor: key)
                return values
            }
            s.attXPrev.replaceSubrange((l * C)..<((l + 1) * C), with: try read("layer\(l).att_x_prev", C))
            s.wkv.replaceSubrange((l * hn)..<((l + 1) * hn), with: try read("layer\(l).wkv", hn))
            s.ffnXPrev.replaceSubrange((l * C)..<((l + 1) * C), with: try read("layer\(l).ffn_x_prev", C))
        }
        if file.entries[keyPrefix + "layer\(c.nLayer).wkv"] != nil {
            throw RWKVError.malformed(file: path, reason: "the state has more than the model's \(c.nLayer) layers")
        }
        return s
    }
}
