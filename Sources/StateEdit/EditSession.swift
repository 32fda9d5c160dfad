import Foundation
import RWKV

/// How likely an answer is after a query, read on a branch of a state.
public struct AnswerScore: Sendable {
    /// P(answer | context, query): the product over the answer's tokens.
    public let probability: Double
    /// Whether the answer's first token is the most likely next token.
    public let isTop1: Bool
    /// The most likely next tokens after the query: (id, text, probability).
    public let top: [(id: Int, text: String, probability: Double)]
}

/// A live conversation with a model whose remembered facts can be edited: text flows in, the state
/// advances, edits change the state, and every edit can be undone exactly.
public final class EditSession {
    public let engine: any Engine
    public let tokenizer: WorldTokenizer
    public private(set) var state: State
    /// States before each edit, newest last, with a description of the edit.
    public private(set) var undoStack: [(description: String, state: State)] = []
    /// Whether the text so far ends in whitespace (or nothing has been fed), to join the next text.
    private var atBoundary = true

    public init(engine: any Engine, tokenizer: WorldTokenizer) {
        self.engine = engine
        self.tokenizer = tokenizer
        state = engine.newState()
    }

    // MARK: Conversation

    /// Tokens of `text` as it would continue the conversation: a separating space is added when
    /// neither side has whitespace at the join ("…in Paris." + "Bob lives…").
    public func continuationTokens(_ text: String) -> [Int] {
        tokenizer.encode(joined(text))
    }

    private func joined(_ text: String) -> String {
        guard !atBoundary, let first = text.unicodeScalars.first, !first.properties.isWhitespace else { return text }
        return " " + text
    }

    /// Feeds text into the live state.
    public func feed(_ text: String) throws {
        let tokens = continuationTokens(text)
        guard !tokens.isEmpty else { throw EditError.emptyText("the text to feed") }
        _ = try engine.forward(tokens, state: &state)
        if let last = text.unicodeScalars.last { atBoundary = last.properties.isWhitespace }
    }

    /// Generates up to `maxTokens` after `prompt` (greedy unless a sampler is given), stopping before
    /// `stop`. With `commit` the prompt and reply become part of the conversation; otherwise the
    /// live state is untouched.
    public func generate(after prompt: String, maxTokens: Int, stop: String? = "\n\n", commit: Bool,
                         sampler: Sampler = Sampler()) throws -> String {
        var s = state
        var sampler = sampler
        let tokens = continuationTokens(prompt)
        guard !tokens.isEmpty else { throw EditError.emptyText("the prompt") }
        var logits = try engine.forward(tokens, state: &s)
        var bytes: [UInt8] = []
        let stopBytes = stop.map { Array($0.utf8) } ?? []
        for _ in 0..<maxTokens {
            let next = sampler.sample(logits)
            if next == 0 { break }
            bytes += tokenizer.decodeBytes([next])
            if !stopBytes.isEmpty, let r = bytes.firstRange(of: stopBytes) {
                bytes.removeSubrange(r.lowerBound...)
                break
            }
            logits = try engine.step(next, state: &s)
        }
        let reply = String(decoding: bytes, as: UTF8.self)
        if commit {
            state = s
            atBoundary = (reply.unicodeScalars.last ?? " ").properties.isWhitespace
        }
        return reply
    }

    /// Tokens of a query continuing the conversation and of its answer; the answer gets a leading
    /// space when neither side has whitespace at the join (" Paris").
    public func queryAndAnswerTokens(query: String, answer: String) throws -> (query: [Int], answer: [Int]) {
        let q = continuationTokens(query)
        var answerText = answer
        if let last = query.unicodeScalars.last, !last.properties.isWhitespace,
           let first = answer.unicodeScalars.first, !first.properties.isWhitespace { answerText = " " + answer }
        let a = tokenizer.encode(answerText)
        guard !q.isEmpty else { throw EditError.emptyText("the query") }
        guard !a.isEmpty else { throw EditError.emptyText("the answer") }
        return (q, a)
    }

