import Foundation
import RWKVEdit
import XCTest

/// Verdicts of edits by name on the demo model: `applied` only when the query flipped and every control
/// kept its answer; a weak or collateral edit is undone (unless kept on request) and the CLI exits 2 or 3.
final class VerifiedEditTests: XCTestCase {
    static let modelPath = Fixtures.repoRoot.appendingPathComponent("models/demo.safetensors").path
    static let twoCities = "Alice lives in Paris. Bob lives in Austin."

    func bundle() throws -> ModelBundle { try Self.demoBundle() }

    static func demoBundle() throws -> ModelBundle {
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
        XCTAssertEqual(r.outcome.after.new?.isTop1, true)
        XCTAssertLessThan(r.outcome.after.old.probability, EditVerdict.oldProbabilityLimit)
        // The other statement of the property, found in the conversation by the pack's @probe.
        XCTAssertEqual(r.outcome.controls.map(\.control.answer), ["Paris"])
        XCTAssertTrue(r.outcome.controls[0].after.isTop1)
        XCTAssertEqual(try session.generate(after: "Where does Bob live? Bob lives in", maxTokens: 2, commit: false), " Chicago.")
        // The trial's reading ran only the edited layers (3-5) from the baseline's kept inputs: it must
        // be the reading of a full pass on the state that was kept (to rounding: the baseline's batch
        // also carried the probes, so its lower layers may have taken the other product kernel).
        let full = try session.score([(r.outcome.check.query, r.outcome.check.old), (r.outcome.check.query, r.outcome.check.new!),
                                      (r.outcome.check.controls[0].query, r.outcome.check.controls[0].answer)])
        assertClose(full.map(\.probability), [r.outcome.after.old.probability, r.outcome.after.new!.probability,
                                              r.outcome.controls[0].after.probability])
        // Answers of several tokens take the reading's second batch, which resumes too.
        let multi = b.session(threads: 1)
        try multi.feed(Self.twoCities)
        let m = try multi.edit("Bob: Austin -> Chicago", pack: b.pack("cities"), answers: (old: "Austin.", new: "Chicago."))
        XCTAssertGreaterThan(try multi.queryAndAnswerTokens(query: m.outcome.check.query, answer: "Chicago.").answer.count, 1)
        XCTAssertTrue(m.outcome.kept, "\(m.verdict)")
        let fullMulti = try multi.score([(m.outcome.check.query, "Austin."), (m.outcome.check.query, "Chicago."),
                                         (m.outcome.check.controls[0].query, m.outcome.check.controls[0].answer)])
        assertClose(fullMulti.map(\.probability), [m.outcome.after.old.probability, m.outcome.after.new!.probability,
                                                   m.outcome.controls[0].after.probability])
    }

