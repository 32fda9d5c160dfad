import Foundation

/// What a pack-based edit did, beside the edit itself.
public struct PackEdit: Sendable {
    public let applied: AppliedEdit
    /// Where u₁ came from: a direct pair entry or one composed from two vocabulary entries.
    public let source: EditPack.CalibrationSource
    public let from: String
    public let to: String
    /// The sentences probed on the two live-state branches (online v₁ and σ).
    public let oldProbe: String
    public let newProbe: String
}

extension EditPack {
    /// The sentence form the online probes use: the explicit one, else the pack's @probe template,
    /// else its calibration template when that names the entity. A pack compiled with the generic
    /// template and no @probe needs one given: the probes must name the entity to find its address.
    public func probeTemplate(_ explicit: String? = nil) throws -> String {
        if let t = explicit ?? manifest.probeTemplate ?? (manifest.template.contains("{entity}") ? manifest.template : nil) {
            guard t.contains("{value}"), t.contains("{entity}") else {
                throw PackError.invalidInput("probe template '\(t)' needs both {entity} and {value}")
            }
            return t
        }
        throw PackError.incompatible(file: path, reason: "it has no probe template (compile with a vocabulary that has @probe, or pass one, e.g. \"{entity} lives in {value}.\")")
    }

    /// Parses "Entity: A -> B" (also "→").
    public static func parseEdit(_ text: String) throws -> (entity: String, from: String, to: String) {
        guard let colon = text.firstIndex(of: ":") else { throw PackError.invalidInput("expected 'Entity: A -> B', got '\(text)'") }
        let entity = text[..<colon].trimmingCharacters(in: .whitespaces)
        let rest = String(text[text.index(after: colon)...]).replacingOccurrences(of: "→", with: "->")
        let parts = rest.components(separatedBy: "->").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !entity.isEmpty, parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw PackError.invalidInput("expected 'Entity: A -> B', got '\(text)'")
        }
        return (entity, parts[0], parts[1])
    }
}

/// A verified edit by name: the measured outcome and where its parts came from.
public struct PackEditOutcome: Sendable {
    public let outcome: EditOutcome
    public let entity: String
    public let source: EditPack.CalibrationSource
    /// The pack's value names (after alias resolution).
    public let from: String
    public let to: String
    /// The sentences probed on the two live-state branches (online v₁ and σ).
    public let oldProbe: String
    public let newProbe: String
    /// What the checks before the edit noticed; the verdict still decides whether the edit holds.
    public let prechecks: [EditPrecheck]

    public var verdict: EditVerdict { outcome.verdict }
}

/// A finding of the checks made before an edit by name, reported beside its verdict.
public enum EditPrecheck: Sendable, Equatable {
    /// The entity does not occur in the conversation; the caller allowed writing it as a new fact.
    case newEntity(String)
    /// Before the edit, the query did not answer the old value: the conversation may not hold the fact
    /// the edit names (another value, a misspelt entity), so the edit may change something else.
    case oldValueNotAnswered(entity: String, old: String, answer: TokenProbability?, oldProbability: Double)

    public var message: String {
        switch self {
        case .newEntity(let e):
            return "\(e) does not occur in the conversation: the edit writes a new fact"
        case .oldValueNotAnswered(let e, let old, let answer, let p):
            let said = answer.map { "\"\($0.text)\" (P = \(String(format: "%.3f", $0.probability)))" } ?? "nothing"
            return "before the edit the model answered \(said) for \(e), not \(old) (P(\(old)) = \(String(format: "%.3f", p))); check the entity and the old value"
        }
    }
}

extension EditPack {
    /// The surface text of a value name ("NYC" → "New York"); the name itself when it has none.
    public func surface(_ name: String) throws -> String {
        try values().first { $0.name == name }?.surface ?? name
    }

    /// The question that asks for `entity`'s value (the pack's @query), or nil when it has none.
    public func query(for entity: String) -> String? {
        manifest.queryTemplate.map { fillTemplate($0, value: "", entity: entity) }
    }

    /// Controls of an edit about `entity`: the statements of this property in `text` about other
    /// entities, each asked with @query; those holding `value` (the edit's new value) are left out,
    /// since moving towards it may lift their answer without harm.
    public func controls(in text: String, excluding entity: String, value: String? = nil,
                         probeTemplate: String? = nil) throws -> [ControlQuery] {
        try statements(in: text, probeTemplate: probeTemplate)
            .filter { $0.entity != entity && $0.value != value }
            .compactMap { s in try query(for: s.entity).map { ControlQuery(query: $0, answer: try surface(s.value)) } }
    }

