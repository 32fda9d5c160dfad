import Foundation

/// How much dropping the token shifts moves the model: the formats without shifts (`.pth` time_state,
/// web-rwkv) load a state with att_x_prev and ffn_x_prev at zero, so the first tokens read after it
/// see a different previous token. Measured on the next-token distribution after feeding `probe` to
/// the full state and to the same state with zeroed shifts.
public struct ShiftDropEffect: Sendable, Equatable {
    /// Tokens fed after the state before comparing.
    public var probe: [Int]
    /// KL(full ‖ shifts zeroed) of the next-token distributions, in nats.
    public var klDivergence: Double
    /// Largest change of any token's probability.
    public var maxAbsProbabilityChange: Double
    /// Whether the most likely next token is the same.
    public var top1Kept: Bool

    public static func measure(engine: any Engine, state: State, probe: [Int]) throws -> ShiftDropEffect {
        guard !probe.isEmpty else { throw RWKVError.invalidArgument("the shift-drop probe needs at least one token") }
        var full = state
        var dropped = state
        for i in dropped.attXPrev.indices { dropped.attXPrev[i] = 0; dropped.ffnXPrev[i] = 0 }
        let p = softmax(try engine.forward(probe, state: &full))
        let q = softmax(try engine.forward(probe, state: &dropped))
        var kl = 0.0, maxDelta = 0.0
        for (a, b) in zip(p, q) {
            if a > 0 { kl += a * log(a / max(b, .leastNonzeroMagnitude)) }
            maxDelta = max(maxDelta, abs(a - b))
        }
        return ShiftDropEffect(probe: probe, klDivergence: max(kl, 0), maxAbsProbabilityChange: maxDelta,
                               top1Kept: topK(p, 1) == topK(q, 1))
    }
}
