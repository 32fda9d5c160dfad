import Foundation

/// Which model a pack was compiled for, in a form that every file format, weight dtype and loader gives
/// alike, read without a pass over the weights (schemas/README.md "Model identity"):
/// - the config (layers, width, heads, head size, vocabulary size, FFN size, LoRA ranks);
/// - the SHA-256 of the vocabulary (`vocabularyDigest`);
/// - a weight signature: `samplesPerTensor` values of each signature tensor (`signatureTensors`), read at
///   positions a fixed-seed generator draws in the tensor's logical [rows][cols] index space, widened
///   to f32 from whatever type the tensor is stored in.
///
/// Two identities are the same model when the config and vocabulary are equal and the signatures agree
/// within the rounding of bf16, f16 or q8_0 (`difference(from:)`).
public struct ModelIdentity: Codable, Equatable, Sendable {
    /// The recipe's version: a change to the tensors, positions, digest or tolerances bumps it.
    public static let currentVersion = 2
    public static let defaultSamplesPerTensor = 16

    public var version: Int
    public var config: ModelConfig
    /// SHA-256 (hex) of the vocabulary; see `vocabularyDigest`.
    public var vocabSha256: String
    public var samplesPerTensor: Int
    /// The sampled weights, tensor-major in `tensorNames(config)` order (stored as base64 of f32 LE).
    public var samples: [Float]

    enum CodingKeys: String, CodingKey { case version, config, vocabSha256, samplesPerTensor, samples }

    public init(version: Int = currentVersion, config: ModelConfig, vocabSha256: String, samplesPerTensor: Int, samples: [Float]) {
        self.version = version; self.config = config; self.vocabSha256 = vocabSha256
        self.samplesPerTensor = samplesPerTensor; self.samples = samples
    }

