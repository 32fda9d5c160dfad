import Foundation
import RWKVEdit

/// One edit of a case at one method and strength, measured after the edit (and undone afterwards).
public struct EvalPoint: Sendable {
    public let caseID: String
    public let group: String
    public let method: EditMethod
    public let strength: Strength
    /// Position of `strength` in the method's sweep (0-based).
    public let strengthIndex: Int
    /// The α the edit used (nil when it failed).
    public let alpha: Float?
    /// Why the edit could not be applied (nil when it was).
    public let error: String?
    public let targets: [QueryProbs]
    public let paraphrases: [QueryProbs]
    public let neighbours: [NeighbourProbs]
    public let continuation: String?
    public let fluency: Double?
    /// Whether some neighbour whose answer was top-1 before the edit lost top-1.
    public let leaked: Bool
    public let seconds: Double

    public var es: Proportion { EvalMetrics.success(targets) }
    public var esTop1: Proportion { EvalMetrics.top1New(targets) }
    public var ps: Proportion { EvalMetrics.success(paraphrases) }
    public var psTop1: Proportion { EvalMetrics.top1New(paraphrases) }
    public var ns: Proportion { EvalMetrics.neighbourhood(neighbours) }
    /// Harmonic mean of ES, PS and NS (those that have queries).
    public var score: Double? { EvalMetrics.harmonicMean([es.value, ps.value, ns.value]) }
    /// Every target query flipped: the new answer is top-1 (without a new answer: the old one lost top-1).
    public var flipped: Bool {
        error == nil && !targets.isEmpty && targets.allSatisfy { $0.newTop1 ?? !$0.oldTop1 }
    }
    /// Flipped without leaking into a neighbour (the seed's "*").
    public var cleanFlip: Bool { flipped && !leaked }
    public var meanPOld: Double? { EvalMetrics.mean(targets.map(\.pOld)) }
    public var meanPNew: Double? { EvalMetrics.mean(targets.compactMap(\.pNew)) }
    public var meanPControl: Double? { EvalMetrics.mean(neighbours.map(\.pTrue)) }
    /// The seed's selectivity, P(ctrl) − P(tgt), with means over the neighbours and target queries.
    public var selectivity: Double? {
        guard let c = meanPControl, let t = meanPOld else { return nil }
        return EvalMetrics.selectivity(pControl: c, pTarget: t)
    }
}

/// A case's measurements before any edit and its edits' points.
public struct EvalCaseResult: Sendable {
    public let evalCase: EvalCase
    public let contextTokens: Int
    public let fillerTokens: Int
    public let targets: [QueryProbs]
    public let paraphrases: [QueryProbs]
    public let neighbours: [NeighbourProbs]
    public let continuation: String
    public let fluency: Double
    public let points: [EvalPoint]
    public let seconds: Double
    /// σ₁ of the online probe delta per layer and head ([layer][head]), from the fed state, for edits
    /// given as sentences (nil for pack edits).
    public let sigma: [[Float]]?

    /// The unedited model answers every target query with the old value.
    public var baseCorrect: Bool { targets.allSatisfy(\.oldTop1) }
    /// Neighbours the unedited model answers right.
    public var baseNeighboursCorrect: Int { neighbours.filter(\.trueTop1).count }
    public var meanPOld: Double? { EvalMetrics.mean(targets.map(\.pOld)) }
    public var meanPNew: Double? { EvalMetrics.mean(targets.compactMap(\.pNew)) }
    public var meanPControl: Double? { EvalMetrics.mean(neighbours.map(\.pTrue)) }
}

public struct EvalSuiteResult: Sendable {
    public let suite: EvalSuite
    public let file: String?
    public let cases: [EvalCaseResult]
    public let seconds: Double
    public var points: [EvalPoint] { cases.flatMap(\.points) }
    /// Methods in the order they ran.
    public var methods: [EditMethod] {
        var seen = Set<EditMethod>()
        return points.map(\.method).filter { seen.insert($0).inserted }
    }
}

/// Runs suites: feeds each case's context once, measures, then for each method and strength applies
/// the edit, measures, and undoes it exactly, so that cases and points are independent.
public struct EvalRunner {
    public let engine: any Engine
    public let tokenizer: WorldTokenizer
    /// Methods to run instead of the suite's (e.g. every method).
    public var methods: [EditMethod]?
    /// Tokens of greedy continuation for fluency; nil: the suite's.
    public var fluencyTokens: Int?
    /// Ratios of cases whose suite gives no strength (the model card's in the CLI).
    public var ratios = DefaultRatios.seed
    /// Applies a pack edit (entity, from, to, probe template, options); needed by cases of type "pack".
    public var packEditor: ((EditSession, String, String, String, String?, EditOptions) throws -> AppliedEdit)?
    /// Called with a line of progress per case.
    public var progress: ((String) -> Void)?

