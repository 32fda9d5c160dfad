import ArgumentParser
import Foundation
import RWKVEdit

/// `bench edit`: verified edits by name on generated contexts — how often they reach `applied` by
/// kind of context — and what an edit costs, split into the pass before the edit (the probes and the
/// readings of the query and controls, one batch), the SVDs, the reading after it (the first trial) and
/// the strength search (the other trials), beside the time of decoding 10 tokens on the same model.
///
/// On a model with shipped packs (default: the demo model) each case is a context of 1–5 people built
/// from the packs' @probe sentences (names and values of the demo model's corpus), with no filler, two
/// sentences of the corpus's filler, or two invented ones, and with or without a second property per
/// person; one person's value is edited by name with the strength search. "3 in a row" makes three
/// edits in one conversation. `--synthetic` measures the cost on random weights (sentence edits; random
/// weights never verify, so every rung of the search runs: the worst case).
struct BenchEditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edit",
        abstract: "Measure verified edits by name: verdicts by kind of context, and ms per edit (probes and readings before, SVD, reading after, strength search) beside decoding 10 tokens.")

    @Option(name: .long, help: "Model with packs shipped beside it (default: models/demo.safetensors).")
    var model: String?

    @Option(name: .long, help: "Instead: random weights of released shapes, comma-separated (0.1b, 0.4b, 1.5b), for the cost only.")
    var synthetic: String?

    @Option(name: .long, help: "World vocabulary for --synthetic (default: a random one of 65,529 tokens).")
    var tokenizer: String?

    @Option(name: .long, help: "Cases per kind of context.")
    var cases = 6

    @Option(name: .long, help: "Random seed of the generated contexts.")
    var seed: UInt64 = 1

    @Option(name: .long, help: "CPU threads (default: all cores).")
    var threads: Int?

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard model == nil || synthetic == nil else { throw ValidationError("give at most one of --model or --synthetic") }
        guard cases >= 1 else { throw ValidationError("--cases must be at least 1") }
        if let threads { guard threads >= 1 else { throw ValidationError("--threads must be at least 1") } }
    }

    struct Cell: Encodable {
        var kind: String
        var people: Int
        var filler: String
        var otherProperty: Bool
        var applied = 0, weak = 0, collateral = 0, notRecalled = 0
        var edits: Int { applied + weak + collateral }
    }

    struct Cost: Encodable {
        var model: String
        var edits = 0
        /// The pass before the edit (probes and readings), the SVDs, the first trial, the other trials.
        var msBefore = 0.0, msSVD = 0.0, msAfter = 0.0, msSearch = 0.0
        var meanTrials = 0.0
        var msDecode10 = 0.0
        var msTotal: Double { msBefore + msSVD + msAfter + msSearch }
        var ratioToDecode10: Double { msDecode10 > 0 ? msTotal / msDecode10 : 0 }

        mutating func add(_ t: EditTiming, trials: Int) {
            edits += 1
            msBefore += (t.beforeSeconds + t.planPassSeconds) * 1e3; msSVD += t.svdSeconds * 1e3
            msAfter += (t.trialSeconds.first ?? 0) * 1e3; msSearch += t.searchSeconds * 1e3
            meanTrials += Double(trials)
        }

        /// Sums to means.
        func averaged() -> Cost {
            guard edits > 0 else { return self }
            var c = self
            let n = Double(edits)
            c.msBefore /= n; c.msSVD /= n; c.msAfter /= n; c.msSearch /= n; c.meanTrials /= n
            return c
        }

        enum CodingKeys: String, CodingKey { case model, edits, msBefore, msSvd, msAfter, msSearch, meanTrials, msDecode10, msTotal, ratioToDecode10 }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(model, forKey: .model); try c.encode(edits, forKey: .edits)
            try c.encode(msBefore, forKey: .msBefore); try c.encode(msSVD, forKey: .msSvd)
            try c.encode(msAfter, forKey: .msAfter); try c.encode(msSearch, forKey: .msSearch)
            try c.encode(meanTrials, forKey: .meanTrials); try c.encode(msDecode10, forKey: .msDecode10)
            try c.encode(msTotal, forKey: .msTotal); try c.encode(ratioToDecode10, forKey: .ratioToDecode10)
        }
    }

    struct Report: Encodable {
        var cells: [Cell] = []
        var costs: [Cost] = []
    }

    func run() throws {
        try reportingErrors {
            var report = Report()
            if let synthetic {
                for size in synthetic.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
                    report.costs.append(try syntheticCost(size))
                }
            } else {
                let bundle = try ModelBundle(modelPath: model ?? "models/demo.safetensors")
                let (cells, cost) = try demoCases(bundle)
                report.cells = cells
                report.costs = [cost]
            }
            if json {
                try printJSON(report)
            } else {
                printTable(report)
            }
        }
    }

    // MARK: Contexts on a model with packs

    /// Names of the demo model's corpus (tools/train-demo-model/corpus.py).
    static let names = ["Alice", "Bob", "Carol", "Dave", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Oscar", "Olivia",
                        "Peggy", "Victor", "Walter", "Wendy", "Anna", "Ben", "Clara", "Dan", "Emma", "Eric", "Fiona", "George",
                        "Hannah", "Harry", "Julia", "Jack", "Laura", "Leo", "Maria", "Mark", "Nina", "Nick", "Paula", "Owen"]
    /// Filler sentences of the corpus, and invented ones the model never saw.
    static let corpusFiller = ["The weather was mild that day.", "It was a quiet morning in the town.", "There is a small cafe near the station.",
                               "The river runs through the middle of the town.", "The market sells fresh bread and fruit.",
                               "It rained for most of the afternoon.", "The old clock in the square still works."]
    static let inventedFiller = ["My neighbour bought a new lamp last week.", "The soup needed a little more salt.",
                                 "A parcel arrived just before noon.", "The meeting on Tuesday ran long.",
                                 "Someone left an umbrella by the door.", "The printer jammed twice this morning."]

    /// One property the bench can state and ask: a shipped pack with @probe and @query.
    struct Property {
        let pack: EditPack
        let probe: String
        let values: [(name: String, surface: String)]
        func sentence(_ entity: String, _ value: (name: String, surface: String)) -> String {
            probe.replacingOccurrences(of: "{entity}", with: entity).replacingOccurrences(of: "{value}", with: value.surface)
        }
    }

    private func demoCases(_ bundle: ModelBundle) throws -> ([Cell], Cost) {
        let properties = try bundle.shippedPackPaths().compactMap { path -> Property? in
            let pack = try EditPack(path: path)
            guard pack.manifest.queryTemplate != nil, let probe = try? pack.probeTemplate() else { return nil }
            return Property(pack: pack, probe: probe, values: try pack.values())
        }
        guard properties.count >= 2 else {
            throw ValidationError("\(bundle.model.path): needs at least two shipped packs with @probe and @query (found \(properties.count))")
        }
        var rng = SplitMix64(seed: seed)
        // The forgets' and erasures' choices come from a stream of their own, so the edits' contexts are
        // those earlier versions of the bench generated for the same seed.
        var removalRng = SplitMix64(seed: seed ^ 0x9E37_79B9_7F4A_7C15)
        var cost = Cost(model: URL(fileURLWithPath: bundle.model.path).lastPathComponent)
        var cells: [Cell] = []
        let fillers: [(String, [String])] = [("none", []), ("corpus", Self.corpusFiller), ("invented", Self.inventedFiller)]
        for people in 1...5 {
            for (fillerName, filler) in fillers {
                for other in [false, true] {
                    var cell = Cell(kind: "one edit", people: people, filler: fillerName, otherProperty: other)
                    var removals = [Cell(kind: "forget", people: people, filler: fillerName, otherProperty: other),
                                    Cell(kind: "erase", people: people, filler: fillerName, otherProperty: other)]
                    for _ in 0..<cases {
                        let session = bundle.session(threads: threads)
                        let ctx = Self.context(people: people, properties: properties, filler: filler, otherProperty: other, rng: &rng)
                        try session.feed(ctx.text)
                        try edit(ctx, index: Int(rng.next() % UInt64(people)), session: session, cell: &cell, cost: &cost, rng: &rng)
                        for i in removals.indices {
                            let s = bundle.session(threads: threads)
                            try s.feed(ctx.text)
                            try remove(ctx.facts[Int(removalRng.next() % UInt64(people))], session: s, cell: &removals[i])
                        }
                    }
                    cells.append(cell)
                    cells += removals
                }
            }
        }
        // Three edits in a row in one conversation: four people, two properties each, corpus filler.
        var chain = Cell(kind: "3 in a row", people: 4, filler: "corpus", otherProperty: true)
        for _ in 0..<cases {
            let session = bundle.session(threads: threads)
            var ctx = Self.context(people: 4, properties: properties, filler: Self.corpusFiller, otherProperty: true, rng: &rng)
            try session.feed(ctx.text)
            for index in [0, 1, 2] {
                let newValue = try edit(ctx, index: index, session: session, cell: &chain, cost: &cost, rng: &rng)
                if let newValue { ctx.facts[index].value = newValue }
            }
        }
        cells.append(chain)
        // Decoding 10 tokens after a five-person context, on the same engine.
        let session = bundle.session(threads: threads)
        try session.feed(Self.context(people: 5, properties: properties, filler: [], otherProperty: true, rng: &rng).text)
        cost.msDecode10 = try decode10(session)
        return (cells, cost.averaged())
    }

    struct Fact { let name: String; let property: Property; var value: (name: String, surface: String) }
    struct Context { var text: String; var facts: [Fact] }

    static func context(people: Int, properties: [Property], filler: [String], otherProperty: Bool,
                        rng: inout SplitMix64) -> Context {
        let edited = properties[Int(rng.next() % UInt64(properties.count))]
        let others = properties.filter { $0.pack.path != edited.pack.path }
        let second = others[Int(rng.next() % UInt64(others.count))]
        let names = Array(Self.names.shuffled(using: &rng).prefix(people))
        let values = Array(edited.values.shuffled(using: &rng).prefix(people))
        let facts = zip(names, values).map { Fact(name: $0, property: edited, value: $1) }
        var sentences = facts.map { $0.property.sentence($0.name, $0.value) }
        if otherProperty {
            sentences += names.map { second.sentence($0, second.values[Int(rng.next() % UInt64(second.values.count))]) }
        }
        sentences.shuffle(using: &rng)
        for f in filler.shuffled(using: &rng).prefix(2) { sentences.insert(f, at: Int(rng.next() % UInt64(sentences.count + 1))) }
        return Context(text: sentences.joined(separator: " "), facts: facts)
    }

    /// Edits fact `index` of the context to a value no one in it holds; returns the new value when kept.
    @discardableResult
    private func edit(_ ctx: Context, index: Int, session: EditSession, cell: inout Cell, cost: inout Cost,
                      rng: inout SplitMix64) throws -> (name: String, surface: String)? {
        let fact = ctx.facts[index]
        let held = Set(ctx.facts.map(\.value.name))
        let candidates = fact.property.values.filter { !held.contains($0.name) }
        let new = candidates[Int(rng.next() % UInt64(candidates.count))]
        let r = try session.edit("\(fact.name): \(fact.value.name) -> \(new.name)", pack: fact.property.pack)
        if r.prechecks.contains(where: { if case .oldValueNotAnswered = $0 { return true }; return false }) {
            // The model does not answer the stated value: nothing of the context's to edit.
            if r.outcome.kept { _ = try session.undo() }
            cell.notRecalled += 1
            return nil
        }
        cost.add(r.outcome.timing, trials: r.outcome.trials.count)
        switch r.verdict {
        case .applied: cell.applied += 1; return new
        case .weak: cell.weak += 1
        case .collateral: cell.collateral += 1
        }
        return nil
    }

    /// Forgets (cell kind "forget") or erases ("erase") `fact` in its sentence form, verified with its
    /// pack's check and the strength searched, as the chat's /forget and /erase do.
    private func remove(_ fact: Fact, session: EditSession, cell: inout Cell) throws {
        let sentence = fact.property.sentence(fact.name, fact.value)
        let change: FactChange = cell.kind == "forget" ? .forget(entity: fact.name) : .erase
        guard let o = try session.verifiedChange(of: sentence, change, pack: fact.property.pack) else {
            throw ValidationError("\(fact.property.pack.path) does not describe \"\(sentence)\"")
        }
        if !o.before.old.isTop1 {
            // The model does not answer the stated value: nothing of the context's to remove.
            if o.kept { _ = try session.undo() }
            cell.notRecalled += 1
            return
        }
        switch o.verdict {
        case .applied: cell.applied += 1
        case .weak: cell.weak += 1
        case .collateral: cell.collateral += 1
        }
    }

    private func decode10(_ session: EditSession) throws -> Double {
        var best = Double.infinity
        for _ in 0..<3 {
            // A state of its own before the clock starts: a live conversation decodes in place.
            var s = session.state
            try s.overwrite(with: session.state)
            let t0 = DispatchTime.now().uptimeNanoseconds
            for token in 0..<10 { _ = try session.engine.step(33 + token, state: &s) }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        return best
    }

    // MARK: Random weights

    private func syntheticCost(_ size: String) throws -> Cost {
        guard let shape = SyntheticModel.Shape.named(size) else { throw ValidationError("unknown --synthetic \(size); use 0.1b, 0.4b or 1.5b") }
        if !json { FileHandle.standardError.write(Data("building random \(size) f16 weights…\n".utf8)) }
        let m = try SyntheticModel.model(shape, dtype: .f16)
        let tok = try tokenizer.map { try WorldTokenizer(vocabularyFile: $0) } ?? BenchIdentityCommand.randomVocabulary()
        let session = EditSession(engine: CPUEngine(model: m, threads: threads), tokenizer: tok)
        try session.feed("Alice lives in Paris. Bob lives in Austin. Carol lives in Rome.")
        var cost = Cost(model: "synthetic-\(size)")
        let check = EditCheck(query: "Where does Bob live? Bob lives in", old: "Austin", new: "Chicago",
                              controls: [ControlQuery(query: "Where does Alice live? Alice lives in", answer: "Paris"),
                                         ControlQuery(query: "Where does Carol live? Carol lives in", answer: "Rome")])
        for _ in 0..<cases {
            let o = try session.verifiedEdit(from: "Bob lives in Austin.", to: "Bob lives in Chicago.", check: check,
                                             options: EditOptions(ratio: session.ratios.edit))
            cost.add(o.timing, trials: o.trials.count)
        }
        cost.msDecode10 = try decode10(session)
        return cost.averaged()
    }

    // MARK: Output

    private func printTable(_ r: Report) {
        if !r.cells.isEmpty {
            let grids = [("one edit", "edits by name"), ("forget", "forgets (/forget: sentence form, checked by the pack)"),
                         ("erase", "erasures (/erase, likewise)")]
            for (kind, title) in grids {
                print("verdicts of \(title), strength searched, \(cases) cases per cell, seed \(seed): applied/tried (collateral; not recalled)")
                print("people  " + ["none", "corpus", "invented"].flatMap { f in [f, f + "+2nd"] }.map { $0.padding(toLength: 14, withPad: " ", startingAt: 0) }.joined())
                for people in 1...5 {
                    let row = r.cells.filter { $0.kind == kind && $0.people == people }
                    print("\(people)       " + row.map { c in
                        "\(c.applied)/\(c.edits) (\(c.collateral); \(c.notRecalled))".padding(toLength: 14, withPad: " ", startingAt: 0)
                    }.joined())
                }
                if kind == "one edit" {
                    for c in r.cells where c.kind == "3 in a row" {
                        print("\(c.kind) (\(c.people) people, \(c.filler) filler, 2 properties): \(c.applied)/\(c.edits) applied, \(c.collateral) collateral, \(c.notRecalled) not recalled")
                    }
                }
                let cellsOfKind = r.cells.filter { kind == "one edit" ? $0.kind == kind || $0.kind == "3 in a row" : $0.kind == kind }
                let all = cellsOfKind.reduce(into: (applied: 0, edits: 0, collateral: 0)) { $0.applied += $1.applied; $0.edits += $1.edits; $0.collateral += $1.collateral }
                print(String(format: "all: %d/%d applied (%.1f%%), %d collateral", all.applied, all.edits,
                             100 * Double(all.applied) / Double(max(1, all.edits)), all.collateral))
            }
        }
        print("cost per edit (mean ms; \(ProcessInfo.processInfo.activeProcessorCount) cores):")
        print("model                before      SVD    after   search   total  trials  decode 10 tok  ratio")
        for c in r.costs {
            print(c.model.padding(toLength: 18, withPad: " ", startingAt: 0)
                  + String(format: " %8.1f %8.1f %8.1f %8.1f %8.1f %7.2f %14.1f %6.2f", c.msBefore, c.msSVD, c.msAfter, c.msSearch,
                           c.msTotal, c.meanTrials, c.msDecode10, c.ratioToDecode10))
        }
    }
}
