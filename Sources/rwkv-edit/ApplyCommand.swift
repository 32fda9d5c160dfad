import ArgumentParser
import RWKVEdit
import Foundation

struct ApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Feed a context, edit a fact by name with a pack (HYB-U: pack u₁, online v₁ and σ), and show the query's answers before and after.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var methodOptions: EditMethodOptions
    @OptionGroup var stateFiles: StateFileOptions

    @Option(name: .long, help: "An edit pack (.rwkvpack) compiled for this model (repeatable: each edit uses the first pack that holds both of its values).")
    var pack: [String]

    @Option(name: .long, help: "The context fed to the model first (after --state-in, if given).")
    var context: String?

    @Option(name: .long, help: "An edit: 'Entity: A -> B' with A and B entries of a pack (e.g. 'Bob: Austin -> Chicago'); repeatable, applied in order.")
    var edit: [String] = []

    @Option(name: .long, help: "A file of edits, one JSON object per line: {\"edit\": \"Bob: Austin -> Chicago\"} with optional \"query\", \"old\", \"new\"; applied after --edit.")
    var edits: String?

    @Option(name: .long, help: "Probe sentence form with {entity} and {value} (default: the pack's).")
    var probe: String?

    @Flag(name: .long, help: "Compose u₁ from vocabulary entries even when the pack has the direct pair entry.")
    var composed = false

    @Option(name: .long, help: "Query whose answer should change (default: the pack's @query for the entity, e.g. \"Where does Bob live? Bob lives in\").")
    var query: String?

    @Option(name: .long, help: "The answer before the edit (default: A).")
    var old: String?

    @Option(name: .long, help: "The answer after the edit (default: B).")
    var new: String?

    @Option(name: .long, help: "A query whose answer must not change (repeatable).")
    var controlQuery: [String] = []

    @Option(name: .long, help: "The expected answer of each --control-query, in order.")
    var controlAnswer: [String] = []

    @Flag(name: .long, help: "Edit an entity the context does not mention, writing a new fact (default: an error, as a misspelt name would be).")
    var allowNewEntity = false

    @Flag(name: .long, help: "Print one JSON object: for one edit the shape of `rwkv-edit edit --json` plus a \"pack\" member; for several {\"verdict\", \"warnings\", \"edits\": [one such object per edit]}.")
    var json = false

    /// One line of an --edits file.
    struct EditLine: Decodable {
        let edit: String
        let query, old, new: String?
    }

    func validate() throws {
        guard !pack.isEmpty else { throw ValidationError("give at least one --pack") }
        // A pack keeps u₁ and σ per head, not the calibration's full deltas or new-fact readout.
        if let method = methodOptions.method, method == .projection || method == .isolate {
            throw ValidationError("--method \(method.rawValue) needs the full calibration, which a pack does not keep; with a pack use hyb-u (default), hyb-uv, uniform, adaptive or rank1")
        }
        guard !edit.isEmpty || edits != nil else { throw ValidationError("give --edit 'Entity: A -> B' (repeatable) or --edits FILE") }
        guard edit.count + (edits == nil ? 0 : 1) == 1 || (query == nil && old == nil && new == nil) else {
            throw ValidationError("--query, --old and --new apply to a single edit; give them per edit in an --edits file")
        }
    }

    func run() throws {
        try reportingErrors {
            let controls = try controlQueries(controlQuery, controlAnswer)
            let options = try methodOptions.editOptions(defaultRatio: modelOptions.card().ratios.edit)
            let lines = edit.map { EditLine(edit: $0, query: query, old: old, new: new) } + (try edits.map(Self.readEdits) ?? [])
            let packs = try pack.map { try EditPack(path: $0) }
            let m = try modelOptions.loadModel()
            let tokenizer = try modelOptions.tokenizer(for: m)
            // Before feeding: a pack for another model is the error to report, not the context's tokens.
            for p in packs { try p.requireModel(m, tokenizer: tokenizer) }
            let session = EditSession(engine: modelOptions.engine(m), tokenizer: tokenizer)
            try stateFiles.resume(session)
            if let context { try session.feed(context) }
            guard session.tokensFed > 0 || stateFiles.stateIn != nil else { throw ValidationError("give --context, --state-in or both") }
            var reports: [EditReport] = []
            for line in lines {
                let p = try Self.pack(for: line.edit, in: packs)
                let r = try session.edit(line.edit, pack: p, query: line.query, answers: (line.old, line.new), controls: controls,
                                         options: options, strength: methodOptions.strength, keepUnverified: methodOptions.allowWeak, allowNewEntity: allowNewEntity,
                                         probeTemplate: probe, preferComposed: composed, recovery: methodOptions.recovery)
                if !json {
                    print("pack \(p.name): \(r.entity): \(r.from) → \(r.to) (u₁ from \(r.source.rawValue) entry; probes \"\(r.oldProbe)\" / \"\(r.newProbe)\")")
                }
                let report = EditReport(r, file: p.path, name: p.name)
                if !json { report.printText() }
                reports.append(report)
            }
            try stateFiles.save(session)
            try EditBatchReport(edits: reports).emit(json: json, allowWeak: methodOptions.allowWeak)
        }
    }

    /// The first pack that holds both values of "Entity: A -> B"; with one pack, that pack (whose
    /// missing-value error then names the nearest entries).
    static func pack(for spec: String, in packs: [EditPack]) throws -> EditPack {
        guard packs.count > 1 else { return packs[0] }
        let (_, a, b) = try EditPack.parseEdit(spec)
        if let p = packs.first(where: { (try? $0.resolve(a)) != nil && (try? $0.resolve(b)) != nil }) { return p }
        throw PackError.invalidInput("no pack given holds both '\(a)' and '\(b)' (packs: \(packs.map(\.name).joined(separator: ", ")))")
    }

    static func readEdits(_ path: String) throws -> [EditLine] {
        guard let data = FileManager.default.contents(atPath: path) else { throw PackError.invalidInput("cannot read the edits file \(path)") }
        guard data.count <= 16 << 20 else { throw PackError.invalidInput("\(path): an edits file is at most 16 MB") }
        var out: [EditLine] = []
        for (i, raw) in TextLines.split(String(decoding: data, as: UTF8.self)).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            do { out.append(try JSONDecoder().decode(EditLine.self, from: Data(line.utf8))) } catch {
                throw PackError.invalidInput("\(path):\(i + 1): not an edit object {\"edit\": \"Entity: A -> B\"} (\(error))")
            }
        }
        guard !out.isEmpty else { throw PackError.invalidInput("\(path): no edits in the file") }
        return out
    }
}