    public init(engine: any Engine, tokenizer: WorldTokenizer, methods: [EditMethod]? = nil) {
        self.engine = engine; self.tokenizer = tokenizer; self.methods = methods
    }

    public func run(_ suite: EvalSuite, file: String? = nil) throws -> EvalSuiteResult {
        let start = Date()
        var results: [EvalCaseResult] = []
        for (i, c) in suite.cases.enumerated() {
            let r = try run(c, index: i, suite: suite, file: file)
            results.append(r)
            progress?(String(format: "[%@] case %d/%d %@: %d points, %.1fs", suite.name, i + 1, suite.cases.count, c.id, r.points.count, r.seconds))
        }
        return EvalSuiteResult(suite: suite, file: file, cases: results, seconds: Date().timeIntervalSince(start))
    }

    func measure(_ s: EditSession, _ qs: [EvalQuery]) throws -> [QueryProbs] {
        try qs.map { q in
            let o = try s.score(query: q.query, answer: q.old)
            let n = try q.new.map { try s.score(query: q.query, answer: $0) }
            return QueryProbs(pOld: o.probability, pNew: n?.probability, oldTop1: o.isGreedy, newTop1: n?.isGreedy)
        }
    }

    func measure(_ s: EditSession, _ ns: [NeighbourQuery], newValue: String?) throws -> [NeighbourProbs] {
        try ns.map { q in
            let t = try s.score(query: q.query, answer: q.answer)
            let n = try newValue.map { try s.score(query: q.query, answer: $0) }
            return NeighbourProbs(pTrue: t.probability, trueTop1: t.isGreedy, pNew: n?.probability)
        }
    }

    func run(_ c: EvalCase, index: Int, suite: EvalSuite, file: String?) throws -> EvalCaseResult {
        let start = Date()
        func caseError(_ field: String, _ why: String) -> EvalSuiteError {
            EvalSuiteError(file: file, caseIndex: index, caseID: c.id, field: field, reason: why)
        }
        let session = EditSession(engine: engine, tokenizer: tokenizer)
        do { try session.feed(c.context) } catch { throw caseError("context", "\(error)") }
        let contextTokens = tokenizer.encode(c.context).count
        var fillerTokens = 0
        if let f = c.filler, f.tokens > 0 {
            let text = EvalFiller.text(f) { tokenizer.encode($0).count }
            fillerTokens = session.continuationTokens(text).count
            try session.feed(text)
        }
        let newValue = c.targets.first?.new
        let fluencyPrompt = c.fluencyPrompt ?? c.targets[0].query
        let nTokens = fluencyTokens ?? suite.fluencyTokens
        let targets0: [QueryProbs], paraphrases0: [QueryProbs], neighbours0: [NeighbourProbs]
        do {
            targets0 = try measure(session, c.targets)
            paraphrases0 = try measure(session, c.paraphrases)
            neighbours0 = try measure(session, c.neighbours, newValue: newValue)
        } catch let e as EditError { throw caseError("targets", "a query or answer cannot be scored: \(e)") }
        let continuation0 = nTokens > 0 ? try session.generate(after: fluencyPrompt, maxTokens: nTokens, stop: "\n\n", commit: false) : ""
        let fluency0 = EvalMetrics.fluency(continuation0)

        let fed = session.state
        let sigma = try probeSigma(session, c.edit)
        var points: [EvalPoint] = []
        for method in methods ?? c.methods ?? suite.methods {
            let ratio = c.edit.defaultRatio(ratios)
            var base = EditOptions(method: method, ratio: ratio)
            base.layers = c.layers
            let strengths = c.strength.merged(over: suite.strength).points(for: method, defaultRatio: ratio)
            for (si, strength) in strengths.enumerated() {
                let t0 = Date()
                var options = base
                strength.apply(to: &options)
                let applied: AppliedEdit
                do {
                    applied = try apply(c.edit, to: session, options: options)
                } catch {
                    points.append(EvalPoint(caseID: c.id, group: c.group, method: method, strength: strength, strengthIndex: si, alpha: nil,
                                            error: "\(error)", targets: [], paraphrases: [], neighbours: [], continuation: nil, fluency: nil,
                                            leaked: false, seconds: Date().timeIntervalSince(t0)))
                    continue
                }
                defer { _ = try? session.undo() }
                let t = try measure(session, c.targets)
                let p = try measure(session, c.paraphrases)
                let n = try measure(session, c.neighbours, newValue: newValue)
                let cont = nTokens > 0 ? try session.generate(after: fluencyPrompt, maxTokens: nTokens, stop: "\n\n", commit: false) : ""
                let leaked = zip(neighbours0, n).contains { $0.trueTop1 && !$1.trueTop1 }
                points.append(EvalPoint(caseID: c.id, group: c.group, method: method, strength: strength, strengthIndex: si,
                                        alpha: applied.alpha, error: nil, targets: t, paraphrases: p, neighbours: n,
                                        continuation: cont, fluency: EvalMetrics.fluency(cont), leaked: leaked,
                                        seconds: Date().timeIntervalSince(t0)))
            }
        }
        // Every point must have started from the fed state: undo is exact (DESIGN §4).
        guard session.state == fed else { throw EditError.numerical("undo did not restore the fed state in case \(c.id)") }
        return EvalCaseResult(evalCase: c, contextTokens: contextTokens, fillerTokens: fillerTokens, targets: targets0,
                              paraphrases: paraphrases0, neighbours: neighbours0, continuation: continuation0, fluency: fluency0,
                              points: points, seconds: Date().timeIntervalSince(start), sigma: sigma)
    }

