import Foundation
import EditEval
import PackCompiler
import RWKVEdit
import XCTest

/// Evaluation suites (issue 7): metrics on hand-computed probabilities, suite parsing and its typed
/// errors, and the `eval` command end to end.
final class EvalTests: XCTestCase {
    // MARK: Metrics

    func testEfficacyAndTop1OnHandComputedProbabilities() {
        let after = [
            QueryProbs(pOld: 0.10, pNew: 0.60, oldTop1: false, newTop1: true),   // took, new top-1
            QueryProbs(pOld: 0.30, pNew: 0.35, oldTop1: false, newTop1: false),  // took, another answer top-1
            QueryProbs(pOld: 0.50, pNew: 0.20, oldTop1: true, newTop1: false),   // did not take
            QueryProbs(pOld: 0.25, pNew: 0.25, oldTop1: false, newTop1: false),  // a tie is not a success
        ]
        let es = EvalMetrics.success(after)
        XCTAssertEqual(es.successes, 2)
        XCTAssertEqual(es.total, 4)
        XCTAssertEqual(es.value!, 0.5, accuracy: 1e-12)
        let top1 = EvalMetrics.top1New(after)
        XCTAssertEqual(top1.successes, 1)
        XCTAssertEqual(top1.total, 4)
        // Erasure queries (no new answer): success = old no longer top-1; they don't count for top-1 of new.
        let erased = [QueryProbs(pOld: 0.05, pNew: nil, oldTop1: false, newTop1: nil), QueryProbs(pOld: 0.4, pNew: nil, oldTop1: true, newTop1: nil)]
        XCTAssertEqual(EvalMetrics.success(erased), Proportion(successes: 1, total: 2))
        XCTAssertEqual(EvalMetrics.top1New(erased).total, 0)
        XCTAssertNil(EvalMetrics.top1New(erased).value)
    }

    func testNeighbourhoodNeedsTop1AndBeatingTheNewValue() {
        let after = [
            NeighbourProbs(pTrue: 0.8, trueTop1: true, pNew: 0.1),   // kept
            NeighbourProbs(pTrue: 0.3, trueTop1: true, pNew: 0.35),  // top-1 of what? new beats it: not kept
            NeighbourProbs(pTrue: 0.4, trueTop1: false, pNew: 0.1),  // lost top-1: not kept
            NeighbourProbs(pTrue: 0.2, trueTop1: true, pNew: nil),   // erasure: top-1 is enough
        ]
        XCTAssertEqual(EvalMetrics.neighbourhood(after), Proportion(successes: 2, total: 4))
    }

    func testHarmonicMeanScore() {
        // S = 3 / (1/0.5 + 1/1 + 1/0.25) = 3/7
        XCTAssertEqual(EvalMetrics.harmonicMean([0.5, 1.0, 0.25])!, 3.0 / 7.0, accuracy: 1e-12)
        XCTAssertEqual(EvalMetrics.harmonicMean([0.5, nil, 0.5])!, 0.5, accuracy: 1e-12)
        XCTAssertEqual(EvalMetrics.harmonicMean([0.9, 0.0, 1.0]), 0)
        XCTAssertNil(EvalMetrics.harmonicMean([nil, nil]))
    }

    func testWilsonInterval() throws {
        // 3/5: centre (0.6 + 1.9208/5)/(1 + 3.8415/5) = 0.5565, half-width 0.3259 → [0.2307, 0.8824]
        let w = try XCTUnwrap(EvalMetrics.wilson(successes: 3, total: 5))
        XCTAssertEqual(w.low, 0.2307, accuracy: 1e-3)
        XCTAssertEqual(w.high, 0.8824, accuracy: 1e-3)
        let all = try XCTUnwrap(EvalMetrics.wilson(successes: 5, total: 5))
        XCTAssertEqual(all.low, 0.5655, accuracy: 1e-3)
        XCTAssertEqual(all.high, 1, accuracy: 1e-12)
        let none = try XCTUnwrap(EvalMetrics.wilson(successes: 0, total: 10))
        XCTAssertEqual(none.low, 0, accuracy: 1e-12)
        XCTAssertEqual(none.high, 0.2775, accuracy: 1e-3)
        XCTAssertNil(EvalMetrics.wilson(successes: 0, total: 0))
    }

