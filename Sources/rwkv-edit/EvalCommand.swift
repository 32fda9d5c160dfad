import ArgumentParser
import RWKVEdit
import EditEval
import Foundation

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Run evaluation suites (prompts/eval/*.json): edit each case's fact, measure ES/PS/NS, fluency and the seed's tables.",
        discussion: """
        Each case's context is fed once; every method and strength is then applied, measured and undone, so \
        cases and points are independent. Suites with several strengths per method print the seed's tables \
        (P(old) at each strength, * clean flip, ! leaked; flip n/N, best strength, selectivity, P(tgt)).
        """)

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, help: "Suite file (.json or .jsonl) or a folder of them (repeatable).")
    var suite: [String]

    @Option(name: .long, help: "Edit pack (.rwkvpack) for cases that edit by pack entry.")
    var pack: String?

    @Option(name: .long, help: "Method to run instead of the suites' own, or 'all' for every method (repeatable).")
    var method: [String] = []

    @Option(name: .long, help: "Tokens of greedy continuation for the fluency metric (default: the suite's, 24).")
    var fluencyTokens: Int?

    @Flag(name: .long, help: "Print one JSON object instead of tables.")
    var json = false

    @Option(name: .long, help: "Also write a Markdown report here (SVG plots of sweeps are written beside it).")
    var report: String?

    @Option(name: .long, help: "Title of the Markdown report.")
    var title = "rwkv-edit evaluation"

    @Flag(name: .long, help: "No progress lines on stderr.")
    var quiet = false

    func suiteFiles() throws -> [String] {
        var files: [String] = []
        for s in suite {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: s, isDirectory: &isDir) else { throw EditCommandError("no suite file or folder at \(s)") }
            if isDir.boolValue {
                let names = try FileManager.default.contentsOfDirectory(atPath: s).filter { $0.hasSuffix(".json") || $0.hasSuffix(".jsonl") }.sorted()
                guard !names.isEmpty else { throw EditCommandError("no .json or .jsonl suites in \(s)") }
                files += names.map { URL(fileURLWithPath: s).appendingPathComponent($0).path }
            } else {
                files.append(s)
            }
        }
        return files
    }

    func run() throws {
        try reportingErrors {
            let start = Date()
            let files = try suiteFiles()
            let suites = try files.map { try EvalSuite.load(path: $0) }
            var methods: [EditMethod]?
            if !method.isEmpty {
                var ms: [EditMethod] = []
                for m in method {
                    if m.lowercased() == "all" { ms += EditMethod.allCases } else { ms.append(try EditMethod(name: m)) }
                }
                var seen = Set<EditMethod>()
                methods = ms.filter { seen.insert($0).inserted }
            }
            let m = try modelOptions.loadModel()
            let tok = try modelOptions.tokenizer(for: m)
            var runner = EvalRunner(engine: modelOptions.engine(m), tokenizer: tok, methods: methods)
            runner.fluencyTokens = fluencyTokens
            runner.ratios = try modelOptions.card().ratios
            if !quiet { runner.progress = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) } }
            if let pack {
                let p = try EditPack(path: pack)
                try p.requireModel(m, tokenizer: tok)
                runner.packEditor = { session, entity, a, b, probe, options in
                    try session.edit(pack: p, entity: entity, from: a, to: b, options: options, probeTemplate: probe).applied
                }
            }
            var results: [EvalSuiteResult] = []
            for (s, f) in zip(suites, files) { results.append(try runner.run(s, file: f)) }
            let seconds = Date().timeIntervalSince(start)
            if let report {
                let url = URL(fileURLWithPath: report)
                let dir = url.deletingLastPathComponent()
                let stem = url.deletingPathExtension().lastPathComponent
                var plots: [String: String] = [:]
                for r in results {
                    if r.isSweep {
                        let name = "\(stem)-\(r.suite.name).svg"
                        try EvalReport.svg(r).write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8)
                        plots[r.suite.name] = name
                    }
                    if let heat = EvalReport.sigmaHeatmap(r) {
                        let name = "\(stem)-\(r.suite.name)-sigma.svg"
                        try heat.write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8)
                        plots[r.suite.name + "#sigma"] = name
                    }
                }
                let host = ProcessInfo.processInfo
                let preamble = """
                Generated by `rwkv-edit eval` on \(ISO8601DateFormatter().string(from: Date())).
                Command: `rwkv-edit \(CommandLine.arguments.dropFirst().map(shellQuote).joined(separator: " "))`
                Model: `\(modelOptions.model)` (\(m.config.nLayer) layers, \(m.config.nHead) heads of \(m.config.headSize), vocabulary \(m.config.vocabSize)).
                Machine: \(host.activeProcessorCount) CPU cores, \(host.physicalMemory >> 30) GiB memory; total run time \(String(format: "%.1f", seconds)) s.
                """
                try EvalReport.markdown(results, title: title, preamble: preamble, plots: plots).write(to: url, atomically: true, encoding: .utf8)
            }
            if json {
                var report = EvalReport.json(results)
                report.model = modelOptions.model
                report.seconds = seconds
                try printJSON(report)
            } else {
                print(EvalReport.text(results))
                print(String(format: "total %.1f s", seconds))
            }
        }
    }
}

func shellQuote(_ s: String) -> String {
    if !s.isEmpty, s.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:,".contains($0) }) { return s }
    return "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