    /// The check of an edit of a fact sentence this pack describes ("Bob lives in Austin."): the
    /// @query for its entity, its value as the old answer, the value of `newFact` (if any, for the
    /// same entity) as the new one, and the controls found in `transcript`. Nil when the pack does
    /// not describe the sentence or has no @query.
    public func check(forFact fact: String, newFact: String? = nil, transcript: String,
                      probeTemplate: String? = nil) throws -> EditCheck? {
        guard let old = try statements(in: fact, probeTemplate: probeTemplate).first, let q = query(for: old.entity) else { return nil }
        var newValue: String?
        if let newFact {
            guard let n = try statements(in: newFact, probeTemplate: probeTemplate).first, n.entity == old.entity else { return nil }
            newValue = n.value
        }
        return EditCheck(query: q, old: try surface(old.value), new: try newValue.map(surface),
                         controls: try controls(in: transcript, excluding: old.entity, value: newValue, probeTemplate: probeTemplate))
    }

    /// The other statements of this pack's property in `text`, found with the probe template:
    /// "Alice lives in Paris. Bob lives in Austin." → [(Alice, Paris), (Bob, Austin)] (value names).
    public func statements(in text: String, probeTemplate explicit: String? = nil) throws -> [(entity: String, value: String)] {
        let template = try probeTemplate(explicit)
        let values = try values()
        let surfaces = values.map(\.surface).sorted { $0.count > $1.count }.map(NSRegularExpression.escapedPattern(for:))
        guard !surfaces.isEmpty else { return [] }
        var pattern = ""
        var rest = Substring(template)
        while let r = rest.range(of: "{entity}") ?? rest.range(of: "{value}") {
            let e = rest.range(of: "{entity}"), v = rest.range(of: "{value}")
            let first = [e, v].compactMap { $0 }.min { $0.lowerBound < $1.lowerBound } ?? r
            pattern += NSRegularExpression.escapedPattern(for: String(rest[..<first.lowerBound]))
            pattern += first == e ? "([^.!?\\n]+?)" : "(" + surfaces.joined(separator: "|") + ")"
            rest = rest[first.upperBound...]
        }
        pattern += NSRegularExpression.escapedPattern(for: String(rest))
        let entityFirst = (template.range(of: "{entity}")?.lowerBound ?? template.endIndex) < (template.range(of: "{value}")?.lowerBound ?? template.endIndex)
        let regex = try NSRegularExpression(pattern: pattern)
        let ns = text as NSString
        return regex.matches(in: text, range: NSRange(location: 0, length: ns.length)).compactMap { m in
            guard m.numberOfRanges == 3 else { return nil }
            let a = ns.substring(with: m.range(at: 1)), b = ns.substring(with: m.range(at: 2))
            let (entity, surface) = entityFirst ? (a, b) : (b, a)
            guard let name = values.first(where: { $0.surface == surface })?.name else { return nil }
            return (entity.trimmingCharacters(in: .whitespaces), name)
        }
    }
}

/// What a sentence-form change does to a fact: replaces it with another sentence, removes the property
/// while keeping the entity, or erases it towards a neutral sentence.
public enum FactChange: Sendable, Equatable {
    case edit(to: String)
    case forget(entity: String)
    case erase
}

/// The value names, probe sentences, calibration and options of a pack edit.
private struct PackEditPlan {
    let old: String, new: String
    let oldProbe: String, newProbe: String
    let calibration: Calibration
    let source: EditPack.CalibrationSource
    let options: EditOptions
}

extension EditSession {
    /// The probe sentences, calibration and options of a pack edit.
    private func packEditPlan(pack: EditPack, entity: String, from old: String, to new: String, options: EditOptions,
                              probeTemplate: String?, preferComposed: Bool) throws -> PackEditPlan {
        try pack.requireModel(engine.model, tokenizer: tokenizer)
        var opts = options
        let packLayers = pack.manifest.layerRange
        if let l = opts.layers {
            guard packLayers.contains(l.lowerBound), packLayers.contains(l.upperBound) else {
                throw PackError.incompatible(file: pack.path, reason: "it covers layers \(packLayers.lowerBound)-\(packLayers.upperBound), not \(l.lowerBound)-\(l.upperBound)")
            }
        } else {
            opts.layers = packLayers
        }
        let template = try pack.probeTemplate(probeTemplate)
        let (cal, source) = try pack.calibration(from: old, to: new, preferComposed: preferComposed)
        let a = try pack.resolve(old), b = try pack.resolve(new)
        let oldProbe = fillTemplate(template, value: try pack.surface(a), entity: entity)
        let newProbe = fillTemplate(template, value: try pack.surface(b), entity: entity)
        return PackEditPlan(old: a, new: b, oldProbe: oldProbe, newProbe: newProbe, calibration: cal, source: source, options: opts)
    }

