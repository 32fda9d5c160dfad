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
    public static func tensors(_ s: Shape, dtype: DType, seed: UInt64 = 1) -> [String: RawTensor] {
        precondition(!dtype.isQuantized, "SyntheticModel builds f32, f16 or bf16 weights")
        var rng = SplitMix64(seed: seed)
        let C = s.nEmbd, F = 4 * s.nEmbd, H = C / s.headSize
        var t: [String: RawTensor] = [:]
        func uniform(_ n: Int, _ lo: Float, _ hi: Float) -> [Float] { (0..<n).map { _ in lo + (hi - lo) * rng.nextFloat() } }
        func vec(_ name: String, _ shape: [Int], _ lo: Float, _ hi: Float) {
            t[name] = RawTensor(shape: shape, floats: uniform(shape.reduce(1, *), lo, hi))
        }
        func mat(_ name: String, _ rows: Int, _ cols: Int, big: Bool) {
            let scale = 1 / Float(cols).squareRoot()
            let values = uniform(rows * cols, -scale, scale)
            if !big || dtype == .f32 { t[name] = RawTensor(shape: [rows, cols], floats: values); return }
            let bits = dtype == .f16 ? Half.f16Bits(values) : Half.bf16Bits(values)
            let region = bits.withUnsafeBytes { ByteRegion.owning(bytes: $0) }
            t[name] = RawTensor(shape: [rows, cols], dtype: dtype, data: region)
        }
        mat("emb.weight", s.vocab, C, big: true)
        mat("head.weight", s.vocab, C, big: true)
        vec("blocks.0.ln0.weight", [C], 0.9, 1.1); vec("blocks.0.ln0.bias", [C], -0.1, 0.1)
        vec("ln_out.weight", [C], 0.9, 1.1); vec("ln_out.bias", [C], -0.1, 0.1)
        for l in 0..<s.nLayer {
            let p = "blocks.\(l).", a = p + "att."
            for n in ["ln1", "ln2"] { vec(p + n + ".weight", [C], 0.9, 1.1); vec(p + n + ".bias", [C], -0.1, 0.1) }
            for n in ["x_r", "x_w", "x_k", "x_v", "x_a", "x_g"] { vec(a + n, [1, 1, C], 0, 1) }
            vec(a + "w0", [1, 1, C], -2, 1); vec(a + "a0", [1, 1, C], -1, 1)
            mat(a + "w1", C, s.loraW, big: false); mat(a + "w2", s.loraW, C, big: false)
            mat(a + "a1", C, s.loraA, big: false); mat(a + "a2", s.loraA, C, big: false)
            mat(a + "g1", C, s.loraG, big: false); mat(a + "g2", s.loraG, C, big: false)
            if l > 0 {
                vec(a + "v0", [1, 1, C], -1, 1)
                mat(a + "v1", C, s.loraV, big: false); mat(a + "v2", s.loraV, C, big: false)
            }
            vec(a + "k_k", [1, 1, C], 0.5, 1.5); vec(a + "k_a", [1, 1, C], 0.5, 1.5); vec(a + "r_k", [H, s.headSize], -0.5, 0.5)
            for n in ["receptance", "key", "value", "output"] { mat(a + n + ".weight", C, C, big: true) }
            vec(a + "ln_x.weight", [C], 0.9, 1.1); vec(a + "ln_x.bias", [C], -0.1, 0.1)
            vec(p + "ffn.x_k", [1, 1, C], 0, 1)
            mat(p + "ffn.key.weight", F, C, big: true); mat(p + "ffn.value.weight", C, F, big: true)
        }
        return t
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