    /// The identity of a loaded model with its vocabulary: reads `samplesPerTensor` values of each
    /// signature tensor and hashes the vocabulary; no pass over the weights.
    public init(model m: RWKVModel, tokenizer: WorldTokenizer, samplesPerTensor: Int = defaultSamplesPerTensor) {
        self.init(config: m.config, vocabSha256: Self.vocabularyDigest(tokenizer.tokens), samplesPerTensor: samplesPerTensor,
                  samples: Self.signatureTensors(m).flatMap { Self.sample($0.matrix, name: $0.name, count: samplesPerTensor) })
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decode(Int.self, forKey: .version)
        config = try c.decode(ModelConfig.self, forKey: .config)
        vocabSha256 = try c.decode(String.self, forKey: .vocabSha256)
        samplesPerTensor = try c.decode(Int.self, forKey: .samplesPerTensor)
        let text = try c.decode(String.self, forKey: .samples)
        guard let data = Data(base64Encoded: text), data.count % 4 == 0 else {
            throw DecodingError.dataCorruptedError(forKey: .samples, in: c, debugDescription: "samples is not base64 of f32 values")
        }
        samples = data.withUnsafeBytes { raw in
            (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(version, forKey: .version)
        try c.encode(config, forKey: .config)
        try c.encode(vocabSha256, forKey: .vocabSha256)
        try c.encode(samplesPerTensor, forKey: .samplesPerTensor)
        let bytes = samples.flatMap { f -> [UInt8] in withUnsafeBytes(of: f.bitPattern.littleEndian) { Array($0) } }
        try c.encode(Data(bytes).base64EncodedString(), forKey: .samples)
    }

    // MARK: The recipe

    /// The tensors sampled, in `TensorSpec` order: the big matrices (role `.matrix`), i.e. `emb.weight`
    /// and `head.weight` [vocab][C], then per layer the attention projections receptance, key, value,
    /// output [C][C] and the FFN key [F][C] and value [C][F] (BlinkDL names). Their orientation is the
    /// same in every format (.pth, .safetensors with BlinkDL or fla keys, GGUF) and no loader transforms
    /// them. Left out on purpose: the LoRA factors (fla and GGUF store them transposed relative to
    /// BlinkDL, and a loader may keep either) and ln0 (a loader may fold it into the embedding).
    public static func tensorNames(_ c: ModelConfig) -> [String] {
        TensorSpec.all(nLayer: c.nLayer).filter { $0.spec.role == .matrix }.map { $0.spec.blinkDLName(layer: $0.layer) }
    }

    static func signatureTensors(_ m: RWKVModel) -> [(name: String, matrix: Matrix)] {
        m.matrices([.matrix]).map { (name: $0.spec.blinkDLName(layer: $0.layer), matrix: $0.matrix) }
    }

    /// The flat positions (row · cols + col) sampled in a rows × cols tensor: SplitMix64 seeded with a
    /// constant mixed with the XXH64 of the tensor's name, so they depend only on the name and shape.
    public static func positions(name: String, rows: Int, cols: Int, count: Int) -> [Int] {
        let n = UInt64(max(rows * cols, 1))
        var rng = SplitMix64(seed: 0x5257_4B56_4944_0002 ^ XXH64.hash(Array(name.utf8)))
        return (0..<count).map { _ in Int(rng.next() % n) }
    }

    /// `count` values of a matrix at `positions`, widened to f32 (NaN where the matrix is too short).
    static func sample(_ m: Matrix, name: String, count: Int) -> [Float] {
        positions(name: name, rows: m.rows, cols: m.cols, count: count).map { i in
            m.cols > 0 ? m.element(row: i / m.cols, col: i % m.cols) : .nan
        }
    }

    /// SHA-256 over a domain string, the token count and each token's length (u32 LE) and bytes.
    /// Trailing empty tokens are dropped first: a World vocabulary file ends at its last token, while a
    /// GGUF pads its list with empty entries up to the embedding's row count.
    public static func vocabularyDigest(_ tokens: [[UInt8]]) -> String {
        var n = tokens.count
        while n > 0, tokens[n - 1].isEmpty { n -= 1 }
        var bytes = Array("rwkv-edit vocabulary v2\n".utf8)
        bytes.reserveCapacity(bytes.count + 4 + tokens[..<n].reduce(0) { $0 + 4 + $1.count })
        func u32(_ v: Int) { withUnsafeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian) { bytes += $0 } }
        u32(n)
        for t in tokens[..<n] { u32(t.count); bytes += t }
        return SHA256.hexDigest(bytes)
    }

    // MARK: Matching

    /// A sample is *close* when |pack − model| ≤ closeRMS · rms + relative · |pack| + absolute, where rms
    /// is the root mean square of that tensor's samples in the pack; *far* when the difference exceeds
    /// farRMS · rms + relative · |pack| + absolute, or the model's value is not finite. The same model
    /// matches when no sample is far and at most `allowedNotClose` of them are not close.
    ///
    /// Same weights in another file or dtype: bf16 rounds by ≤ 2⁻⁹·|x|, f16 by ≤ 2⁻¹¹·|x| (3·10⁻⁸ below
    /// its normal range) — both inside `relative` and `absolute` alone; q8_0 by ≤ max|block of 32|/254.
    /// Measured (PackTests, max |Δ| over the samples in units of the sample RMS): bf16 0.0037, f16
    /// 0.00045, q8_0 0.0075 on random uniform weights; q8_0 0.016 on the golden model (Gaussian); q8_0
    /// 0.034 on the trained demo model, whose FFN value matrices have kurtosis up to 15 and weights up
    /// to 21 RMS (over all of its 13M signature-tensor weights: 0.4% beyond 0.02 RMS, 0.004% beyond
    /// 0.05, none beyond 0.1 — the 16-sample RMS is a noisy estimate, hence the margin). Another
    /// model: independent weights differ by about 1.4 RMS, so ~97% of samples are not close and most
    /// are far. A fine-tune that moves every weight by less than ~5% of its tensor's RMS is accepted
    /// as the same model: below q8_0's rounding, sampled values cannot tell it apart.
    public static let closeRMS: Float = 0.05
    public static let farRMS: Float = 0.25
    public static let relative: Float = 1.0 / 256
    public static let absolute: Float = 1e-6
    /// At most this fraction of the samples may be not close (q8_0 blocks holding outliers), and none far.
    public static let allowedNotClose = 0.01

    /// The config lies within `PackLimits`, every sampled value in the pack is finite and the counts fit
    /// the config; nil, or what is wrong.
    public func damage() -> String? {
        guard version == Self.currentVersion else { return "model identity version \(version), this build reads \(Self.currentVersion)" }
        guard vocabSha256.count == 64, vocabSha256.allSatisfy(\.isHexDigit) else { return "the vocabulary digest is not 64 hex digits" }
        // Bounded first: the tensor list below has 2 + 6·n_layer names.
        if let why = config.outOfBounds() { return why }
        guard (1...PackLimits.samplesPerTensor).contains(samplesPerTensor) else {
            return "samples_per_tensor is \(samplesPerTensor), outside 1…\(PackLimits.samplesPerTensor)"
        }
        let tensors = Self.tensorNames(config).count
        guard samplesPerTensor > 0, samples.count == tensors * samplesPerTensor else {
            return "\(samples.count) sampled weights, expected \(tensors) tensors × \(samplesPerTensor)"
        }
        if let i = samples.firstIndex(where: { !$0.isFinite }) {
            return "sampled weight \(i) (\(Self.tensorNames(config)[i / samplesPerTensor])) is \(samples[i]), not a finite number"
        }
        return nil
    }

    /// nil when `model` is the same model as `self` (the pack's identity), else which part differs:
    /// "dims: …", "vocabulary: …" or "weights: N of M sampled weights differ …".
    public func difference(from model: ModelIdentity) -> String? {
        if let d = damage() { return "the pack's model identity is damaged: \(d)" }
        guard model.version == version else { return "identity versions differ (\(version) vs \(model.version))" }
        guard config == model.config else { return "dims: pack \(Self.describe(config)), this model \(Self.describe(model.config))" }
        guard vocabSha256 == model.vocabSha256 else {
            return "vocabulary: its SHA-256 is \(vocabSha256.prefix(12))… in the pack, \(model.vocabSha256.prefix(12))… here"
        }
        guard samplesPerTensor == model.samplesPerTensor, samples.count == model.samples.count else {
            return "weights: \(samples.count) sampled weights in the pack, \(model.samples.count) here"
        }
        let names = Self.tensorNames(config)
        let k = samplesPerTensor
        var notClose = 0, far = 0
        var tensorsOff: [String] = []
        var first: (name: String, pack: Float, model: Float)?
        for t in 0..<names.count {
            let a = samples[(t * k)..<((t + 1) * k)], b = model.samples[(t * k)..<((t + 1) * k)]
            let rms = (a.reduce(0) { $0 + $1 * $1 } / Float(k)).squareRoot()
            var off = false
            for (x, y) in zip(a, b) {
                let d = abs(x - y), slack = Self.relative * abs(x) + Self.absolute
                let isFar = !y.isFinite || d > Self.farRMS * rms + slack
                guard isFar || d > Self.closeRMS * rms + slack else { continue }
                notClose += 1
                if isFar { far += 1 }
                off = true
                if first == nil { first = (names[t], x, y) }
            }
            if off { tensorsOff.append(names[t]) }
        }
        guard far > 0 || Double(notClose) > Self.allowedNotClose * Double(samples.count) else { return nil }
        var why = "weights: \(notClose) of \(samples.count) sampled weights differ by more than \(Int(Self.closeRMS * 100))% of their tensor's RMS (\(far) by more than \(Int(Self.farRMS * 100))%), in \(tensorsOff.count) of \(names.count) tensors"
        if let f = first { why += "; first: \(f.name) is \(f.pack) in the pack, \(f.model) here" }
        return why
    }

    static func describe(_ c: ModelConfig) -> String {
        "\(c.nLayer) layers, n_embd \(c.nEmbd), \(c.nHead)×\(c.headSize) heads, vocab \(c.vocabSize), FFN \(c.ffnSize), LoRA w/a/v/g \(c.loraW)/\(c.loraA)/\(c.loraV)/\(c.loraG)"
    }
}
