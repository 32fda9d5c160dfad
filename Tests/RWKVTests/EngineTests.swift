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

    /// Passes of bounded size: the slices and packing of a worked example, and for random batches every
    /// pass within its caps, each sequence covered in order by pieces in increasing passes, the last
    /// piece marked.
    func testPassPlanSlicesAndPacksWithinItsCaps() {
        let plan = PassPlan(lengths: [1100, 200, 250, 90, 513, 0], maxRows: 512)
        XCTAssertEqual(plan.passes.map { $0.map { "\($0.sequence):\($0.tokens.lowerBound)-\($0.tokens.upperBound)\($0.isLast ? "." : "")" } },
                       [["0:0-366"], ["0:366-733"], ["0:733-1100."], ["1:0-200.", "2:0-250."], ["3:0-90.", "4:0-256"], ["4:256-513."]])
        XCTAssertEqual(PassPlan(lengths: [3, 3, 3], maxRows: 8, maxSequences: 2).passes.map { $0.map(\.sequence) }, [[0, 1], [2]])
        var rng = SplitMix64(seed: 5)
        for _ in 0..<500 {
            let lengths = (0..<Int(rng.next() % 6)).map { _ in Int(rng.next() % 40) }
            let (rows, sequences) = (1 + Int(rng.next() % 12), 1 + Int(rng.next() % 4))
            let passes = PassPlan(lengths: lengths, maxRows: rows, maxSequences: sequences).passes
            var covered = lengths.map { _ in 0 }, lastPass = lengths.map { _ in -1 }
            for (k, pass) in passes.enumerated() {
                XCTAssertFalse(pass.isEmpty)
                XCTAssertLessThanOrEqual(pass.reduce(0) { $0 + $1.tokens.count }, rows, "\(lengths) \(rows)")
                XCTAssertLessThanOrEqual(pass.count, sequences)
                for piece in pass {
                    XCTAssertEqual(piece.tokens.lowerBound, covered[piece.sequence], "\(lengths) \(rows)")
                    XCTAssertFalse(piece.tokens.isEmpty)
                    XCTAssertGreaterThan(k, lastPass[piece.sequence], "\(lengths) \(rows): two pieces of one sequence in a pass")
                    covered[piece.sequence] = piece.tokens.upperBound
                    lastPass[piece.sequence] = k
                    XCTAssertEqual(piece.isLast, piece.tokens.upperBound == lengths[piece.sequence])
                }
            }
            XCTAssertEqual(covered, lengths)
        }
    }

    /// A batch of more rows than one pass (`CPUEngine.maxPassRows`): a long sequence is fed in slices with
    /// its state carried, shorter ones grouped into passes. Same logits (the last, or all) and states as
    /// feeding each sequence 100 tokens at a time; a bad token anywhere leaves every state untouched.
    func testLongBatchesAreFedInSlicesWithTheSameResult() throws {
        let shape = SyntheticModel.Shape(nLayer: 2, nEmbd: 64, vocab: 300, loraW: 8, loraA: 8, loraV: 8, loraG: 8)
        let engine = CPUEngine(model: try SyntheticModel.model(shape, dtype: .f16, seed: 4))
        var rng = SplitMix64(seed: 2)
        // 1100: three slices; 200 and 250 one pass; 90 alone (513 would not fit beside it); 513: two slices.
        let prompts = [1100, 200, 250, 90, 513].map { n in (0..<n).map { _ in Int(rng.next() % 300) } }
        XCTAssertGreaterThan(prompts.reduce(0) { $0 + $1.count }, CPUEngine.maxPassRows)
        for allLogits in [false, true] {
            var states = prompts.map { _ in engine.newState() }
            let logits = try engine.forward(prompts, states: &states, allLogits: allLogits)
            for (i, p) in prompts.enumerated() {
                var state = engine.newState(), expected: [Float] = []
                for start in stride(from: 0, to: p.count, by: 100) {
                    var one = [state]
                    let part = try engine.forward([Array(p[start..<min(p.count, start + 100)])], states: &one, allLogits: allLogits)[0]
                    state = one[0]
                    expected = allLogits ? expected + part : part
                }
                XCTAssertEqual(logits[i].count, expected.count, "prompt \(i), all logits: \(allLogits)")
                XCTAssertLessThan(Fixtures.maxAbsDiff(logits[i], expected), 1e-4, "prompt \(i), all logits: \(allLogits)")
                XCTAssertLessThan(try states[i].maxAbsDifference(state), 1e-4, "prompt \(i), all logits: \(allLogits)")
            }
        }
        // A token outside the vocabulary in the last sequence: the slices before it are not fed either.
        var states = prompts.map { _ in engine.newState() }
        _ = try engine.forward(prompts.map { Array($0.prefix(5)) }, states: &states)
        let before = states
        XCTAssertThrowsError(try engine.forward(Array(prompts.dropLast()) + [prompts[4] + [300]], states: &states))
        for (s, b) in zip(states, before) { XCTAssertEqual(try s.maxAbsDifference(b), 0) }
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

    /// A pass resumed from a kept layer on a state edited only in that layer and above gives exactly
    /// the full pass's logits and upper states (what a verified edit's trials rely on), for both
    /// batch shapes the kernels distinguish (matrix–vector and tiled GEMM).
    func testResumingFromAKeptLayerMatchesAFullPass() throws {
        let shape = SyntheticModel.Shape(nLayer: 4, nEmbd: 128, vocab: 300, loraW: 16, loraA: 16, loraV: 8, loraG: 16)
        let engine = CPUEngine(model: try SyntheticModel.model(shape, dtype: .f16, seed: 5))
        var live = engine.newState()
        _ = try engine.forward([3, 14, 15, 92, 65], state: &live)
        var edited = live
        let kept = 2
        for i in edited.wkvOffset(layer: kept, head: 0)..<edited.wkv.count { edited.wkv[i] += Float(i % 7) * 0.05 - 0.15 }
        for batch in [[[7, 8], [9]], [[11, 12, 13, 14, 15], [16, 17, 18, 19], [20, 21, 22]]] {
            for allLogits in [false, true] {
                var before = [State](repeating: live, count: batch.count)
                let first = try engine.forward(batch, states: &before, allLogits: allLogits, keepingInputsOf: kept)
                XCTAssertEqual(first.inputs.layer, kept)
                var full = [State](repeating: edited, count: batch.count)
                let expected = try engine.forward(batch, states: &full, allLogits: allLogits)
                var resumed = [State](repeating: edited, count: batch.count)
                let got = try engine.forward(resuming: first.inputs, states: &resumed, allLogits: allLogits)
                XCTAssertEqual(got, expected, "\(batch) allLogits \(allLogits)")
                XCTAssertNotEqual(got, first.logits, "the edit must change the logits for this test to mean anything")
                for (r, f) in zip(resumed, full) {
                    XCTAssertEqual(Array(r.wkv[r.wkvOffset(layer: kept, head: 0)...]), Array(f.wkv[f.wkvOffset(layer: kept, head: 0)...]))
                }
            }
        }
        var s = [live]
        XCTAssertThrowsError(try engine.forward([[1]], states: &s, allLogits: false, keepingInputsOf: 4))
    }

    /// Threads split rows, heads and row blocks, never a sum: any thread count gives the same bits, and
    /// so does an engine that reuses its buffers from a larger pass.
    func testThreadCountAndReusedBuffersDoNotChangeResults() throws {
        let shape = SyntheticModel.Shape(nLayer: 3, nEmbd: 128, vocab: 300, loraW: 16, loraA: 16, loraV: 8, loraG: 16)
        let model = try SyntheticModel.model(shape, dtype: .f16, seed: 9)
        let batches: [[[Int]]] = [[[4]], [[5, 6], [7]], [[8, 9, 10, 11, 12, 13, 14], [15, 16, 17], [18]], [Array(20..<60)]]
        func run(_ engine: CPUEngine, _ order: [Int]) throws -> [Int: ([[Float]], [State])] {
            var out: [Int: ([[Float]], [State])] = [:]
            for i in order {
                var states = [State](repeating: engine.newState(), count: batches[i].count)
                let logits = try engine.forward(batches[i], states: &states, allLogits: true)
                out[i] = (logits, states)
            }
            return out
        }
        let one = try run(CPUEngine(model: model, threads: 1), Array(batches.indices))
        for threads in [2, 3] {
            // Largest batch first, so the later ones run in its (reused) buffers.
            let many = try run(CPUEngine(model: model, threads: threads), Array(batches.indices.reversed()))
            for i in batches.indices {
                XCTAssertEqual(many[i]!.0, one[i]!.0, "logits, batch \(i), \(threads) threads")
                XCTAssertEqual(many[i]!.1, one[i]!.1, "states, batch \(i), \(threads) threads")
            }
        }
    }

    /// Without all logits the top layer computes its output at each sequence's last row only: those
    /// logits and every state match the pass that computes every row (the WKV matrices to the bit; the
    /// rest within float rounding, the subset's products taking the few-row kernel).
    func testTopLayerAtTheOutputRowsOnlyMatchesTheFullPass() throws {
        let shape = SyntheticModel.Shape(nLayer: 3, nEmbd: 128, vocab: 300, loraW: 16, loraA: 16, loraV: 8, loraG: 16)
        let engine = CPUEngine(model: try SyntheticModel.model(shape, dtype: .f16, seed: 4), threads: 2)
        let batch: [[Int]] = [Array(8..<40), [15, 16, 17], [18], [19, 20]]
        var full = [State](repeating: engine.newState(), count: batch.count)
        let every = try engine.forward(batch, states: &full, allLogits: true)
        var last = [State](repeating: engine.newState(), count: batch.count)
        let lastOnly = try engine.forward(batch, states: &last, allLogits: false)
        let V = shape.vocab
        for (i, seq) in batch.enumerated() {
            let expected = Array(every[i][((seq.count - 1) * V)...])
            XCTAssertEqual(lastOnly[i].count, V)
            let scale = expected.map(abs).max() ?? 1
            for (a, b) in zip(lastOnly[i], expected) { XCTAssertEqual(a, b, accuracy: 1e-5 * scale, "sequence \(i)") }
            XCTAssertEqual(last[i].wkv, full[i].wkv, "sequence \(i): the WKV update runs at every row")
            XCTAssertLessThan(try last[i].maxAbsDifference(full[i]), 1e-4, "sequence \(i)")
        }
    }

    /// A read of a batch whose sequences continue one another gives each sequence the logits and state
    /// of its whole text fed on its own (the CPU engine in one pass, the protocol's generation-by-
    /// generation default for other backends), for few-row and GEMM batches, last or all logits, some
    /// sequences fed for their states only, the states kept in the order asked, and resumed from a kept
    /// layer.
    func testBranchingBatchMatchesFeedingEachWholeSequence() throws {
        let shape = SyntheticModel.Shape(nLayer: 3, nEmbd: 128, vocab: 300, loraW: 16, loraA: 16, loraV: 8, loraG: 16)
        let engine = CPUEngine(model: try SyntheticModel.model(shape, dtype: .f16, seed: 6), threads: 2)
        let generic = PlainForward(engine)
        var base = engine.newState()
        _ = try engine.forward([3, 1, 4, 1, 5], state: &base)
        let V = shape.vocab
        let small = try BranchingBatch(tokens: [[7, 8], [9], [10, 11], [12]], parents: [nil, 0, 0, 2])
        let large = try BranchingBatch(tokens: [Array(20..<32), [40], [41, 42, 43], [50, 51, 52, 53, 54, 55], [44, 45], [46]],
                                       parents: [nil, 0, 0, nil, 2, 4])
        let unread = try BranchingBatch(tokens: large.tokens, parents: large.parents, readsLogits: [false, true, false, false, true, true])
        for batch in [small, large, unread] {
            let whole = batch.tokens.indices.map { i -> [Int] in
                var seq = batch.tokens[i], p = batch.parents[i]
                while let q = p { seq = batch.tokens[q] + seq; p = batch.parents[q] }
                return seq
            }
            for allLogits in [false, true] {
                for e in [engine, generic] as [any Engine] {
                    let keptStates = Array(whole.indices.reversed())
                    let r = try e.read(batch, from: base, keepingStatesOf: keptStates, allLogits: allLogits, keepingInputsOf: nil)
                    let got = r.logits
                    XCTAssertEqual(r.states.count, whole.count)
                    for (i, seq) in whole.enumerated() {
                        var alone = [base]
                        let expected = try engine.forward([seq], states: &alone, allLogits: allLogits)[0]
                        let state = r.states[keptStates.firstIndex(of: i)!]
                        XCTAssertLessThan(try state.maxAbsDifference(alone[0]), 1e-4, "\(e.backendName) \(seq)")
                        guard batch.readsLogits[i] else { XCTAssertEqual(got[i], []); continue }
                        let tail = allLogits ? Array(expected[((seq.count - batch.tokens[i].count) * V)...]) : expected
                        XCTAssertEqual(got[i].count, tail.count)
                        let scale = tail.map(abs).max() ?? 1
                        XCTAssertLessThan(Fixtures.maxAbsDiff(got[i], tail), 1e-5 * scale, "\(e.backendName) \(seq)")
                    }
                }
            }
            // Resumed from a kept layer on an edited state: as the full pass on it.
            var edited = base
            for i in edited.wkvOffset(layer: 1, head: 0)..<edited.wkv.count { edited.wkv[i] += Float(i % 5) * 0.04 - 0.08 }
            let kept = try engine.read(batch, from: base, keepingStatesOf: [], allLogits: false, keepingInputsOf: 1).inputs
            XCTAssertEqual(kept.layer, 1)
            let full = try engine.read(batch, from: edited, keepingStatesOf: [1, 2], allLogits: false, keepingInputsOf: nil)
            let resumed = try engine.read(resuming: kept, from: edited, keepingStatesOf: [1, 2], allLogits: false)
            XCTAssertEqual(resumed.logits, full.logits)
            for (r, f) in zip(resumed.states, full.states) {
                XCTAssertEqual(Array(r.wkv[r.wkvOffset(layer: 1, head: 0)...]), Array(f.wkv[f.wkvOffset(layer: 1, head: 0)...]))
            }
            // A plain forward cannot resume what a read kept (its sequences continue one another).
            var states = [State](repeating: edited, count: whole.count)
            if batch.parents.contains(where: { $0 != nil }) {
                XCTAssertThrowsError(try engine.forward(resuming: kept, states: &states, allLogits: false))
            }
        }
        XCTAssertThrowsError(try engine.read(small, from: base, keepingStatesOf: [1, 1], allLogits: false, keepingInputsOf: nil))
        XCTAssertThrowsError(try engine.read(small, from: base, keepingStatesOf: [4], allLogits: false, keepingInputsOf: nil))
        XCTAssertThrowsError(try BranchingBatch(tokens: [[1], [2]], parents: [1, nil]))
        XCTAssertThrowsError(try BranchingBatch(tokens: [[1], [2]], parents: [nil]))
    }

    /// Shared beginnings become one sequence when that saves tokens; every sequence is rebuilt
    /// exactly from its chain of parents, and equal sequences share one.
    func testSharingPrefixesFeedsEachSharedBeginningOnce() throws {
        let sequences = [[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 3], [7, 8], [1, 9], [7, 9], [1, 2, 3, 4], [6]]
        let (batch, node) = try BranchingBatch.sharingPrefixes(sequences)
        for (i, seq) in sequences.enumerated() {
            var rebuilt = batch.tokens[node[i]], p = batch.parents[node[i]]
            while let q = p { rebuilt = batch.tokens[q] + rebuilt; p = batch.parents[q] }
            XCTAssertEqual(rebuilt, seq)
        }
        XCTAssertEqual(node[0], node[6])
        // [1] + ([2, 3] + [4] | [5]) | [9]; [7, 8] and [7, 9] share one token only: not worth a sequence.
        XCTAssertEqual(batch.tokens.reduce(0) { $0 + $1.count }, 1 + 2 + 1 + 1 + 1 + 2 + 2 + 1)
        // Logits are read where a sequence asked for ends ([2, 3] ends [1, 2, 3]), not at the shared [1].
        XCTAssertEqual(batch.readsLogits.filter { $0 }.count, Set(node).count)
        XCTAssertEqual(try BranchingBatch.sharingPrefixes([[5, 6], [7]]).batch, BranchingBatch([[5, 6], [7]]))
        XCTAssertThrowsError(try BranchingBatch.sharingPrefixes([[5], []]))
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
        _ = try engine.forward([1, 2, 3], state: &s)
        let fed = s
        // A throw leaves the state as it was (the one-sequence forward moves it into the pass).
        XCTAssertThrowsError(try engine.forward([256], state: &s)) { XCTAssertTrue($0 is RWKVError) }
        XCTAssertThrowsError(try engine.forward([], state: &s)) { XCTAssertTrue($0 is RWKVError) }
        XCTAssertEqual(s, fed)
        var wrongShape = State(nLayer: 2, nEmbd: 64, nHead: 1, headSize: 64)
        let before = wrongShape
        XCTAssertThrowsError(try engine.forward([1], state: &wrongShape)) { XCTAssertTrue($0 is RWKVError) }
        XCTAssertEqual(wrongShape, before)
        var wrong = [State(nLayer: 2, nEmbd: 64, nHead: 1, headSize: 64)]
        XCTAssertThrowsError(try engine.forward([[1]], states: &wrong, allLogits: false)) { XCTAssertTrue($0 is RWKVError) }
    }
}

/// An engine with only the plain batched forward, so that the protocol's defaults run (as they do
/// for the Vulkan engine).
private final class PlainForward: Engine, @unchecked Sendable {
    let inner: CPUEngine
    init(_ inner: CPUEngine) { self.inner = inner }
    var model: RWKVModel { inner.model }
    var backendName: String { "plain" }
    func forward(_ batch: [[Int]], states: inout [State], allLogits: Bool) throws -> [[Float]] {
        try inner.forward(batch, states: &states, allLogits: allLogits)
    }
}
