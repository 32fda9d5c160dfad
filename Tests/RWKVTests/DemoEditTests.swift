import Foundation
import XCTest

/// State editing on the bundled demo model, end to end through the `rwkv-edit` binary: selective edits in
/// multi-entity contexts, bit-exact undo, forget, and pack edits by name (packs/ compiled with the generic
/// template only, by packs/build.sh).
final class DemoEditTests: XCTestCase {
    static let model = Fixtures.repoRoot.appendingPathComponent("models/demo.safetensors").path
    static let citiesPack = Fixtures.repoRoot.appendingPathComponent("packs/cities.rwkvpack").path
    static let fiveCities = "Alice lives in Paris. Bob lives in Tokyo. Carol lives in London. Dave lives in Rome. Eve lives in Berlin."

    override func setUpWithError() throws {
        try CLI.requireBinary()
        guard FileManager.default.fileExists(atPath: Self.model) else { throw XCTSkip("models/demo.safetensors not present") }
    }

    /// The edit worked: the old answer fell below 0.2, the new one is top-1, and every control kept its
    /// answer top-1. `report` is the JSON of `edit --json` or `apply --json`.
    func assertSelectiveFlip(_ report: [String: Any], _ label: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let target = try XCTUnwrap(report["target"] as? [String: Any], label)
        let after = try XCTUnwrap(target["after"] as? [String: Any], label)
        let new = try XCTUnwrap(target["new"] as? String, label)
        XCTAssertLessThan(try XCTUnwrap(after["p_old"] as? Double), 0.2, label, file: file, line: line)
        let top = try XCTUnwrap((after["top"] as? [[String: Any]])?.first, label)
        XCTAssertEqual(top["text"] as? String, " " + new, label, file: file, line: line)
        let controls = try XCTUnwrap(report["controls"] as? [[String: Any]], label)
        XCTAssertFalse(controls.isEmpty, label)
        for c in controls {
            XCTAssertEqual((c["after"] as? [String: Any])?["top1"] as? Bool, true, "\(label): control \(c["query"] ?? "")", file: file, line: line)
        }
    }

