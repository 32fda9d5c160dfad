import Foundation

/// Runs RWKV-7 forward passes. Every backend (CPU, Vulkan) implements this; callers never care which.
public protocol Engine: AnyObject, Sendable {
    var model: RWKVModel { get }
    var backendName: String { get }

    /// Feeds each sequence's tokens starting from its state (B independent sequences at once) and
    /// leaves the states after the last token. Returns, per sequence, the logits after its last
    /// token, or after every token when `allLogits` (then [T × vocab] flattened).
    func forward(_ batch: [[Int]], states: inout [State], allLogits: Bool) throws -> [[Float]]

    /// One sequence from `state`, processed as a whole prompt (or one token while decoding): the logits
    /// after its last token. A throw leaves the state as it was.
    func forward(_ tokens: [Int], state: inout State) throws -> [Float]

    /// `forward`, also keeping what enters layer `layer` for every token, so that the same sequences
    /// can be run again from there (`forward(resuming:)`) on states that differ only in that layer
    /// and above. A backend that cannot resume keeps only the tokens.
    func forward(_ batch: [[Int]], states: inout [State], allLogits: Bool,
                 keepingInputsOf layer: Int) throws -> (logits: [[Float]], inputs: LayerInputs)

    /// The sequences of `inputs` run again from their kept layer, on `states` whose lower layers are
    /// the ones the inputs were taken on (those layers of `states` are then left as they are), or
    /// from the tokens when nothing was kept.
    func forward(resuming inputs: LayerInputs, states: inout [State], allLogits: Bool) throws -> [[Float]]

    /// Reads `batch` from one state: every sequence that continues no other starts from `base`.
    /// Returns each sequence's logits (as `forward`: none for those that read none), the states after
    /// the distinct sequences `kept` lists, in that order (the others' are not built), and, when
    /// `layer` is given, what enters that layer for `read(resuming:from:)`.
    func read(_ batch: BranchingBatch, from base: State, keepingStatesOf kept: [Int], allLogits: Bool,
              keepingInputsOf layer: Int?) throws -> BranchReading

    /// The sequences of `inputs` read again from their kept layer on `base`, a state that differs from
    /// the one they were kept on only in that layer and above (or from the tokens when nothing was
    /// kept); the kept states' layers below it are the base's.
    func read(resuming inputs: LayerInputs, from base: State, keepingStatesOf kept: [Int], allLogits: Bool) throws -> BranchReading
}

/// What enters one layer for every token of a batch: the residual stream and layer 0's values (which
/// later layers mix towards). A state edit confined to this layer and above leaves all of it unchanged,
/// so a reading repeated after such an edit need not run the layers below (`Engine.forward(resuming:)`,
/// `Engine.read(resuming:from:)`).
public struct LayerInputs: Sendable {
    public let batch: BranchingBatch
    /// The layer they enter; nil when only the tokens were kept.
    public let layer: Int?
    /// [T][C] each, T the batch's tokens in order; `vFirst` is empty for layer 0.
    let x: [Float]
    let vFirst: [Float]

    init(batch: BranchingBatch, layer: Int?, x: [Float] = [], vFirst: [Float] = []) {
        self.batch = batch; self.layer = layer; self.x = x; self.vFirst = vFirst
    }

    public var tokens: [[Int]] { batch.tokens }

    /// The inputs of the first `count` sequences only (their rows come first; none of them continues
    /// a later one).
    func prefix(_ count: Int) -> LayerInputs {
        let kept = batch.prefix(count)
        guard layer != nil, count < tokens.count else { return LayerInputs(batch: kept, layer: layer, x: x, vFirst: vFirst) }
        let width = x.count / max(1, tokens.reduce(0) { $0 + $1.count })
        let values = kept.tokens.reduce(0) { $0 + $1.count } * width
        return LayerInputs(batch: kept, layer: layer, x: Array(x.prefix(values)), vFirst: Array(vFirst.prefix(values)))
    }
}

/// What `Engine.read` returns.
public struct BranchReading: Sendable {
    public let logits: [[Float]]
    /// The states of the sequences the read was asked to keep, in that order.
    public let states: [State]
    public let inputs: LayerInputs
}