    func testNGramEntropyAndFluency() {
        XCTAssertEqual(EvalMetrics.words("Alice lives in Paris. She's happy!"), ["alice", "lives", "in", "paris", ".", "she's", "happy", "!"])
        // "a b a b": bigrams ab, ba, ab → H = −(2/3·log₂ 2/3 + 1/3·log₂ 1/3) = 0.918296
        XCTAssertEqual(EvalMetrics.ngramEntropy(["a", "b", "a", "b"], n: 2), 0.9182958, accuracy: 1e-6)
        // trigrams aba, bab → 1 bit
        XCTAssertEqual(EvalMetrics.ngramEntropy(["a", "b", "a", "b"], n: 3), 1.0, accuracy: 1e-12)
        // fluency = (2/3·0.918296 + 4/3·1) / 2
        XCTAssertEqual(EvalMetrics.fluency("a b a b"), (2.0 / 3.0 * 0.9182958 + 4.0 / 3.0) / 2, accuracy: 1e-6)
        // Four distinct words: 3 bigrams, 2 trigrams, all distinct → (2/3·log₂3 + 4/3·1)/2
        XCTAssertEqual(EvalMetrics.fluency("one two three four"), (2.0 / 3.0 * log2(3.0) + 4.0 / 3.0) / 2, accuracy: 1e-9)
        // A degenerate repetition scores lower than varied text.
        XCTAssertLessThan(EvalMetrics.fluency("Paris Paris Paris Paris Paris Paris"), EvalMetrics.fluency("Alice lives in Paris and Bob lives in Tokyo."))
        XCTAssertEqual(EvalMetrics.fluency(""), 0)
    }

    func testSelectivityIsControlMinusTarget() {
        XCTAssertEqual(EvalMetrics.selectivity(pControl: 0.9, pTarget: 0.15), 0.75, accuracy: 1e-12)
    }

    // MARK: Suites

    static let validSuite = """
    {"version": 1, "name": "t", "methods": ["hyb-u", "uniform"], "alphas": [0.75, 1.0],
     "cases": [
      {"id": "a", "group": "Alice", "context": "Alice lives in Paris. Bob lives in Tokyo.",
       "edit": {"from": "Alice lives in Paris.", "to": "Alice lives in Madrid."}, "ratios": [0.2, 0.5],
       "targets": [{"query": "Alice lives in", "old": "Paris", "new": "Madrid"}],
       "paraphrases": [{"query": "Q: Where does Alice live? A:", "old": "Paris", "new": "Madrid"}],
       "neighbours": [{"query": "Bob lives in", "answer": "Tokyo"}], "filler": {"tokens": 20, "seed": 3}},
      {"id": "b", "context": "Bob lives in Tokyo.", "method": "all", "edit": {"type": "erase", "fact": "Bob lives in Tokyo."},
       "targets": [{"query": "Bob lives in", "old": "Tokyo"}], "layers": "1-2"},
      {"id": "c", "context": "Bob lives in Tokyo.", "edit": {"type": "forget", "fact": "Bob lives in Tokyo.", "entity": "Bob."},
       "targets": [{"query": "Bob lives in", "old": "Tokyo"}]},
      {"id": "d", "context": "Bob lives in Tokyo.", "edit": {"type": "pack", "entity": "Bob", "from": "Tokyo", "to": "Paris"},
       "targets": [{"query": "Bob lives in", "old": "Tokyo", "new": "Paris"}]}
     ]}
    """

