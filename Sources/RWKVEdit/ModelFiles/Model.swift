import CKernels
import Foundation

/// Hyper-parameters of an RWKV-7 model, read from its tensors (never assumed).
public struct ModelConfig: Sendable, Equatable, Codable {
    public var nLayer: Int
    public var nEmbd: Int
    public var nHead: Int
    public var headSize: Int
    public var vocabSize: Int
    public var ffnSize: Int
    public var loraW: Int
    public var loraA: Int
    public var loraV: Int
    public var loraG: Int

    public init(nLayer: Int, nEmbd: Int, nHead: Int, headSize: Int, vocabSize: Int, ffnSize: Int,
                loraW: Int, loraA: Int, loraV: Int, loraG: Int) {
        self.nLayer = nLayer; self.nEmbd = nEmbd; self.nHead = nHead; self.headSize = headSize
        self.vocabSize = vocabSize; self.ffnSize = ffnSize
        self.loraW = loraW; self.loraA = loraA; self.loraV = loraV; self.loraG = loraG
    }
}

/// A weight matrix [rows][cols], row-major, in its stored type; y = W·x maps cols → rows.
public struct Matrix: Sendable {
    public let rows: Int
    public let cols: Int
    public let dtype: DType
    public let data: ByteRegion

    init(rows: Int, cols: Int, dtype: DType, data: ByteRegion) {
        self.rows = rows; self.cols = cols; self.dtype = dtype; self.data = data
    }

    init(rows: Int, cols: Int, floats: [Float]) {
        self.init(rows: rows, cols: cols, dtype: .f32, data: .owning(floats))
    }

    /// Bytes of one row (whole blocks for a quantised type: loaders check that cols is a multiple).
    public var rowBytes: Int { dtype.byteCount(cols) }
    public var byteCount: Int { rows * rowBytes }

    /// Element (row, col) widened to fp32; a quantised one by dequantising its block. NaN when the
    /// data is too short to hold it.
    public func element(row: Int, col: Int) -> Float {
        let be = dtype.blockElements
        let at = row * rowBytes + col / be * dtype.blockBytes
        guard row >= 0, row < rows, col >= 0, col < cols, at + dtype.blockBytes <= data.count else { return .nan }
        var block = [Float](repeating: 0, count: be)
        rk_to_f32(dtype.kernelCode, data.base + at, &block, Int64(be))
        return block[col % be]
    }
}

/// Weights of one block, in the engine's layout: vectors widened to fp32, big matrices kept in
/// their file type, LoRA factors transposed to [out][in] so every product is W·x.
public struct LayerWeights: Sendable {
    public var ln1Weight, ln1Bias, ln2Weight, ln2Bias: [Float]
    public var xR, xW, xK, xV, xA, xG: [Float]
    public var w0, a0: [Float]
    public var w1, w2, a1, a2, g1, g2: Matrix
    /// Value-residual mix; absent in layer 0.
    public var v0: [Float]?
    public var v1, v2: Matrix?
    public var kK, kA, rK: [Float]
    public var receptance, key, value, output: Matrix
    public var lnXWeight, lnXBias: [Float]
    public var ffnXK: [Float]
    public var ffnKey, ffnValue: Matrix
}

public enum ModelFileFormat: String, Sendable {
    case pth, safetensors, safetensorsFLA = "safetensors (fla keys)", gguf
}

/// An RWKV-7 ("x070") model in memory.
public final class RWKVModel: @unchecked Sendable {
    public let config: ModelConfig
    public let path: String
    public let format: ModelFileFormat
    /// Embedding table [vocab][C] in its file type; ln0 is applied at lookup.
    public let embedding: Matrix
    public let ln0Weight, ln0Bias: [Float]
    public let layers: [LayerWeights]
    public let lnOutWeight, lnOutBias: [Float]
    public let head: Matrix
    /// Vocabulary carried by the file (GGUF), if any.
    public let embeddedVocabulary: [Data]?

    public var weightDType: DType { layers.first?.key.dtype ?? head.dtype }