    /// σ₁ per layer and head of Δ = S(state + new text) − S(state + old text), both probed from the fed state.
    func probeSigma(_ s: EditSession, _ edit: EvalEdit) throws -> [[Float]]? {
        let texts: (String, String)
        switch edit {
        case .sentences(let a, let b): texts = (a, b)
        case .forget(let fact, let entity): texts = (fact, EditSession.entitySentence(entity))
        case .erase(let fact, let neutral): texts = (fact, neutral ?? EditSession.neutralSentence)
        case .pack: return nil
        }
        let a = s.continuationTokens(texts.0), b = s.continuationTokens(texts.1)
        guard !a.isEmpty, !b.isEmpty else { return nil }
        let (sa, sb) = try StateEditor(engine: engine).probe(s.state, old: a, new: b)
        let c = engine.config
        return try (0..<c.nLayer).map { l in
            try (0..<c.nHead).map { h in
                try HeadSVD.leading(matrix: try StateDelta.head(sa, sb, HeadIndex(layer: l, head: h)), n: c.headSize).sigma
            }
        }
    }

    func apply(_ edit: EvalEdit, to s: EditSession, options: EditOptions) throws -> AppliedEdit {
        switch edit {
        case .sentences(let a, let b): return try s.edit(from: a, to: b, options: options)
        case .forget(let fact, let entity): return try s.forget(fact: fact, entity: entity, options: options)
        case .erase(let fact, let neutral):
            if let neutral { return try s.edit(from: fact, to: neutral, options: options) }
            return try s.erase(fact: fact, options: options)
        case .pack(let entity, let a, let b, let probe):
            guard let packEditor else { throw EditError.invalid("this case edits by pack entry; give a pack (--pack FILE)") }
            return try packEditor(s, entity, a, b, probe, options)
        }
    }
}

// MARK: Aggregates

/// Metrics of one method at one strength step over the cases of a suite.
public struct EvalAggregate: Sendable {
    public let method: EditMethod
    public let strength: Strength
    /// The sweep step of this strength (its first position in the cases' sweeps).
    public let strengthIndex: Int
    public let points: Int
    public let errors: Int
    public let es: Proportion
    public let esTop1: Proportion
    public let ps: Proportion
    public let psTop1: Proportion
    public let ns: Proportion
    public let flips: Proportion
    public let cleanFlips: Proportion
    public let pOldBefore: Double?
    public let pOldAfter: Double?
    public let pNewBefore: Double?
    public let pNewAfter: Double?
    public let pControlAfter: Double?
    public let selectivity: Double?
    public let fluencyBefore: Double?
    public let fluencyAfter: Double?
    public let meanAlpha: Double?

    public var score: Double? { EvalMetrics.harmonicMean([es.value, ps.value, ns.value]) }
}

