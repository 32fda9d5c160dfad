import ArgumentParser
import PackCompiler
import RWKVEdit
import Foundation

struct PacksCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "packs",
        abstract: "List, inspect, verify and merge edit packs.",
        subcommands: [List.self, Inspect.self, Verify.self, Merge.self, Eval.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a pack's entries (or, for several packs, one line each).")
        @Argument(help: "Pack files.") var packs: [String]
        @Flag(name: .long, help: "Print JSON.") var json = false

        /// One pack in `packs list --json`: everything a script needs to choose and drive it.
        struct Row: Encodable {
            struct Value: Encodable { let name, surface: String }
            let file, name, status, template, dtype: String
            let property, probe, query: String?
            let templates: [String]
            let layers: [Int]
            let values: [Value]
            let pairs: Int
        }
        struct Many: Encodable { let packs: [Row] }

        func run() throws {
            try reportingErrors {
                var out: [Row] = []
                var seen: [String: String] = [:]
                for path in packs {
                    let p = try EditPack(path: path)
                    let vs = try p.values()
                    let c = try p.counts()
                    let m = p.manifest
                    if let other = seen[p.name] {
                        FileHandle.standardError.write(Data("warning: \(path) and \(other) are both named '\(p.name)'; `/edit \(p.name) …` takes the last one loaded (compile with --name to tell them apart)\n".utf8))
                    }
                    seen[p.name] = path
                    out.append(Row(file: path, name: p.name, status: p.status.rawValue, template: m.template, dtype: m.dtype.rawValue,
                                   property: m.property, probe: m.probeTemplate, query: m.queryTemplate, templates: m.templates ?? [m.template],
                                   layers: m.layers, values: vs.map { Row.Value(name: $0.name, surface: $0.surface) }, pairs: c["pair_entries"] ?? 0))
                    if !json {
                        print("\(path): \(p.name) [\(p.status.rawValue)] \(vs.count) values, \(c["pair_entries"] ?? 0) pairs, template \"\(m.template)\", layers \(m.layers[0])-\(m.layers[1]), \(m.dtype.rawValue)")
                        if packs.count == 1 {
                            let shown: [String] = vs.map { v in v.name == v.surface ? v.name : "\(v.name) = \(v.surface)" }
                            print(shown.joined(separator: ", "))
                        }
                    }
                }
                if json {
                    if packs.count == 1 { try printJSON(out[0]) } else { try printJSON(Many(packs: out)) }
                }
            }
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a pack's manifest, sizes, per-layer σ heat and composed-vs-pair cosines.")
        @Argument(help: "Pack file.") var pack: String
        @Option(name: .long, help: "Also write the σ heat map (layers × heads) as an SVG file.") var svg: String?
        @Option(name: .long, help: "The model the pack is for: checks the pack against it and lists values whose answers begin with the same token.") var model: String?
        @Option(name: .long, help: "World vocabulary (tokenizer) file for --model.") var tokenizer: String?
        @Flag(name: .long, help: "Print JSON.") var json = false

        /// `--json`: the manifest, row counts and size; for a finished pack also the storage per value and
        /// pair, the σ heat map (layers × heads) and, with pair entries, the composed-vs-pair cosines;
        /// with --model, the groups of values sharing a first token.
        struct Report: Encodable {
            struct Cosine: Encodable { let pairs: Int; let mean: Double; let perLayer: [[Double]] }
            struct Shared: Encodable { let token: String; let values: [String] }
            let file, status: String
            let counts: [String: Int]
            let manifest: PackManifest
            let fileBytes: Int
            var bytesPerValue, bytesPerPair: Double?
            var sigmaHeat: [[Double]]?
            var svg: String?
            var composedVsPairCosine: Cosine?
            var sharedFirstToken: [Shared]?
        }

        func run() throws {
            try reportingErrors {
                let p = try EditPack(path: pack)
                let m = p.manifest
                let c = try p.counts()
                let size = (try? FileManager.default.attributesOfItem(atPath: pack)[.size] as? Int) ?? 0
                var report = Report(file: pack, status: p.status.rawValue, counts: c, manifest: m, fileBytes: size)
                var shared: [SharedFirstToken]?
                if let (model, tok) = try loadModel(model, tokenizer: tokenizer) {
                    try p.requireModel(model, tokenizer: tok)
                    shared = SharedFirstToken.groups(try p.values(), tokenizer: tok)
                    report.sharedFirstToken = shared?.map { Report.Shared(token: $0.token, values: $0.values) }
                }
                if !json {
                    print("\(pack): pack '\(m.name)'\(m.property.map { " (\($0))" } ?? ""), schema \(m.schemaVersion), \(p.status.rawValue), \(size) bytes")
                    let id = m.model.identity
                    print("model \(m.model.file): \(m.model.nLayer) layers × \(m.nHead) heads of \(m.headSize), vocab \(m.model.vocabSize); identity v\(id.version): vocabulary SHA-256 \(id.vocabSha256.prefix(12))…, \(id.samples.count) sampled weights")
                    print("template \"\(m.template)\"  probe \(m.probeTemplate.map { "\"\($0)\"" } ?? "none")  layers \(m.layers[0])-\(m.layers[1])  dtype \(m.dtype.rawValue)  created \(m.createdAt)")
                    print("rows: \(c.keys.sorted().map { "\($0) \(c[$0] ?? 0)" }.joined(separator: ", "))")
                    switch shared {
                    case nil: print("(give --model to list the values whose answers begin with the same token)")
                    case let groups? where groups.isEmpty: print("compiled for \(model ?? ""); no two values' answers begin with the same token")
                    case let groups?: print("compiled for \(model ?? ""); " + groups.map(\.warning).joined(separator: "\n"))
                    }
                }
                guard p.status == .complete else {
                    if json { try printJSON(report) } else { print("(unfinished compile: no entries to inspect yet)") }
                    return
                }
                let bytes = try p.storedBytes()
                let nv = max(c["vocab"] ?? 1, 1)
                let perValue = Double(bytes.vocab) / Double(nv)
                let perPair = (c["pair_entries"] ?? 0) > 0 ? Double(bytes.pairs) / Double(c["pair_entries"] ?? 1) : 0
                report.bytesPerValue = perValue
                report.bytesPerPair = perPair
                let heat = try p.sigmaHeat()
                report.sigmaHeat = heat
                if let svg {
                    try heatSVG(heat, firstLayer: m.layers[0], title: "\(m.name): mean σ per head").write(toFile: svg, atomically: true, encoding: .utf8)
                    report.svg = svg
                }
                let cos = try p.composedVsPairCosine()
                if cos.pairs > 0 {
                    report.composedVsPairCosine = Report.Cosine(
                        pairs: cos.pairs, mean: cos.perHead.values.reduce(0, +) / Double(max(cos.perHead.count, 1)),
                        perLayer: heat.indices.map { l in (0..<m.nHead).map { h in cos.perHead[HeadIndex(layer: m.layers[0] + l, head: h)] ?? 0 } })
                }
                if json { try printJSON(report); return }
                print(String(format: "storage: %.0f bytes per value, %.0f bytes per pair (compressed)", perValue, perPair))
                let mx = heat.flatMap { $0 }.max() ?? 1
                let shades = Array(" ░▒▓█")
                print("mean σ per head (‖σ_X u_X‖ over values; shade relative to max \(String(format: "%.3g", mx))):")
                print("layer  " + (0..<m.nHead).map { h -> String in let t = "h\(h)"; return String(repeating: " ", count: max(0, 8 - t.count)) + t }.joined())
                for (l, row) in heat.enumerated() {
                    let cells = row.map { v -> String in
                        let s = shades[min(shades.count - 1, Int((v / max(mx, 1e-30)) * Double(shades.count - 1) + 0.5))]
                        return String(format: "%7.3g", v) + String(s)
                    }
                    print(String(format: "%5d  ", m.layers[0] + l) + cells.joined())
                }
                if cos.pairs > 0 {
                    print("composed vs pair u₁, mean |cos| over \(cos.pairs) pairs:")
                    for l in heat.indices {
                        let row = (0..<m.nHead).map { String(format: "%8.3f", cos.perHead[HeadIndex(layer: m.layers[0] + l, head: $0)] ?? 0) }
                        print(String(format: "%5d  ", m.layers[0] + l) + row.joined())
                    }
                }
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check every row: tables consistent, each blob matching its checksum for its place, its shape and finite numbers (and, with --model, that the packs were compiled for that model).")
        @Argument(help: "Pack files.") var packs: [String]
        @Option(name: .long, help: "Also check the packs were compiled for this model.") var model: String?
        @Option(name: .long, help: "World vocabulary (tokenizer) file for --model.") var tokenizer: String?
        @Flag(name: .long, help: "Print JSON.") var json = false

        /// `--json`: {"packs": [one row per pack]}.
        struct Row: Encodable { let file: String; let blobs: Int; let ok, modelChecked: Bool }
        struct Report: Encodable { let packs: [Row] }

        func run() throws {
            try reportingErrors {
                let loaded = try loadModel(model, tokenizer: tokenizer)
                var out: [Row] = []
                for path in packs {
                    let p = try EditPack(path: path)
                    let n = try p.verify()
                    if let (m, t) = loaded { try p.requireModel(m, tokenizer: t) }
                    out.append(Row(file: path, blobs: n, ok: true, modelChecked: loaded != nil))
                    if !json { print("\(path): ok, \(n) blobs verified\(loaded != nil ? ", compiled for this model" : "")") }
                }
                if json { try printJSON(Report(packs: out)) }
            }
        }
    }

    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Merge the shards of one compile (--shard i/n) into a finished pack.")
        @Argument(help: "Shard files.") var shards: [String]
        @Option(name: .shortAndLong, help: "Output pack file.") var output: String
        @Flag(name: .long, help: "Print JSON.") var json = false

        /// `--json`: the finished pack and what merging it cost.
        struct Report: Encodable {
            let output, status: String
            let pairs: Int
            let bytesPerValue, secondsSvd, secondsStorage: Double
        }

        func run() throws {
            try reportingErrors {
                let r = try PackCompiler.merge(shards: shards, output: output)
                if json {
                    try printJSON(Report(output: r.path, status: r.status.rawValue, pairs: r.pairCount, bytesPerValue: r.bytesPerValue ?? 0,
                                         secondsSvd: r.svdSeconds, secondsStorage: r.storageSeconds))
                } else {
                    print("\(r.path): \(r.status.rawValue) (\(shards.count) shards merged, \(r.pairCount) pairs)")
                }
            }
        }
    }

    struct Eval: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Edit success of a pack on generated k-entity contexts, direct pair u₁ against composed u₁ (same contexts).")
        @Argument(help: "Pack file.") var pack: String
        @Option(name: .long, help: "Model file.") var model: String
        @Option(name: .long, help: "World vocabulary (tokenizer) file.") var tokenizer: String?
        @Option(name: .long, help: "CPU threads.") var threads: Int?
        @Option(name: .long, help: "Entity names, one per line.") var names = "prompts/names.txt"
        @Option(name: .long, help: "Entities per context (repeatable).") var entities: [Int] = [2, 5]
        @Option(name: .long, help: "Contexts per entity count.") var contexts = 20
        @Option(name: .long, help: "Random seed.") var seed: UInt64 = 1
        @Option(name: .long, help: "Edit ratio (default: the model's edit_ratio from <model>.json, else 0.20).") var ratio: Float?
        @Option(name: .long, help: "Query template with {entity} (default: the pack's @query, else the probe template up to {value}).") var query: String?
        @Flag(name: .long, help: "Also run the free-form edit (zero-state calibration of the probe sentences) as a reference.") var free = false
        @Flag(name: .long, help: "Print JSON.") var json = false

        /// `--json`: the templates and ratio used, and per entity count and u₁ source the rates over the contexts.
        struct Report: Encodable {
            struct Result: Encodable {
                let entities: Int
                let source: String
                let contexts: Int
                let targetTop1Before, flippedTop1, pNewGtPOld, controlsKept: Double
                let controlsCounted: Int
            }
            let pack, queryTemplate, probeTemplate: String
            let ratio: Double
            let results: [Result]
        }

        func run() throws {
            try reportingErrors {
                let p = try EditPack(path: pack)
                let mo = try ModelOptions.parse(["--model", model] + (tokenizer.map { ["--vocab", $0] } ?? []) + (threads.map { ["--threads", String($0)] } ?? []))
                let m = try mo.loadModel()
                let tok = try mo.tokenizer(for: m)
                try p.requireModel(m, tokenizer: tok)
                let engine = mo.engine(m)
                let editRatio = try ratio ?? mo.card().ratios.edit
                let probe = try p.probeTemplate()
                let queryTemplate = query ?? p.manifest.queryTemplate ?? String(probe[..<(probe.range(of: "{value}")?.lowerBound ?? probe.endIndex)]).trimmingCharacters(in: .whitespaces)
                let people = try Vocabulary.load(path: names).values.map(\.name)
                let values = try p.values()
                guard people.count >= (entities.max() ?? 2), values.count >= 2 else { throw PackError.invalidInput("too few names or values for the contexts asked") }
                // u₁ sources: the pack's pair entry, one composed from vocabulary entries, and (for reference)
                // the free-form edit, whose zero-state calibration runs the two probe sentences themselves.
                let sources: [String] = (try p.pairCount() > 0 ? ["pair"] : []) + ["composed"] + (free ? ["free-form"] : [])
                var rng = RWKVEdit.SplitMix64(seed: seed)
                var rows: [Report.Result] = []
                for k in entities {
                    var stats: [String: (base: Int, flip: Int, pnew: Int, ctrlKept: Int, ctrlBase: Int)] = [:]
                    for _ in 0..<contexts {
                        let who = rng.sample(people, k)
                        let what = (0..<k).map { _ in values[Int(rng.next() % UInt64(values.count))] }
                        let t = Int(rng.next() % UInt64(k))
                        var newValue = values[Int(rng.next() % UInt64(values.count))]
                        while newValue.name == what[t].name { newValue = values[Int(rng.next() % UInt64(values.count))] }
                        let context = zip(who, what).map { fillTemplate(probe, value: $0.1.surface, entity: $0.0) }.joined(separator: " ")
                        for source in sources {
                            let session = EditSession(engine: engine, tokenizer: tok)
                            try session.feed(context)
                            let q = fillTemplate(queryTemplate, value: "", entity: who[t])
                            let before = try session.score(query: q, answer: what[t].surface)
                            let ctrls = (0..<k).filter { $0 != t }
                            let ctrlBefore = try ctrls.map { try session.score(query: fillTemplate(queryTemplate, value: "", entity: who[$0]), answer: what[$0].surface).isTop1 }
                            if source == "free-form" {
                                try session.edit(from: fillTemplate(probe, value: what[t].surface, entity: who[t]),
                                                 to: fillTemplate(probe, value: newValue.surface, entity: who[t]),
                                                 options: EditOptions(ratio: editRatio, layers: p.manifest.layerRange))
                            } else {
                                try session.edit(pack: p, entity: who[t], from: what[t].name, to: newValue.name,
                                                 options: EditOptions(ratio: editRatio), preferComposed: source == "composed")
                            }
                            let afterNew = try session.score(query: q, answer: newValue.surface)
                            let afterOld = try session.score(query: q, answer: what[t].surface)
                            let ctrlAfter = try ctrls.map { try session.score(query: fillTemplate(queryTemplate, value: "", entity: who[$0]), answer: what[$0].surface).isTop1 }
                            var s = stats[source] ?? (0, 0, 0, 0, 0)
                            s.base += before.isTop1 ? 1 : 0
                            s.flip += afterNew.isTop1 ? 1 : 0
                            s.pnew += afterNew.probability > afterOld.probability ? 1 : 0
                            for (b, a) in zip(ctrlBefore, ctrlAfter) where b { s.ctrlBase += 1; s.ctrlKept += a ? 1 : 0 }
                            stats[source] = s
                        }
                    }
                    for source in sources {
                        guard let s = stats[source] else { continue }
                        rows.append(Report.Result(entities: k, source: source, contexts: contexts,
                                                  targetTop1Before: Double(s.base) / Double(contexts),
                                                  flippedTop1: Double(s.flip) / Double(contexts),
                                                  pNewGtPOld: Double(s.pnew) / Double(contexts),
                                                  controlsKept: s.ctrlBase > 0 ? Double(s.ctrlKept) / Double(s.ctrlBase) : 1,
                                                  controlsCounted: s.ctrlBase))
                    }
                }
                if json {
                    try printJSON(Report(pack: pack, queryTemplate: queryTemplate, probeTemplate: probe, ratio: Double(editRatio), results: rows))
                    return
                }
                print("pack \(p.name): contexts from \"\(probe)\", query \"\(queryTemplate)\", ratio \(editRatio), \(contexts) contexts each")
                print("entities  u₁ source   old top-1 before  new top-1 after  P(new)>P(old) after  controls kept (top-1)")
                for r in rows {
                    let src = r.source.padding(toLength: 10, withPad: " ", startingAt: 0)
                    print(String(format: "%8d  ", r.entities) + src + String(format: "  %16.2f  %15.2f  %19.2f  %10.2f of %d",
                                 r.targetTop1Before, r.flippedTop1, r.pNewGtPOld, r.controlsKept, r.controlsCounted))
                }
            }
        }
    }
}