    func testParsesAValidSuite() throws {
        let s = try EvalSuite.parse(json: Self.validSuite)
        XCTAssertEqual(s.version, 1)
        XCTAssertEqual(s.cases.count, 4)
        XCTAssertEqual(s.methods, [.hybU, .uniform])
        let a = s.cases[0]
        XCTAssertEqual(a.group, "Alice")
        XCTAssertEqual(a.filler, FillerSpec(tokens: 20, seed: 3))
        XCTAssertEqual(a.edit, .sentences(from: "Alice lives in Paris.", to: "Alice lives in Madrid."))
        XCTAssertEqual(a.neighbours, [NeighbourQuery(query: "Bob lives in", answer: "Tokyo")])
        // Adaptive methods sweep the case's ratios; fixed-α methods the suite's alphas.
        let strength = a.strength.merged(over: s.strength)
        XCTAssertEqual(strength.points(for: .hybU, defaultRatio: 0.2), [.ratio(0.2), .ratio(0.5)])
        XCTAssertEqual(strength.points(for: .uniform, defaultRatio: 0.2), [.alpha(0.75), .alpha(1.0)])
        // Without ratios, adaptive methods take the alphas as a fixed α (the seed's sense).
        XCTAssertEqual(StrengthSpec(alphas: [1.5]).points(for: .hybU, defaultRatio: 0.2), [.alpha(1.5)])
        XCTAssertEqual(StrengthSpec().points(for: .isolate, defaultRatio: 0.55), [.ratio(0.55)])
        XCTAssertEqual(StrengthSpec().points(for: .projection, defaultRatio: 0.2), [.alpha(1)])
        let b = s.cases[1]
        XCTAssertEqual(b.methods, EditMethod.allCases)
        XCTAssertEqual(b.layers, 1...2)
        XCTAssertEqual(b.edit, .erase(fact: "Bob lives in Tokyo.", neutral: nil))
        let ratios = DefaultRatios(edit: 0.3, forget: 0.6, erase: 1.5)
        XCTAssertEqual(b.edit.defaultRatio(.seed), 0.55, "the seed's erase ratio")
        XCTAssertEqual(b.edit.defaultRatio(ratios), 1.5)
        XCTAssertEqual(s.cases[0].edit.defaultRatio(ratios), 0.3, "edits take the model's ratio")
        XCTAssertEqual(s.cases[2].edit.defaultRatio(ratios), 0.6)
        XCTAssertNil(b.targets[0].new)
        XCTAssertEqual(s.cases[2].edit, .forget(fact: "Bob lives in Tokyo.", entity: "Bob."))
        XCTAssertEqual(s.cases[3].edit, .pack(entity: "Bob", from: "Tokyo", to: "Paris", probe: nil))
    }

