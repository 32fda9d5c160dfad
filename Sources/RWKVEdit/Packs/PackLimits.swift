import Foundation

/// Ceilings on every size and count a pack declares. A pack travels beside a model and is untrusted
/// input: its manifest could claim 2³¹ heads whose `heads` list alone would take 34 GB, or a blob that
/// decompresses to a gigabyte. Each declared number is checked against the model config it names and
/// against these ceilings when the pack is opened, before anything sized by it is allocated or looped
/// over. The ceilings sit far above every released RWKV-7 model (at most 61 layers, 64 heads of 64,
/// 65,536 tokens), so they refuse only damaged or hostile files.
public enum PackLimits {
    public static let layers = 1024
    public static let headsPerLayer = 1024
    public static let headSize = 1024
    public static let embd = 1 << 16
    public static let vocabSize = 1 << 22
    public static let ffnSize = 1 << 20
    public static let samplesPerTensor = 256
    /// Values in one pack (the shipped cities pack has 54).
    public static let values = 1 << 20
    /// Bytes of one value's name or surface text.
    public static let nameBytes = 1024
    /// Bytes of the manifest JSON (a 1.5B model's is 13 KB).
    public static let manifestBytes = 8 << 20
    /// Decompressed bytes of one blob: the largest is a staged row, heads × head_size² × 4 bytes
    /// (16 MB for the upper half of a 7B model).
    public static let blobBytes = 1 << 28
}

extension ModelConfig {
    /// Which field of a config read from a pack lies outside `PackLimits` or contradicts another; nil when none.
    func outOfBounds() -> String? {
        let fields: [(String, Int, ClosedRange<Int>)] = [
            ("n_layer", nLayer, 1...PackLimits.layers), ("n_head", nHead, 1...PackLimits.headsPerLayer),
            ("head_size", headSize, 1...PackLimits.headSize), ("n_embd", nEmbd, 1...PackLimits.embd),
            ("vocab_size", vocabSize, 1...PackLimits.vocabSize), ("ffn_size", ffnSize, 1...PackLimits.ffnSize),
            ("lora_w", loraW, 0...PackLimits.embd), ("lora_a", loraA, 0...PackLimits.embd),
            ("lora_v", loraV, 0...PackLimits.embd), ("lora_g", loraG, 0...PackLimits.embd),
        ]
        for (name, value, range) in fields where !range.contains(value) {
            return "config.\(name) is \(value), outside \(range.lowerBound)…\(range.upperBound)"
        }
        // Both are at most 1024 here, so the product cannot overflow.
        guard nHead * headSize == nEmbd else { return "config.n_head × head_size = \(nHead * headSize), but n_embd is \(nEmbd)" }
        return nil
    }
}
