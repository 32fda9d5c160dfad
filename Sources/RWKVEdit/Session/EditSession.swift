import Foundation

/// How likely an answer is after a query, read on a branch of a state.
public struct AnswerScore: Sendable {
    /// P(answer | context, query): the product over the answer's tokens.
    public let probability: Double
    /// Whether the answer's first token is the most likely next token (what verdicts read).
    public let isTop1: Bool
    /// Whether every token of the answer is the most likely next token in turn, i.e. greedy decoding
    /// from the query yields the whole answer (what the eval suites' metrics read: answers sharing a
    /// first token, " Madrid"/" Moscow" in a byte vocabulary, are not both counted).
    public let isGreedy: Bool
    /// The most likely next tokens after the query: (id, text, probability).
    public let top: [(id: Int, text: String, probability: Double)]
}

/// A live conversation with a model whose remembered facts can be edited: text flows in, the state
/// advances, edits change the state, and every edit can be undone exactly.
///
/// A session has one owner: call it from one thread or task at a time (it is not `Sendable`; wrap it
/// in an actor to share it). Sessions over one model are independent and may run on different threads.
public final class EditSession {
    public let engine: any Engine
    public let tokenizer: WorldTokenizer
    /// Default ratios of edits, forgets and erasures (the model card's, or the seed's).
    public var ratios: DefaultRatios
    public private(set) var state: State
    /// The text the state has read since it was empty: fed text and committed replies. Empty after
    /// `replaceState` (a loaded state's text is unknown). Controls of verified edits are found here.
    public private(set) var transcript = ""
    /// Whether `transcript` is all the state has read (false once a state was loaded), so that an
    /// entity missing from it is missing from the state.
    public private(set) var transcriptIsComplete = true
    /// States before each edit, newest last, with the edit's record.
    public private(set) var undoStack: [(record: EditRecord, state: State)] = []
    /// Edits made before the state was resumed from a file: part of its history, not undoable here.
    private var resumedEdits: [EditRecord] = []
    /// Tokens the state has read since it was empty (fed text, committed prompts and replies).
    public private(set) var tokensFed = 0
    /// Every edit the state holds, oldest first (a resumed file's, then this session's).
    public var editLog: [EditRecord] { resumedEdits + undoStack.map(\.record) }
    /// Whether the text so far ends in whitespace (or nothing has been fed), to join the next text.
    private var atBoundary = true

    public init(engine: any Engine, tokenizer: WorldTokenizer, ratios: DefaultRatios = .seed) {
        self.engine = engine
        self.tokenizer = tokenizer
        self.ratios = ratios
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
        tokensFed += tokens.count
        transcript += joined(text)
        if let last = text.unicodeScalars.last { atBoundary = last.properties.isWhitespace }
    }

    /// Feeds token ids into the live state (a prompt given as ids, say); returns the logits after the last.
    @discardableResult
    public func feed(tokens: [Int]) throws -> [Float] {
        guard !tokens.isEmpty else { throw EditError.emptyText("the tokens to feed") }
        let logits = try engine.forward(tokens, state: &state)
        record(tokens)
        return logits
    }

    /// Samples tokens after `logits` and feeds each into the live state, as `Engine.decode` does
    /// (`accept` sees each token first and may stop before it is fed). Returns how many were fed.
    @discardableResult
    public func decode(from logits: [Float], maxTokens: Int, sampler: inout Sampler, accept: (Int) -> Bool) throws -> Int {
        var fed: [Int] = []
        defer { record(fed) }
        return try engine.decode(from: logits, state: &state, maxTokens: maxTokens, sampler: &sampler) { token in
            guard accept(token) else { return false }
            fed.append(token)
            return true
        }
    }

    /// Counts tokens fed as ids and adds their text to the transcript.
    private func record(_ tokens: [Int]) {
        guard !tokens.isEmpty else { return }
        tokensFed += tokens.count
        let text = tokenizer.decode(tokens)
        transcript += text
        if let last = text.unicodeScalars.last { atBoundary = last.properties.isWhitespace }
    }