    /// Greedy generation recalls the fact and runs past tokens that decode to no bytes (end of text).
    func testGenerateRecallsAndPassesEmptyTokens() throws {
        let prompt = "Alice lives in Paris. Where does Alice live? Alice lives in"
        for backend in ["cpu", "auto"] {
            let r = try CLI.run(["generate", "--model", Self.model, "--prompt", prompt, "-n", "6", "--backend", backend])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.hasPrefix(prompt + " Paris"), r.stdout)
        }
    }

    func testHybUEditsOnePersonAndKeepsTheOther() throws {
        let cases: [[String]] = [
            // context, from, to, query, old, new, control query, control answer
            ["Alice lives in Paris. Bob lives in Austin.", "Bob lives in Austin.", "Bob lives in Chicago.",
             "Where does Bob live? Bob lives in", "Austin", "Chicago", "Where does Alice live? Alice lives in", "Paris"],
            ["Alice has a red hat. Bob has a green hat.", "Bob has a green hat.", "Bob has a blue hat.",
             "What colour is Bob's hat? Bob's hat is", "green", "blue", "What colour is Alice's hat? Alice's hat is", "red"],
            ["Carol has a pet cat. Dave has a pet dog.", "Carol has a pet cat.", "Carol has a pet horse.",
             "What pet does Carol have? Carol has a pet", "cat", "horse", "What pet does Dave have? Dave has a pet", "dog"],
        ]
        for c in cases {
            let r = try CLI.run(["edit", "--model", Self.model, "--context", c[0], "--from", c[1], "--to", c[2],
                                 "--query", c[3], "--old", c[4], "--new", c[5],
                                 "--control-query", c[6], "--control-answer", c[7], "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let report = try CLI.json(r.stdout)
            XCTAssertEqual(report["method"] as? String, "hyb-u")
            XCTAssertEqual(try XCTUnwrap(report["ratio"] as? Double), 0.3, accuracy: 1e-6, "models/demo.json's edit_ratio is the default")
            let before = try XCTUnwrap((report["target"] as? [String: Any])?["before"] as? [String: Any])
            XCTAssertGreaterThan(try XCTUnwrap(before["p_old"] as? Double), 0.9, "the model knows \(c[4]) before the edit")
            try assertSelectiveFlip(report, c[1])
        }
    }

    func testUndoRestoresTheStateBitForBit() throws {
        let dir = Fixtures.temporaryPath("demo-undo")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = """
        /feed Alice lives in Paris. Bob lives in Austin.
        /save \(dir)/before.safetensors
        /edit "Bob lives in Austin." "Bob lives in Chicago."
        /save \(dir)/edited.safetensors
        /undo
        /save \(dir)/undone.safetensors
        /quit
        """
        let r = try CLI.run(["chat", "--model", Self.model], stdin: script)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("unverified") && r.stdout.contains("hyb-u α"), "no pack loaded: applied as given \(r.stdout)")
        let before = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/before.safetensors"))
        let edited = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/edited.safetensors"))
        let undone = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/undone.safetensors"))
        XCTAssertNotEqual(before, edited, "the edit changed the state")
        XCTAssertEqual(before, undone, "undo restores every byte of the state, hence the logits")
    }

    /// Forget and erase at the demo model's default ratios (models/demo.json: 0.55 and 1.5).
    func testForgetAndEraseRemoveTheCityAndKeepTheRest() throws {
        let suite = Fixtures.temporaryPath("demo-forget.json")
        defer { try? FileManager.default.removeItem(atPath: suite) }
        try #"""
        {"version": 1, "name": "demo-forget", "cases": [
          {"id": "alice-city", "context": "Alice lives in Paris. Alice has a red hat. Bob lives in Austin.",
           "edit": {"type": "forget", "fact": "Alice lives in Paris.", "entity": "Alice"},
           "targets": [{"query": "Where does Alice live? Alice lives in", "old": "Paris"}],
           "neighbours": [{"query": "What colour is Alice's hat? Alice's hat is", "answer": "red"},
                          {"query": "Where does Bob live? Bob lives in", "answer": "Austin"}]},
          {"id": "bob-city", "context": "Alice lives in Paris. Alice has a red hat. Bob lives in Austin.",
           "edit": {"type": "erase", "fact": "Bob lives in Austin."},
           "targets": [{"query": "Where does Bob live? Bob lives in", "old": "Austin"}],
           "neighbours": [{"query": "Where does Alice live? Alice lives in", "answer": "Paris"},
                          {"query": "What colour is Alice's hat? Alice's hat is", "answer": "red"}]}]}
        """#.write(toFile: suite, atomically: true, encoding: .utf8)
        let r = try CLI.run(["eval", "--model", Self.model, "--suite", suite, "--method", "hyb-u", "--json", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let cases = try XCTUnwrap((try CLI.json(r.stdout)["suites"] as? [[String: Any]])?.first?["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 2)
        for (c, ratio) in zip(cases, [0.55, 1.5]) {
            let point = try XCTUnwrap((c["points"] as? [[String: Any]])?.first)
            let used = try XCTUnwrap((point["strength"] as? [String: Any])?["ratio"] as? Double)
            XCTAssertEqual(used, ratio, accuracy: 1e-6, "\(c["id"] ?? ""): the model card's default ratio")
            let target = try XCTUnwrap((point["targets"] as? [[String: Any]])?.first)
            XCTAssertLessThan(try XCTUnwrap(target["p_old"] as? Double), 0.2, "\(c["id"] ?? "")")
            for n in try XCTUnwrap(point["neighbours"] as? [[String: Any]]) {
                XCTAssertEqual(n["top1"] as? Bool, true, "\(c["id"] ?? ""): \(n["query"] ?? "") keeps \(n["answer"] ?? "")")
            }
        }
    }

    func testPackEditsByNameInTwoAndFiveEntityContexts() throws {
        let cases: [[String]] = [
            // context, edit, query, control query, control answer
            ["Alice lives in Paris. Bob lives in Austin.", "Bob: Austin -> Chicago", "Where does Bob live? Bob lives in",
             "Where does Alice live? Alice lives in", "Paris"],
            [Self.fiveCities, "Carol: London -> Madrid", "Where does Carol live? Carol lives in",
             "Where does Alice live? Alice lives in", "Paris"],
        ]
        let others = ["Bob": "Tokyo", "Dave": "Rome", "Eve": "Berlin"]
        for c in cases {
            var args = ["apply", "--model", Self.model, "--pack", Self.citiesPack, "--context", c[0], "--edit", c[1],
                        "--query", c[2], "--control-query", c[3], "--control-answer", c[4], "--json"]
            if c[0] == Self.fiveCities {
                for (name, city) in others.sorted(by: { $0.key < $1.key }) {
                    args += ["--control-query", "Where does \(name) live? \(name) lives in", "--control-answer", city]
                }
            }
            let r = try CLI.run(args)
            XCTAssertEqual(r.status, 0, r.stderr)
            let report = try CLI.json(r.stdout)
            // The shipped packs hold vocabulary entries only: u₁ is composed from the two values' entries.
            XCTAssertEqual((report["pack"] as? [String: Any])?["source"] as? String, "composed")
            try assertSelectiveFlip(report, c[1])
        }
    }
}
