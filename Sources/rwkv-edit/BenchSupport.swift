import ArgumentParser
import Foundation
import RWKVEdit

/// Which model a benchmark runs on and how long its prompt is (shared by `bench` and `bench-vulkan`).
struct BenchModelOptions: ParsableArguments {
    @Option(name: .long, help: "Model file to benchmark.")
    var model: String?

    @Option(name: .long, help: "Random weights with released shapes: 0.1b, 0.4b or 1.5b (comma-separated for several).")
    var synthetic: String?

    @Option(name: .long, help: "Weight type of synthetic models: f16, bf16 or f32 (comma-separated for several).")
    var dtype = "f16"

    @Option(name: .long, help: "Prompt length for the prefill measurement.")
    var promptTokens = 64

    @Option(name: .long, help: "CPU threads (default: all cores).")
    var threads: Int?

    func validate() throws {
        guard (model == nil) != (synthetic == nil) else { throw ValidationError("give exactly one of --model or --synthetic") }
        guard promptTokens > 0 else { throw ValidationError("--prompt-tokens must be > 0") }
    }

    /// A file, or random weights (every combination of the comma-separated names and dtypes).
    func models(announce: Bool) throws -> [(name: String, model: RWKVModel)] {
        var runs: [(name: String, model: RWKVModel)] = []
        if let model { runs.append((URL(fileURLWithPath: model).lastPathComponent, try ModelLoader.load(path: model))) }
        for name in (synthetic ?? "").split(separator: ",").map(String.init) {
            guard let shape = SyntheticModel.Shape.named(name) else { throw ValidationError("unknown --synthetic \(name); use 0.1b, 0.4b or 1.5b") }
            for d in dtype.split(separator: ",").map(String.init) {
                guard let dt = SyntheticModel.dtype(named: d) else { throw ValidationError("unknown --dtype \(d); use f16, bf16 or f32") }
                if announce { FileHandle.standardError.write(Data("building random \(name) \(d) weights…\n".utf8)) }
                runs.append(("synthetic-\(name)", try SyntheticModel.model(shape, dtype: dt)))
            }
        }
        return runs
    }

    var bandwidthThreads: Int { threads ?? ProcessInfo.processInfo.activeProcessorCount }
}

/// Prefill of one random prompt and greedy token-by-token decoding after it: best of `repeats`
/// timed runs after a short warm-up (first-touch page faults, pipeline creation).
func measurePrefillDecode(_ engine: any Engine, promptTokens: Int, decodeTokens: Int, repeats: Int) throws -> (prefill: Double, decode: Double) {
    var rng = SplitMix64(seed: 7)
    let prompt = (0..<promptTokens).map { _ in Int(rng.next() % UInt64(engine.config.vocabSize)) }
    var warm = engine.newState()
    _ = try engine.forward(Array(prompt.prefix(8)), state: &warm)
    _ = try engine.step(1, state: &warm)
    var best = (prefill: 0.0, decode: 0.0)
    for _ in 0..<repeats {
        var state = engine.newState()
        let t0 = Date()
        var logits = try engine.forward(prompt, state: &state)
        let t1 = Date()
        for _ in 0..<decodeTokens {
            let next = logits.indices.max { logits[$0] < logits[$1] } ?? 0
            logits = try engine.step(next, state: &state)
        }
        let t2 = Date()
        best.prefill = max(best.prefill, Double(promptTokens) / t1.timeIntervalSince(t0))
        best.decode = max(best.decode, Double(decodeTokens) / t2.timeIntervalSince(t1))
    }
    return best
}