/// Sequences read as one batch from one state (`Engine.read`) in which a sequence may continue an
/// earlier one: sequence i with `parents[i] = p` (p < i) starts from the state p reaches after its
/// own tokens, not from the read's base. A beginning several sequences share ("What does", "Bob lives
/// in") is then fed once (`sharingPrefixes`). Sequences whose logits nobody reads (`readsLogits` false: a shared beginning,
/// a probe wanted for its state) get none, which spares the top layer's channel mix and the output
/// head at their rows.
public struct BranchingBatch: Sendable, Equatable {
    public let tokens: [[Int]]
    public let parents: [Int?]
    public let readsLogits: [Bool]

    public init(tokens: [[Int]], parents: [Int?], readsLogits: [Bool]? = nil) throws {
        guard parents.count == tokens.count, (readsLogits?.count ?? tokens.count) == tokens.count else {
            throw RWKVError.invalidArgument("branching batch: \(tokens.count) sequences but \(parents.count) parents and \(readsLogits?.count ?? tokens.count) logits flags")
        }
        for (i, p) in parents.enumerated() {
            if let p, !(0..<i).contains(p) {
                throw RWKVError.invalidArgument("branching batch: sequence \(i) continues \(p); a sequence can only continue an earlier one")
            }
        }
        self.tokens = tokens; self.parents = parents
        self.readsLogits = readsLogits ?? Array(repeating: true, count: tokens.count)
    }

    /// Independent sequences, each from its own state.
    public init(_ tokens: [[Int]]) {
        self.init(tokens: tokens, parents: Array(repeating: nil, count: tokens.count),
                  readsLogits: Array(repeating: true, count: tokens.count), checked: ())
    }

    /// The first `count` sequences, when none of them continues a later one.
    func prefix(_ count: Int) -> BranchingBatch {
        BranchingBatch(tokens: Array(tokens.prefix(count)), parents: Array(parents.prefix(count)),
                       readsLogits: Array(readsLogits.prefix(count)), checked: ())
    }

    private init(tokens: [[Int]], parents: [Int?], readsLogits: [Bool], checked: ()) {
        self.tokens = tokens; self.parents = parents; self.readsLogits = readsLogits
    }

    /// This batch, then `other`'s sequences (continuing their own parents).
    public func followed(by other: BranchingBatch) -> BranchingBatch {
        BranchingBatch(tokens: tokens + other.tokens, parents: parents + other.parents.map { $0.map { $0 + tokens.count } },
                       readsLogits: readsLogits + other.readsLogits, checked: ())
    }

    /// The same sequences, none of whose logits are read (fed for their states).
    public func forStatesOnly() -> BranchingBatch {
        BranchingBatch(tokens: tokens, parents: parents, readsLogits: Array(repeating: false, count: tokens.count), checked: ())
    }

    /// `nodes` (sequences of a batch, repeats allowed) as `read(keepingStatesOf:)` takes them, each
    /// once: the distinct ones in order of first appearance, and where each of `nodes` is among them.
    package static func keptOnce(_ nodes: [Int]) -> (kept: [Int], index: [Int]) {
        var kept: [Int] = [], position: [Int: Int] = [:]
        let index = nodes.map { n in
            if let j = position[n] { return j }
            position[n] = kept.count
            kept.append(n)
            return kept.count - 1
        }
        return (kept, index)
    }

    /// The sequences by generation: first those that continue no other, then those that continue
    /// them, and so on (a parent always in an earlier generation than its children).
    public var generations: [[Int]] {
        var depth = [Int](repeating: 0, count: tokens.count), byDepth: [[Int]] = []
        for i in tokens.indices {
            if let p = parents[i] { depth[i] = depth[p] + 1 }
            if depth[i] == byDepth.count { byDepth.append([]) }
            byDepth[depth[i]].append(i)
        }
        return byDepth
    }

