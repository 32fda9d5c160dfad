import Foundation
import PackCompiler
import RWKVEdit
import XCTest

/// Logits and states of a random 3-layer, 4-head model against the official `rwkv` package
/// (Tests/Fixtures/golden, made by tools/golden/make_golden.py).
final class GoldenTests: XCTestCase {
    static let refPath = Fixtures.golden.appendingPathComponent("golden-ref.safetensors").path

    func model() throws -> RWKVModel {
        try ModelLoader.load(path: Fixtures.golden.appendingPathComponent("golden.blinkdl.safetensors").path)
    }

    /// Relative where large: |a − b| ≤ tol · max(1, |b|).
    func assertClose(_ a: [Float], _ b: [Float], _ tol: Float = 1e-4, _ what: String) {
        XCTAssertEqual(a.count, b.count, what)
        let worst = zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
        XCTAssertLessThan(worst, tol, what)
    }

    func testOneTokenSequenceAndBatchedModesMatchOfficialPackage() throws {
        let m = try model()
        XCTAssertEqual(m.config, ModelConfig(nLayer: 3, nEmbd: 256, nHead: 4, headSize: 64, vocabSize: 1536, ffnSize: 1024,
                                             loraW: 32, loraA: 32, loraV: 16, loraG: 32))
        let ref = try SafeTensorsFile(path: Self.refPath)
        let engine = CPUEngine(model: m)
        let names = ["p1", "p7", "p120"]
        let prompts = try names.map { try ref.int32s("\($0).tokens").map(Int.init) }
        var batchStates = prompts.map { _ in engine.newState() }
        let batched = try engine.forward(prompts, states: &batchStates, allLogits: false)
        for (i, name) in names.enumerated() {
            let expected = try ref.tensor("\(name).logits_one").floats()
            let refState = try State.load(from: Self.refPath, config: m.config, keyPrefix: "\(name).")

            var stepState = engine.newState()
            var stepLogits: [Float] = []
            for t in prompts[i] { stepLogits = try engine.step(t, state: &stepState) }
            assertClose(stepLogits, expected, 1e-4, "\(name) one-token logits")
            assertClose(stepState.wkv, refState.wkv, 1e-4, "\(name) one-token wkv")
            assertClose(stepState.attXPrev + stepState.ffnXPrev, refState.attXPrev + refState.ffnXPrev, 1e-4, "\(name) one-token shift states")

            var seqState = engine.newState()
            let seqLogits = try engine.forward(prompts[i], state: &seqState)
            assertClose(seqLogits, try ref.tensor("\(name).logits_seq").floats(), 1e-4, "\(name) sequence logits")
            assertClose(seqState.wkv, refState.wkv, 1e-4, "\(name) sequence wkv")

            assertClose(batched[i], expected, 1e-4, "\(name) batched logits")
            assertClose(batchStates[i].wkv, refState.wkv, 1e-4, "\(name) batched wkv")
        }
        // Continuing from a state: P7 then P1's token.
        var s = batchStates[1]
        assertClose(try engine.forward(prompts[0], state: &s), try ref.tensor("p7p1.logits").floats(), 1e-4, "p7→p1 hand-over")
    }

    /// The portable C kernels (what non-x86 builds compile to), forced on this machine with
    /// RWKV_EDIT_KERNELS=portable, give the official package's logits for every weight type, through
    /// the matrix–vector (1 token) and the GEMM (120 tokens) paths.
    func testPortableKernelsMatchOfficialPackage() throws {
        try CLI.requireBinary()
        let ref = try SafeTensorsFile(path: Self.refPath)
        let info = try CLI.run(["info", "--model", Fixtures.golden.appendingPathComponent("golden.f32.pth").path, "--json"],
                               environment: ["RWKV_EDIT_KERNELS": "portable"])
        XCTAssertEqual(info.status, 0, info.stderr)
        XCTAssertEqual(try CLI.json(info.stdout)["kernels"] as? String, "portable")
        func portableLogits(_ file: String, _ prompt: String) throws -> [Float] {
            let tokens = try ref.int32s("\(prompt).tokens").map { String($0) }.joined(separator: ",")
            let r = try CLI.run(["logits", "--model", Fixtures.golden.appendingPathComponent(file).path, "--tokens", tokens, "--json", "--backend", "cpu"],
                                environment: ["RWKV_EDIT_KERNELS": "portable"])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try XCTUnwrap(CLI.json(r.stdout)["logits"] as? [Double]).map(Float.init)
        }
        for prompt in ["p1", "p120"] {
            assertClose(try portableLogits("golden.f32.pth", prompt), try ref.tensor("\(prompt).logits_seq").floats(), 1e-4, "f32 \(prompt)")
        }
        // Half-precision files against the official package run on the same files (7 tokens: the GEMM path).
        assertClose(try portableLogits("golden.bf16.pth", "p7"), try ref.tensor("p7.logits_bf16file").floats(), 1e-3, "bf16 p7")
        assertClose(try portableLogits("golden.f16.pth", "p7"), try ref.tensor("p7.logits_f16file").floats(), 1e-3, "f16 p7")
    }
}