extension RWKVEdit.SplitMix64 {
    /// k distinct elements of xs, in draw order.
    mutating func sample<T>(_ xs: [T], _ k: Int) -> [T] {
        var pool = xs
        var out: [T] = []
        for _ in 0..<min(k, pool.count) { out.append(pool.remove(at: Int(next() % UInt64(pool.count)))) }
        return out
    }
}

/// A layers × heads heat map as a small standalone SVG (darker = larger).
func heatSVG(_ heat: [[Double]], firstLayer: Int, title: String) -> String {
    let cell = 36, left = 70, top = 40
    let rows = heat.count, cols = heat.first?.count ?? 0
    let mx = max(heat.flatMap { $0 }.max() ?? 1, 1e-30)
    var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(left + cols * cell + 20)\" height=\"\(top + rows * cell + 30)\" font-family=\"monospace\" font-size=\"11\">\n"
    let esc = title.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
    out += "<text x=\"10\" y=\"20\" font-size=\"13\">\(esc)</text>\n"
    for h in 0..<cols { out += "<text x=\"\(left + h * cell + 8)\" y=\"\(top - 4)\">h\(h)</text>\n" }
    for (l, row) in heat.enumerated() {
        out += "<text x=\"10\" y=\"\(top + l * cell + 22)\">layer \(firstLayer + l)</text>\n"
        for (h, v) in row.enumerated() {
            let shade = Int(255 - 200 * (v / mx))
            out += "<rect x=\"\(left + h * cell)\" y=\"\(top + l * cell)\" width=\"\(cell - 2)\" height=\"\(cell - 2)\" fill=\"rgb(\(shade),\(shade),255)\"><title>layer \(firstLayer + l) head \(h): \(String(format: "%.4g", v))</title></rect>\n"
        }
    }
    return out + "</svg>\n"
}

/// The model and tokenizer of a `--model` (and `--tokenizer`) option of the packs commands, found the
/// way every command finds them; nil without --model.
private func loadModel(_ model: String?, tokenizer: String?) throws -> (RWKVModel, WorldTokenizer)? {
    guard let model else { return nil }
    let options = try ModelOptions.parse(["--model", model] + (tokenizer.map { ["--vocab", $0] } ?? []))
    let m = try options.loadModel()
    return (m, try options.tokenizer(for: m))
}
