import Foundation
import PackCompiler
import RWKVEdit
import RWKVVulkan
import XCTest

/// The Vulkan engine against the CPU engine on lavapipe (or whatever device RWKV_VULKAN_DEVICE picks).
/// Skips when no Vulkan loader or device exists.
final class VulkanTests: XCTestCase {
    private static var engines: [String: VulkanEngine] = [:]
    private static var cpuEngines: [String: CPUEngine] = [:]

    private func engines(_ path: String) throws -> (VulkanEngine, CPUEngine) {
        if let v = Self.engines[path], let c = Self.cpuEngines[path] { return (v, c) }
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("fixture missing: \(path)") }
        let model = try ModelLoader.load(path: path)
        let v = try vulkanEngine(model)
        let c = CPUEngine(model: model, threads: 2)
        Self.engines[path] = v
        Self.cpuEngines[path] = c
        return (v, c)
    }

    private func vulkanEngine(_ model: RWKVModel, maxRowsPerPass: Int = 4096, maxBindingBytes: Int? = nil) throws -> VulkanEngine {
        do {
            return try VulkanEngine(model: model, maxRowsPerPass: maxRowsPerPass, maxBindingBytes: maxBindingBytes)
        } catch let e as VulkanError {
            switch e {
            case .loaderUnavailable, .noDevice: throw XCTSkip("no Vulkan here: \(e)")
            default: throw e
            }
        }
    }

    /// max |a−b| / max(1, max|b|): relative to the scale of the reference values.
    private func relError(_ a: [Float], _ b: [Float]) -> Float {
        XCTAssertEqual(a.count, b.count)
        let scale = max(1, b.reduce(0) { max($0, abs($1)) })
        var m: Float = 0
        for (x, y) in zip(a, b) {
            if !x.isFinite { return .infinity }
            m = max(m, abs(x - y))
        }
        return m / scale
    }

    private func assertStatesClose(_ a: State, _ b: State, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertLessThan(relError(a.wkv, b.wkv), 1e-3, "\(what): wkv", file: file, line: line)
        XCTAssertLessThan(relError(a.attXPrev, b.attXPrev), 1e-3, "\(what): att_x_prev", file: file, line: line)
        XCTAssertLessThan(relError(a.ffnXPrev, b.ffnXPrev), 1e-3, "\(what): ffn_x_prev", file: file, line: line)
    }

    /// Runs `batch` on both engines from `start` (zero states when nil) and checks every sequence's logits
    /// (1e-3 relative) and final state; returns the Vulkan logits.
    @discardableResult
    private func assertBatchMatches(_ vk: any Engine, _ cpu: any Engine, _ batch: [[Int]], from start: [State]? = nil,
                                    allLogits: Bool = false, _ what: String,
                                    file: StaticString = #filePath, line: UInt = #line) throws -> [[Float]] {
        var sv = start ?? batch.map { _ in cpu.newState() }, sc = sv
        let lv = try vk.forward(batch, states: &sv, allLogits: allLogits)
        let lc = try cpu.forward(batch, states: &sc, allLogits: allLogits)
        for i in batch.indices {
            XCTAssertLessThan(relError(lv[i], lc[i]), 1e-3, "\(what) seq \(i) logits", file: file, line: line)
            assertStatesClose(sv[i], sc[i], "\(what) seq \(i)", file: file, line: line)
        }
        return lv
    }

    private func tokens(_ n: Int, vocab: Int, seed: UInt64) -> [Int] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in Int(rng.next() % UInt64(vocab)) }
    }

    private var fixtures: [String] {
        [Fixtures.tinySafetensors, Fixtures.golden.appendingPathComponent("golden.blinkdl.safetensors").path]
    }

    /// The golden model as GGUF f16 (matrices in f16, read as packed pairs) and as a bf16 .pth.
    func testHalfPrecisionFilesMatchCPU() throws {
        for name in ["golden.f16.gguf", "golden.bf16.pth"] {
            let path = Fixtures.golden.appendingPathComponent(name).path
            let (vk, cpu) = try engines(path)
            let V = vk.config.vocabSize
            try assertBatchMatches(vk, cpu, [tokens(17, vocab: V, seed: 31), tokens(1, vocab: V, seed: 32)], name)
        }
    }

    /// One token, then a prompt, then decoding steps, from non-zero states: logits and states match.
    func testOneTokenAndSequenceMatchCPU() throws {
        for path in fixtures {
            let (vk, cpu) = try engines(path)
            let V = vk.config.vocabSize
            var sv = vk.newState(), sc = cpu.newState()
            XCTAssertLessThan(relError(try vk.step(1, state: &sv), try cpu.step(1, state: &sc)), 1e-3, "\(path): first token")
            assertStatesClose(sv, sc, "\(path): after one token")
            let prompt = tokens(23, vocab: V, seed: 3)
            XCTAssertLessThan(relError(try vk.forward(prompt, state: &sv), try cpu.forward(prompt, state: &sc)), 1e-3, "\(path): prompt")
            assertStatesClose(sv, sc, "\(path): after the prompt")
            for t in tokens(4, vocab: V, seed: 4) {
                XCTAssertLessThan(relError(try vk.step(t, state: &sv), try cpu.step(t, state: &sc)), 1e-3, "\(path): decode")
            }
            assertStatesClose(sv, sc, "\(path): after decoding")
            // All logits of a sequence.
            var av = [sv], ac = [sc]
            let lv = try vk.forward([prompt], states: &av, allLogits: true)
            let lc = try cpu.forward([prompt], states: &ac, allLogits: true)
            XCTAssertEqual(lv[0].count, prompt.count * V)
            XCTAssertLessThan(relError(lv[0], lc[0]), 1e-3, "\(path): all logits")
        }
    }

    /// B = 1, 3, 16 independent sequences of different lengths in one call, from different states.
    func testBatchedMatchesCPU() throws {
        for path in fixtures {
            let (vk, cpu) = try engines(path)
            let V = vk.config.vocabSize
            for B in [1, 3, 16] {
                let batch = (0..<B).map { i in tokens(1 + (i * 7) % 13, vocab: V, seed: UInt64(100 + i)) }
                var start: [State] = []
                for i in 0..<B {
                    var s = cpu.newState()
                    if i % 2 == 1 { _ = try cpu.forward(tokens(5, vocab: V, seed: UInt64(i)), state: &s) }
                    start.append(s)
                }
                let lv = try assertBatchMatches(vk, cpu, batch, from: start, "\(path) B=\(B)")
                // Each sequence alone gives the same as inside the batch.
                if B == 3 {
                    for i in 0..<B {
                        var s = start[i]
                        XCTAssertLessThan(relError(try vk.forward(batch[i], state: &s), lv[i]), 1e-5, "\(path): batch independence")
                    }
                }
            }
        }
    }

    /// fp16 and bf16 weights (packed pairs in the shader) against the CPU engine on the same weights.
    func testHalfPrecisionWeights() throws {
        let shape = SyntheticModel.Shape(nLayer: 2, nEmbd: 128, vocab: 320, loraW: 16, loraA: 16, loraV: 8, loraG: 32)
        for dtype in [DType.f16, .bf16] {
            let model = try SyntheticModel.model(shape, dtype: dtype, seed: 5)
            let vk = try vulkanEngine(model)
            let cpu = CPUEngine(model: model, threads: 2)
            try assertBatchMatches(vk, cpu, [tokens(9, vocab: 320, seed: 1), tokens(1, vocab: 320, seed: 2)], "\(dtype)")
        }
    }

    /// The GPU kernel (subgroup lanes along k), forced on lavapipe: same results as the CPU engine for
    /// f32 (golden), f16 and bf16 weights, one token and batched.
    func testAlongKMatmulMatchesCPU() throws {
        let golden = try ModelLoader.load(path: Fixtures.golden.appendingPathComponent("golden.blinkdl.safetensors").path)
        let shape = SyntheticModel.Shape(nLayer: 2, nEmbd: 128, vocab: 320, loraW: 16, loraA: 16, loraV: 8, loraG: 32)
        let models = [golden, try SyntheticModel.model(shape, dtype: .f16, seed: 6), try SyntheticModel.model(shape, dtype: .bf16, seed: 7)]
        for model in models {
            let vk: VulkanEngine
            do { vk = try VulkanEngine(model: model, matmulKernel: .alongK) } catch let e as VulkanError {
                switch e {
                case .loaderUnavailable, .noDevice, .unsupportedModel: throw XCTSkip("no subgroup-capable Vulkan device: \(e)")
                default: throw e
                }
            }
            XCTAssertEqual(vk.matmulKernel, .alongK)
            let cpu = CPUEngine(model: model, threads: 2)
            let V = model.config.vocabSize
            let batch = [tokens(1, vocab: V, seed: 41), tokens(12, vocab: V, seed: 42), tokens(5, vocab: V, seed: 43)]
            try assertBatchMatches(vk, cpu, batch, "\(model.weightDType)")
        }
    }

    /// A state edited on the host and run on Vulkan equals the same on the CPU (bit-compatible layout).
    func testHostEditedStateRoundTrip() throws {
        let (vk, cpu) = try engines(Fixtures.golden.appendingPathComponent("golden.blinkdl.safetensors").path)
        var s = cpu.newState()
        _ = try cpu.forward(tokens(6, vocab: vk.config.vocabSize, seed: 9), state: &s)
        var head = Array(s.wkvHead(layer: 1, head: 2))
        for i in head.indices { head[i] = head[i] * 0.5 + Float(i % 7) * 0.01 }
        try s.setWKVHead(layer: 1, head: 2, head)
        var sv = s, sc = s
        XCTAssertLessThan(relError(try vk.step(5, state: &sv), try cpu.step(5, state: &sc)), 1e-3)
        assertStatesClose(sv, sc, "edited state")
    }

    /// Work split across passes (tiny per-pass row cap) gives the same as one pass.
    func testSplitPassesMatch() throws {
        let model = try ModelLoader.load(path: Fixtures.tinySafetensors)
        let small = try vulkanEngine(model, maxRowsPerPass: 8)
        let (vk, _) = try engines(Fixtures.tinySafetensors)
        let batch = [tokens(19, vocab: 256, seed: 1), tokens(3, vocab: 256, seed: 2), tokens(11, vocab: 256, seed: 3)]
        var a = batch.map { _ in vk.newState() }, b = a
        let la = try small.forward(batch, states: &a, allLogits: true)
        let lb = try vk.forward(batch, states: &b, allLogits: true)
        for i in batch.indices {
            XCTAssertLessThan(relError(la[i], lb[i]), 1e-5)
            XCTAssertLessThan(relError(a[i].wkv, b[i].wkv), 1e-5)
        }
    }

    /// A 160 KiB binding limit splits the golden model's head (1.5 MiB) and FFN matrices into row
    /// chunks and each call into passes of ≤ 24 rows and ≤ 2 sequences: results equal the CPU engine's.
    func testSmallBindingLimitSplitsWeightsAndPasses() throws {
        let path = Fixtures.golden.appendingPathComponent("golden.blinkdl.safetensors").path
        let (_, cpu) = try engines(path)
        let vk = try vulkanEngine(cpu.model, maxBindingBytes: 160 * 1024)
        let V = cpu.config.vocabSize
        let batch = [tokens(13, vocab: V, seed: 21), tokens(2, vocab: V, seed: 22), tokens(9, vocab: V, seed: 23)]
        for all in [false, true] { try assertBatchMatches(vk, cpu, batch, allLogits: all, "allLogits \(all)") }
    }

    /// A vocabulary of 1001: the head is padded to 1004 rows on the device, logits come back unpadded.
    func testOddVocabularyPadsTheHead() throws {
        let shape = SyntheticModel.Shape(nLayer: 2, nEmbd: 128, vocab: 1001, loraW: 32, loraA: 32, loraV: 16, loraG: 32)
        let model = try SyntheticModel.model(shape, dtype: .f16, seed: 5)
        let vk = try vulkanEngine(model)
        let cpu = CPUEngine(model: model, threads: 2)
        let batch = [tokens(9, vocab: 1001, seed: 31), tokens(3, vocab: 1001, seed: 32)]
        for all in [false, true] { _ = try assertBatchMatches(vk, cpu, batch, allLogits: all, "allLogits \(all)") }
    }

    /// RWKV_VULKAN_DEVICE-style selectors: an index, part of a name (any case), or a typed error.
    func testDeviceSelection() throws {
        let devices: [VulkanDeviceInfo]
        do { devices = try VulkanEngine.devices() } catch let e as VulkanError { throw XCTSkip("no Vulkan here: \(e)") }
        guard let first = devices.first else { throw XCTSkip("no Vulkan device") }
        XCTAssertEqual(try VulkanEngine.selectDevice(String(first.index)).index, first.index)
        let byName = try VulkanEngine.selectDevice(first.name.uppercased())
        XCTAssertEqual(byName.name, first.name)
        XCTAssertThrowsError(try VulkanEngine.selectDevice("zz-no-such-device")) { e in
            guard case VulkanError.deviceNotFound(_, let available) = e else { return XCTFail("got \(e)") }
            XCTAssertEqual(available.count, devices.count)
        }
        for d in devices where d.name.lowercased().contains("llvmpipe") {
            XCTAssertTrue(d.isSoftware, "lavapipe must count as software so that --backend auto prefers the CPU engine")
        }
    }

    func testBadInputsAreTypedErrors() throws {
        let (vk, _) = try engines(Fixtures.tinySafetensors)
        var s = [vk.newState()]
        XCTAssertThrowsError(try vk.forward([[999]], states: &s, allLogits: false))
        XCTAssertThrowsError(try vk.forward([[]], states: &s, allLogits: false))
        XCTAssertThrowsError(try VulkanEngine(model: vk.model, device: "no-such-device-xyz")) { e in
            guard case VulkanError.deviceNotFound = e else { return XCTFail("got \(e)") }
        }
        // A model larger than the memory budget is refused before any upload, with the sizes.
        XCTAssertThrowsError(try VulkanEngine(model: vk.model, memoryBudget: 64 * 1024)) { e in
            guard case VulkanError.outOfDeviceMemory(let need, let have, _) = e else { return XCTFail("got \(e)") }
            XCTAssertGreaterThan(need, have)
            XCTAssertTrue("\(e)".contains("--backend cpu"))
        }
    }

    /// With no driver visible (VK_ICD_FILENAMES → an empty file) the engine throws "no Vulkan device";
    /// run in a child process so this process's loader state is untouched. The CPU path is unaffected.
    func testNoDriverGivesTypedError() throws {
        try CLI.requireBinary()
        let empty = Fixtures.temporaryPath("empty-icd.json")
        try Data().write(to: URL(fileURLWithPath: empty))
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let noDriver = ["VK_ICD_FILENAMES": empty, "VK_DRIVER_FILES": empty]
        let r = try CLI.run(["logits", "--model", Fixtures.tinySafetensors, "--tokens", "1,2,3", "--backend", "vulkan"], environment: noDriver)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue((r.stdout + r.stderr).contains("no Vulkan device") || (r.stdout + r.stderr).contains("no Vulkan loader"), r.stderr)
        let r2 = try CLI.run(["logits", "--model", Fixtures.tinySafetensors, "--tokens", "1,2,3", "--backend", "auto"], environment: noDriver)
        XCTAssertEqual(r2.status, 0, r2.stderr)
        XCTAssertTrue(r2.stderr.contains("no Vulkan device"), "auto says why it fell back: \(r2.stderr)")
    }

    /// `bench-vulkan --json --profile`: throughput per batch size, its ratio to B = 1, and a kernel
    /// profile whose dispatch counts follow from the model's shape.
    func testBenchVulkanReportsScalingAndProfile() throws {
        try CLI.requireBinary()
        _ = try engines(Fixtures.tinySafetensors) // skips without Vulkan
        let r = try CLI.run(["bench-vulkan", "--model", Fixtures.tinySafetensors, "--batches", "1,4", "--decode-tokens", "1",
                             "--prompt-tokens", "4", "--backends", "vulkan", "--json", "--profile"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = try r.stdout.split(separator: "\n").map { try CLI.json(String($0)) }
        let summary = try XCTUnwrap(lines.first { $0["backend"] as? String == "vulkan" })
        let b1 = try XCTUnwrap(summary["batched_B1_seq_tok_s"] as? Double), b4 = try XCTUnwrap(summary["batched_B4_seq_tok_s"] as? Double)
        XCTAssertGreaterThan(b1, 0)
        XCTAssertEqual(try XCTUnwrap(summary["batched_B4_over_B1"] as? Double), b4 / b1, accuracy: 1e-9)
        // The tiny model has 12 layers: one WKV and one group norm dispatch per layer and decode step.
        let profile = lines.filter { $0["profile_B"] as? Int == 4 }
        let wkv = try XCTUnwrap(profile.first { ($0["kernel"] as? String)?.hasPrefix("wkv7") == true })
        XCTAssertEqual(wkv["dispatches"] as? Int, 12)
        XCTAssertEqual(profile.first { $0["kernel"] as? String == "groupnorm" }?["dispatches"] as? Int, 12)
        XCTAssertTrue(profile.contains { ($0["kernel"] as? String)?.hasPrefix("matmul_t") == true }, "\(profile)")
    }

    /// `bench --backend vulkan`: the command reports the Vulkan engine beside the CPU engine,
    /// each with prefill, decode and batched decoding at B = 1, 8, 32 and 64.
    func testBenchWithVulkanBackendComparesWithCPU() throws {
        try CLI.requireBinary()
        _ = try engines(Fixtures.tinySafetensors) // skips without Vulkan
        let r = try CLI.run(["bench", "--backend", "vulkan", "--model", Fixtures.tinySafetensors, "--decode-tokens", "1",
                             "--prompt-tokens", "4", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = try r.stdout.split(separator: "\n").map { try CLI.json(String($0)) }
        XCTAssertEqual(lines.compactMap { $0["backend"] as? String }, ["vulkan", "cpu"])
        for line in lines {
            XCTAssertGreaterThan(try XCTUnwrap(line["prefill_tok_s"] as? Double), 0)
            XCTAssertGreaterThan(try XCTUnwrap(line["decode_tok_s"] as? Double), 0)
            for b in [1, 8, 32, 64] { XCTAssertGreaterThan(try XCTUnwrap(line["batched_B\(b)_seq_tok_s"] as? Double), 0, "B = \(b)") }
            let ratio = try XCTUnwrap(line["batched_B32_over_B1"] as? Double)
            XCTAssertEqual(ratio, try XCTUnwrap(line["batched_B32_seq_tok_s"] as? Double) / XCTUnwrap(line["batched_B1_seq_tok_s"] as? Double),
                           accuracy: 1e-9)
        }
    }

    /// The committed SPIR-V and its embedded copy match a fresh glslc compile of the GLSL (one per
    /// variant where a shader lists "// variants: name=MACRO=1,… …").
    func testCommittedSPIRVIsUpToDate() throws {
        let dir = Fixtures.repoRoot.appendingPathComponent("shaders")
        let sources = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".comp") }.sorted()
        // (SPIR-V name, source file, macros)
        var builds: [(name: String, source: String, defines: [String])] = []
        for src in sources {
            let base = String(src.dropLast(5))
            let text = try String(contentsOf: dir.appendingPathComponent(src), encoding: .utf8)
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("// variants: ") }) else {
                builds.append((base, src, []))
                continue
            }
            for v in line.dropFirst("// variants: ".count).split(separator: " ") {
                let parts = v.split(separator: "=", maxSplits: 1)
                XCTAssertEqual(parts.count, 2, "\(src): malformed variant \(v)")
                builds.append(("\(base)_\(parts[0])", src, parts.last.map { $0.split(separator: ",").map { "-D\($0)" } } ?? []))
            }
        }
        XCTAssertEqual(Set(builds.map(\.name)), Set(VulkanShaders.names), "shaders/*.comp and SPIRV.swift name different shaders; run scripts/build-shaders.sh")
        for b in builds {
            let committed = try Data(contentsOf: dir.appendingPathComponent(b.name + ".spv"))
            XCTAssertEqual(VulkanShaders.spirv(b.name), committed, "\(b.name): SPIRV.swift is stale; run scripts/build-shaders.sh")
        }
        let glslc = ["/usr/bin/glslc", "/usr/local/bin/glslc"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let glslc else { throw XCTSkip("glslc not installed: only the embedded copy was checked") }
        for b in builds {
            let out = Fixtures.temporaryPath("\(b.name).spv")
            defer { try? FileManager.default.removeItem(atPath: out) }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: glslc)
            let text = try String(contentsOf: dir.appendingPathComponent(b.source), encoding: .utf8)
            let env = text.contains("GL_KHR_shader_subgroup") ? "vulkan1.1" : "vulkan1.0"
            p.arguments = ["-O", "--target-env=\(env)"] + b.defines + [dir.appendingPathComponent(b.source).path, "-o", out]
            try p.run()
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0, "glslc failed on \(b.source) \(b.defines)")
            let fresh = try Data(contentsOf: URL(fileURLWithPath: out))
            let committed = try Data(contentsOf: dir.appendingPathComponent(b.name + ".spv"))
            XCTAssertEqual(fresh, committed, "\(b.name).spv is stale; run scripts/build-shaders.sh")
        }
    }
}