    /// Generates up to `maxTokens` after `prompt` (greedy unless a sampler is given), stopping before
    /// `stop`, or with `endAtSentence` after the first token that ends a sentence (. ! ?). With
    /// `commit` the prompt and reply become part of the conversation; otherwise the live state is untouched.
    public func generate(after prompt: String, maxTokens: Int, stop: String? = "\n\n", endAtSentence: Bool = false,
                         commit: Bool, sampler: Sampler = Sampler()) throws -> String {
        var s = state
        var sampler = sampler
        let tokens = continuationTokens(prompt)
        guard !tokens.isEmpty else { throw EditError.emptyText("the prompt") }
        let logits = try engine.forward(tokens, state: &s)
        var bytes: [UInt8] = []
        let stopBytes = stop.map { Array($0.utf8) } ?? []
        var sentenceEnded = false
        let generated = try engine.decode(from: logits, state: &s, maxTokens: maxTokens, sampler: &sampler) { next in
            if next == 0 || sentenceEnded { return false }
            bytes += tokenizer.decodeBytes([next])
            if !stopBytes.isEmpty, let r = bytes.firstRange(of: stopBytes) {
                bytes.removeSubrange(r.lowerBound...)
                return false
            }
            if endAtSentence, let last = bytes.last(where: { $0 != 0x20 }), [UInt8(ascii: "."), UInt8(ascii: "!"), UInt8(ascii: "?")].contains(last) {
                sentenceEnded = true
            }
            return true
        }
        let reply = String(decoding: bytes, as: UTF8.self)
        if commit {
            state = s
            tokensFed += tokens.count + generated
            transcript += joined(prompt) + reply
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
        try score([(query, answer)], from: base, top: k)[0]
    }

    /// `score` for several (query, answer) pairs on branches of one state (see `Reading`). A verified
    /// edit reads its query (old and new answers) and every control this way.
    public func score(_ pairs: [(query: String, answer: String)], from base: State? = nil, top k: Int = 5) throws -> [AnswerScore] {
        var reading = try Reading(pairs.map { try queryAndAnswerTokens(query: $0.query, answer: $0.answer) })
        return try run(&reading, from: base ?? state, keepingInputsOf: nil, top: k).scores
    }

    /// The token sequences that read (query, answer) pairs from one state, as two batches: each
    /// distinct query once (its last logits give every answer's first token; a beginning several
    /// queries share, "What does", fed once), then the answers longer than one token continued from
    /// their query's state.
    struct Reading {
        let pairs: [(query: [Int], answer: [Int])]
        let queries: [[Int]]
        /// The queries as a batch, and the sequence of it that ends each query.
        let queryBatch: BranchingBatch
        let queryNode: [Int]
        /// The query of each pair, and the pairs whose answers need the second batch.
        let queryOf: [Int]
        let long: [Int]
        /// What entered one layer in each batch, once a run kept it: a run on a state edited only in
        /// that layer and above then starts there.
        var kept: (queries: LayerInputs, answers: LayerInputs?)?

        init(_ pairs: [(query: [Int], answer: [Int])]) throws {
            var queries: [[Int]] = [], queryOf: [Int] = []
            for t in pairs {
                if let i = queries.firstIndex(of: t.query) { queryOf.append(i) } else { queryOf.append(queries.count); queries.append(t.query) }
            }
            self.pairs = pairs; self.queries = queries; self.queryOf = queryOf
            (queryBatch, queryNode) = try BranchingBatch.sharingPrefixes(queries)
            long = pairs.indices.filter { pairs[$0].answer.count > 1 }
        }

        /// The lowest layer a run can start from, when it kept any.
        var keptLayer: Int? { kept?.queries.layer }
    }

    /// Scores `reading`'s pairs on branches of `base`: from its kept layer inputs when it has them
    /// (`base` must then differ from the state they were kept on only in that layer and above), else
    /// from the tokens, keeping the inputs of layer `keep` when given. `riders` are more sequences
    /// continued from `base` in the first batch (an edit's probes, which then cost no pass of their
    /// own); their states are returned.
    func run(_ reading: inout Reading, from base: State, keepingInputsOf keep: Int?, riders: [[Int]] = [],
             top k: Int = 5) throws -> (scores: [AnswerScore], riders: [State]) {
        let r = reading
        guard riders.isEmpty || r.kept == nil else { throw EditError.invalid("a resumed reading cannot carry other sequences") }
        guard !r.pairs.isEmpty || !riders.isEmpty else { return ([], []) }
        // The queries and riders: one read of `base`, resumed from its kept inputs or from the tokens
        // (keeping layer `keep`'s inputs), keeping the states the riders and the long answers need.
        let (riderBatch, riderNode) = try BranchingBatch.sharingPrefixes(riders)
        let queryCount = r.queryBatch.tokens.count
        let (keptNodes, slots) = BranchingBatch.keptOnce(riderNode.map { queryCount + $0 } + r.long.map { r.queryNode[r.queryOf[$0]] })
        let riderSlots = slots.prefix(riderNode.count), answerSlots = slots.dropFirst(riderNode.count)
        let first = try r.kept.map { try engine.read(resuming: $0.queries, from: base, keepingStatesOf: keptNodes, allLogits: false) }
            ?? engine.read(r.queryBatch.followed(by: riderBatch.forStatesOnly()), from: base, keepingStatesOf: keptNodes,
                           allLogits: false, keepingInputsOf: keep)
        // The answers longer than one token, each continuing its query's state.
        var answerStates = answerSlots.map { first.states[$0] }
        let answers = r.long.map { Array(r.pairs[$0].answer.dropLast()) }
        let rest: (logits: [[Float]], inputs: LayerInputs?)? = r.long.isEmpty ? nil
            : try r.kept?.answers.map { (try engine.forward(resuming: $0, states: &answerStates, allLogits: true), $0) }
            ?? keep.map { try engine.forward(answers, states: &answerStates, allLogits: true, keepingInputsOf: $0) }
            ?? (try engine.forward(answers, states: &answerStates, allLogits: true), nil)
        if r.kept == nil, keep != nil { reading.kept = (first.inputs.prefix(queryCount), rest?.inputs) }
        let firstProbs = r.queryNode.map { softmax(first.logits[$0]) }
        let restLogits = rest?.logits ?? []
        let V = engine.config.vocabSize
        let scores = r.pairs.indices.map { n in
            let t = r.pairs[n], probs = firstProbs[r.queryOf[n]]
            let order = topK(probs, k)
            var p = probs[t.answer[0]]
            var greedy = order.first == t.answer[0]
            if let i = r.long.firstIndex(of: n) {
                for j in 1..<t.answer.count {
                    let next = softmax(Array(restLogits[i][((j - 1) * V)..<(j * V)]))
                    p *= next[t.answer[j]]
                    if greedy, topK(next, 1).first != t.answer[j] { greedy = false }
                }
            }
            let top = order.map { (id: $0, text: tokenizer.decode([$0]), probability: probs[$0]) }
            return AnswerScore(probability: p, isTop1: order.first == t.answer[0], isGreedy: greedy, top: top)
        }
        return (scores, riderSlots.map { first.states[$0] })
    }

    // MARK: Editing

    /// Changes the fact `old` states into the one `new` states ("Bob lives in Austin." → "Bob lives in
    /// Chicago.") with exactly these options, unverified: the experiments' form. `verifiedEdit` measures.
    @discardableResult
    public func edit(from old: String, to new: String, options: EditOptions = EditOptions(),
                     calibration: Calibration? = nil) throws -> AppliedEdit {
        var edited = state
        let applied = try planEdit(from: old, to: new, options: options, calibration: calibration).apply(to: &edited, options: options)
        undoStack.append((Self.record(old, new, applied, verdict: nil), state))
        state = edited
        return applied
    }

    /// The edit of the live state up to its strength. The probes continue the conversation (unless
    /// `probes` brings them, run in the reading before the edit); the calibration (when the method needs
    /// one and none is given) runs the bare sentences from empty states.
    private func planEdit(from old: String, to new: String, options: EditOptions,
                          calibration: Calibration?, probes: Probes? = nil,
                          protecting: KeyProtection = KeyProtection()) throws -> EditPlan {
        let facts = try factTokens(old, new)
        let editor = StateEditor(engine: engine)
        let cal = try calibration ?? (options.method.needsCalibration
            ? editor.calibrate(old: tokenizer.encode(old), new: tokenizer.encode(new), heads: options.targetHeads(engine.config))
            : nil)
        let probed = probes.flatMap { $0.old == facts.old && $0.new == facts.new ? $0.states : nil }
        return try editor.plan(state, old: facts.old, new: facts.new, options: options, calibration: cal, probed: probed, protecting: protecting)
    }

    /// The old and new facts as they would continue the conversation.
    private func factTokens(_ old: String, _ new: String) throws -> (old: [Int], new: [Int]) {
        let oldTokens = continuationTokens(old), newTokens = continuationTokens(new)
        guard !oldTokens.isEmpty else { throw EditError.emptyText("the old fact") }
        guard !newTokens.isEmpty else { throw EditError.emptyText("the new fact") }
        return (oldTokens, newTokens)
    }

    /// Edits `old` → `new` and measures the result with `check` (DESIGN.md §4): the query's answers
    /// and the controls are read before, the edit applied, read again, and judged. Under `.search` a
    /// trial that is not `applied` is undone exactly and the next ratio tried. When no trial reaches
    /// `applied` the state is restored unless `keepUnverified`; the outcome says which happened.
    /// The edit is projected off `protecting`'s key directions (none by default).
    public func verifiedEdit(from old: String, to new: String, check: EditCheck, options: EditOptions,
                             calibration: Calibration? = nil, strength: StrengthPolicy = .search,
                             keepUnverified: Bool = false, protecting: KeyProtection = KeyProtection()) throws -> EditOutcome {
        try verifiedEdit(from: old, to: new, check: check, options: options, calibration: calibration, strength: strength,
                         keepUnverified: keepUnverified, baseline: nil, protecting: protecting)
    }

    /// The readings before an edit, the time they took, and the sequences that took them with the
    /// inputs of the lowest edited layer kept: each trial then runs only the layers the edit changed.
    struct Baseline {
        let target: TargetReading
        let controls: [AnswerReading]
        let seconds: Double
        var reading: Reading
        let probes: Probes?
    }

    /// The live state continued with an edit's old and new facts.
    struct Probes {
        let old: [Int], new: [Int]
        let states: (old: State, new: State)
    }

    /// The baseline of `check` on the live state, keeping the inputs of layer `lowestEdited`; with
    /// `probing` facts, the edit's probes run in the same batch.
    func baseline(_ check: EditCheck, lowestEdited: Int?, probing facts: (old: String, new: String)?) throws -> Baseline {
        let clock = DispatchTime.now().uptimeNanoseconds
        var reading = try self.reading(check)
        let probeTokens = try facts.map { try factTokens($0.old, $0.new) }
        let (target, controls, riders) = try read(check, &reading, from: state, keepingInputsOf: lowestEdited,
                                                  riders: probeTokens.map { [$0.old, $0.new] } ?? [])
        let probes = probeTokens.map { Probes(old: $0.old, new: $0.new, states: (riders[0], riders[1])) }
        return Baseline(target: target, controls: controls, seconds: Double(DispatchTime.now().uptimeNanoseconds - clock) / 1e9,
                        reading: reading, probes: probes)
    }

    /// `verifiedEdit`, starting from the readings before the edit when the caller has them, with the
    /// edit's keys projected off `protecting`'s directions.
    func verifiedEdit(from old: String, to new: String, check: EditCheck, options: EditOptions, calibration: Calibration?,
                      strength: StrengthPolicy, keepUnverified: Bool,
                      baseline given: Baseline?, protecting: KeyProtection = KeyProtection()) throws -> EditOutcome {
        var baseline = try given ?? baseline(check, lowestEdited: options.targetHeads(engine.config).map(\.layer).min(),
                                             probing: options.method.probesTheLiveState ? (old, new) : nil)
        let plan = try planEdit(from: old, to: new, options: options, calibration: calibration, probes: baseline.probes,
                                protecting: protecting)
        let lowestEdited = plan.matrices.map(\.0.layer).min()
        if let kept = baseline.reading.keptLayer, kept > lowestEdited ?? kept { baseline.reading.kept = nil }
        let (before, controlsBefore) = (baseline.target, baseline.controls)
        var trialSeconds: [Double] = []
        let searchable = strength.searches(options)
        var trials: [EditTrial] = []
        var chosen: (state: State, controls: [AnswerReading])?
        func attempt(_ ratio: Float) throws -> EditVerdict {
            var opts = options
            opts.ratio = ratio
            let t0 = DispatchTime.now().uptimeNanoseconds
            var edited = state
            let applied = try plan.apply(to: &edited, options: opts)
            var reading = baseline.reading
            let (after, controlsAfter, _) = try read(check, &reading, from: edited, keepingInputsOf: nil)
            trialSeconds.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            let lostControl = zip(controlsBefore, controlsAfter).contains { $0.isTop1 && !$1.isTop1 }
            let verdict: EditVerdict = lostControl ? .collateral
                : (after.new?.isTop1 ?? true) && after.old.probability < EditVerdict.oldProbabilityLimit ? .applied : .weak
            trials.append(EditTrial(applied: applied, verdict: verdict, target: after))
            chosen = (edited, controlsAfter)
            return verdict
        }
        if searchable {
            // Up the ladder until the edit is not weak. A stronger edit only adds collateral damage once
            // a control is lost, so a collateral rung is bisected against the weak strength below it.
            // When the first rung already costs a control nothing weaker has been tried: it is halved
            // until a strength is not collateral (`descents` times at most), and that is the lower end.
            // When none is applied, the weakest collateral strength is tried last, so it is the one
            // reported (and, with keepUnverified, kept).
            var weak: Float?, strongest = options.ratio
            for step in StrengthPolicy.ladder(for: check) {
                strongest = step * options.ratio
                guard try attempt(strongest) == .weak else { break }
                weak = strongest
            }
            if trials.last?.verdict == .collateral {
                var collateral = strongest
                for _ in 0..<(weak == nil ? StrengthPolicy.descents : 0) {
                    let lower = collateral / 2
                    let verdict = try attempt(lower)
                    if verdict == .collateral { collateral = lower; continue }
                    if verdict == .weak { weak = lower }
                    break
                }
                if var low = weak, trials.last?.verdict != .applied {
                    for _ in 0..<StrengthPolicy.bisections where trials.last?.verdict != .applied {
                        let mid = (low + collateral) / 2
                        if try attempt(mid) == .weak { low = mid } else { collateral = mid }
                    }
                }
                if trials.last?.verdict == .weak { _ = try attempt(collateral) }
            }
        } else {
            _ = try attempt(options.ratio)
        }
        guard let last = trials.last, let chosen else { throw EditError.invalid("no edit strength to try") }
        let kept = last.verdict == .applied || keepUnverified
        if kept {
            undoStack.append((Self.record(old, new, last.applied, verdict: last.verdict), state))
            state = chosen.state
        }
        let controls = check.controls.indices.map { ControlReading(control: check.controls[$0], before: controlsBefore[$0], after: chosen.controls[$0]) }
        return EditOutcome(verdict: last.verdict, kept: kept, check: check, before: before, after: last.target,
                           controls: controls, trials: trials,
                           timing: EditTiming(beforeSeconds: baseline.seconds, planPassSeconds: plan.probeSeconds,
                                              svdSeconds: plan.svdSeconds, trialSeconds: trialSeconds))
    }

    /// The sequences that read `check`: the query with the old (and new) answer, then each control.
    func reading(_ check: EditCheck) throws -> Reading {
        let pairs = [(check.query, check.old)] + (check.new.map { [(check.query, $0)] } ?? []) + check.controls.map { ($0.query, $0.answer) }
        return try Reading(pairs.map { try queryAndAnswerTokens(query: $0.0, answer: $0.1) })
    }

    /// The target and every control of `check` (whose `reading` this is), read on branches of `base`.
    func read(_ check: EditCheck, _ reading: inout Reading, from base: State, keepingInputsOf keep: Int?,
              riders: [[Int]] = []) throws -> (target: TargetReading, controls: [AnswerReading], riders: [State]) {
        let (scores, riderStates) = try run(&reading, from: base, keepingInputsOf: keep, riders: riders)
        let old = scores[0], new = check.new == nil ? nil : scores[1]
        let target = TargetReading(old: AnswerReading(probability: old.probability, isTop1: old.isTop1),
                                   new: new.map { AnswerReading(probability: $0.probability, isTop1: $0.isTop1) },
                                   top: old.top.map { TokenProbability(id: $0.id, text: $0.text, probability: $0.probability) })
        return (target, scores[(check.new == nil ? 1 : 2)...].map { AnswerReading(probability: $0.probability, isTop1: $0.isTop1) },
                riderStates)
    }

    /// Removes a property while keeping the entity: Δ = S(entity) − S(fact), at `ratios.forget` by default.
    /// A bare name ("Alice") becomes the sentence "Alice.": the probe must end the way a fact does, or
    /// the two branches differ in more than the property (measured: P(old) 0.90 with "Alice", 0.00 with
    /// "Alice." on the demo model).
    @discardableResult
    public func forget(fact: String, entity: String,
                       options: EditOptions? = nil) throws -> AppliedEdit {
        try edit(from: fact, to: Self.entitySentence(entity), options: options ?? EditOptions(ratio: ratios.forget))
    }

    /// "Alice" → "Alice."; a text already ending in . ! or ? is kept.
    public static func entitySentence(_ entity: String) -> String {
        let t = entity.trimmingCharacters(in: .whitespaces)
        guard let last = t.last, !".!?".contains(last) else { return t }
        return t + "."
    }

    /// The neutral sentence erasure writes in place of a fact.
    public static let neutralSentence = "Someone is somewhere doing something."

    /// `forget`, verified: `check` (with no new value) must see P(old) fall below the limit while the
    /// controls keep their answers; the strength is searched from `ratios.forget` unless fixed.
    public func verifiedForget(fact: String, entity: String, check: EditCheck, options: EditOptions? = nil,
                               strength: StrengthPolicy = .search, keepUnverified: Bool = false,
                               protecting: KeyProtection = KeyProtection()) throws -> EditOutcome {
        try verifiedEdit(from: fact, to: Self.entitySentence(entity), check: check, options: options ?? EditOptions(ratio: ratios.forget),
                         strength: strength, keepUnverified: keepUnverified, protecting: protecting)
    }

    /// `erase`, verified as `verifiedForget` is, from `ratios.erase`.
    public func verifiedErase(fact: String, check: EditCheck, options: EditOptions? = nil,
                              strength: StrengthPolicy = .search, keepUnverified: Bool = false,
                              protecting: KeyProtection = KeyProtection()) throws -> EditOutcome {
        try verifiedEdit(from: fact, to: Self.neutralSentence, check: check, options: options ?? EditOptions(ratio: ratios.erase),
                         strength: strength, keepUnverified: keepUnverified, protecting: protecting)
    }

    /// Erases an entity's fact by editing it towards a neutral sentence, at `ratios.erase` by default.
    @discardableResult
    public func erase(fact: String,
                      options: EditOptions? = nil) throws -> AppliedEdit {
        try edit(from: fact, to: Self.neutralSentence, options: options ?? EditOptions(ratio: ratios.erase))
    }

    /// Restores the state from before the latest edit, bit for bit.
    @discardableResult
    public func undo() throws -> String {
        guard let last = undoStack.popLast() else { throw EditError.nothingToUndo }
        state = last.state
        return last.record.description
    }

    private static func record(_ old: String, _ new: String, _ e: AppliedEdit, verdict: EditVerdict?) -> EditRecord {
        EditRecord(description: "edit \"\(old)\" → \"\(new)\" (\(e.methodDescription))", method: e.method.rawValue,
                   alpha: e.alpha, ratio: e.ratio, verdict: verdict)
    }

    // MARK: Saving and resuming

    /// The live state with its provenance (this model's identity, tokens fed, edit log), to `write(to:)`.
    public func saved() -> SavedState {
        SavedState(state: state, tokens: tokensFed, edits: editLog, identity: ModelIdentity(model: engine.model, tokenizer: tokenizer))
    }

    /// Continues from a saved state (read for this model by `SavedState.read`): its history becomes the
    /// log's start; the undo stack and the transcript start empty (the state's text is not stored).
    public func resume(_ saved: SavedState) throws {
        try replaceState(saved.state)
        tokensFed = saved.tokens
        resumedEdits = saved.edits
    }

    /// Replaces the live state (e.g. loaded from a file); the edit history is cleared.
    public func replaceState(_ s: State) throws {
        guard s.isCompatible(with: engine.newState()) else {
            throw EditError.incompatibleState("it has \(s.nLayer) layers × \(s.nHead) heads of \(s.headSize), the model \(engine.config.nLayer) × \(engine.config.nHead) of \(engine.config.headSize)")
        }
        state = s
        undoStack.removeAll()
        resumedEdits = []
        tokensFed = 0
        transcript = ""
        transcriptIsComplete = false
        atBoundary = false
    }
}
