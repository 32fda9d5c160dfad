import ArgumentParser
import Foundation
import RWKVEdit
import RWKVVulkan

/// Prefill, decode and batched-decode throughput of the Vulkan engine next to the CPU engine, same run.
struct BenchVulkanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-vulkan",
        abstract: "Measure the Vulkan engine (prefill, decode, batched decode) beside the CPU engine.")

    @OptionGroup var source: BenchModelOptions

    @Option(name: .long, help: "Tokens decoded per sequence for the decode measurements.")
    var decodeTokens = 8

    @Option(name: .long, help: "Batch sizes for batched decoding (comma-separated).")
    var batches = "1,8,32,64"

    @Option(name: .long, help: "Engines to measure: vulkan, cpu (comma-separated).")
    var backends = "vulkan,cpu"

    @Flag(name: .long, help: "One JSON object per line per measurement.")
    var json = false

    @Flag(name: .long, help: "Also time each Vulkan kernel over one batched decode step per batch size (each dispatch submitted alone).")
    var profile = false

    func validate() throws {
        guard decodeTokens > 0 else { throw ValidationError("--decode-tokens must be > 0") }
    }

    func run() throws {
        try reportingErrors {
            let sizes = batches.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.filter { $0 > 0 }
            let engines = backends.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            try VulkanComparison(source: source, decodeTokens: decodeTokens, sizes: sizes, backends: engines, json: json, profile: profile).run()
        }
    }
}

/// The Vulkan benchmark (`bench-vulkan`, and `bench --backend vulkan`): for each model, prefill,
/// decode and batched-decode figures of each backend, the Vulkan engine beside the CPU engine.
struct VulkanComparison {
    let source: BenchModelOptions
    let decodeTokens: Int
    /// Batch sizes for batched decoding.
    let sizes: [Int]
    /// "vulkan" and/or "cpu", measured in this order.
    let backends: [String]
    let json: Bool
    let profile: Bool

    func run() throws {
        // The roofline beside the figures: this machine's read bandwidth, and the weight bytes per token.
        let bandwidth = measureBandwidth(threads: source.bandwidthThreads)
        for (name, m) in try source.models(announce: !json) {
            if !json {
                print("model \(name) \(m.weightDType.rawValue), \(m.bytesPerDecodedToken >> 20) MiB of weights per decoded token; "
                      + "\(ProcessInfo.processInfo.activeProcessorCount) cores, host read bandwidth \(String(format: "%.1f", bandwidth)) GB/s; "
                      + "prompt \(source.promptTokens) tokens, \(decodeTokens) decoded per sequence")
                print("backend  device                                        prefill tok/s  decode tok/s  decode GB/s  " + sizes.map { String(format: "B=%-3d seq·tok/s", $0) }.joined(separator: "  "))
            }
            for backend in backends {
                let engine: any Engine
                let device: String
                switch backend {
                case "cpu":
                    let e = CPUEngine(model: m, threads: source.threads)
                    engine = e; device = "CPU, \(e.threads) threads"
                case "vulkan":
                    let e = try VulkanEngine(model: m)
                    engine = e; device = "\(e.device.name) [\(e.matmulKernel.rawValue)]"
                default: throw ValidationError("unknown backend \(backend); use vulkan or cpu")
                }
                if profile, let e = engine as? VulkanEngine {
                    for b in sizes { try printProfile(e, B: b) }
                }
                let (prefill, decode) = try measurePrefillDecode(engine, promptTokens: source.promptTokens, decodeTokens: decodeTokens, repeats: 2)
                let batched = try measureBatched(engine, sizes)
                if json {
                    try printJSON(Measurement(model: name, dtype: m.weightDType.rawValue, backend: backend, device: device,
                                              promptTokens: source.promptTokens, prefillTokS: prefill, decodeTokS: decode,
                                              decodeGbS: Double(m.bytesPerDecodedToken) * decode / 1e9, bandwidthGbS: bandwidth,
                                              batched: Array(zip(sizes, batched)), overB1: scaling(sizes, batched)))
                } else {
                    let cols = batched.map { String(format: "%15.1f", $0) }.joined(separator: "  ")
                    let pad = { (t: String, n: Int) in t.count >= n ? String(t.prefix(n)) : t + String(repeating: " ", count: n - t.count) }
                    print(pad(backend, 8) + " " + pad(device, 44) + String(format: " %14.1f  %12.2f  %11.2f  ", prefill, decode,
                                                                           Double(m.bytesPerDecodedToken) * decode / 1e9) + cols)
                    let x = scaling(sizes, batched)
                    if !x.isEmpty { print("         batched over B=1: " + x.map { String(format: "B=%d %.1f×", $0.0, $0.1) }.joined(separator: ", ")) }
                }
            }
        }
    }

