import Foundation

/// Random-weight models with the shapes of released RWKV-7 models, for benchmarks and tests.
public enum SyntheticModel {
    public struct Shape: Sendable {
        public var nLayer, nEmbd, vocab, loraW, loraA, loraV, loraG: Int
        public var headSize = 64

        public init(nLayer: Int, nEmbd: Int, vocab: Int, loraW: Int, loraA: Int, loraV: Int, loraG: Int, headSize: Int = 64) {
            self.nLayer = nLayer; self.nEmbd = nEmbd; self.vocab = vocab
            self.loraW = loraW; self.loraA = loraA; self.loraV = loraV; self.loraG = loraG; self.headSize = headSize
        }

        /// The released sizes: "0.1b" (L12 D768), "0.4b" (L24 D1024), "1.5b" (L24 D2048), World vocab 65536.
        public static func named(_ name: String) -> Shape? {
            switch name.lowercased() {
            case "0.1b": return Shape(nLayer: 12, nEmbd: 768, vocab: 65536, loraW: 64, loraA: 64, loraV: 32, loraG: 128)
            case "0.4b": return Shape(nLayer: 24, nEmbd: 1024, vocab: 65536, loraW: 64, loraA: 64, loraV: 32, loraG: 160)
            case "1.5b": return Shape(nLayer: 24, nEmbd: 2048, vocab: 65536, loraW: 96, loraA: 96, loraV: 64, loraG: 256)
            default: return nil
            }
        }
    }

    /// The weight types random models are built in (no quantiser here: quantised models come from files).
    public static func dtype(named name: String) -> DType? {
        guard let d = DType(rawValue: name), !d.isQuantized else { return nil }
        return d
    }

    /// BlinkDL-named tensors with plausible magnitudes; big matrices in `dtype` (f32, f16 or bf16).
    public static func tensors(_ s: Shape, dtype: DType, seed: UInt64 = 1) throws -> [String: RawTensor] {
        guard !dtype.isQuantized else {
            throw RWKVError.invalidArgument("random weights are built in f32, f16 or bf16, not \(dtype.rawValue): quantised models come from files")
        }
        var rng = SplitMix64(seed: seed)
        let config = ModelConfig(nLayer: s.nLayer, nEmbd: s.nEmbd, nHead: s.nEmbd / s.headSize, headSize: s.headSize, vocabSize: s.vocab,
                                 ffnSize: 4 * s.nEmbd, loraW: s.loraW, loraA: s.loraA, loraV: s.loraV, loraG: s.loraG)
        var t: [String: RawTensor] = [:]
        func uniform(_ n: Int, _ lo: Float, _ hi: Float) -> [Float] { (0..<n).map { _ in lo + (hi - lo) * rng.nextFloat() } }
        // Drawn in table order, so a seed gives the same weights whatever reads them.
        for (spec, l) in TensorSpec.all(nLayer: s.nLayer) {
            let name = spec.blinkDLName(layer: l), shape = spec.dims(config)
            guard spec.role != .matrix && spec.role != .loraIn && spec.role != .loraOut else {
                let (rows, cols) = (shape[0], shape[1])
                let scale = 1 / Float(cols).squareRoot()
                let values = uniform(rows * cols, -scale, scale)
                // The big matrices in `dtype`; LoRA factors stay f32, as converters keep them.
                if spec.role != .matrix || dtype == .f32 { t[name] = RawTensor(shape: [rows, cols], floats: values); continue }
                let bits = dtype == .f16 ? Half.f16Bits(values) : Half.bf16Bits(values)
                let region = bits.withUnsafeBytes { ByteRegion.owning(bytes: $0) }
                t[name] = RawTensor(shape: [rows, cols], dtype: dtype, data: region)
                continue
            }
            let (lo, hi) = range(spec)
            t[name] = RawTensor(shape: shape, floats: uniform(shape.reduce(1, *), lo, hi))
        }
        return t
    }

    /// The range a vector's values are drawn from, near a trained model's.
    static func range(_ spec: TensorSpec) -> (Float, Float) {
        switch spec.role {
        case .norm: return spec.blinkDL.hasSuffix(".weight") ? (0.9, 1.1) : (-0.1, 0.1)
        case .heads: return (-0.5, 0.5)
        default:
            switch spec.blinkDL {
            case TensorSpec.w0.blinkDL: return (-2, 1)
            case TensorSpec.a0.blinkDL, TensorSpec.v0.blinkDL: return (-1, 1)
            case TensorSpec.kK.blinkDL, TensorSpec.kA.blinkDL: return (0.5, 1.5)
            default: return (0, 1)      // the token-shift mixes
            }
        }
    }

    public static func model(_ s: Shape, dtype: DType, seed: UInt64 = 1) throws -> RWKVModel {
        try RWKVModel(blinkDLTensors: tensors(s, dtype: dtype, seed: seed), path: "<synthetic>", format: .safetensors)
    }
}

/// A small, fast, seedable generator (SplitMix64); reproducible across platforms.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func nextFloat() -> Float { Float(next() >> 40) / Float(1 << 24) }
}
