import Foundation
import PackCompiler
import RWKVEdit
import XCTest

final class EngineTests: XCTestCase {
    func testTinyFixtureLogitsMatchReference() throws {
        let model = try ModelLoader.load(path: Fixtures.tinySafetensors)
        XCTAssertEqual(model.config.nLayer, 12)
        XCTAssertEqual(model.config.nHead, 1)
        XCTAssertEqual(model.config.loraV, 32)
        let engine = CPUEngine(model: model)
        var state = engine.newState()
        let logits = try engine.forward([34, 105, 110], state: &state)
        XCTAssertLessThan(Fixtures.maxAbsDiff(logits, try Fixtures.expectedTinyLogits()), 1e-4)
    }

    func testTinyFixtureStateMatchesOfficialPackage() throws {
        let model = try ModelLoader.load(path: Fixtures.tinySafetensors)
        let engine = CPUEngine(model: model)
        for mode in ["sequence", "one-token"] {
            var state = engine.newState()
            if mode == "sequence" { _ = try engine.forward([34, 105, 110], state: &state) }
            else { for t in [34, 105, 110] { _ = try engine.step(t, state: &state) } }
            let reference = try State.load(from: Fixtures.tinyDir.appendingPathComponent("reference_state_after_quote_in.safetensors").path, config: model.config)
            XCTAssertLessThan(try state.maxAbsDifference(reference), 1e-4, mode)
        }
    }

    /// Sequence mode, one-token mode and batched mode (with different lengths) agree.
    func testBatchedSequenceAndStepModesAgree() throws {
        let shape = SyntheticModel.Shape(nLayer: 2, nEmbd: 128, vocab: 300, loraW: 16, loraA: 16, loraV: 8, loraG: 16)
        for dtype in [DType.f32, .f16, .bf16] {
            let engine = CPUEngine(model: try SyntheticModel.model(shape, dtype: dtype, seed: 3))
            var rng = SplitMix64(seed: 9)
            let prompts = [1, 7, 23, 2].map { n in (0..<n).map { _ in Int(rng.next() % 300) } }
            var batchStates = prompts.map { _ in engine.newState() }
            let batched = try engine.forward(prompts, states: &batchStates, allLogits: false)
            for (i, p) in prompts.enumerated() {
                var seqState = engine.newState()
                let seq = try engine.forward(p, state: &seqState)
                var stepState = engine.newState()
                var stepLogits: [Float] = []
                for t in p { stepLogits = try engine.step(t, state: &stepState) }
                XCTAssertLessThan(Fixtures.maxAbsDiff(seq, stepLogits), 1e-4, "\(dtype) prompt \(i)")
                XCTAssertLessThan(Fixtures.maxAbsDiff(seq, batched[i]), 1e-4, "\(dtype) prompt \(i)")
                XCTAssertLessThan(try seqState.maxAbsDifference(stepState), 1e-4)
                XCTAssertLessThan(try seqState.maxAbsDifference(batchStates[i]), 1e-4)
            }
        }
    }

    func testAllLogitsEqualsPrefixLogits() throws {
        let shape = SyntheticModel.Shape(nLayer: 1, nEmbd: 64, vocab: 100, loraW: 8, loraA: 8, loraV: 8, loraG: 8)
        let engine = CPUEngine(model: try SyntheticModel.model(shape, dtype: .f32))
        var s = engine.newState()
        var batchStates = [s]
        let all = try engine.forward([[5, 6, 7]], states: &batchStates, allLogits: true)[0]
        XCTAssertEqual(all.count, 300)
        let last = try engine.forward([5, 6, 7], state: &s)
        XCTAssertLessThan(Fixtures.maxAbsDiff(Array(all[200...]), last), 1e-5)
    }

    func testStateHandOverContinuesTheSequence() throws {
        let engine = CPUEngine(model: try ModelLoader.load(path: Fixtures.tinySafetensors))
        var whole = engine.newState()
        let direct = try engine.forward([34, 105, 110, 32], state: &whole)
        var split = engine.newState()
        _ = try engine.forward([34, 105], state: &split)
        let path = Fixtures.temporaryPath("handover.safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try split.save(to: path)
        var loaded = try State.load(from: path, config: engine.config)
        XCTAssertEqual(loaded, split)
        let continued = try engine.forward([110, 32], state: &loaded)
        XCTAssertLessThan(Fixtures.maxAbsDiff(direct, continued), 1e-5)
    }

    func testInvalidInputsAreTypedErrors() throws {
        let engine = CPUEngine(model: try ModelLoader.load(path: Fixtures.tinySafetensors))
        var s = engine.newState()
        XCTAssertThrowsError(try engine.forward([256], state: &s)) { XCTAssertTrue($0 is RWKVError) }
        XCTAssertThrowsError(try engine.forward([], state: &s)) { XCTAssertTrue($0 is RWKVError) }
        var wrong = [State(nLayer: 2, nEmbd: 64, nHead: 1, headSize: 64)]
        XCTAssertThrowsError(try engine.forward([[1]], states: &wrong, allLogits: false)) { XCTAssertTrue($0 is RWKVError) }
    }
}