    /// Equal to float rounding (1e-6): a reading resumed at the wrong layer or on the wrong state is off
    /// by far more.
    private func assertClose(_ got: [Double], _ expected: [Double], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, expected.count, file: file, line: line)
        for (a, b) in zip(got, expected) { XCTAssertEqual(a, b, accuracy: 1e-6, file: file, line: line) }
    }

    /// A verified edit runs its probes in the same batch as the reading before it; the edit must be the
    /// one that probing on its own gives (same α, same state up to float rounding of another batch).
    func testProbesRunInTheReadingsBatchEditAsProbesAlone() throws {
        let b = try bundle()
        let verified = b.session(threads: 1)
        try verified.feed(Self.twoCities)
        let unedited = verified.state
        let r = try verified.edit("Bob: Austin -> Chicago", pack: b.pack("cities"))
        XCTAssertEqual(r.verdict, .applied)
        let chosen = try XCTUnwrap(r.outcome.trials.last?.applied)
        let plain = b.session(threads: 1)
        try plain.feed(Self.twoCities)
        let e = try plain.edit(pack: b.pack("cities"), entity: "Bob", from: "Austin", to: "Chicago",
                               options: EditOptions(ratio: try XCTUnwrap(chosen.ratio)))
        XCTAssertEqual(e.applied.alpha, chosen.alpha, accuracy: 1e-4 * abs(chosen.alpha))
        let scale = verified.state.wkv.map(abs).max() ?? 1
        let apart = zip(verified.state.wkv, plain.state.wkv).map { abs($0 - $1) }.max() ?? 0
        let edited = zip(verified.state.wkv, unedited.wkv).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThan(apart, 1e-5 * scale)
        XCTAssertGreaterThan(edited, 1e-2 * scale, "the edit changed the state")
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

    /// A rung that flips the target but costs a control is bisected against the weak strength below
    /// it; when it is the first rung, it is halved first until a strength is not collateral. At most
    /// `descents + bisections` more trials, and when none is applied the weakest collateral strength is
    /// tried last, so it is the one reported.
    func testCollateralRungIsBisected() throws {
        let b = try bundle()
        let session = b.session(threads: 1)
        try session.feed(Self.twoCities)
        let before = session.state
        let r = try session.edit("Bob: Austin -> Chicago", pack: b.pack("cities"), options: EditOptions(ratio: 100), recovery: .none)
        let trials = r.outcome.trials
        let ratios = trials.compactMap(\.applied.ratio)
        XCTAssertEqual(trials.first?.verdict, .collateral, "ratio 100 breaks Alice's city")
        XCTAssertLessThanOrEqual(trials.count, 1 + StrengthPolicy.descents + StrengthPolicy.bisections + 1)
        // Replay the rule: halve while collateral; after a weak strength, bisect the bracket.
        var (low, high): (Float?, Float) = (nil, 100)
        for i in 1..<trials.count {
            // The weakest collateral strength, tried again last after a weak one.
            if i == trials.count - 1, trials[i - 1].verdict == .weak, ratios[i] == high { break }
            XCTAssertEqual(ratios[i], low.map { ($0 + high) / 2 } ?? high / 2, "after \(ratios)")
            if trials[i].verdict == .weak { low = ratios[i] } else { high = ratios[i] }
        }
        XCTAssertEqual(ratios.dropFirst().first, 50, "a collateral first rung is halved")
        if r.verdict != .applied {
            XCTAssertEqual(r.verdict, .collateral)
            XCTAssertEqual(trials.last?.applied.ratio, trials.filter { $0.verdict == .collateral }.compactMap(\.applied.ratio).min())
            XCTAssertEqual(try session.state.maxAbsDifference(before), 0, "not kept")
        } else {
            XCTAssertEqual(trials.last?.verdict, .applied)
            XCTAssertLessThan(ratios.last!, 100)
        }
    }

    /// When every searched strength of HYB-U costs a control, an edit by name is tried again with the
    /// fallback method on the same reading; without a fallback (or with --method) it stays collateral.
    /// The context is one `bench edit` generated where HYB-U's window between weak and collateral is empty.
    func testCollateralSearchFallsBackToHybUV() throws {
        let b = try bundle()
        let context = "Jack lives in Milan. My neighbour bought a new lamp last week. The printer jammed twice this morning. Victor lives in Rome."
        let single = b.session(threads: 1)
        try single.feed(context)
        let start = single.state
        let alone = try single.edit("Jack: Milan -> Dallas", pack: b.pack("cities"), recovery: .none)
        XCTAssertEqual(alone.verdict, .collateral)
        XCTAssertTrue(alone.outcome.trials.allSatisfy { $0.applied.method == .hybU })
        XCTAssertEqual(single.state, start, "a collateral edit is rolled back")

        let session = b.session(threads: 1)
        try session.feed(context)
        let r = try session.edit("Jack: Milan -> Dallas", pack: b.pack("cities"))
        XCTAssertEqual(r.verdict, .applied)
        XCTAssertEqual(r.outcome.applied.method, CollateralRecovery.standard.fallbackMethod)
        let methods = r.outcome.trials.map(\.applied.method)
        XCTAssertEqual(Array(methods.prefix(alone.outcome.trials.count)), alone.outcome.trials.map(\.applied.method),
                       "the first method's trials come first")
        XCTAssertEqual(r.outcome.trials.prefix(alone.outcome.trials.count).map(\.verdict), alone.outcome.trials.map(\.verdict))
        XCTAssertTrue(r.outcome.controls.allSatisfy { !$0.before.isTop1 || $0.after.isTop1 })
        XCTAssertEqual(r.outcome.timing.trialSeconds.count, r.outcome.trials.count)

        try CLI.requireBinary()
        let pack = Fixtures.repoRoot.appendingPathComponent("packs/cities.rwkvpack").path
        let base = ["apply", "--model", Self.modelPath, "--pack", pack, "--context", context, "--edit", "Jack: Milan -> Dallas",
                    "--json", "--threads", "1"]
        let fallback = try CLI.run(base)
        XCTAssertEqual(fallback.status, 0, fallback.stderr)
        XCTAssertEqual(try CLI.json(fallback.stdout)["method"] as? String, "hyb-uv")
        let given = try CLI.run(base + ["--method", "hyb-u"])
        XCTAssertEqual(given.status, 3, "a method given is the only one tried: collateral\n\(given.stderr)")
    }

    /// A context (bench edit seed 3) where every strength of hyb-u and of hyb-uv flips Olivia's
    /// answer (P = 0.65 before) while Mark's still reads "chef": projected off the keys of the job
    /// statements of Julia and Olivia, hyb-u applies and Olivia keeps her answer. Its trials follow
    /// the two failed searches; without the protection the edit is collateral and rolled back.
    func testCollateralSearchProtectsTheOtherStatementsKeys() throws {
        let b = try bundle()
        let context = "Mark's favourite drink is cider. Julia works as a plumber. The printer jammed twice this morning. "
            + "Julia's favourite drink is smoothie. Olivia's favourite drink is lemonade. Olivia works as a lawyer. "
            + "Mark works as a chef. Someone left an umbrella by the door."
        let unprotected = b.session(threads: 1)
        try unprotected.feed(context)
        let start = unprotected.state
        let failed = try unprotected.edit("Mark: chef -> painter", pack: b.pack("jobs"),
                                          recovery: CollateralRecovery(fallbackMethod: .hybUV, protectsOtherStatements: false))
        XCTAssertEqual(failed.verdict, .collateral)
        XCTAssertEqual(Set(failed.outcome.trials.map(\.applied.method)), [.hybU, .hybUV])
        XCTAssertTrue(failed.outcome.trials.allSatisfy { $0.applied.protectedStatements == 0 })
        XCTAssertEqual(unprotected.state, start, "a collateral edit is rolled back")

        let session = b.session(threads: 1)
        try session.feed(context)
        let r = try session.edit("Mark: chef -> painter", pack: b.pack("jobs"))
        XCTAssertEqual(r.verdict, .applied)
        XCTAssertEqual(r.outcome.applied.method, .hybU)
        XCTAssertEqual(r.outcome.applied.protectedStatements, 2, "Julia's and Olivia's job statements")
        let earlier = failed.outcome.trials.count
        XCTAssertEqual(r.outcome.trials.prefix(earlier).map(\.verdict), failed.outcome.trials.map(\.verdict), "the failed searches come first")
        XCTAssertTrue(r.outcome.trials.dropFirst(earlier).allSatisfy { $0.applied.protectedStatements == 2 })
        let olivia = try XCTUnwrap(r.outcome.controls.first { $0.control.query.contains("Olivia") })
        XCTAssertTrue(olivia.before.isTop1 && olivia.after.isTop1)
        XCTAssertTrue(r.outcome.controls.allSatisfy { !$0.before.isTop1 || $0.after.isTop1 })
        XCTAssertTrue(session.editLog.last?.description.contains("protecting 2 statements' keys") ?? false)
        XCTAssertGreaterThan(r.outcome.timing.planPassSeconds, 0, "the statements' probe pass is timed")
        _ = try session.undo()
        XCTAssertEqual(session.state, start)

        try CLI.requireBinary()
        let pack = Fixtures.repoRoot.appendingPathComponent("packs/jobs.rwkvpack").path
        let cli = try CLI.run(["apply", "--model", Self.modelPath, "--pack", pack, "--context", context,
                               "--edit", "Mark: chef -> painter", "--json", "--threads", "1"])
        XCTAssertEqual(cli.status, 0, cli.stderr)
        let json = try CLI.json(cli.stdout)
        XCTAssertEqual(json["protected_statements"] as? Int, 2)
        XCTAssertEqual((json["trials"] as? [[String: Any]])?.last?["protected_statements"] as? Int, 2)

        // The chat's sentence form recovers the same way, unless a method is given.
        let edit = "/edit \"Mark works as a chef.\" \"Mark works as a painter.\""
        let chat = try CLI.run(["chat", "--model", Self.modelPath, "--pack", pack, "--threads", "1"],
                               stdin: "/feed \(context)\n\(edit)\n/undo\n\(edit) --method hyb-u\n")
        let lines = chat.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("applied: edit") && $0.contains("hyb-u protecting 2 statements' keys") }, chat.stdout)
        XCTAssertTrue(lines.last?.hasPrefix("not applied (collateral; the state is unchanged)") ?? false, chat.stdout)
        XCTAssertEqual(chat.status, 2, chat.stderr)
    }

    /// A removal climbs further than an edit: in the Mark context (invented filler) forgetting and
    /// erasing Mark's job stay weak up to 4× the card's ratios and verify higher up the removal ladder.
    func testRemovalsClimbPastTheEditLadder() throws {
        let b = try bundle()
        let context = "Mark's favourite drink is cider. Julia works as a plumber. The printer jammed twice this morning. "
            + "Julia's favourite drink is smoothie. Olivia's favourite drink is lemonade. Olivia works as a lawyer. "
            + "Mark works as a chef. Someone left an umbrella by the door."
        let fact = "Mark works as a chef."
        for change in [FactChange.forget(entity: "Mark"), .erase] {
            let session = b.session(threads: 1)
            try session.feed(context)
            let card = change == .erase ? session.ratios.erase : session.ratios.forget
            let o = try XCTUnwrap(try session.verifiedChange(of: fact, change, pack: b.pack("jobs")))
            XCTAssertEqual(o.verdict, .applied, "\(change)")
            let ratios = o.trials.map { $0.applied.ratio ?? 0 }
            XCTAssertEqual(Array(ratios.prefix(StrengthPolicy.ladder.count)), StrengthPolicy.ladder.map { $0 * card }, "\(change)")
            XCTAssertTrue(o.trials.prefix(StrengthPolicy.ladder.count).allSatisfy { $0.verdict == .weak }, "\(change)")
            XCTAssertGreaterThan(ratios.last ?? 0, 4 * card)
            XCTAssertLessThanOrEqual(o.trials.count, StrengthPolicy.removalLadder.count + StrengthPolicy.bisections + 1)
            XCTAssertLessThan(o.after.old.probability, EditVerdict.oldProbabilityLimit)
        }
    }

    /// Chat measures /edit, /forget and /erase when a loaded pack describes the fact; a piped session
    /// whose edit did not verify ends with status 2.
    func testChatVerifiesSentenceEditsForgetAndErase() throws {
        try CLI.requireBinary()
        _ = try bundle()
        let pack = Fixtures.repoRoot.appendingPathComponent("packs/cities.rwkvpack").path
        let script = """
        /feed Alice lives in Paris. Bob lives in Austin. Carol lives in Rome.
        /edit "Bob lives in Austin." "Bob lives in Chicago."
        /forget "Alice lives in Paris." Alice
        /erase "Carol lives in Rome."
        /ask Where does Bob live? Bob lives in
        """
        let r = try CLI.run(["chat", "--model", Self.modelPath, "--pack", pack, "--threads", "1"], stdin: script)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("applied: edit") && $0.contains("P(Chicago)") }, r.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("applied: forget") && $0.contains("P(Paris)") }, r.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("applied: erase") && $0.contains("P(Rome)") }, r.stdout)
        XCTAssertTrue(lines.contains("Where does Bob live? Bob lives in Chicago."), "/ask ends with the sentence: \(r.stdout)")

        let weak = try CLI.run(["chat", "--model", Self.modelPath, "--pack", pack, "--threads", "1"],
                               stdin: "/feed Alice lives in Paris. Bob lives in Austin.\n/forget \"Alice lives in Paris.\" Alice --ratio 0.001\n")
        XCTAssertEqual(weak.status, 2, weak.stdout)
        XCTAssertTrue(weak.stdout.contains("not applied (weak; the state is unchanged)"), weak.stdout)
    }

    /// Pre-checks: an entity the conversation does not mention is an error unless new entities are
    /// allowed; an old value the model does not answer is a warning saying what it answers.
    func testPrechecksOfEditsByName() throws {
        let b = try bundle()
        let session = b.session(threads: 1)
        try session.feed(Self.twoCities)
        let pack = try b.pack("cities")
        XCTAssertThrowsError(try session.edit("Zoe: Austin -> Chicago", pack: pack)) { error in
            guard case EditError.notInContext(let why) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(why.contains("Zoe does not occur") && why.contains("--allow-new-entity"), why)
        }
        let wrongOld = try session.edit("Bob: Paris -> Chicago", pack: pack)
        guard case .oldValueNotAnswered(let entity, let old, let answer, let p)? = wrongOld.prechecks.first else {
            return XCTFail("\(wrongOld.prechecks)")
        }
        XCTAssertEqual(entity, "Bob"); XCTAssertEqual(old, "Paris"); XCTAssertLessThan(p, 0.5)
        XCTAssertEqual(answer?.text, " Austin")
        XCTAssertTrue(wrongOld.prechecks[0].message.contains("answered \" Austin\""), wrongOld.prechecks[0].message)
        if wrongOld.outcome.kept { _ = try session.undo() }
        let zoe = try session.edit("Zoe: Austin -> Chicago", pack: pack, allowNewEntity: true)
        XCTAssertEqual(zoe.prechecks, [.newEntity("Zoe")])
        XCTAssertTrue(zoe.prechecks[0].message.contains("writes a new fact"))
    }

    /// The CLI: a new entity is an error (exit 1) without --allow-new-entity; with it, or with a wrong
    /// old value, the warning is on stderr and in the JSON's warnings.
    func testApplyReportsPrechecks() throws {
        try CLI.requireBinary()
        _ = try bundle()
        let pack = Fixtures.repoRoot.appendingPathComponent("packs/cities.rwkvpack").path
        let base = ["apply", "--model", Self.modelPath, "--pack", pack, "--context", Self.twoCities, "--json", "--threads", "1"]
        let zoe = try CLI.run(base + ["--edit", "Zoe: Austin -> Chicago"])
        XCTAssertEqual(zoe.status, 1, zoe.stderr)
        XCTAssertTrue(zoe.stderr.contains("--allow-new-entity"), zoe.stderr)
        let allowed = try CLI.run(base + ["--edit", "Zoe: Austin -> Chicago", "--allow-new-entity", "--allow-weak"])
        XCTAssertEqual(allowed.status, 0, allowed.stderr)
        XCTAssertTrue(try XCTUnwrap(CLI.json(allowed.stdout)["warnings"] as? [String]).contains { $0.contains("Zoe does not occur") }, allowed.stdout)
        let wrongOld = try CLI.run(base + ["--edit", "Bob: Paris -> Chicago", "--allow-weak"])
        XCTAssertEqual(wrongOld.status, 0, wrongOld.stderr)
        XCTAssertTrue(wrongOld.stderr.contains("warning: before the edit the model answered \" Austin\""), wrongOld.stderr)
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

/// Saved states carry the model's identity, the tokens fed, the edit log and a checksum, all checked on reading.
final class SavedStateTests: XCTestCase {
    func testRoundTripCarriesProvenanceAndRejectsTampering() throws {
        let b = try VerifiedEditTests.demoBundle()
        let session = b.session(threads: 1)
        try session.feed(VerifiedEditTests.twoCities)
        let fed = session.tokensFed
        XCTAssertEqual(fed, b.tokenizer.encode(VerifiedEditTests.twoCities).count)
        let edit = try session.edit("Bob: Austin -> Chicago", pack: b.pack("cities"))
        XCTAssertEqual(edit.verdict, .applied)
        let path = Fixtures.temporaryPath("saved-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try session.saved().write(to: path)

        let read = try SavedState.read(from: path, model: b.model, tokenizer: b.tokenizer)
        XCTAssertEqual(read.state, session.state)
        XCTAssertEqual(read.tokens, fed)
        XCTAssertEqual(read.edits.map(\.verdict), [EditVerdict.applied])
        XCTAssertEqual(read.edits.first?.method, "hyb-u")

        // Resumed: the log goes on, the answer is the edited one, and the resumed history is not undoable.
        let resumed = b.session(threads: 1)
        try resumed.resume(read)
        XCTAssertEqual(resumed.editLog.count, 1)
        XCTAssertThrowsError(try resumed.undo())
        XCTAssertEqual(try resumed.generate(after: "Where does Bob live? Bob lives in", maxTokens: 2, commit: false), " Chicago.")

        // One flipped bit in the tensor data (the last byte of the file is the last ffn_x_prev value).
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count - 1] ^= 0x01
        let flipped = path + ".flipped"
        try bytes.write(to: URL(fileURLWithPath: flipped))
        defer { try? FileManager.default.removeItem(atPath: flipped) }
        XCTAssertThrowsError(try SavedState.read(from: flipped, model: b.model, tokenizer: b.tokenizer)) { error in
            XCTAssertEqual(error as? StateFileError, .checksumMismatch(file: flipped))
        }

        // Saved for a model with another vocabulary: refused, with the reason.
        var other = read
        other.identity?.vocabSha256 = String(repeating: "0", count: 64)
        let otherPath = path + ".other"
        try other.write(to: otherPath)
        defer { try? FileManager.default.removeItem(atPath: otherPath) }
        XCTAssertThrowsError(try SavedState.read(from: otherPath, model: b.model, tokenizer: b.tokenizer)) { error in
            guard case StateFileError.otherModel = error else { return XCTFail("\(error)") }
        }
    }

    /// The CLI: `apply --state-out`, then a second edit on that state with `--state-in` and no context;
    /// a damaged file is refused by chat's `/load` and by `--state-in`.
    func testStateFilesThroughTheCLI() throws {
        try CLI.requireBinary()
        _ = try VerifiedEditTests.demoBundle()
        let model = VerifiedEditTests.modelPath
        let pack = Fixtures.repoRoot.appendingPathComponent("packs/cities.rwkvpack").path
        let first = Fixtures.temporaryPath("state-\(UUID().uuidString).safetensors"), second = first + ".2"
        defer { for p in [first, second] { try? FileManager.default.removeItem(atPath: p) } }
        let r1 = try CLI.run(["apply", "--model", model, "--pack", pack, "--context", "Alice lives in Paris. Bob lives in Austin. Carol lives in Rome.",
                              "--edit", "Bob: Austin -> Chicago", "--state-out", first, "--threads", "1"])
        XCTAssertEqual(r1.status, 0, r1.stderr)
        let r2 = try CLI.run(["apply", "--model", model, "--pack", pack, "--state-in", first, "--edit", "Carol: Rome -> Tokyo",
                              "--query", "Where does Carol live? Carol lives in", "--state-out", second, "--json", "--threads", "1"])
        XCTAssertEqual(r2.status, 0, r2.stderr)
        XCTAssertEqual(try CLI.json(r2.stdout)["verdict"] as? String, "applied")
        let chat = try CLI.run(["chat", "--model", model, "--state-in", second], stdin: "/ask Where does Bob live? Bob lives in\n")
        XCTAssertEqual(chat.status, 0, chat.stderr)
        XCTAssertTrue(chat.stdout.contains("Chicago"), chat.stdout)

        var bytes = try Data(contentsOf: URL(fileURLWithPath: second))
        bytes[bytes.count - 5] ^= 0x10
        try bytes.write(to: URL(fileURLWithPath: second))
        let bad = try CLI.run(["edit", "--model", model, "--state-in", second, "--from", "Bob lives in Chicago.", "--to", "Bob lives in Rome.",
                               "--query", "Where does Bob live? Bob lives in", "--old", "Chicago", "--new", "Rome"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("checksum"), bad.stderr)
        let load = try CLI.run(["chat", "--model", model], stdin: "/load \(second)\n")
        XCTAssertTrue(load.stdout.contains("checksum"), load.stdout)
    }
}

/// `bench edit` on the demo model: verdicts per kind of context and the cost split, as JSON.
final class BenchEditTests: XCTestCase {
    func testBenchEditReportsVerdictsAndCost() throws {
        try CLI.requireBinary()
        _ = try VerifiedEditTests.demoBundle()
        let r = try CLI.run(["bench", "edit", "--model", VerifiedEditTests.modelPath, "--cases", "1", "--json", "--threads", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let report = try CLI.json(r.stdout)
        let all = try XCTUnwrap(report["cells"] as? [[String: Any]])
        XCTAssertEqual(all.count, 5 * 3 * 2 * 3 + 1,
                       "people 1–5 × three fillers × with/without a second property × edit/forget/erase, and 3 in a row")
        for kind in ["forget", "erase"] {
            let removals = all.filter { $0["kind"] as? String == kind }
            XCTAssertEqual(removals.count, 30, kind)
            let tried = removals.reduce(0) { n, c in n + ["applied", "weak", "collateral", "not_recalled"].reduce(0) { $0 + (c[$1] as? Int ?? 0) } }
            XCTAssertEqual(tried, 30, "one \(kind) per case, each counted once")
        }
        let cells = all.filter { $0["kind"] as? String == "one edit" || $0["kind"] as? String == "3 in a row" }
        let applied = cells.reduce(0) { $0 + ($1["applied"] as? Int ?? 0) }
        let edits = cells.reduce(0) { $0 + ($1["applied"] as? Int ?? 0) + ($1["weak"] as? Int ?? 0) + ($1["collateral"] as? Int ?? 0) }
        XCTAssertGreaterThanOrEqual(edits, 30)
        XCTAssertGreaterThanOrEqual(Double(applied) / Double(edits), 0.9, "verified edits on the demo model: \(applied)/\(edits)")
        XCTAssertEqual(cells.reduce(0) { $0 + ($1["collateral"] as? Int ?? 0) }, 0)
        let cost = try XCTUnwrap((report["costs"] as? [[String: Any]])?.first)
        for key in ["ms_before", "ms_svd", "ms_after", "ms_search", "ms_decode10", "ratio_to_decode10"] {
            XCTAssertGreaterThanOrEqual(try XCTUnwrap(cost[key] as? Double, key), 0, key)
        }
        XCTAssertGreaterThan(try XCTUnwrap(cost["ms_total"] as? Double), 0)
    }
}

/// `apply` with several edits: repeated --edit and --pack, an --edits file, one report per edit.
final class ApplyBatchTests: XCTestCase {
    func testSeveralEditsInOrderAcrossPacks() throws {
        try CLI.requireBinary()
        _ = try VerifiedEditTests.demoBundle()
        let packs = Fixtures.repoRoot.appendingPathComponent("packs")
        let file = Fixtures.temporaryPath("edits-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(atPath: file) }
        try "{\"edit\": \"Alice: Paris -> Rome\"}\n# a comment\n\n".write(toFile: file, atomically: true, encoding: .utf8)
        let context = "Alice lives in Paris. Bob lives in Austin. Bob works as a pilot. Alice works as a doctor."
        let r = try CLI.run(["apply", "--model", VerifiedEditTests.modelPath,
                             "--pack", packs.appendingPathComponent("cities.rwkvpack").path, "--pack", packs.appendingPathComponent("jobs.rwkvpack").path,
                             "--context", context, "--edit", "Bob: Austin -> Chicago", "--edit", "Bob: pilot -> farmer", "--edits", file,
                             "--json", "--threads", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let report = try CLI.json(r.stdout)
        XCTAssertEqual(report["verdict"] as? String, "applied")
        let edits = try XCTUnwrap(report["edits"] as? [[String: Any]])
        XCTAssertEqual(edits.map { ($0["pack"] as? [String: Any])?["to"] as? String }, ["Chicago", "farmer", "Rome"])
        XCTAssertEqual(edits.map { ($0["pack"] as? [String: Any])?["name"] as? String }, ["cities", "jobs", "cities"])
        XCTAssertTrue(edits.allSatisfy { $0["verdict"] as? String == "applied" })

        let none = try CLI.run(["apply", "--model", VerifiedEditTests.modelPath, "--pack", packs.appendingPathComponent("cities.rwkvpack").path,
                                "--pack", packs.appendingPathComponent("jobs.rwkvpack").path, "--context", context, "--edit", "Bob: pilot -> Rome"])
        XCTAssertEqual(none.status, 1)
        XCTAssertTrue(none.stderr.contains("no pack given holds both"), none.stderr)
    }
}

/// `logits` and `generate` start from and save states like the editing commands.
final class StateInOutTests: XCTestCase {
    func testLogitsAndGenerateContinueASavedState() throws {
        try CLI.requireBinary()
        _ = try VerifiedEditTests.demoBundle()
        let model = VerifiedEditTests.modelPath
        let saved = Fixtures.temporaryPath("gen-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(atPath: saved) }
        let g = try CLI.run(["generate", "--model", model, "--prompt", "Alice lives in Paris. Bob lives in Austin.", "-n", "0", "--state-out", saved])
        XCTAssertEqual(g.status, 0, g.stderr)
        let cont = try CLI.run(["generate", "--model", model, "--state-in", saved, "--prompt", "Where does Bob live? Bob lives in", "--max-tokens", "2"])
        XCTAssertEqual(cont.status, 0, cont.stderr)
        XCTAssertTrue(cont.stdout.contains("Bob lives in Austin"), cont.stdout)
        let l = try CLI.run(["logits", "--model", model, "--state-in", saved, "--text", " Where does Alice live? Alice lives in", "--top", "1", "--json"])
        XCTAssertEqual(l.status, 0, l.stderr)
        XCTAssertEqual((try CLI.json(l.stdout)["top"] as? [[String: Any]])?.first?["text"] as? String, " Paris")
    }
}
