import ArgumentParser
import Foundation
import RWKV
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

    func validate() throws {
        guard decodeTokens > 0 else { throw ValidationError("--decode-tokens must be > 0") }
    }

    func run() throws {
        try reportingErrors {
            let sizes = batches.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.filter { $0 > 0 }
            // The roofline beside the figures: this machine's read bandwidth, and the weight bytes per token.
            let bandwidth = measureBandwidth(threads: source.bandwidthThreads)
            for (name, m) in try source.models(announce: !json) {
                if !json {
                    print("model \(name) \(m.weightDType.rawValue), \(m.bytesPerDecodedToken >> 20) MiB of weights per decoded token; "
                          + "\(ProcessInfo.processInfo.activeProcessorCount) cores, host read bandwidth \(String(format: "%.1f", bandwidth)) GB/s; "
                          + "prompt \(source.promptTokens) tokens, \(decodeTokens) decoded per sequence")
                    print("backend  device                                        prefill tok/s  decode tok/s  decode GB/s  " + sizes.map { String(format: "B=%-3d seq·tok/s", $0) }.joined(separator: "  "))
                }
                for backend in backends.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) {
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
                    let (prefill, decode) = try measurePrefillDecode(engine, promptTokens: source.promptTokens, decodeTokens: decodeTokens, repeats: 2)
                    var batched: [Double] = []
                    for b in sizes { batched.append(try measureBatched(engine, b)) }
                    if json {
                        var o: [String: Any] = ["model": name, "dtype": m.weightDType.rawValue, "backend": backend, "device": device,
                                                "prompt_tokens": source.promptTokens, "prefill_tok_s": prefill, "decode_tok_s": decode,
                                                "decode_gb_s": Double(m.bytesPerDecodedToken) * decode / 1e9, "bandwidth_gb_s": bandwidth]
                        for (b, v) in zip(sizes, batched) { o["batched_B\(b)_seq_tok_s"] = v }
                        try printJSON(o)
                    } else {
                        let cols = batched.map { String(format: "%15.1f", $0) }.joined(separator: "  ")
                        let pad = { (t: String, n: Int) in t.count >= n ? String(t.prefix(n)) : t + String(repeating: " ", count: n - t.count) }
                        print(pad(backend, 8) + " " + pad(device, 44) + String(format: " %14.1f  %12.2f  %11.2f  ", prefill, decode,
                                                                               Double(m.bytesPerDecodedToken) * decode / 1e9) + cols)
                    }
                }
            }
        }
    }

    /// B sequences decoded together, one token each per call: sequences × tokens per second.
    private func measureBatched(_ engine: any Engine, _ B: Int) throws -> Double {
        let V = engine.config.vocabSize
        var states = (0..<B).map { _ in engine.newState() }
        var next = (0..<B).map { [($0 * 7919) % V] }
        _ = try engine.forward(next, states: &states, allLogits: false)
        let t0 = Date()
        for _ in 0..<decodeTokens {
            let logits = try engine.forward(next, states: &states, allLogits: false)
            next = logits.map { l in [l.indices.max { l[$0] < l[$1] } ?? 0] }
        }
        return Double(B * decodeTokens) / Date().timeIntervalSince(t0)
    }
}
