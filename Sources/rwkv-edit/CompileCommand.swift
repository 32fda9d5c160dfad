import ArgumentParser
import RWKVEdit
import PackCompiler
import Foundation

struct CompileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compile",
        abstract: "Compile a vocabulary of values into an edit pack for a model (resumable: re-run to continue).")

    @Option(name: .long, help: "Model file (.pth, .safetensors or .gguf).")
    var model: String?

    @Option(name: .long, help: "Instead of --model, a random-weight model of a released shape (0.1b, 0.4b, 1.5b; f16) for benchmarks; needs --tokenizer.")
    var synthetic: String?

    @Option(name: .long, help: "World vocabulary (tokenizer) file (default: the model's own, or <model>-vocab.txt beside it).")
    var tokenizer: String?

    @Option(name: .long, help: "CPU threads (default: all cores).")
    var threads: Int?

    @Option(name: .long, help: "Engine: cpu, vulkan or auto (as for the other commands).")
    var backend: Backend = .auto

    @Option(name: .long, help: "Values file (prompts/*.txt: one value per line, `name = surface` aliases, @template/@probe directives).")
    var values: String?

    @Option(name: .long, help: ArgumentHelp("Deprecated spelling of --values (elsewhere --vocab is the tokenizer).", visibility: .hidden))
    var vocab: String?

    @Option(name: .long, help: "The pack's name, used by `/edit NAME` and `packs list` (default: the values file's name).")
    var name: String?

    @Option(name: .long, help: "Refuse a values file with more values than this.")
    var maxValues = 100_000

    @Option(name: .long, help: "Calibration template with {value} (repeatable: states are averaged over the templates; default: the file's @template lines, else \"The answer is {value}.\").")
    var template: [String] = []

    @Option(name: .long, help: "Probe sentence form with {entity} and {value} stored for the runtime (default: the file's @probe).")
    var probe: String?

    @Option(name: .long, help: "Entity filling {entity} in the calibration template, if it has one.")
    var entity = "Alex"

    @Option(name: .long, help: "Pair entries: 'all' (every unordered pair) or a file of 'A -> B' lines (default: none).")
    var pairs: String?

    @Option(name: .long, help: "Layers, 'a-b' inclusive (default: the upper half).")
    var layers: String?

    @Option(name: .long, help: "Vector storage: f16 (default), f32 or int8 (+per-vector scale).")
    var dtype = "f16"

    @Option(name: .long, help: "Values per engine call (each value runs once per template in the same call).")
    var batch = 8

    @Option(name: .long, help: "Compile only shard i of n ('i/n', 1-based); merge the shards with `rwkv-edit packs merge`.")
    var shard: String?

    @Option(name: .shortAndLong, help: "Output pack file.")
    var output: String

    @Flag(name: .long, help: "Replace an existing finished output (e.g. a pack for an older export of the model), and start over from a work file that cannot be resumed.")
    var force = false

    @Flag(name: .long, help: "No progress; print one JSON object.")
    var json = false

    func validate() throws {
        guard (model == nil) != (synthetic == nil) else { throw ValidationError("give exactly one of --model or --synthetic") }
        guard values != nil || vocab != nil else { throw ValidationError("give the values file with --values") }
        guard maxValues > 0 else { throw ValidationError("--max-values must be > 0") }
        guard batch > 0 else { throw ValidationError("--batch must be > 0") }
        if let name { guard !name.isEmpty, !name.contains("/") else { throw ValidationError("--name must be a non-empty name without '/'") } }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: output, isDirectory: &isDirectory), isDirectory.boolValue {
            throw ValidationError("-o \(output) is a directory; give the pack's file name, e.g. \(output)/cities.rwkvpack")
        }
    }

    func run() throws {
        try reportingErrors {
            let valuesPath: String
            if let values { valuesPath = values } else {
                valuesPath = vocab ?? ""
                FileHandle.standardError.write(Data("warning: `compile --vocab FILE` is deprecated: use --values FILE (--vocab names the tokenizer in every other command)\n".utf8))
            }
            if WorldTokenizer.looksLikeVocabularyFile(valuesPath) {
                throw PackError.invalidInput("\(valuesPath) looks like a World tokenizer vocabulary (lines of 'id text length'), not a values file; a values file has one value per line (prompts/cities.txt). Pass a tokenizer with --tokenizer")
            }
            var vocabulary = try Vocabulary.load(path: valuesPath)
            if let name { vocabulary.name = name }
            guard vocabulary.values.count <= maxValues else {
                throw PackError.invalidInput("\(valuesPath) holds \(vocabulary.values.count) values, more than --max-values \(maxValues); raise --max-values if that is intended")
            }
            var o = CompileOptions()
            if let first = template.first {
                o.template = first
                o.extraTemplates = Array(template.dropFirst())
            } else {
                o.useTemplates(of: vocabulary)
            }
            o.probeTemplate = probe
            o.entity = entity
            if let layers { o.layers = try EditOptions.parseLayers(layers) }
            guard let d = StorageDType(rawValue: dtype) else { throw PackError.invalidInput("--dtype must be f16, f32 or int8, got '\(dtype)'") }
            o.dtype = d
            o.batchSize = batch
            o.overwrite = force
            if let pairs {
                if pairs == "all" { o.allPairs = true } else {
                    guard let data = FileManager.default.contents(atPath: pairs) else { throw PackError.invalidInput("cannot read pairs file \(pairs)") }
                    o.pairs = try Vocabulary.parsePairs(String(decoding: data, as: UTF8.self), file: pairs)
                }
            }
            if let shard {
                let parts = shard.split(separator: "/").map { Int($0) }
                guard parts.count == 2, let i = parts[0], let n = parts[1] else { throw PackError.invalidInput("--shard must be 'i/n', got '\(shard)'") }
                o.shard = (i, n)
            }
            let t0 = Date()
            let (mo, m, _) = try compileModel(model: model, synthetic: synthetic, tokenizer: tokenizer, threads: threads,
                                              backend: backend, announce: false)
            let tok = try mo.tokenizer(for: m)
            let compiler = PackCompiler(engine: mo.engine(m), tokenizer: tok)
            let tty = isatty(fileno(stderr)) != 0 && !json
            if !json {
                // Verdicts read an answer's first token: values that share one cannot be told apart by top-1.
                for group in SharedFirstToken.groups(vocabulary.values, tokenizer: tok) {
                    FileHandle.standardError.write(Data("warning: \(group.warning)\n".utf8))
                }
                // What the pack will hold, before hours of work: one u vector per value and edited head.
                let c = m.config, layers = o.layers ?? c.upperHalfLayers
                let element = switch d { case .f32: 4; case .f16: 2; case .int8: 1 }
                let bytes = Double(vocabulary.values.count * layers.count * c.nHead * c.headSize * element)
                let work = PackCompiler.workEstimate(values: vocabulary.values.count, config: c, layers: layers,
                                                     threads: threads ?? ProcessInfo.processInfo.activeProcessorCount)
                FileHandle.standardError.write(Data(("compiling \(vocabulary.values.count) values × \(1 + o.extraTemplates.count) templates over layers \(layers.lowerBound)-\(layers.upperBound) × \(c.nHead) heads: "
                    + String(format: "about %.1f MB of vectors before compression; needs a work file of up to %.1f MB beside the output (removed when the pack is finished) and about %.1f MB of memory",
                             bytes / 1e6, Double(work.workFileBytes) / 1e6, Double(work.memoryBytes) / 1e6) + "\n").utf8))
                let folder = URL(fileURLWithPath: output).deletingLastPathComponent().path
                if let free = (try? FileManager.default.attributesOfFileSystem(forPath: folder))?[.systemFreeSize] as? Int, free < work.workFileBytes {
                    FileHandle.standardError.write(Data(("warning: \(folder) has " + String(format: "%.1f MB free, less than the work file's %.1f MB", Double(free) / 1e6, Double(work.workFileBytes) / 1e6)
                        + "; the compile will stop with \"disk is full\" (run it again with more room: it resumes where it stopped)\n").utf8))
                }
            }
            var lastLine = Date()
            let r = try compiler.compile(vocabulary: vocabulary, options: o, output: output) { p in
                guard tty else {
                    // Piped: a plain line every few seconds, so a log shows that work goes on.
                    guard !json, Date().timeIntervalSince(lastLine) >= 5 else { return }
                    lastLine = Date()
                    let eta = p.etaSeconds.isFinite ? String(format: "%.0fs", p.etaSeconds) : "?"
                    FileHandle.standardError.write(Data("\(p.done)/\(p.total) values, \(String(format: "%.1f", p.valuesPerSecond)) values/s, ETA \(eta)\n".utf8))
                    return
                }
                let width = 30, filled = p.total > 0 ? width * p.done / p.total : width
                let eta = p.etaSeconds.isFinite ? String(format: "%.0fs", p.etaSeconds) : "?"
                let line = "\r[\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] \(p.done)/\(p.total) values  \(String(format: "%.1f", p.valuesPerSecond)) values/s  ETA \(eta)   "
                FileHandle.standardError.write(Data(line.utf8))
            }
            if tty { FileHandle.standardError.write(Data("\n".utf8)) }
            var report = CompileReport(r)
            report.secondsTotal = Date().timeIntervalSince(t0)
            report.dtype = d.rawValue
            if json { try printJSON(report); return }
            print("\(r.path): \(r.status.rawValue); \(r.valuesCompiled) values compiled, \(r.valuesSkipped) already done")
            if r.valuesCompiled == 0 && r.status == .complete && r.bytesPerValue == nil {
                print("nothing to do: the pack is finished and was compiled for this model with these settings")
                return
            }
            print(String(format: "time: engine %.2fs, SVD %.2fs, storage %.2fs (%.1f values/s; engine only %.1f values/s)",
                         r.engineSeconds, r.svdSeconds, r.storageSeconds, r.valuesPerSecond, r.valuesPerSecondEngineOnly))
            if let b = r.bytesPerValue {
                print("\(d.rawValue) vocabulary entries: " + String(format: "%.0f bytes per value (compressed)", b)
                      + (r.storageCosine.map { String(format: "; cosine to f32 min %.6f, mean %.6f", $0.min, $0.mean) } ?? ""))
            }
            if let c = r.composedCosine {
                print(String(format: "composed vs pair u₁: mean |cos| %.4f over %d pairs × %d heads", report.composedVsPairCosineMean ?? 0, r.pairCount, c.count))
            }
        }
    }
}