    /// The types of the big matrices (embedding, head, projections, FFN), the most common first, e.g.
    /// "q4_K+q6_K" for a Q4_K_M file, whose head stays Q6_K.
    public var weightTypes: String {
        var count: [DType: Int] = [:]
        for m in [embedding, head] + layers.flatMap({ [$0.receptance, $0.key, $0.value, $0.output, $0.ffnKey, $0.ffnValue] }) {
            count[m.dtype, default: 0] += m.rows * m.cols
        }
        return count.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key.rawValue < $1.key.rawValue }
            .map(\.key.rawValue).joined(separator: "+")
    }

    public var parameterCount: Int {
        let c = config
        var n = 2 * c.vocabSize * c.nEmbd + 4 * c.nEmbd
        for l in layers {
            n += [l.receptance, l.key, l.value, l.output, l.ffnKey, l.ffnValue, l.w1, l.w2, l.a1, l.a2, l.g1, l.g2]
                .reduce(0) { $0 + $1.rows * $1.cols }
            n += (l.v1.map { $0.rows * $0.cols } ?? 0) + (l.v2.map { $0.rows * $0.cols } ?? 0)
            n += 16 * c.nEmbd + c.nHead * c.headSize
        }
        return n
    }

    /// Bytes of weights one decoded token reads (all matrices plus one embedding row).
    public var bytesPerDecodedToken: Int {
        var n = head.byteCount + embedding.rowBytes
        for l in layers {
            n += [l.receptance, l.key, l.value, l.output, l.ffnKey, l.ffnValue, l.w1, l.w2, l.a1, l.a2, l.g1, l.g2]
                .reduce(0) { $0 + $1.byteCount }
            n += (l.v1?.byteCount ?? 0) + (l.v2?.byteCount ?? 0)
        }
        return n
    }

    /// Builds a model from tensors named as in BlinkDL's state dict, checking every shape.
    public init(blinkDLTensors t: [String: RawTensor], path: String, format: ModelFileFormat,
                vocabulary: [Data]? = nil) throws {
        self.path = path
        self.format = format
        self.embeddedVocabulary = vocabulary
        let b = TensorBinder(tensors: t, file: path)

        let emb = try b.raw("emb.weight")
        guard emb.shape.count == 2 else { throw RWKVError.shapeMismatch(file: path, name: "emb.weight", expected: [-1, -1], found: emb.shape) }
        let (vocab, C) = (emb.shape[0], emb.shape[1])
        let rk = try b.raw("blocks.0.att.r_k")
        let (H, N): (Int, Int) = rk.shape.count == 2 ? (rk.shape[0], rk.shape[1]) : (1, rk.elementCount)
        guard H * N == C, N > 0, C > 0, vocab > 0 else {
            throw RWKVError.malformed(file: path, reason: "blocks.0.att.r_k shape \(rk.shape) does not split n_embd \(C) into heads")
        }
        var nLayer = 0
        for name in t.keys where name.hasPrefix("blocks.") {
            let parts = name.split(separator: ".")
            if parts.count > 1, let i = Int(parts[1]) { nLayer = max(nLayer, i + 1) }
        }
        guard nLayer > 0, nLayer < 4096 else { throw RWKVError.malformed(file: path, reason: "no layers (blocks.N.*) found") }
        let ffn = try b.raw("blocks.0.ffn.key.weight").shape.first ?? 0
        func rank(_ n: String, layer: Int = 0) throws -> Int { (try b.raw("blocks.\(layer).att.\(n)").shape.last) ?? 0 }
        let loraV = nLayer > 1 ? try rank("v1", layer: 1) : 0
        config = ModelConfig(nLayer: nLayer, nEmbd: C, nHead: H, headSize: N, vocabSize: vocab, ffnSize: ffn,
                             loraW: try rank("w1"), loraA: try rank("a1"), loraV: loraV, loraG: try rank("g1"))

        embedding = try b.matrix("emb.weight", rows: vocab, cols: C)
        ln0Weight = try b.vector("blocks.0.ln0.weight", C)
        ln0Bias = try b.vector("blocks.0.ln0.bias", C)
        lnOutWeight = try b.vector("ln_out.weight", C)
        lnOutBias = try b.vector("ln_out.bias", C)
        head = try b.matrix("head.weight", rows: vocab, cols: C)

        let cfg = config
        layers = try (0..<nLayer).map { i in
            let p = "blocks.\(i)."
            let a = p + "att."
            return LayerWeights(
                ln1Weight: try b.vector(p + "ln1.weight", C), ln1Bias: try b.vector(p + "ln1.bias", C),
                ln2Weight: try b.vector(p + "ln2.weight", C), ln2Bias: try b.vector(p + "ln2.bias", C),
                xR: try b.vector(a + "x_r", C), xW: try b.vector(a + "x_w", C), xK: try b.vector(a + "x_k", C),
                xV: try b.vector(a + "x_v", C), xA: try b.vector(a + "x_a", C), xG: try b.vector(a + "x_g", C),
                w0: try b.vector(a + "w0", C), a0: try b.vector(a + "a0", C),
                w1: try b.loraIn(a + "w1", C, cfg.loraW), w2: try b.loraOut(a + "w2", cfg.loraW, C),
                a1: try b.loraIn(a + "a1", C, cfg.loraA), a2: try b.loraOut(a + "a2", cfg.loraA, C),
                g1: try b.loraIn(a + "g1", C, cfg.loraG), g2: try b.loraOut(a + "g2", cfg.loraG, C),
                v0: i == 0 ? nil : try b.vector(a + "v0", C),
                v1: i == 0 ? nil : try b.loraIn(a + "v1", C, cfg.loraV),
                v2: i == 0 ? nil : try b.loraOut(a + "v2", cfg.loraV, C),
                kK: try b.vector(a + "k_k", C), kA: try b.vector(a + "k_a", C), rK: try b.vector(a + "r_k", C),
                receptance: try b.matrix(a + "receptance.weight", rows: C, cols: C),
                key: try b.matrix(a + "key.weight", rows: C, cols: C),
                value: try b.matrix(a + "value.weight", rows: C, cols: C),
                output: try b.matrix(a + "output.weight", rows: C, cols: C),
                lnXWeight: try b.vector(a + "ln_x.weight", C), lnXBias: try b.vector(a + "ln_x.bias", C),
                ffnXK: try b.vector(p + "ffn.x_k", C),
                ffnKey: try b.matrix(p + "ffn.key.weight", rows: cfg.ffnSize, cols: C),
                ffnValue: try b.matrix(p + "ffn.value.weight", rows: C, cols: cfg.ffnSize))
        }
    }
}

