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
        for (_, _, m) in matrices([.matrix]) { count[m.dtype, default: 0] += m.rows * m.cols }
        return count.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key.rawValue < $1.key.rawValue }
            .map(\.key.rawValue).joined(separator: "+")
    }

    public var parameterCount: Int {
        let c = config
        // Every matrix, then the vectors: ln0 and ln_out, and per block 16 of C and r_k.
        return matrices().reduce(0) { $0 + $1.matrix.rows * $1.matrix.cols } + 4 * c.nEmbd
            + c.nLayer * (16 * c.nEmbd + c.nHead * c.headSize)
    }

    /// Bytes of weights one decoded token reads (all matrices plus one embedding row).
    public var bytesPerDecodedToken: Int {
        matrices().filter { $0.spec.scope == .layer }.reduce(head.byteCount + embedding.rowBytes) { $0 + $1.matrix.byteCount }
    }

    /// Builds a model from tensors named as in BlinkDL's state dict, checking every shape.
    public init(blinkDLTensors t: [String: RawTensor], path: String, format: ModelFileFormat,
                vocabulary: [Data]? = nil) throws {
        self.path = path
        self.format = format
        self.embeddedVocabulary = vocabulary
        let b = TensorBinder(tensors: t, file: path)

        let embName = TensorSpec.embedding.blinkDL
        let emb = try b.raw(embName)
        guard emb.shape.count == 2 else { throw RWKVError.shapeMismatch(file: path, name: embName, expected: [-1, -1], found: emb.shape) }
        let (vocab, C) = (emb.shape[0], emb.shape[1])
        let rkName = TensorSpec.rK.blinkDLName(layer: 0)
        let rk = try b.raw(rkName)
        let (H, N): (Int, Int) = rk.shape.count == 2 ? (rk.shape[0], rk.shape[1]) : (1, rk.elementCount)
        guard H * N == C, N > 0, C > 0, vocab > 0 else {
            throw RWKVError.malformed(file: path, reason: "\(rkName) shape \(rk.shape) does not split n_embd \(C) into heads")
        }
        var nLayer = 0
        for name in t.keys where name.hasPrefix("blocks.") {
            let parts = name.split(separator: ".")
            if parts.count > 1, let i = Int(parts[1]) { nLayer = max(nLayer, i + 1) }
        }
        guard nLayer > 0, nLayer < 4096 else { throw RWKVError.malformed(file: path, reason: "no layers (blocks.N.*) found") }
        let ffn = try b.raw(TensorSpec.ffnKey.blinkDLName(layer: 0)).shape.first ?? 0
        func rank(_ s: TensorSpec, layer: Int = 0) throws -> Int { (try b.raw(s.blinkDLName(layer: layer)).shape.last) ?? 0 }
        let loraV = nLayer > 1 ? try rank(.v1, layer: 1) : 0
        config = ModelConfig(nLayer: nLayer, nEmbd: C, nHead: H, headSize: N, vocabSize: vocab, ffnSize: ffn,
                             loraW: try rank(.w1), loraA: try rank(.a1), loraV: loraV, loraG: try rank(.g1))

        let cfg = config
        embedding = try b.matrix(.embedding, 0, cfg)
        ln0Weight = try b.vector(.ln0Weight, 0, cfg)
        ln0Bias = try b.vector(.ln0Bias, 0, cfg)
        lnOutWeight = try b.vector(.lnOutWeight, 0, cfg)
        lnOutBias = try b.vector(.lnOutBias, 0, cfg)
        head = try b.matrix(.head, 0, cfg)

        layers = try (0..<nLayer).map { i in
            func v(_ s: TensorSpec) throws -> [Float] { try b.vector(s, i, cfg) }
            func m(_ s: TensorSpec) throws -> Matrix { try b.matrix(s, i, cfg) }
            func lora(_ s: TensorSpec) throws -> Matrix { try b.lora(s, i, cfg) }
            let hasV = i >= TensorSpec.v0.firstLayer
            return LayerWeights(
                ln1Weight: try v(.ln1Weight), ln1Bias: try v(.ln1Bias), ln2Weight: try v(.ln2Weight), ln2Bias: try v(.ln2Bias),
                xR: try v(.xR), xW: try v(.xW), xK: try v(.xK), xV: try v(.xV), xA: try v(.xA), xG: try v(.xG),
                w0: try v(.w0), a0: try v(.a0),
                w1: try lora(.w1), w2: try lora(.w2), a1: try lora(.a1), a2: try lora(.a2), g1: try lora(.g1), g2: try lora(.g2),
                v0: hasV ? try v(.v0) : nil, v1: hasV ? try lora(.v1) : nil, v2: hasV ? try lora(.v2) : nil,
                kK: try v(.kK), kA: try v(.kA), rK: try v(.rK),
                receptance: try m(.receptance), key: try m(.key), value: try m(.value), output: try m(.output),
                lnXWeight: try v(.lnXWeight), lnXBias: try v(.lnXBias),
                ffnXK: try v(.ffnXK), ffnKey: try m(.ffnKey), ffnValue: try m(.ffnValue))
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

    /// A vector of its BlinkDL shape's element count, whatever singleton dimensions surround it ([1,1,C], [H,N], [C]).
    func vector(_ s: TensorSpec, _ layer: Int, _ c: ModelConfig) throws -> [Float] {
        let name = s.blinkDLName(layer: layer), n = s.dims(c).reduce(1, *)
        let t = try raw(name)
        guard t.elementCount == n else { throw RWKVError.shapeMismatch(file: file, name: name, expected: [n], found: t.shape) }
        return t.floats()
    }

    /// A big matrix of its BlinkDL shape, kept in its file type.
    func matrix(_ s: TensorSpec, _ layer: Int, _ c: ModelConfig) throws -> Matrix {
        let name = s.blinkDLName(layer: layer), d = s.dims(c), (rows, cols) = (d[0], d[1])
        let t = try raw(name)
        guard t.shape == [rows, cols] else { throw RWKVError.shapeMismatch(file: file, name: name, expected: [rows, cols], found: t.shape) }
        if t.isTransposedView { return Matrix(rows: rows, cols: cols, floats: t.floats()) }
        return Matrix(rows: rows, cols: cols, dtype: t.dtype, data: t.data)
    }

    /// A LoRA factor, held transposed so every product is W·x: BlinkDL's first factor [C][r] (applied
    /// as x·W) as [r][C], the second [r][C] (applied as h·W) as [C][r].
    func lora(_ s: TensorSpec, _ layer: Int, _ c: ModelConfig) throws -> Matrix {
        let name = s.blinkDLName(layer: layer), d = s.dims(c), (rows, cols) = (d[0], d[1])
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