    func assertMalformed(_ json: String, caseIndex: Int?, caseID: String?, field: String,
                         file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try EvalSuite.parse(json: json), file: file, line: line) { e in
            guard let err = e as? EvalSuiteError else { return XCTFail("not an EvalSuiteError: \(e)", file: file, line: line) }
            XCTAssertEqual(err.caseIndex, caseIndex, err.description, file: file, line: line)
            XCTAssertEqual(err.caseID, caseID, err.description, file: file, line: line)
            XCTAssertEqual(err.field, field, err.description, file: file, line: line)
            XCTAssertTrue(err.description.contains(field), err.description, file: file, line: line)
            if let caseIndex { XCTAssertTrue(err.description.contains("case \(caseIndex)"), err.description, file: file, line: line) }
        }
    }

    func testMalformedSuitesNameTheCaseAndField() {
        let good = #"{"id": "ok", "context": "A.", "edit": {"from": "A.", "to": "B."}, "targets": [{"query": "Q", "old": "A", "new": "B"}]}"#
        func suite(_ cases: String...) -> String { #"{"version": 1, "cases": ["# + cases.joined(separator: ",") + "]}" }
        assertMalformed(suite(good, #"{"id": "x", "context": "A.", "edit": {"from": "A.", "to": "B."}, "targets": [{"query": "Q", "new": "B"}]}"#),
                        caseIndex: 1, caseID: "x", field: "targets[0].old")
        assertMalformed(suite(#"{"id": "m", "context": "A.", "method": "fancy", "edit": {"from": "A.", "to": "B."}, "targets": [{"query": "Q", "old": "A"}]}"#),
                        caseIndex: 0, caseID: "m", field: "method[0]")
        assertMalformed(suite(good, good), caseIndex: 1, caseID: "ok", field: "id")
        assertMalformed(suite(good, #"{"id": "e", "context": "A.", "edit": {"from": "A."}, "targets": [{"query": "Q", "old": "A"}]}"#),
                        caseIndex: 1, caseID: "e", field: "edit.to")
        assertMalformed(suite(#"{"id": "r", "context": "A.", "ratios": [0.2, -1], "edit": {"from": "A.", "to": "B."}, "targets": [{"query": "Q", "old": "A"}]}"#),
                        caseIndex: 0, caseID: "r", field: "ratios[1]")
        assertMalformed(suite(#"{"id": "f", "context": "A.", "filler": {"tokens": "many"}, "edit": {"from": "A.", "to": "B."}, "targets": [{"query": "Q", "old": "A"}]}"#),
                        caseIndex: 0, caseID: "f", field: "filler.tokens")
        assertMalformed(suite(#"{"id": "t", "context": "   ", "edit": {"from": "A.", "to": "B."}, "targets": [{"query": "Q", "old": "A"}]}"#),
                        caseIndex: 0, caseID: "t", field: "context")
        assertMalformed(suite(#"{"id": "u", "context": "A.", "edit": {"from": "A.", "to": "B."}, "targets": [{"query": "Q", "old": "A"}], "colour": 1}"#),
                        caseIndex: 0, caseID: "u", field: "colour")
        assertMalformed(suite(#"{"id": "p", "context": "A.", "edit": {"type": "pack", "entity": "B", "from": "X", "to": "Y"}, "targets": [{"query": "Q", "old": "X"}]}"#),
                        caseIndex: 0, caseID: "p", field: "targets[0].new")
        assertMalformed(suite(#"{"context": "A.", "edit": {"from": "A.", "to": "B."}, "targets": []}"#), caseIndex: 0, caseID: nil, field: "id")
        assertMalformed(#"{"version": 2, "cases": []}"#, caseIndex: nil, caseID: nil, field: "version")
        assertMalformed(#"{"version": true, "cases": []}"#, caseIndex: nil, caseID: nil, field: "version")
        assertMalformed(#"{"version": 1, "cases": []}"#, caseIndex: nil, caseID: nil, field: "cases")
        assertMalformed(#"{"cases": []}"#, caseIndex: nil, caseID: nil, field: "version")
        assertMalformed("[1, 2", caseIndex: nil, caseID: nil, field: "(file)")
    }

    func testJSONLSuiteWithHeader() throws {
        let path = Fixtures.temporaryPath("suite.jsonl")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let lines = [
            #"{"version": 1, "name": "lines", "methods": "uniform"}"#,
            #"{"id": "a", "context": "A.", "edit": {"from": "A.", "to": "B."}, "targets": [{"query": "Q", "old": "A", "new": "B"}]}"#,
            "",
            #"{"id": "b", "context": "A.", "edit": {"from": "A.", "to": "B."}, "targets": [{"query": "Q", "old": "A"}], "alpha": 2}"#,
        ]
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let s = try EvalSuite.load(path: path)
        XCTAssertEqual(s.name, "lines")
        XCTAssertEqual(s.methods, [.uniform])
        XCTAssertEqual(s.cases.map(\.id), ["a", "b"])
        XCTAssertEqual(s.cases[1].strength.alphas, [2])
    }

    func testFillerIsDeterministicAndLongEnough() {
        let count: (String) -> Int = { $0.split(separator: " ").count }
        let a = EvalFiller.text(FillerSpec(tokens: 50, seed: 7), count: count)
        XCTAssertEqual(a, EvalFiller.text(FillerSpec(tokens: 50, seed: 7), count: count))
        XCTAssertNotEqual(a, EvalFiller.text(FillerSpec(tokens: 50, seed: 8), count: count))
        XCTAssertGreaterThanOrEqual(count(a), 50)
        XCTAssertLessThan(count(a), 50 + 12, "whole sentences, stopping at the first that reaches the length")
        XCTAssertEqual(EvalFiller.text(FillerSpec(tokens: 0, seed: 7), count: count), "")
    }

    func testShippedSuitesParse() throws {
        let dir = Fixtures.repoRoot.appendingPathComponent("prompts/eval")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".json") || $0.hasSuffix(".jsonl") }
        XCTAssertTrue(names.contains("five-entity.json"))
        for n in names {
            let s = try EvalSuite.load(path: dir.appendingPathComponent(n).path)
            XCTAssertFalse(s.cases.isEmpty, n)
        }
        let five = try EvalSuite.load(path: dir.appendingPathComponent("five-entity.json").path)
        XCTAssertEqual(five.cases.map(\.group), ["Alice", "Bob", "Carol", "Dave", "Eve"])
        XCTAssertEqual(five.methods, EditMethod.allCases)
        XCTAssertTrue(five.cases.allSatisfy { $0.neighbours.count == 4 })
    }

    // MARK: Runner (library, tiny fixture)

    func testRunnerOnTheTinyFixture() throws {
        let engine = CPUEngine(model: try ModelLoader.load(path: Fixtures.tinySafetensors), threads: 2)
        let tokenizer = WorldTokenizer(tokens: (0..<256).map { [UInt8($0)] })
        let suite = try EvalSuite.parse(json: """
        {"version": 1, "name": "tiny", "methods": ["hyb-u", "uniform"], "ratios": [0.2, 0.5], "alphas": [1.0, 1.5], "fluency_tokens": 8,
         "cases": [
          {"id": "a", "group": "Alice", "context": "Alice lives in Paris. Bob lives in Tokyo.", "filler": {"tokens": 30, "seed": 2},
           "edit": {"from": "Alice lives in Paris.", "to": "Alice lives in Madrid."},
           "targets": [{"query": "Alice lives in", "old": "Paris", "new": "Madrid"}],
           "paraphrases": [{"query": "Where does Alice live? Alice lives in", "old": "Paris", "new": "Madrid"}],
           "neighbours": [{"query": "Bob lives in", "answer": "Tokyo"}]},
          {"id": "e", "group": "erase", "context": "Bob lives in Tokyo.", "edit": {"type": "erase", "fact": "Bob lives in Tokyo."},
           "targets": [{"query": "Bob lives in", "old": "Tokyo"}]},
          {"id": "p", "context": "Bob lives in Tokyo.", "method": "hyb-u", "edit": {"type": "pack", "entity": "Bob", "from": "Tokyo", "to": "Paris"},
           "targets": [{"query": "Bob lives in", "old": "Tokyo", "new": "Paris"}]}
         ]}
        """)
        var lines: [String] = []
        var runner = EvalRunner(engine: engine, tokenizer: tokenizer)
        runner.progress = { lines.append($0) }
        let r = try runner.run(suite)
        XCTAssertEqual(lines.count, 3)
        XCTAssertEqual(r.cases.count, 3)
        let a = r.cases[0]
        XCTAssertGreaterThanOrEqual(a.fillerTokens, 30)
        XCTAssertEqual(a.points.map(\.strength), [.ratio(0.2), .ratio(0.5), .alpha(1.0), .alpha(1.5)])
        XCTAssertEqual(a.points.map(\.method), [.hybU, .hybU, .uniform, .uniform])
        for p in a.points {
            XCTAssertNil(p.error)
            XCTAssertEqual(p.targets.count, 1)
            XCTAssertEqual(p.neighbours.count, 1)
            XCTAssertNotNil(p.targets[0].pNew)
            XCTAssertTrue((0...1).contains(p.targets[0].pOld))
            XCTAssertNotNil(p.fluency)
        }
        // The fixed α is the one applied; adaptive points report α = ratio·‖S‖/‖Δ‖.
        XCTAssertEqual(a.points[2].alpha, 1.0)
        XCTAssertNotEqual(a.points[0].alpha, a.points[1].alpha)
        // The suite's strengths apply to the erase case too; it has no new answer.
        XCTAssertEqual(r.cases[1].points.map(\.strength), [.ratio(0.2), .ratio(0.5), .alpha(1.0), .alpha(1.5)])
        XCTAssertNil(r.cases[1].points.first?.targets.first?.pNew)
        // A pack case without a pack: the point records the error, the run goes on.
        XCTAssertEqual(r.cases[2].points.count, 2)
        XCTAssertTrue(r.cases[2].points.allSatisfy { $0.error?.contains("--pack") == true })
        // Aggregates: one per method and strength value; the sweep summary counts every case.
        XCTAssertEqual(r.aggregates().count, 4)
        XCTAssertTrue(r.isSweep)
        XCTAssertTrue(r.sweepSummaries().allSatisfy { $0.flips.total == 3 })
        // Measuring is deterministic: a second run gives the same probabilities.
        let again = try EvalRunner(engine: engine, tokenizer: tokenizer).run(suite)
        XCTAssertEqual(again.cases[0].points.map { $0.targets[0].pOld }, a.points.map { $0.targets[0].pOld })
        // σ₁ of the probe delta per layer and head for sentence edits; none for the pack case.
        let sigma = try XCTUnwrap(a.sigma)
        XCTAssertEqual(sigma.count, engine.config.nLayer)
        XCTAssertTrue(sigma.allSatisfy { $0.count == engine.config.nHead && $0.allSatisfy { $0 >= 0 && $0.isFinite } })
        XCTAssertNil(r.cases[2].sigma)
        XCTAssertTrue(try XCTUnwrap(EvalReport.sigmaHeatmap(r)).hasPrefix("<svg"))
        // Reports render.
        XCTAssertTrue(EvalReport.text([r]).contains("Alice"))
        XCTAssertTrue(EvalReport.markdown([r]).contains("| hyb-u | r=0.20 |"))
        XCTAssertTrue(EvalReport.svg(r).hasPrefix("<svg"))
        XCTAssertNoThrow(try JSONEncoder().encode(EvalReport.json([r])))
    }

    // MARK: End to end through the CLI

    /// The five-entity suite, every method, through the `rwkv-edit eval` binary: on the demo model when
    /// models/demo.safetensors exists (else the tiny fixture). Checks the JSON, the seed-style table,
    /// the Markdown report and its SVG, and that a malformed suite fails cleanly.
    func testEvalCommandEndToEnd() throws {
        try CLI.requireBinary()
        let demo = Fixtures.repoRoot.appendingPathComponent("models/demo.safetensors").path
        let model = FileManager.default.fileExists(atPath: demo) ? demo : Fixtures.tinySafetensors
        let suite = Fixtures.repoRoot.appendingPathComponent("prompts/eval/five-entity.json").path
        let report = Fixtures.temporaryPath("eval-report.md")
        let svg = Fixtures.temporaryPath("eval-report-five-entity.svg")
        defer { try? FileManager.default.removeItem(atPath: report); try? FileManager.default.removeItem(atPath: svg) }

        let r = try CLI.run(["eval", "--model", model, "--suite", suite, "--method", "all", "--json", "--report", report, "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try CLI.json(r.stdout)
        let suites = try XCTUnwrap(j["suites"] as? [[String: Any]])
        XCTAssertEqual(suites.count, 1)
        let cases = try XCTUnwrap(suites[0]["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 5)
        for c in cases {
            let points = try XCTUnwrap(c["points"] as? [[String: Any]])
            XCTAssertEqual(points.count, EditMethod.allCases.count * 3, "every method at α 0.75, 1, 1.5")
            for p in points {
                XCTAssertNil(p["error"], "\(c["id"] ?? "") \(p)")
                let es = try XCTUnwrap(p["es"] as? [String: Any])
                XCTAssertEqual(es["total"] as? Int, 1)
                XCTAssertEqual((p["ns"] as? [String: Any])?["total"] as? Int, 4)
                let t = try XCTUnwrap((p["targets"] as? [[String: Any]])?.first)
                let pOld = try XCTUnwrap(t["p_old"] as? Double)
                XCTAssertTrue(pOld >= 0 && pOld <= 1)
            }
            // Undo between points: every point starts from the same state, so the same method at the
            // same α run twice would agree; here the before-measurements must be one per case.
            let before = try XCTUnwrap(c["before"] as? [String: Any])
            XCTAssertEqual((before["neighbours"] as? [[String: Any]])?.count, 4)
        }
        let sweep = try XCTUnwrap(suites[0]["sweep"] as? [[String: Any]])
        XCTAssertEqual(sweep.map { $0["method"] as? String }, EditMethod.allCases.map(\.rawValue))
        for s in sweep {
            let flips = try XCTUnwrap(s["flips"] as? [String: Any])
            XCTAssertEqual(flips["total"] as? Int, 5)
            XCTAssertEqual((s["flips_by_step"] as? [Any])?.count, 3)
        }
        if model == demo {
            // The seed's headline: HYB-U flips all five cities with the other four kept (2.9B model: 5/5).
            let hybU = try XCTUnwrap(sweep.first { $0["method"] as? String == "hyb-u" }?["flips"] as? [String: Any])
            XCTAssertEqual(hybU["successes"] as? Int, 5, "\(hybU)")
        }
        let aggregates = try XCTUnwrap(suites[0]["aggregates"] as? [[String: Any]])
        XCTAssertEqual(aggregates.count, EditMethod.allCases.count * 3)

        let md = try String(contentsOfFile: report, encoding: .utf8)
        XCTAssertTrue(md.contains("Flip rate by strength"), md)
        XCTAssertTrue(md.contains("HYB-U"))
        XCTAssertTrue(md.contains("α=0.75"))
        XCTAssertTrue(md.contains(URL(fileURLWithPath: svg).lastPathComponent), md)
        XCTAssertTrue(try String(contentsOfFile: svg, encoding: .utf8).hasPrefix("<svg"))
        let heat = Fixtures.temporaryPath("eval-report-five-entity-sigma.svg")
        defer { try? FileManager.default.removeItem(atPath: heat) }
        XCTAssertTrue(md.contains(URL(fileURLWithPath: heat).lastPathComponent), md)
        XCTAssertEqual((cases[0]["sigma1"] as? [[Double]])?.count, (try CLI.json(CLI.run(["info", "--model", model, "--json"]).stdout))["n_layer"] as? Int)

        // The same run as text prints the seed-style tables.
        let text = try CLI.run(["eval", "--model", model, "--suite", suite, "--method", "hyb-u", "--quiet"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("Alice (Paris->Madrid)"), text.stdout)
        XCTAssertTrue(text.stdout.contains("flip"), text.stdout)

        // A malformed suite: exit 1, the case and field named, nothing on stdout.
        let bad = Fixtures.temporaryPath("bad-suite.json")
        defer { try? FileManager.default.removeItem(atPath: bad) }
        try #"{"version": 1, "cases": [{"id": "oops", "context": "A.", "edit": {"from": "A.", "to": "B."}, "targets": [{"query": "Q"}]}]}"#
            .write(toFile: bad, atomically: true, encoding: .utf8)
        let e = try CLI.run(["eval", "--model", model, "--suite", bad])
        XCTAssertEqual(e.status, 1)
        XCTAssertTrue(e.stderr.contains("case 0 (\"oops\")") && e.stderr.contains("targets[0].old"), e.stderr)
        XCTAssertEqual(e.stdout, "")
    }
}