/// Looks tensors up by name and checks their shapes against the model's dimensions.
private struct TensorBinder {
    let tensors: [String: RawTensor]
    let file: String

    func raw(_ name: String) throws -> RawTensor {
        guard let t = tensors[name] else { throw RWKVError.missingTensor(file: file, name: name) }
        return t
    }

    /// A vector of n elements, whatever singleton dimensions surround it ([1,1,C], [H,N], [C]).
    func vector(_ name: String, _ n: Int) throws -> [Float] {
        let t = try raw(name)
        guard t.elementCount == n else { throw RWKVError.shapeMismatch(file: file, name: name, expected: [n], found: t.shape) }
        return t.floats()
    }

    func matrix(_ name: String, rows: Int, cols: Int) throws -> Matrix {
        let t = try raw(name)
        guard t.shape == [rows, cols] else { throw RWKVError.shapeMismatch(file: file, name: name, expected: [rows, cols], found: t.shape) }
        if t.isTransposedView { return Matrix(rows: rows, cols: cols, floats: t.floats()) }
        return Matrix(rows: rows, cols: cols, dtype: t.dtype, data: t.data)
    }

    /// BlinkDL's first LoRA factor is [C][r] applied as x·W; stored transposed as [r][C].
    func loraIn(_ name: String, _ c: Int, _ r: Int) throws -> Matrix {
        try transposed(name, rows: c, cols: r)
    }

    /// The second factor is [r][C] applied as h·W; stored transposed as [C][r].
    func loraOut(_ name: String, _ r: Int, _ c: Int) throws -> Matrix {
        try transposed(name, rows: r, cols: c)
    }

    private func transposed(_ name: String, rows: Int, cols: Int) throws -> Matrix {
        let t = try raw(name)
        guard t.shape == [rows, cols] else { throw RWKVError.shapeMismatch(file: file, name: name, expected: [rows, cols], found: t.shape) }
        // A transposed view already holds [cols][rows] row-major: used in place, in its stored type.
        if t.isTransposedView { return Matrix(rows: cols, cols: rows, dtype: t.dtype, data: t.data) }
        let f = t.floats()
        var out = [Float](repeating: 0, count: rows * cols)
        for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = f[r * cols + c] } }
        return Matrix(rows: cols, cols: rows, floats: out)
    }
}
