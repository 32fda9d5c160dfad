import Foundation

/// Runs RWKV-7 forward passes. Every backend (CPU, Vulkan) implements this; callers never care which.
public protocol Engine: AnyObject, Sendable {
    var model: RWKVModel { get }
    var backendName: String { get }

    /// Feeds each sequence's tokens starting from its state (B independent sequences at once) and
    /// leaves the states after the last token. Returns, per sequence, the logits after its last
    /// token, or after every token when `allLogits` (then [T × vocab] flattened).
    func forward(_ batch: [[Int]], states: inout [State], allLogits: Bool) throws -> [[Float]]

    /// `forward`, also keeping what enters layer `layer` for every token, so that the same sequences
    /// can be run again from there (`forward(resuming:)`) on states that differ only in that layer
    /// and above. A backend that cannot resume keeps only the tokens.
    func forward(_ batch: [[Int]], states: inout [State], allLogits: Bool,
                 keepingInputsOf layer: Int) throws -> (logits: [[Float]], inputs: LayerInputs)

    /// The sequences of `inputs` run again from their kept layer, on `states` whose lower layers are
    /// the ones the inputs were taken on (those layers of `states` are then left as they are), or
    /// from the tokens when nothing was kept.
    func forward(resuming inputs: LayerInputs, states: inout [State], allLogits: Bool) throws -> [[Float]]
}

/// What enters one layer for every token of a batch: the residual stream and layer 0's values (which
/// later layers mix towards). A state edit confined to this layer and above leaves all of it unchanged,
/// so a reading repeated after such an edit need not run the layers below (`Engine.forward(resuming:)`).
public struct LayerInputs: Sendable {
    public let tokens: [[Int]]
    /// The layer they enter; nil when only the tokens were kept.
    public let layer: Int?
    /// [T][C] each, T the batch's tokens in order; `vFirst` is empty for layer 0.
    let x: [Float]
    let vFirst: [Float]

    init(tokens: [[Int]], layer: Int?, x: [Float] = [], vFirst: [Float] = []) {
        self.tokens = tokens; self.layer = layer; self.x = x; self.vFirst = vFirst
    }

    /// The inputs of the first `count` sequences only (their rows come first).
    func prefix(_ count: Int) -> LayerInputs {
        let kept = Array(tokens.prefix(count))
        guard layer != nil, count < tokens.count else { return LayerInputs(tokens: kept, layer: layer, x: x, vFirst: vFirst) }
        let width = x.count / max(1, tokens.reduce(0) { $0 + $1.count })
        let values = kept.reduce(0) { $0 + $1.count } * width
        return LayerInputs(tokens: kept, layer: layer, x: Array(x.prefix(values)), vFirst: Array(vFirst.prefix(values)))
    }
}

extension Engine {
    public var config: ModelConfig { model.config }

    public func forward(_ batch: [[Int]], states: inout [State], allLogits: Bool,
                        keepingInputsOf layer: Int) throws -> (logits: [[Float]], inputs: LayerInputs) {
        (try forward(batch, states: &states, allLogits: allLogits), LayerInputs(tokens: batch, layer: nil))
    }

    public func forward(resuming inputs: LayerInputs, states: inout [State], allLogits: Bool) throws -> [[Float]] {
        try forward(inputs.tokens, states: &states, allLogits: allLogits)
    }

    public func newState() -> State { State(config: model.config) }

    /// One sequence, processed as a whole prompt.
    public func forward(_ tokens: [Int], state: inout State) throws -> [Float] {
        var states = [state]
        let out = try forward([tokens], states: &states, allLogits: false)
        state = states[0]
        return out[0]
    }

    /// One token: the recurrent step used while decoding.
    public func step(_ token: Int, state: inout State) throws -> [Float] {
        try forward([token], state: &state)
    }

    /// The decoding loop: samples a token from `logits`, hands it to `accept`, steps the state past
    /// it, and repeats up to `maxTokens` times or until `accept` returns false (that token is then
    /// not fed). Returns how many tokens were fed.
    @discardableResult
    public func decode(from logits: [Float], state: inout State, maxTokens: Int, sampler: inout Sampler,
                       accept: (Int) -> Bool) throws -> Int {
        var logits = logits
        var fed = 0
        while fed < maxTokens {
            let next = sampler.sample(logits)
            guard accept(next) else { break }
            logits = try step(next, state: &state)
            fed += 1
        }
        return fed
    }

    /// Checks a batch before a forward pass: one state per sequence, no empty sequence, ids in the
    /// vocabulary, states of this model. Every backend calls it.
    public func validate(_ batch: [[Int]], states: [State]) throws {
        guard batch.count == states.count else {
            throw RWKVError.invalidArgument("forward: \(batch.count) sequences but \(states.count) states")
        }
        let c = model.config
        for (i, seq) in batch.enumerated() {
            guard !seq.isEmpty else { throw RWKVError.invalidArgument("forward: sequence \(i) has no tokens") }
            if let bad = seq.first(where: { $0 < 0 || $0 >= c.vocabSize }) {
                throw RWKVError.invalidArgument("token id \(bad) is outside the model's vocabulary 0..<\(c.vocabSize)")
            }
            let s = states[i]
            guard s.nLayer == c.nLayer, s.nEmbd == c.nEmbd, s.nHead == c.nHead, s.headSize == c.headSize else {
                throw RWKVError.invalidArgument("forward: state \(i) is for a model with \(s.nLayer) layers × \(s.nEmbd) channels, not this one (\(c.nLayer) × \(c.nEmbd))")
            }
        }
    }
}