    /// `sequences` (all continuing one state) as a batch that feeds a beginning shared by several of
    /// them once, when that saves at least `minimumSaving` tokens (a sequence of its own costs about
    /// as much as a token or two: its state, its WKV copy). `node[i]` is the batch's sequence that
    /// ends where `sequences[i]` does (equal sequences share one); only those read logits.
    public static func sharingPrefixes(_ sequences: [[Int]], minimumSaving: Int = 2) throws -> (batch: BranchingBatch, node: [Int]) {
        if let empty = sequences.firstIndex(where: \.isEmpty) {
            throw RWKVError.invalidArgument("branching batch: sequence \(empty) has no tokens")
        }
        var tokens: [[Int]] = [], parents: [Int?] = [], reads: [Bool] = []
        var node = [Int](repeating: 0, count: sequences.count)
        func add(_ from: Int, _ to: Int, of i: Int, after parent: Int?) -> Int {
            tokens.append(Array(sequences[i][from..<to])); parents.append(parent)
            reads.append(to == sequences[i].count)
            return tokens.count - 1
        }
        // `members` share their first `depth` tokens, fed by `parent`, and are all longer than that.
        func place(_ members: [Int], depth: Int, parent: Int?) {
            // Grouped by their next token, in order of first appearance.
            var groups: [[Int]] = [], groupOf: [Int: Int] = [:]
            for m in members {
                let t = sequences[m][depth]
                if let g = groupOf[t] { groups[g].append(m) } else { groupOf[t] = groups.count; groups.append([m]) }
            }
            for group in groups {
                let first = sequences[group[0]]
                var end = depth + 1
                while end < first.count, group.allSatisfy({ sequences[$0].count > end && sequences[$0][end] == first[end] }) { end += 1 }
                let ending = group.filter { sequences[$0].count == end }, longer = group.filter { sequences[$0].count > end }
                if !ending.isEmpty {
                    // One of them is the shared beginning itself.
                    let shared = add(depth, end, of: ending[0], after: parent)
                    for m in ending { node[m] = shared }
                    if !longer.isEmpty { place(longer, depth: end, parent: shared) }
                } else if (group.count - 1) * (end - depth) >= minimumSaving {
                    place(group, depth: end, parent: add(depth, end, of: group[0], after: parent))
                } else {
                    for m in group { node[m] = add(depth, sequences[m].count, of: m, after: parent) }
                }
            }
        }
        place(Array(sequences.indices), depth: 0, parent: nil)
        return (BranchingBatch(tokens: tokens, parents: parents, readsLogits: reads, checked: ()), node)
    }
}

extension Engine {
    public var config: ModelConfig { model.config }

    public func forward(_ batch: [[Int]], states: inout [State], allLogits: Bool,
                        keepingInputsOf layer: Int) throws -> (logits: [[Float]], inputs: LayerInputs) {
        (try forward(batch, states: &states, allLogits: allLogits), LayerInputs(batch: BranchingBatch(batch), layer: nil))
    }

    public func forward(resuming inputs: LayerInputs, states: inout [State], allLogits: Bool) throws -> [[Float]] {
        try forward(inputs.tokens, states: &states, allLogits: allLogits)
    }

    /// Generation by generation through `forward`, each continuing sequence from a copy of its
    /// parent's state; keeps only the tokens. Sequences whose logits are not read get none, as on the
    /// CPU engine.
    public func read(_ batch: BranchingBatch, from base: State, keepingStatesOf kept: [Int], allLogits: Bool,
                     keepingInputsOf layer: Int?) throws -> BranchReading {
        var states = [State](repeating: base, count: batch.tokens.count)
        try validate(batch.tokens, states: states)
        guard kept.allSatisfy(states.indices.contains), Set(kept).count == kept.count else {
            throw RWKVError.invalidArgument("read: the states to keep must be distinct sequences of the batch")
        }
        var logits = [[Float]](repeating: [], count: batch.tokens.count)
        for members in batch.generations {
            var group = members.map { i in batch.parents[i].map { states[$0] } ?? base }
            let out = try forward(members.map { batch.tokens[$0] }, states: &group, allLogits: allLogits)
            for (j, i) in members.enumerated() { states[i] = group[j]; logits[i] = batch.readsLogits[i] ? out[j] : [] }
        }
        return BranchReading(logits: logits, states: kept.map { states[$0] }, inputs: LayerInputs(batch: batch, layer: nil))
    }

    public func read(resuming inputs: LayerInputs, from base: State, keepingStatesOf kept: [Int], allLogits: Bool) throws -> BranchReading {
        try read(inputs.batch, from: base, keepingStatesOf: kept, allLogits: allLogits, keepingInputsOf: nil)
    }

    public func newState() -> State { State(config: model.config) }

    /// One sequence as a batch of one: the batch holds a copy of the state (so a throw leaves `state`
    /// as it was), which the pass copies again before it writes (copy-on-write).
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