/// The model a compile runs on: a file, or random f16 weights of a released shape (0.1b, 0.4b, 1.5b),
/// which need a tokenizer file; with the options that load its tokenizer and build its engine, and a name.
func compileModel(model: String?, synthetic: String?, tokenizer: String?, threads: Int?, backend: Backend,
                  announce: Bool) throws -> (options: ModelOptions, model: RWKVModel, name: String) {
    var args = ["--model", model ?? "synthetic", "--backend", backend.rawValue]
    if let tokenizer { args += ["--vocab", tokenizer] }
    if let threads { args += ["--threads", String(threads)] }
    let options = try ModelOptions.parse(args)
    guard let synthetic else {
        let path = options.model
        return (options, try options.loadModel(), URL(fileURLWithPath: path).lastPathComponent)
    }
    guard let shape = SyntheticModel.Shape.named(synthetic) else { throw ValidationError("unknown --synthetic \(synthetic); use 0.1b, 0.4b or 1.5b") }
    guard tokenizer != nil else { throw ValidationError("--synthetic needs --tokenizer (a World vocabulary file)") }
    if announce { FileHandle.standardError.write(Data("building random \(synthetic) f16 weights…\n".utf8)) }
    return (options, try SyntheticModel.model(shape, dtype: .f16), "synthetic-\(synthetic)")
}