    /// Edits what the conversation says about `entity` from value `old` to value `new`, both entries of
    /// `pack` (HYB-U by default: u₁ per head from the pack, v₁ and σ from probes of
    /// probe(entity, old) / probe(entity, new) on two branches of the live state), with exactly these
    /// options and no verification: the experiments' form. Layers default to the pack's.
    @discardableResult
    public func edit(pack: EditPack, entity: String, from old: String, to new: String,
                     options: EditOptions = EditOptions(), probeTemplate: String? = nil,
                     preferComposed: Bool = false) throws -> PackEdit {
        let plan = try packEditPlan(pack: pack, entity: entity, from: old, to: new, options: options,
                                    probeTemplate: probeTemplate, preferComposed: preferComposed)
        let applied = try edit(from: plan.oldProbe, to: plan.newProbe, options: plan.options, calibration: plan.calibration)
        return PackEdit(applied: applied, source: plan.source, from: plan.old, to: plan.new, oldProbe: plan.oldProbe, newProbe: plan.newProbe)
    }

    /// Edits a fact by name — `"Bob: Austin -> Chicago"` with both values entries of `pack` — and
    /// verifies it: the query (given, or the pack's @query for the entity) must answer the new value,
    /// and the other statements of the property in the conversation (found with the pack's @probe)
    /// must keep theirs. The strength is searched per context from `options.ratio` (default: the
    /// session's edit ratio). `answers` override the values' surface texts as the query's answers;
    /// `controls` are checked beside the ones found. Throws when the entity does not occur in the
    /// conversation unless `allowNewEntity`; when the query does not answer the old value before the
    /// edit, the outcome's `prechecks` say what it answered. When the searched strengths all cost a
    /// control and nothing was kept, the search runs again as `recovery` says, from the same reading,
    /// and the outcome holds the trials of every search in order.
    public func edit(_ spec: String, pack: EditPack, query: String? = nil, answers: (old: String?, new: String?) = (nil, nil),
                     controls extraControls: [ControlQuery] = [], options: EditOptions? = nil,
                     strength: StrengthPolicy = .search, keepUnverified: Bool = false, allowNewEntity: Bool = false,
                     probeTemplate: String? = nil, preferComposed: Bool = false,
                     recovery: CollateralRecovery = .standard) throws -> PackEditOutcome {
        let (entity, old, new) = try EditPack.parseEdit(spec)
        let isNew = transcriptIsComplete && !transcript.contains(entity)
        if isNew && !allowNewEntity {
            throw EditError.notInContext("\(entity) does not occur in the conversation; an edit changes a fact the conversation holds (feed it first, check the name, or allow a new entity: --allow-new-entity)")
        }
        let plan = try packEditPlan(pack: pack, entity: entity, from: old, to: new, options: options ?? EditOptions(ratio: ratios.edit),
                                    probeTemplate: probeTemplate, preferComposed: preferComposed)
        guard let q = query ?? pack.query(for: entity) else {
            throw PackError.incompatible(file: pack.path, reason: "it has no @query template; give the query that asks for \(entity)'s \(pack.manifest.property ?? "value")")
        }
        let controls = try pack.controls(in: transcript, excluding: entity, value: plan.new, probeTemplate: probeTemplate)
        let check = EditCheck(query: q, old: try answers.old ?? pack.surface(plan.old), new: try answers.new ?? pack.surface(plan.new),
                              controls: controls.filter { c in !extraControls.contains { $0.query == c.query } } + extraControls)
        let baseline = try baseline(check, lowestEdited: plan.options.targetHeads(engine.config).map(\.layer).min(),
                                    probing: plan.options.method.probesTheLiveState ? (plan.oldProbe, plan.newProbe) : nil)
        let before = baseline.target
        var prechecks: [EditPrecheck] = []
        if isNew {
            prechecks.append(.newEntity(entity))
        } else if !before.old.isTop1 {
            prechecks.append(.oldValueNotAnswered(entity: entity, old: check.old, answer: before.top.first, oldProbability: before.old.probability))
        }
        var outcome = try verifiedEdit(from: plan.oldProbe, to: plan.newProbe, check: check, options: plan.options,
                                       calibration: plan.calibration, strength: strength, keepUnverified: keepUnverified,
                                       baseline: baseline)
        let searched = strength.searches(plan.options)
        if searched, outcome.verdict == .collateral, !outcome.kept, let fallback = recovery.fallbackMethod, fallback != plan.options.method, !fallback.usesFixedAlpha {
            var opts = plan.options
            opts.method = fallback
            outcome = try verifiedEdit(from: plan.oldProbe, to: plan.newProbe, check: check, options: opts,
                                       calibration: plan.calibration, strength: strength, keepUnverified: keepUnverified,
                                       baseline: baseline).following(outcome)
        }
        if recovery.protectsOtherStatements {
            outcome = try protectingOtherStatements(after: outcome, searched: searched, pack: pack, entity: entity,
                                                    otherValues: [plan.new, plan.old], heads: plan.options.targetHeads(engine.config),
                                                    probeTemplate: probeTemplate) { protection in
                try verifiedEdit(from: plan.oldProbe, to: plan.newProbe, check: check, options: plan.options,
                                 calibration: plan.calibration, strength: strength, keepUnverified: keepUnverified,
                                 baseline: baseline, protecting: protection)
            }
        }
        return PackEditOutcome(outcome: outcome, entity: entity, source: plan.source, from: plan.old, to: plan.new,
                               oldProbe: plan.oldProbe, newProbe: plan.newProbe, prechecks: prechecks)
    }

