import Foundation

/// Picks the next token from logits: greedy at temperature 0, otherwise nucleus (top-p) sampling.
public struct Sampler: Sendable {
    public var temperature: Float
    public var topP: Float
    private var rng: SplitMix64

    public init(temperature: Float = 0, topP: Float = 1, seed: UInt64 = 42) {
        self.temperature = temperature
        self.topP = topP
        rng = SplitMix64(seed: seed)
    }

    public mutating func sample(_ logits: [Float]) -> Int {
        guard temperature > 0 else { return logits.indices.max { logits[$0] < logits[$1] } ?? 0 }
        let probs = softmax(logits, temperature: temperature)
        let order = probs.indices.sorted { probs[$0] > probs[$1] }
        var kept: [Int] = []
        var mass = 0.0
        for i in order {
            kept.append(i)
            mass += probs[i]
            if mass >= Double(topP) { break }
        }
        var u = Double(rng.nextFloat()) * mass
        for i in kept {
            u -= probs[i]
            if u <= 0 { return i }
        }
        return kept.last ?? 0
    }
}