    /// One backend's line of `--json`: prefill and decode figures, then per batch size B
    /// "batched_B<B>_seq_tok_s" and, when B = 1 was measured, "batched_B<B>_over_B1" for the others.
    struct Measurement: Encodable {
        let model, dtype, backend, device: String
        let promptTokens: Int
        let prefillTokS, decodeTokS, decodeGbS, bandwidthGbS: Double
        let batched: [(Int, Double)]
        let overB1: [(Int, Double)]

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: ReportKey.self)
            try c.encode(model, forKey: ReportKey("model"))
            try c.encode(dtype, forKey: ReportKey("dtype"))
            try c.encode(backend, forKey: ReportKey("backend"))
            try c.encode(device, forKey: ReportKey("device"))
            try c.encode(promptTokens, forKey: ReportKey("prompt_tokens"))
            try c.encode(prefillTokS, forKey: ReportKey("prefill_tok_s"))
            try c.encode(decodeTokS, forKey: ReportKey("decode_tok_s"))
            try c.encode(decodeGbS, forKey: ReportKey("decode_gb_s"))
            try c.encode(bandwidthGbS, forKey: ReportKey("bandwidth_gb_s"))
            for (b, v) in batched { try c.encode(v, forKey: ReportKey("batched_B\(b)_seq_tok_s")) }
            for (b, x) in overB1 { try c.encode(x, forKey: ReportKey("batched_B\(b)_over_B1")) }
        }
    }

    /// A line of `--profile --json`: one kernel's time over one decode step of B sequences.
    struct ProfileRow: Encodable {
        let profileB: Int
        let kernel: String
        let ms: Double
        let dispatches: Int

        enum CodingKeys: String, CodingKey { case profileB = "profile_B", kernel, ms, dispatches }
    }

    /// Each batch size's throughput over the B = 1 throughput (when B = 1 was measured).
    private func scaling(_ sizes: [Int], _ batched: [Double]) -> [(Int, Double)] {
        guard let i = sizes.firstIndex(of: 1), batched[i] > 0 else { return [] }
        return zip(sizes, batched).filter { $0.0 != 1 }.map { ($0.0, $0.1 / batched[i]) }
    }

    /// Where one decode step of B sequences spends its time, by kernel.
    private func printProfile(_ engine: VulkanEngine, B: Int) throws {
        var states = (0..<B).map { _ in engine.newState() }
        let tokens = (0..<B).map { [($0 * 7919) % engine.config.vocabSize] }
        _ = try engine.forward(tokens, states: &states, allLogits: false)
        let t0 = Date()
        let rows = try engine.kernelProfile { _ = try engine.forward(tokens, states: &states, allLogits: false) }
        let total = Date().timeIntervalSince(t0)
        if json {
            for r in rows { try printJSON(ProfileRow(profileB: B, kernel: r.kernel, ms: r.seconds * 1e3, dispatches: r.dispatches)) }
            return
        }
        print(String(format: "profile B=%d: one decode step %.1f ms with a submission per dispatch", B, total * 1e3))
        for r in rows {
            let name = r.kernel.count >= 24 ? r.kernel : r.kernel + String(repeating: " ", count: 24 - r.kernel.count)
            print("  " + name + String(format: " %9.2f ms  %5.1f%%  %4d dispatches", r.seconds * 1e3, 100 * r.seconds / total, r.dispatches))
        }
    }

    /// For each B, B sequences decoded together, one token each per call: sequences × tokens per second,
    /// the best of five rounds. Each round measures every batch size in turn, so a slow spell of a
    /// shared machine (software drivers use all its cores) hits all of them alike.
    private func measureBatched(_ engine: any Engine, _ sizes: [Int]) throws -> [Double] {
        let V = engine.config.vocabSize
        var runs = try sizes.map { B -> (states: [State], next: [[Int]]) in
            var states = (0..<B).map { _ in engine.newState() }
            let next = (0..<B).map { [($0 * 7919) % V] }
            _ = try engine.forward(next, states: &states, allLogits: false)
            return (states, next)
        }
        var best = [Double](repeating: 0, count: sizes.count)
        for _ in 0..<5 {
            for (i, B) in sizes.enumerated() {
                let t0 = Date()
                for _ in 0..<decodeTokens {
                    let logits = try engine.forward(runs[i].next, states: &runs[i].states, allLogits: false)
                    runs[i].next = logits.map { l in [l.indices.max { l[$0] < l[$1] } ?? 0] }
                }
                best[i] = max(best[i], Double(B * decodeTokens) / Date().timeIntervalSince(t0))
            }
        }
        return best
    }
}
