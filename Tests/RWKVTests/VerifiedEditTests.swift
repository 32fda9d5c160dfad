import Foundation
import RWKVEdit
import XCTest

/// Verdicts of edits by name on the demo model: `applied` only when the query flipped and every control
/// kept its answer; a weak or collateral edit is undone (unless kept on request) and the CLI exits 2 or 3.
final class VerifiedEditTests: XCTestCase {
    static let modelPath = Fixtures.repoRoot.appendingPathComponent("models/demo.safetensors").path
    static let twoCities = "Alice lives in Paris. Bob lives in Austin."

    func bundle() throws -> ModelBundle {
        guard FileManager.default.fileExists(atPath: Self.modelPath) else { throw XCTSkip("models/demo.safetensors not present") }
        return try ModelBundle(modelPath: Self.modelPath)
    }

    func testAppliedEditFlipsTheQueryAndKeepsTheFoundControls() throws {
        let b = try bundle()
        let session = b.session(threads: 1)
        try session.feed(Self.twoCities)
        let r = try session.edit("Bob: Austin -> Chicago", pack: b.pack("cities"))
        XCTAssertEqual(r.verdict, .applied)
        XCTAssertTrue(r.outcome.kept)
        XCTAssertTrue(r.outcome.after.new.isTop1)
        XCTAssertLessThan(r.outcome.after.old.probability, EditVerdict.oldProbabilityLimit)
        // The other statement of the property, found in the conversation by the pack's @probe.
        XCTAssertEqual(r.outcome.controls.map(\.control.answer), ["Paris"])
        XCTAssertTrue(r.outcome.controls[0].after.isTop1)
        XCTAssertEqual(try session.generate(after: "Where does Bob live? Bob lives in", maxTokens: 2, commit: false), " Chicago.")
    }

    func testTooWeakAndTooStrongEditsAreJudgedAndUndone() throws {
        let b = try bundle()
        let session = b.session(threads: 1)
        try session.feed(Self.twoCities)
        let pack = try b.pack("cities")
        let start = session.state
        let weak = try session.edit("Bob: Austin -> Chicago", pack: pack, options: EditOptions(ratio: 0.001), strength: .fixed)
        XCTAssertEqual(weak.verdict, .weak)
        XCTAssertFalse(weak.outcome.kept)
        XCTAssertEqual(session.state, start, "a weak edit leaves the state as it was")
        XCTAssertThrowsError(try session.undo(), "nothing was kept, so nothing to undo")

        let strong = try session.edit("Bob: Austin -> Chicago", pack: pack, options: EditOptions(ratio: 100), strength: .fixed)
        XCTAssertEqual(strong.verdict, .collateral)
        XCTAssertFalse(strong.outcome.kept)
        XCTAssertEqual(session.state, start)

        let kept = try session.edit("Bob: Austin -> Chicago", pack: pack, options: EditOptions(ratio: 0.001), strength: .fixed,
                                    keepUnverified: true)
        XCTAssertEqual(kept.verdict, .weak)
        XCTAssertTrue(kept.outcome.kept)
        XCTAssertNotEqual(session.state, start)
        try session.undo()
        XCTAssertEqual(session.state, start)
    }

    /// The search climbs the ladder from the card's ratio until the edit verifies: one trial at most per rung.
    func testStrengthSearchStopsAtTheFirstAppliedRung() throws {
        let b = try bundle()
        let session = b.session(threads: 1)
        try session.feed(Self.twoCities)
        let r = try session.edit("Bob: Austin -> Chicago", pack: b.pack("cities"), options: EditOptions(ratio: 0.1))
        XCTAssertEqual(r.verdict, .applied)
        XCTAssertLessThanOrEqual(r.outcome.trials.count, StrengthPolicy.ladder.count)
        XCTAssertTrue(r.outcome.trials.dropLast().allSatisfy { $0.verdict == .weak }, "earlier rungs were weak")
        let ratios = r.outcome.trials.compactMap(\.applied.ratio)
        XCTAssertEqual(ratios, Array(StrengthPolicy.ladder.prefix(ratios.count).map { $0 * 0.1 }))
        XCTAssertGreaterThan(ratios.count, 1, "ratio 0.1 alone is too weak on the demo model, so the search climbed")
    }

    func testEditsOfWhatTheConversationDoesNotHoldAreRefused() throws {
        let b = try bundle()
        let session = b.session(threads: 1)
        try session.feed(Self.twoCities)
        let pack = try b.pack("cities")
        for spec in ["Zoe: Austin -> Chicago", "Bob: Paris -> Chicago"] {
            XCTAssertThrowsError(try session.edit(spec, pack: pack), spec) { error in
                guard case EditError.notInContext = error else { return XCTFail("\(spec): \(error)") }
            }
        }
    }

    /// `apply` exits 0 only for `applied`: 2 for weak, 3 for collateral, 0 again with --allow-weak; the
    /// JSON carries the verdict and the warnings.
    func testApplyExitStatusFollowsTheVerdict() throws {
        try CLI.requireBinary()
        _ = try bundle()
        let pack = Fixtures.repoRoot.appendingPathComponent("packs/cities.rwkvpack").path
        let base = ["apply", "--model", Self.modelPath, "--pack", pack, "--context", Self.twoCities,
                    "--edit", "Bob: Austin -> Chicago", "--json", "--threads", "1"]
        for (extra, status, verdict, kept) in [([String](), Int32(0), "applied", true), (["--ratio", "0.001"], 2, "weak", false),
                                               (["--ratio", "100"], 3, "collateral", false),
                                               (["--ratio", "0.001", "--allow-weak"], 0, "weak", true)] {
            let r = try CLI.run(base + extra)
            XCTAssertEqual(r.status, status, "\(extra): \(r.stderr)")
            let report = try CLI.json(r.stdout)
            XCTAssertEqual(report["verdict"] as? String, verdict, "\(extra)")
            XCTAssertEqual(report["kept"] as? Bool, kept, "\(extra)")
            let warnings = try XCTUnwrap(report["warnings"] as? [String])
            XCTAssertEqual(warnings.isEmpty, verdict == "applied", "\(extra): \(warnings)")
            if verdict != "applied" { XCTAssertTrue(r.stderr.contains("warning: the edit was not applied"), r.stderr) }
        }
    }
}
