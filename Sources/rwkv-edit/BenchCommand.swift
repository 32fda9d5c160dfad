import ArgumentParser
import CKernels
import EditEval
import Foundation
import RWKVEdit

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks: engine speed (the default), pack compilation and the model identity check of packs.",
        subcommands: [BenchSpeedCommand.self, BenchCompileCommand.self, BenchIdentityCommand.self, BenchEditCommand.self],
        defaultSubcommand: BenchSpeedCommand.self)
}

struct BenchSpeedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "speed",
        abstract: "Measure prefill and decode speed, weight bandwidth, and this machine's memory bandwidth.")

    @OptionGroup var source: BenchModelOptions

    @Option(name: .long, help: "Tokens decoded for the decode measurement (default: 32; 8 per sequence with --backend vulkan).")
    var decodeTokens: Int?

    @Option(name: .long, help: "Engine: cpu (default), auto, or vulkan: the Vulkan engine beside the CPU engine, with batched decoding at B = 1, 8, 32 and 64 (`bench-vulkan` for other batch sizes or a kernel profile).")
    var backend: Backend = .cpu

    @Option(name: .long, help: "Also measure prefill at each of these prompt lengths (comma-separated, e.g. 64,512,4096): it should not fall with length.")
    var promptLengths: String?

    @Flag(name: .long, help: "One JSON object per line per run.")
    var json = false

    func validate() throws {
        guard decodeTokens ?? 1 > 0 else { throw ValidationError("--decode-tokens must be > 0") }
        _ = try lengths()
    }

    func lengths() throws -> [Int] {
        guard let promptLengths else { return [] }
        return try promptLengths.split(separator: ",").map { word in
            guard let n = Int(word.trimmingCharacters(in: .whitespaces)), (1...65_536).contains(n) else {
                throw ValidationError("--prompt-lengths takes comma-separated token counts of 1…65536, got '\(word)'")
            }
            return n
        }
    }

    /// One model's line of `--json`; `threads` is null for an engine that has none (Vulkan).
    struct Report: Encodable {
        struct Prefill: Encodable { let promptTokens: Int; let tokS: Double }
        let model, dtype, weightTypes, kernels, backend: String
        let threads: OrNull<Int>
        let prefillTokS, decodeTokS, decodeGbS, bandwidthGbS: Double
        /// With --prompt-lengths.
        let prefillByLength: [Prefill]?
    }

    func run() throws {
        try reportingErrors {
            if backend == .vulkan {
                try VulkanComparison(source: source, decodeTokens: decodeTokens ?? 8, sizes: [1, 8, 32, 64], backends: ["vulkan", "cpu"],
                                     json: json, profile: false).run()
                return
            }
            let bandwidth = measureBandwidth(threads: source.bandwidthThreads)
            let runs = try source.models(announce: !json)
            if !json {
                print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, kernels \(KernelPath.current.rawValue), measured read bandwidth \(String(format: "%.1f", bandwidth)) GB/s")
                print("model                weights     threads  prefill tok/s  decode tok/s  decode GB/s")
            }
            for (name, m) in runs {
                let engine = try makeEngine(model: m, backend: backend, threads: source.threads)
                // Threads are a CPU-engine setting; a Vulkan run reports none.
                let engineThreads = (engine as? CPUEngine)?.threads
                let r = try measurePrefillDecode(engine, promptTokens: source.promptTokens, decodeTokens: decodeTokens ?? 32, repeats: 3)
                let gbs = Double(m.bytesPerDecodedToken) * r.decode / 1e9
                let byLength = try lengths().map { n in
                    Report.Prefill(promptTokens: n, tokS: try measurePrefillDecode(engine, promptTokens: n, decodeTokens: 1, repeats: 2).prefill)
                }
                if json {
                    try printJSON(Report(model: name, dtype: m.weightDType.rawValue, weightTypes: m.weightTypes, kernels: KernelPath.current.rawValue,
                                         backend: engine.backendName, threads: OrNull(engineThreads), prefillTokS: r.prefill, decodeTokS: r.decode,
                                         decodeGbS: gbs, bandwidthGbS: bandwidth, prefillByLength: byLength.isEmpty ? nil : byLength))
                } else {
                    print(String(format: "%-20@ %-11@ %7@  %13.1f  %12.1f  %11.1f", name as NSString, m.weightTypes as NSString,
                                 (engineThreads.map(String.init) ?? engine.backendName) as NSString, r.prefill, r.decode, gbs))
                    if !byLength.isEmpty {
                        print("  prefill by prompt length: " + byLength.map { String(format: "%d tokens %.1f tok/s", $0.promptTokens, $0.tokS) }.joined(separator: ", "))
                    }
                }
            }
        }
    }
}

/// Read bandwidth in GB/s: each thread sums its share of a 512 MiB buffer; best of five passes.
func measureBandwidth(threads: Int) -> Double {
    let count = 128 << 20
    let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
    defer { buffer.deallocate() }
    buffer.initialize(repeating: 1, count: count)
    var best = 0.0
    for _ in 0..<5 {
        let t0 = Date()
        DispatchQueue.concurrentPerform(iterations: threads) { i in
            let begin = count * i / threads, end = count * (i + 1) / threads
            _ = rk_sum_f32(buffer + begin, Int64(end - begin))
        }
        best = max(best, Double(count * 4) / Date().timeIntervalSince(t0) / 1e9)
    }
    return best
}
