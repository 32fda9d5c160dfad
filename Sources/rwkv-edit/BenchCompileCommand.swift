import ArgumentParser
import RWKVEdit
import PackCompiler
import Foundation

/// `bench compile`: how fast packs compile, where the time goes (engine, SVD, storage), and how large a
/// pack is per value for each storage type. The packs go to a temporary folder and are removed.
struct BenchCompileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compile",
        abstract: "Measure pack compilation: values/s, engine/SVD/storage split, engine-only bound, bytes per value per dtype.")

    @Option(name: .long, help: "Model file (default: random weights, see --synthetic).")
    var model: String?

    @Option(name: .long, help: "Random weights with a released shape: 0.1b, 0.4b or 1.5b (f16). (default: 0.1b)")
    var synthetic: String?

    @Option(name: .long, help: "World vocabulary (tokenizer) file; random weights need one (default: models/demo-vocab.txt).")
    var tokenizer: String?

    @Option(name: .long, help: "Values file to compile (default: prompts/cities.txt).")
    var values: String?

    @Option(name: .long, help: ArgumentHelp("Deprecated spelling of --values.", visibility: .hidden))
    var vocab: String?

    @Option(name: .long, help: "Storage types to compile, comma-separated.")
    var packDtype = "f32,f16,int8"

    @Option(name: .long, help: "CPU threads (default: all cores).")
    var threads: Int?

    @Option(name: .long, help: "Engine: cpu, vulkan or auto.")
    var backend: Backend = .cpu

    @Flag(name: .long, help: "One JSON object per storage type.")
    var json = false

    func run() throws {
        try reportingErrors {
            guard model == nil || synthetic == nil else { throw ValidationError("give at most one of --model or --synthetic") }
            let dtypes = try packDtype.split(separator: ",").map { name -> StorageDType in
                guard let d = StorageDType(rawValue: String(name)) else {
                    throw ValidationError("unknown --pack-dtype \(name); use f32, f16 or int8")
                }
                return d
            }
            // Random weights need a tokenizer: the demo model's, run from the repository root, unless given.
            let vocabFile = tokenizer ?? (model == nil ? "models/demo-vocab.txt" : nil)
            if let vocabFile, model == nil, !FileManager.default.fileExists(atPath: vocabFile) {
                throw ValidationError("random weights need a tokenizer: \(vocabFile) not found; pass --tokenizer FILE (a World vocabulary)")
            }
            let (mo, m, name) = try compileModel(model: model, synthetic: model == nil ? synthetic ?? "0.1b" : nil, tokenizer: vocabFile,
                                                 threads: threads, backend: backend, announce: !json)
            let tok = try mo.tokenizer(for: m)
            if values == nil, vocab != nil {
                FileHandle.standardError.write(Data("warning: `--vocab FILE` for the values is deprecated: use --values FILE (--vocab names the tokenizer in every other command)\n".utf8))
            }
            let valuesPath = values ?? vocab ?? "prompts/cities.txt"
            let vocabulary = try Vocabulary.load(path: valuesPath)
            var options = CompileOptions()
            options.useTemplates(of: vocabulary)
            options.overwrite = true

            let compiler = PackCompiler(engine: mo.engine(m), tokenizer: tok)
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rwkv-edit-bench-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            if !json {
                print("model \(name) (\(m.weightDType.rawValue) weights), \(vocabulary.values.count) values of \(valuesPath), "
                      + "template \"\(options.template)\"")
                print("dtype  values/s  engine s   SVD s  storage s  SVD+storage  engine-only values/s  bytes/value")
            }
            for d in dtypes {
                options.dtype = d
                let r = try compiler.compile(vocabulary: vocabulary, options: options,
                                             output: dir.appendingPathComponent("\(d.rawValue).rwkvpack").path)
                let work = r.engineSeconds + r.svdSeconds + r.storageSeconds
                let overhead = work > 0 ? (r.svdSeconds + r.storageSeconds) / work : 0
                if json {
                    var report = CompileReport(r)
                    report.output = nil
                    report.model = name
                    report.dtype = d.rawValue
                    report.svdStorageShare = overhead
                    try printJSON(report)
                } else {
                    print(String(format: "%-5@  %8.1f  %8.2f  %6.2f  %9.2f  %10.1f%%  %20.1f  %11.0f", d.rawValue as NSString,
                                 r.valuesPerSecond, r.engineSeconds, r.svdSeconds, r.storageSeconds, overhead * 100,
                                 r.valuesPerSecondEngineOnly, r.bytesPerValue ?? 0))
                }
            }
        }
    }
}