extension ChatLoop {
    /// Handles `/edit PACK Entity: A -> B [--method m] [--ratio r] [--allow-new-entity] …` as a verified
    /// edit (strength searched unless --ratio/--alpha is given; an edit that does not verify is undone);
    /// returns nil when the line is the two-sentence form, else the outcome in words.
    mutating func packEdit(_ line: String) throws -> String? {
        let body = line.dropFirst("/edit".count).trimmingCharacters(in: .whitespaces)
        guard !body.hasPrefix("\""), !body.hasPrefix("'"), body.contains(":"), body.contains("->") || body.contains("→") else { return nil }
        var args = try ShellWords.split(body)
        let allowNewEntity = args.contains("--allow-new-entity")
        args.removeAll { $0 == "--allow-new-entity" }
        let optStart = args.firstIndex { $0.hasPrefix("--") } ?? args.count
        let (_, opts) = try SlashOptions.parse(Array(args[optStart...]), defaultRatio: ratios.edit)
        guard optStart >= 2 else { throw EditError.invalid("usage: /edit PACK Entity: A -> B [--method m] [--ratio r]") }
        let pack = try packs[args[0]] ?? EditPack.open(args[0], shippedIn: ModelCard.beside(modelPath: session.engine.model.path).packsFolder)
        packs[args[0]] = pack
        let fixed = SlashOptions.fixesStrength(Array(args[optStart...]))
        let r = try session.edit(args[1..<optStart].joined(separator: " "), pack: pack, options: opts, strength: fixed ? .fixed : .search,
                                 allowNewEntity: allowNewEntity,
                                 recovery: args[optStart...].contains("--method") ? .none : .standard)
        if r.verdict != .applied { unverifiedEdits += 1 }
        return Self.describe(r.outcome, "\(r.entity): \(r.from) → \(r.to) with pack \(pack.name)")
            + r.prechecks.map { "\nwarning: \($0.message)" }.joined()
    }

    /// One line for a verified edit, forget or erasure: the verdict, the strength, the query's answers
    /// before and after, and the controls kept.
    static func describe(_ o: EditOutcome, _ what: String) -> String {
        let e = o.applied
        var reading = String(format: "P(%@) %.3f → %.3f", o.check.old, o.before.old.probability, o.after.old.probability)
        if let new = o.check.new, let b = o.before.new, let a = o.after.new {
            reading += String(format: ", P(%@) %.3f → %.3f", new, b.probability, a.probability)
        }
        let strength = String(format: "α = %.4f", e.alpha) + (e.ratio.map { String(format: ", ratio %.3g", $0) } ?? "")
        let controls = o.controls.isEmpty ? "" : ", \(o.controls.filter { $0.after.isTop1 }.count)/\(o.controls.count) controls kept"
        let head = o.verdict == .applied ? "applied" : "not applied (\(o.verdict.rawValue)\(o.kept ? "; kept" : "; the state is unchanged"))"
        return "\(head): \(what), \(e.methodDescription) \(strength) over \(e.heads.count) heads; "
            + reading + controls + (o.trials.count > 1 ? " (\(o.trials.count) strengths tried)" : "")
    }

    /// A sentence-form edit, forget or erasure: verified by the first loaded pack that describes the
    /// fact (strength searched unless `fixed`; a collateral search recovered unless a method was given,
    /// `recover` false), else applied as given and said to be unverified.
    mutating func sentenceEdit(_ what: String, fact: String, change: FactChange, options: EditOptions, fixed: Bool, recover: Bool,
                               unverified: () throws -> AppliedEdit) throws -> String {
        for name in packs.keys.sorted() {
            guard let pack = packs[name],
                  let o = try session.verifiedChange(of: fact, change, pack: pack, options: options,
                                                     strength: fixed ? .fixed : .search, recover: recover) else { continue }
            if o.verdict != .applied { unverifiedEdits += 1 }
            return Self.describe(o, what)
        }
        let e = try unverified()
        return "applied \(what) unverified (no loaded pack describes \"\(fact)\"; load one with --pack to measure it): "
            + String(format: "%@ α = %.4f over %d heads", e.method.rawValue, e.alpha, e.heads.count)
    }
}