/// The seed's per-method summary of a sweep: flip n/N, mean best strength, selectivity and P(tgt) at it.
public struct SweepSummary: Sendable {
    public let method: EditMethod
    /// Cases with a clean flip at some strength / cases.
    public let flips: Proportion
    /// Mean of each flipped case's lowest clean-flip strength value.
    public let bestStrength: Double?
    /// Mean over flipped cases of P(ctrl) at the best strength (what the seed's "selectivity" column appears to hold).
    public let pControl: Double?
    /// Mean over flipped cases of P(ctrl) − P(tgt) at the best strength.
    public let selectivity: Double?
    /// Mean over flipped cases of P(old) at the best strength.
    public let pTarget: Double?
    /// Clean flips at each strength step.
    public let flipsByStep: [Proportion]
    public let strengths: [Strength]
}

extension EvalSuiteResult {
    /// Per method and strength (in the order they ran), over all cases.
    public func aggregates() -> [EvalAggregate] {
        var out: [EvalAggregate] = []
        for m in methods {
            let mp = points.filter { $0.method == m }
            var seen = Set<Strength>()
            for strength in mp.map(\.strength) where seen.insert(strength).inserted {
                let ps = mp.filter { $0.strength == strength }
                let ok = ps.filter { $0.error == nil }
                let okIDs = Set(ok.map(\.caseID))
                let before = cases.filter { okIDs.contains($0.evalCase.id) }
                out.append(EvalAggregate(
                    method: m, strength: strength, strengthIndex: ps.map(\.strengthIndex).min() ?? 0,
                    points: ps.count, errors: ps.count - ok.count,
                    es: ok.map(\.es).reduce(Proportion(successes: 0, total: 0), +),
                    esTop1: ok.map(\.esTop1).reduce(Proportion(successes: 0, total: 0), +),
                    ps: ok.map(\.ps).reduce(Proportion(successes: 0, total: 0), +),
                    psTop1: ok.map(\.psTop1).reduce(Proportion(successes: 0, total: 0), +),
                    ns: ok.map(\.ns).reduce(Proportion(successes: 0, total: 0), +),
                    flips: Proportion(successes: ok.filter(\.flipped).count, total: ok.count),
                    cleanFlips: Proportion(successes: ok.filter(\.cleanFlip).count, total: ok.count),
                    pOldBefore: EvalMetrics.mean(before.compactMap(\.meanPOld)),
                    pOldAfter: EvalMetrics.mean(ok.compactMap(\.meanPOld)),
                    pNewBefore: EvalMetrics.mean(before.compactMap(\.meanPNew)),
                    pNewAfter: EvalMetrics.mean(ok.compactMap(\.meanPNew)),
                    pControlAfter: EvalMetrics.mean(ok.compactMap(\.meanPControl)),
                    selectivity: EvalMetrics.mean(ok.compactMap(\.selectivity)),
                    fluencyBefore: EvalMetrics.mean(before.map(\.fluency)),
                    fluencyAfter: EvalMetrics.mean(ok.compactMap(\.fluency)),
                    meanAlpha: EvalMetrics.mean(ok.compactMap { $0.alpha.map(Double.init) })))
            }
        }
        return out
    }

    /// Whether some method runs at more than one strength (a sweep, shown as the seed's tables).
    public var isSweep: Bool { points.contains { $0.strengthIndex > 0 } }

    /// The seed's aggregate table: per method, over the cases.
    public func sweepSummaries() -> [SweepSummary] {
        methods.map { m in
            let mp = points.filter { $0.method == m }
            let nSteps = (mp.map(\.strengthIndex).max() ?? -1) + 1
            var best: [EvalPoint] = []
            for c in cases {
                let cp = mp.filter { $0.caseID == c.evalCase.id }.sorted { $0.strengthIndex < $1.strengthIndex }
                if let b = cp.first(where: \.cleanFlip) { best.append(b) }
            }
            var seen = Set<Strength>()
            let strengths = mp.sorted { $0.strengthIndex < $1.strengthIndex }.map(\.strength).filter { seen.insert($0).inserted }
            return SweepSummary(
                method: m, flips: Proportion(successes: best.count, total: cases.count),
                bestStrength: EvalMetrics.mean(best.map { Double($0.strength.value) }),
                pControl: EvalMetrics.mean(best.compactMap(\.meanPControl)),
                selectivity: EvalMetrics.mean(best.compactMap(\.selectivity)),
                pTarget: EvalMetrics.mean(best.compactMap(\.meanPOld)),
                flipsByStep: (0..<max(nSteps, 0)).map { si in
                    let sp = mp.filter { $0.strengthIndex == si }
                    return Proportion(successes: sp.filter(\.cleanFlip).count, total: sp.count)
                },
                strengths: strengths)
        }
    }
}