extension CompileResult {
    /// Values per second of compile work (engine + SVD + storage).
    var valuesPerSecond: Double {
        let work = engineSeconds + svdSeconds + storageSeconds
        return work > 0 ? Double(valuesCompiled) / work : 0
    }

    /// The bound if SVD and storage cost nothing.
    var valuesPerSecondEngineOnly: Double { engineSeconds > 0 ? Double(valuesCompiled) / engineSeconds : 0 }
}

/// The JSON object `compile --json` and `bench compile --json` print; fields that do not apply are left out.
struct CompileReport: Encodable {
    struct HeadCosine: Encodable { let layer, head: Int; let cos: Double }
    /// The pack written (left out by `bench compile`, which writes to a temporary folder).
    var output: String?
    let status: String
    let valuesCompiled, valuesSkipped, pairs: Int
    let secondsEngine, secondsSvd, secondsStorage: Double
    let valuesPerSecond, valuesPerSecondEngineOnly: Double
    let bytesPerValue: Double?
    let storageCosineToF32Min, storageCosineToF32Mean: Double?
    let composedVsPairCosineMean: Double?
    let composedVsPairCosinePerHead: [HeadCosine]?
    var dtype: String?
    /// Set by `compile`.
    var secondsTotal: Double?
    /// Set by `bench compile`.
    var model: String?
    var svdStorageShare: Double?

    init(_ r: CompileResult) {
        output = r.path; status = r.status.rawValue
        valuesCompiled = r.valuesCompiled; valuesSkipped = r.valuesSkipped; pairs = r.pairCount
        secondsEngine = r.engineSeconds; secondsSvd = r.svdSeconds; secondsStorage = r.storageSeconds
        valuesPerSecond = r.valuesPerSecond; valuesPerSecondEngineOnly = r.valuesPerSecondEngineOnly
        bytesPerValue = r.bytesPerValue
        storageCosineToF32Min = r.storageCosine?.min; storageCosineToF32Mean = r.storageCosine?.mean
        let c = r.composedCosine
        composedVsPairCosineMean = c.map { $0.values.reduce(0, +) / Double(max($0.count, 1)) }
        composedVsPairCosinePerHead = c.map { c in c.keys.sorted().map { HeadCosine(layer: $0.layer, head: $0.head, cos: c[$0] ?? 0) } }
    }
}