    /// P(answer | conversation + query), read on a branch of `from` (default: the live state).
    /// The answer gets a leading space when the query does not end in whitespace (" Paris").
    public func score(query: String, answer: String, from base: State? = nil, top k: Int = 5) throws -> AnswerScore {
        let (q, a) = try queryAndAnswerTokens(query: query, answer: answer)
        var states = [base ?? state]
        let logits = try engine.forward([q + a.dropLast()], states: &states, allLogits: true)[0]
        let V = engine.config.vocabSize
        var p = 1.0
        var firstProbs: [Double] = []
        for (i, tok) in a.enumerated() {
            let row = Array(logits[((q.count - 1 + i) * V)..<((q.count + i) * V)])
            let probs = softmaxDouble(row)
            if i == 0 { firstProbs = probs }
            p *= probs[tok]
        }
        let order = firstProbs.indices.sorted { firstProbs[$0] > firstProbs[$1] }
        let top = order.prefix(k).map { (id: $0, text: tokenizer.decode([$0]), probability: firstProbs[$0]) }
        return AnswerScore(probability: p, isTop1: order.first == a[0], top: top)
    }

    // MARK: Editing

    /// Changes the fact `old` states into the one `new` states ("Bob lives in Austin." → "Bob lives in Chicago.").
    @discardableResult
    public func edit(from old: String, to new: String, options: EditOptions = EditOptions(),
                     calibration: Calibration? = nil) throws -> AppliedEdit {
        let oldTokens = continuationTokens(old), newTokens = continuationTokens(new)
        guard !oldTokens.isEmpty else { throw EditError.emptyText("the old fact") }
        guard !newTokens.isEmpty else { throw EditError.emptyText("the new fact") }
        let editor = StateEditor(engine: engine)
        let cal = try calibration ?? (options.method.needsCalibration
            ? editor.calibrate(old: tokenizer.encode(old), new: tokenizer.encode(new), heads: options.targetHeads(engine.config))
            : nil)
        var edited = state
        let applied = try editor.edit(&edited, old: oldTokens, new: newTokens, options: options, calibration: cal)
        undoStack.append(("edit \"\(old)\" → \"\(new)\" (\(applied.method.rawValue))", state))
        state = edited
        return applied
    }

    /// Removes a property while keeping the entity: Δ = S(entity) − S(fact), ratio 0.55 by default.
    /// A bare name ("Alice") becomes the sentence "Alice.": the probe must end the way a fact does, or
    /// the two branches differ in more than the property (measured: P(old) 0.90 with "Alice", 0.00 with
    /// "Alice." on the demo model).
    @discardableResult
    public func forget(fact: String, entity: String,
                       options: EditOptions = EditOptions(ratio: DefaultRatios.seed.forget)) throws -> AppliedEdit {
        try edit(from: fact, to: Self.entitySentence(entity), options: options)
    }

    /// "Alice" → "Alice."; a text already ending in . ! or ? is kept.
    public static func entitySentence(_ entity: String) -> String {
        let t = entity.trimmingCharacters(in: .whitespaces)
        guard let last = t.last, !".!?".contains(last) else { return t }
        return t + "."
    }

    /// The neutral sentence erasure writes in place of a fact.
    public static let neutralSentence = "Someone is somewhere doing something."

    /// Erases an entity's fact by editing it towards a neutral sentence, ratio 0.55 by default.
    @discardableResult
    public func erase(fact: String,
                      options: EditOptions = EditOptions(ratio: DefaultRatios.seed.erase)) throws -> AppliedEdit {
        try edit(from: fact, to: Self.neutralSentence, options: options)
    }

    /// Restores the state from before the latest edit, bit for bit.
    @discardableResult
    public func undo() throws -> String {
        guard let last = undoStack.popLast() else { throw EditError.nothingToUndo }
        state = last.state
        return last.description
    }

    /// Replaces the live state (e.g. loaded from a file); the edit history is cleared.
    public func replaceState(_ s: State) throws {
        guard s.isCompatible(with: engine.newState()) else {
            throw EditError.incompatibleState("it has \(s.nLayer) layers × \(s.nHead) heads of \(s.headSize), the model \(engine.config.nLayer) × \(engine.config.nHead) of \(engine.config.headSize)")
        }
        state = s
        undoStack.removeAll()
        atBoundary = false
    }
}

func softmaxDouble(_ logits: [Float]) -> [Double] {
    let m = Double(logits.max() ?? 0)
    let e = logits.map { exp(Double($0) - m) }
    let s = e.reduce(0, +)
    return e.map { $0 / s }
}