    /// Changes the fact sentence `fact` ("Bob lives in Austin.") as `change` says, verified with
    /// `pack`'s check (its @query for the fact's entity, the property's other statements in the
    /// conversation as controls); nil when `pack` does not describe the sentence. The strength is
    /// searched from the session's ratio for the kind of change unless `strength` is `.fixed` (or
    /// `options` fix α); with `recover`, a searched change whose every strength cost a control is
    /// searched again protecting the other statements' keys, as edits by name are.
    public func verifiedChange(of fact: String, _ change: FactChange, pack: EditPack, options given: EditOptions? = nil,
                               strength: StrengthPolicy = .search, recover: Bool = true) throws -> EditOutcome? {
        let newFact: String?
        let ratio: Float
        switch change {
        case .edit(let n): newFact = n; ratio = ratios.edit
        case .forget: newFact = nil; ratio = ratios.forget
        case .erase: newFact = nil; ratio = ratios.erase
        }
        guard let check = try pack.check(forFact: fact, newFact: newFact, transcript: transcript) else { return nil }
        let options = given ?? EditOptions(ratio: ratio)
        func attempt(_ protection: KeyProtection) throws -> EditOutcome {
            switch change {
            case .edit(let n):
                return try verifiedEdit(from: fact, to: n, check: check, options: options, strength: strength, protecting: protection)
            case .forget(let entity):
                return try verifiedForget(fact: fact, entity: entity, check: check, options: options, strength: strength, protecting: protection)
            case .erase:
                return try verifiedErase(fact: fact, check: check, options: options, strength: strength, protecting: protection)
            }
        }
        let outcome = try attempt(KeyProtection())
        guard recover, let stated = try pack.statements(in: fact).first else { return outcome }
        let otherValues = try (newFact.map { try pack.statements(in: $0) } ?? []).map(\.value) + [stated.value]
        let searched = strength.searches(options)
        return try protectingOtherStatements(after: outcome, searched: searched, pack: pack, entity: stated.entity,
                                             otherValues: otherValues, heads: options.targetHeads(engine.config), retry: attempt)
    }

    /// When `outcome` is a searched edit whose every strength cost a control and nothing was kept,
    /// `retry` searches again with the edit projected off the key directions of `pack`'s other
    /// statements in the conversation (`KeyProtection`), and the outcome holds the trials of both;
    /// otherwise `outcome` itself. Each statement but `entity`'s ("Alice lives in Paris.") is probed on
    /// a branch of the live state against the same sentence with another value (the first of
    /// `otherValues` it does not hold, else the pack's first), all in one batch.
    public func protectingOtherStatements(after outcome: EditOutcome, searched: Bool, pack: EditPack, entity: String,
                                          otherValues: [String], heads: [HeadIndex], probeTemplate: String? = nil,
                                          retry: (KeyProtection) throws -> EditOutcome) throws -> EditOutcome {
        guard searched, outcome.verdict == .collateral, !outcome.kept else { return outcome }
        let clock = DispatchTime.now().uptimeNanoseconds
        let template = try pack.probeTemplate(probeTemplate)
        let values = try pack.values().map(\.name)
        var pairs: [[Int]] = []
        for s in try pack.statements(in: transcript, probeTemplate: probeTemplate) where s.entity != entity {
            guard let other = (otherValues + values).first(where: { $0 != s.value }) else { continue }
            pairs.append(continuationTokens(fillTemplate(template, value: try pack.surface(s.value), entity: s.entity)))
            pairs.append(continuationTokens(fillTemplate(template, value: try pack.surface(other), entity: s.entity)))
        }
        guard !pairs.isEmpty else { return outcome }
        var states = [State](repeating: state, count: pairs.count)
        _ = try engine.forward(pairs, states: &states, allLogits: false)
        var protection = KeyProtection()
        for i in stride(from: 0, to: states.count, by: 2) {
            try protection.add((states[i], states[i + 1]), heads: heads, headSize: engine.config.headSize)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - clock) / 1e9
        return try retry(protection).following(outcome, passSeconds: seconds)
    }
}
