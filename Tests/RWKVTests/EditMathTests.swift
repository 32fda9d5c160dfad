import Foundation
import PackCompiler
import RWKVEdit
import StateAnalysis
import XCTest

final class EditMathTests: XCTestCase {
    func randomVector(_ n: Int, _ rng: inout SplitMix64) -> [Float] { (0..<n).map { _ in rng.nextFloat() * 2 - 1 } }

    func unit(_ x: [Float]) -> [Float] { let n = x.reduce(0) { $0 + $1 * $1 }.squareRoot(); return x.map { $0 / n } }

    func cosine(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } / (a.reduce(0) { $0 + $1 * $1 }.squareRoot() * b.reduce(0) { $0 + $1 * $1 }.squareRoot())
    }

    /// topK's one-pass selection gives what sorting everything gives: largest first, ties in index order.
    func testTopKMatchesAStableSortWithTies() {
        var rng = SplitMix64(seed: 5)
        for n in [0, 1, 2, 7, 100, 1727] {
            let values = (0..<n).map { _ in Double(Int(rng.nextFloat() * 9)) } // few distinct values: many ties
            let sorted = values.indices.sorted { values[$0] > values[$1] || (values[$0] == values[$1] && $0 < $1) }
            for k in [0, 1, 3, 5, n, n + 2] {
                XCTAssertEqual(topK(values, k), Array(sorted.prefix(k)), "n \(n), k \(k)")
            }
        }
    }

    /// A protected edit reads the same along every protected key: (Δ·P)·c = 0 for each direction c
    /// given (also ones given twice, or a sum of two, which add nothing), and Δ·x is unchanged for x
    /// orthogonal to all of them; other heads are untouched.
    func testKeyProtectionZeroesTheEditAlongProtectedKeysOnly() throws {
        var rng = SplitMix64(seed: 21)
        let n = 16, h = HeadIndex(layer: 1, head: 2), other = HeadIndex(layer: 0, head: 0)
        let (a, b) = (randomVector(n, &rng), randomVector(n, &rng))
        var p = KeyProtection()
        p.add(a, at: h)
        p.add(b, at: h)
        p.add(a.map { $0 * 3 }, at: h)
        p.add(zip(a, b).map { $0 + 2 * $1 }, at: h)
        p.add([Float](repeating: 0, count: n), at: h)
        XCTAssertEqual(p.directions[h]?.count, 2, "directions in the span held add nothing")
        XCTAssertFalse(p.add(b, at: h))
        XCTAssertTrue(p.add(a, at: other))
        let delta = randomVector(n * n, &rng)
        var m = delta
        try p.project(&m, at: h, headSize: n)
        func apply(_ m: [Float], _ x: [Float]) -> [Float] { (0..<n).map { i in (0..<n).reduce(Float(0)) { $0 + m[i * n + $1] * x[$1] } } }
        for c in [a, b] { XCTAssertLessThan(apply(m, c).map(abs).max()!, 1e-5) }
        // x orthogonal to a and b: the edit reads there as before.
        var x = randomVector(n, &rng)
        for c in p.directions[h]! { let d = zip(x, c).reduce(0) { $0 + $1.0 * $1.1 }; for j in 0..<n { x[j] -= d * c[j] } }
        for (got, want) in zip(apply(m, x), apply(delta, x)) { XCTAssertEqual(got, want, accuracy: 1e-5) }
        XCTAssertGreaterThan(zip(m, delta).map { abs($0 - $1) }.max()!, 1e-3, "the projection changed the edit")
        var untouched = delta
        try p.project(&untouched, at: HeadIndex(layer: 0, head: 1), headSize: n)
        XCTAssertEqual(untouched, delta)
        // Sizes that do not fit are typed errors, not a stop: a matrix of another head size, a rank-one
        // pair of unequal lengths (a pack's u against a model's heads), a head outside the states.
        var short = [Float](repeating: 1, count: n)
        XCTAssertThrowsError(try p.project(&short, at: h, headSize: n))
        XCTAssertThrowsError(try StateDelta.outer(RankOne(sigma: 1, u: a, v: [1, 2])))
        let s = State(nLayer: 1, nEmbd: n, nHead: 1, headSize: n)
        XCTAssertThrowsError(try StateDelta.head(s, s, HeadIndex(layer: 1, head: 0)))
        XCTAssertEqual(try StateDelta.head(s, s, HeadIndex(layer: 0, head: 0)).count, n * n)
    }

    /// A planted σ·u·vᵀ plus small noise comes back out of both SVD paths, up to sign.
    func testRankOneRecoveryOfPlantedOuterProduct() throws {
        var rng = SplitMix64(seed: 11)
        let n = 64
        let u = unit(randomVector(n, &rng)), v = unit(randomVector(n, &rng))
        var m = try StateDelta.outer(RankOne(sigma: 7.5, u: u, v: v))
        for i in m.indices { m[i] += 0.001 * (rng.nextFloat() - 0.5) }
        let full = try HeadSVD(matrix: m, n: n)
        XCTAssertEqual(full.sigma[0], 7.5, accuracy: 0.01)
        XCTAssertGreaterThan(abs(cosine(full.u(0), u)), 0.9999)
        XCTAssertGreaterThan(abs(cosine(full.v(0), v)), 0.9999)
        XCTAssertGreaterThan(full.r1, 0.9999)
        let lead = try HeadSVD.leading(matrix: m, n: n)
        XCTAssertEqual(lead.sigma, full.sigma[0], accuracy: 1e-3)
        // u and v flip together: σ·u·vᵀ is the same matrix either way.
        XCTAssertEqual(cosine(lead.u, full.u(0)) * cosine(lead.v, full.v(0)), 1, accuracy: 1e-4)
        let recon = StateDelta.reconstruct(full, rank: 1)
        XCTAssertLessThan(zip(recon, m).map { abs($0 - $1) }.max() ?? 1, 0.002)
    }

    func testLeadingMatchesFullSVDOnRandomMatrices() throws {
        var rng = SplitMix64(seed: 3)
        for _ in 0..<5 {
            let m = randomVector(64 * 64, &rng)
            let full = try HeadSVD(matrix: m, n: 64)
            let lead = try HeadSVD.leading(matrix: m, n: 64)
            XCTAssertEqual(lead.sigma, full.sigma[0], accuracy: 1e-3 * full.sigma[0])
            XCTAssertGreaterThan(abs(cosine(lead.u, full.u(0))), 0.999)
        }
        let zero = try HeadSVD.leading(matrix: [Float](repeating: 0, count: 16), n: 4)
        XCTAssertEqual(zero.sigma, 0)
    }

    func tinyEngine() throws -> CPUEngine { CPUEngine(model: try ModelLoader.load(path: Fixtures.tinySafetensors)) }

    func bytes(_ s: String) -> [Int] { s.utf8.map { Int($0) } }

    /// α = ratio·‖S‖/‖Δ‖, and the applied change has exactly that norm.
    func testAdaptiveAlphaFormula() throws {
        let engine = try tinyEngine()
        var live = engine.newState()
        _ = try engine.forward(bytes("Alice lives in Paris."), state: &live)
        let before = live
        let applied = try StateEditor(engine: engine).edit(&live, old: bytes(" Paris"), new: bytes(" London"),
                                                           options: EditOptions(method: .adaptive, ratio: 0.3))
        XCTAssertEqual(applied.stateNorm, before.wkvNorm(), accuracy: 1e-4)
        XCTAssertEqual(applied.alpha, 0.3 * applied.stateNorm / applied.deltaNorm, accuracy: 1e-5)
        let change = try live.subtracting(before).wkvNorm()
        XCTAssertEqual(change, applied.alpha * applied.deltaNorm, accuracy: 1e-3)
        XCTAssertEqual(change, 0.3 * before.wkvNorm(), accuracy: 1e-3)
        // Only the upper half of the layers changed.
        XCTAssertEqual(try live.subtracting(before).wkvNorm(layers: 0..<6), 0)
        XCTAssertEqual(live.attXPrev, before.attXPrev)
    }

    /// HYB-U orients the offline u₁ like the online value direction whatever sign the SVD picked.
    func testHybUSignAlignmentAndUniformEquivalence() throws {
        let engine = try tinyEngine()
        var live = engine.newState()
        _ = try engine.forward(bytes("Bob lives in Austin."), state: &live)
        let editor = StateEditor(engine: engine)
        let heads = try EditOptions().targetHeads(engine.config)
        var cal = try editor.calibrate(old: bytes("Bob lives in Austin."), new: bytes("Bob lives in Chicago."), heads: heads)
        var flipped = cal
        for (h, r) in cal.heads { flipped.heads[h] = RankOne(sigma: r.sigma, u: r.u.map { -$0 }, v: r.v.map { -$0 }) }
        var a = live, b = live
        try editor.edit(&a, old: bytes(" Austin"), new: bytes(" Chicago"), options: EditOptions(), calibration: cal)
        try editor.edit(&b, old: bytes(" Austin"), new: bytes(" Chicago"), options: EditOptions(), calibration: flipped)
        XCTAssertLessThan(try a.maxAbsDifference(b), 1e-5)
        // With u₁ replaced by the online u, HYB-U is the online rank-1 edit at the same α.
        let probe = try editor.probe(live, old: bytes(" Austin"), new: bytes(" Chicago"))
        for h in heads {
            let on = try HeadSVD.leading(matrix: try StateDelta.head(probe.old, probe.new, h), n: 64)
            cal.heads[h] = RankOne(sigma: 1, u: on.u, v: on.v)
        }
        var c = live, d = live
        let e1 = try editor.edit(&c, old: bytes(" Austin"), new: bytes(" Chicago"), options: EditOptions(method: .hybU, alpha: 1), calibration: cal)
        try editor.edit(&d, old: bytes(" Austin"), new: bytes(" Chicago"), options: EditOptions(method: .rank1, alpha: 1))
        XCTAssertEqual(e1.alpha, 1)
        XCTAssertLessThan(try c.maxAbsDifference(d), 1e-4)
    }

    func testUndoIsBitExactAndForgetEraseArithmetic() throws {
        let engine = try tinyEngine()
        let session = EditSession(engine: engine, tokenizer: WorldTokenizer(tokens: (0..<256).map { [UInt8($0)] }))
        try session.feed("Bob has a car. Alice lives in Madrid.")
        let original = session.state
        let before = try session.score(query: " Bob has a", answer: "car")
        try session.edit(from: "Bob has a car.", to: "Bob has a house.", options: EditOptions(method: .uniform))
        let forget = try session.forget(fact: "Bob has a car.", entity: "Bob.")
        XCTAssertEqual(forget.ratio, 0.55)
        let erase = try session.erase(fact: "Alice lives in Madrid.")
        XCTAssertEqual(erase.ratio, 0.55)
        XCTAssertNotEqual(session.state, original)
        XCTAssertEqual(session.undoStack.count, 3)
        try session.undo(); try session.undo(); try session.undo()
        XCTAssertEqual(session.state.wkv, original.wkv)    // bit-identical, not merely close
        XCTAssertEqual(session.state, original)
        XCTAssertEqual(try session.score(query: " Bob has a", answer: "car").probability, before.probability)
        XCTAssertThrowsError(try session.undo()) { XCTAssertEqual($0 as? EditError, .nothingToUndo) }

        // Forget writes Δ = S(entity) − S(fact) from the live state: with the uniform method at α = 1 the
        // edited heads move by exactly that delta.
        let editor = StateEditor(engine: engine)
        let probe = try editor.probe(original, old: bytes(" Bob has a car."), new: bytes(" Bob."))
        try session.forget(fact: "Bob has a car.", entity: "Bob.", options: EditOptions(method: .uniform, alpha: 1, layers: 11...11))
        let expected = try StateDelta.head(probe.old, probe.new, HeadIndex(layer: 11, head: 0))
        let moved = try StateDelta.head(original, session.state, HeadIndex(layer: 11, head: 0))
        XCTAssertLessThan(zip(expected, moved).map { abs($0 - $1) }.max() ?? 1, 1e-5)
    }

    func testBadInputsAreTypedErrorsAndLeaveTheStateUnchanged() throws {
        let engine = try tinyEngine()
        let session = EditSession(engine: engine, tokenizer: WorldTokenizer(tokens: (0..<256).map { [UInt8($0)] }))
        try session.feed("Alice lives in Paris.")
        let s = session.state
        XCTAssertThrowsError(try EditMethod(name: "magic")) { XCTAssertEqual($0 as? EditError, .unknownMethod("magic")) }
        XCTAssertThrowsError(try session.edit(from: "", to: "x")) { XCTAssertEqual($0 as? EditError, .emptyText("the old fact")) }
        XCTAssertThrowsError(try session.edit(from: "a", to: "b", options: EditOptions(layers: 10...12))) {
            guard case .layerRange = $0 as? EditError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try session.edit(from: "a", to: "b", options: EditOptions(heads: [1]))) {
            XCTAssertEqual($0 as? EditError, .headOutOfRange(1, heads: 1))
        }
        XCTAssertThrowsError(try EditOptions.parseLayers("5-2"))
        XCTAssertThrowsError(try session.replaceState(State(nLayer: 3, nEmbd: 64, nHead: 1, headSize: 64))) {
            guard case .incompatibleState = $0 as? EditError else { return XCTFail("\($0)") }
        }
        XCTAssertEqual(session.state, s)
        XCTAssertTrue(session.undoStack.isEmpty)
    }
}

/// States of different models, or a head matrix of the wrong size, are typed errors, not traps.
final class StateShapeErrorTests: XCTestCase {
    func testMismatchedStatesThrow() throws {
        let a = State(nLayer: 2, nEmbd: 64, nHead: 1, headSize: 64), b = State(nLayer: 3, nEmbd: 64, nHead: 1, headSize: 64)
        XCTAssertThrowsError(try a.subtracting(b))
        XCTAssertThrowsError(try a.maxAbsDifference(b))
        XCTAssertThrowsError(try StatePatch.patched(a, from: b, heads: [HeadIndex(layer: 0, head: 0)]))
        var c = a
        XCTAssertThrowsError(try c.setWKVHead(layer: 0, head: 0, [1, 2, 3]))
        XCTAssertThrowsError(try c.setWKVHead(layer: 5, head: 0, [Float](repeating: 0, count: 64 * 64)))
        XCTAssertEqual(c, a, "a refused write leaves the state as it was")
    }
}
