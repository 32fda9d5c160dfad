import ArgumentParser
import Foundation
import RWKVEdit

/// `bench identity`: what naming a pack's model costs — computing a model's identity (config,
/// vocabulary digest, sampled weights) and checking a pack against a model (open the pack, then
/// `requireModel`), best of a few runs. The pack is a real file with an empty vocabulary, written to a
/// temporary folder and removed.
struct BenchIdentityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "identity",
        abstract: "Measure the model identity of packs: computing it for a model, and checking a pack against a model (ms).")

    @Option(name: .long, help: "Model file (default: random weights, see --synthetic).")
    var model: String?

    @Option(name: .long, help: "Random weights with a released shape: 0.1b, 0.4b or 1.5b. (default: 1.5b)")
    var synthetic: String?

    @Option(name: .long, help: "Weight type of the random weights: f16, bf16 or f32.")
    var dtype = "f16"

    @Option(name: .long, help: "World vocabulary (tokenizer) file (default: the model's own; random weights get a random one of 65,529 tokens).")
    var tokenizer: String?

    @Option(name: .long, help: "Timed runs of each measurement; the best is reported.")
    var runs = 5

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard model == nil || synthetic == nil else { throw ValidationError("give at most one of --model or --synthetic") }
        if let synthetic, SyntheticModel.Shape.named(synthetic) == nil { throw ValidationError("unknown --synthetic \(synthetic); use 0.1b, 0.4b or 1.5b") }
        guard SyntheticModel.dtype(named: dtype) != nil else { throw ValidationError("unknown --dtype \(dtype); use f16, bf16 or f32") }
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
    }

    struct Report: Encodable {
        var model: String
        var dtype: String
        var tensors: Int
        var sampledWeights: Int
        var vocabularyTokens: Int
        var manifestBytes: Int
        var runs: Int
        /// The first identity in the process: includes the page faults of the sampled weights.
        var msIdentityFirst: Double
        var msIdentity: Double
        var msVocabularyDigest: Double
        var msOpenPack: Double
        var msCheck: Double
    }

    func run() throws {
        try reportingErrors {
            let (m, tok, name) = try load()
            var report = Report(model: name, dtype: m.weightDType.rawValue, tensors: ModelIdentity.tensorNames(m.config).count,
                                sampledWeights: 0, vocabularyTokens: tok.count, manifestBytes: 0, runs: runs,
                                msIdentityFirst: 0, msIdentity: 0, msVocabularyDigest: 0, msOpenPack: 0, msCheck: 0)
            let t0 = DispatchTime.now().uptimeNanoseconds
            let identity = ModelIdentity(model: m, tokenizer: tok)
            report.msIdentityFirst = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            report.sampledWeights = identity.samples.count
            report.msIdentity = best { _ = ModelIdentity(model: m, tokenizer: tok) }
            report.msVocabularyDigest = best { _ = ModelIdentity.vocabularyDigest(tok.tokens) }

            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rwkv-edit-bench-identity-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let path = dir.appendingPathComponent("bench.rwkvpack").path
            report.manifestBytes = try writePack(path, model: m, identity: identity)
            report.msOpenPack = try best { _ = try EditPack(path: path) }
            let pack = try EditPack(path: path)
            report.msCheck = try best { try pack.requireModel(m, tokenizer: tok) }

            if json {
                try printJSON(report)
                return
            }
            print("model \(name) (\(report.dtype) weights, \(m.config.nLayer) layers, n_embd \(m.config.nEmbd)), vocabulary of \(tok.count) tokens, "
                  + "\(report.sampledWeights) sampled weights in \(report.tensors) tensors; best of \(runs) runs, \(ProcessInfo.processInfo.activeProcessorCount) cores")
            func row(_ label: String, _ ms: Double, _ note: String = "") {
                print(label.padding(toLength: 36, withPad: " ", startingAt: 0) + String(format: "%8.2f ms", ms) + note)
            }
            row("identity of the model", report.msIdentity,
                String(format: "  (vocabulary digest %.2f ms; first run %.2f ms)", report.msVocabularyDigest, report.msIdentityFirst))
            row("open a pack (manifest \(report.manifestBytes) bytes)", report.msOpenPack)
            row("check the pack against the model", report.msCheck)
        }
    }

    /// The model and tokenizer measured, and a name for the report.
    private func load() throws -> (RWKVModel, WorldTokenizer, String) {
        if let model {
            let mo = try ModelOptions.parse(["--model", model] + (tokenizer.map { ["--vocab", $0] } ?? []))
            let m = try mo.loadModel()
            return (m, try mo.tokenizer(for: m), URL(fileURLWithPath: model).lastPathComponent)
        }
        let size = synthetic ?? "1.5b"
        guard let shape = SyntheticModel.Shape.named(size) else { throw ValidationError("unknown --synthetic \(size); use 0.1b, 0.4b or 1.5b") }
        guard let dt = SyntheticModel.dtype(named: dtype) else { throw ValidationError("unknown --dtype \(dtype); use f16, bf16 or f32") }
        if !json { FileHandle.standardError.write(Data("building random \(size) \(dtype) weights…\n".utf8)) }
        let m = try SyntheticModel.model(shape, dtype: dt)
        let tok = try tokenizer.map { try WorldTokenizer(vocabularyFile: $0) } ?? Self.randomVocabulary()
        return (m, tok, "synthetic-\(size)")
    }

    /// A World-sized vocabulary: the 256 single bytes, then 65,273 random byte strings of 2–12 bytes
    /// (≈ 0.5 MB of token bytes, like rwkv_vocab_v20230424).
    static func randomVocabulary() -> WorldTokenizer {
        var rng = SplitMix64(seed: 11)
        var tokens: [[UInt8]] = [[]] + (0..<256).map { [UInt8($0)] }
        while tokens.count < 65530 {
            let n = 2 + Int(rng.next() % 11)
            tokens.append((0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        }
        return WorldTokenizer(tokens: tokens)
    }

    /// Milliseconds of the fastest of `runs` calls.
    private func best(_ body: () throws -> Void) rethrows -> Double {
        var out = Double.infinity
        for _ in 0..<runs {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            out = min(out, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        return out
    }

    /// A pack of two values and no entries (a staged one: opening it reads the manifest and the vocabulary,
    /// as for any pack) whose manifest names `identity`; returns the manifest's size in bytes.
    private func writePack(_ path: String, model m: RWKVModel, identity: ModelIdentity) throws -> Int {
        let c = m.config
        let values = [(name: "a", surface: "a"), (name: "b", surface: "b")]
        let manifest = PackManifest(
            schemaVersion: PackSchema.version, name: "bench-identity", template: "The answer is {value}.",
            model: .init(file: URL(fileURLWithPath: m.path).lastPathComponent, identity: identity),
            values: .init(values), layers: [c.nLayer - 1, c.nLayer - 1], nHead: c.nHead, headSize: c.headSize, dtype: .f16,
            compile: .init(batchSize: 1, pairs: "none", engine: "none", tool: "rwkv-edit bench identity"),
            createdAt: ISO8601DateFormatter().string(from: Date()))
        let text = manifest.json()
        let db = try SQLiteDB(path: path, readOnly: false)
        try db.exec("PRAGMA journal_mode = DELETE")
        try db.transaction {
            try db.exec(PackSchema.sql)
            try db.query("INSERT INTO meta (key, value) VALUES ('schema_version', ?), ('status', ?), ('manifest', ?)",
                         [.text(String(PackSchema.version)), .text(PackStatus.staged.rawValue), .text(text)])
            for (i, v) in values.enumerated() {
                try db.query("INSERT INTO vocab (name, surface, ord) VALUES (?, ?, ?)", [.text(v.name), .text(v.surface), .int(Int64(i))])
            }
        }
        return text.utf8.count
    }
}
