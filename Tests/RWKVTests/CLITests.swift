import Foundation
import XCTest

/// End-to-end tests of the `rwkv-edit` executable, run as a subprocess the way users and scripts run it.
final class CLITests: XCTestCase {
    func run(_ args: [String], stdin: String? = nil) throws -> CLI.Result { try CLI.run(args, stdin: stdin) }
    func json(_ s: String) throws -> [String: Any] { try CLI.json(s) }

    override func setUpWithError() throws { try CLI.requireBinary() }

    func testLogitsJSONReproducesTheTinyFixture() throws {
        let r = try run(["logits", "--model", Fixtures.tinySafetensors, "--tokens", "34,105,110", "--json", "--top", "3"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try json(r.stdout)
        XCTAssertEqual(j["tokens"] as? [Int], [34, 105, 110])
        let logits = try XCTUnwrap(j["logits"] as? [Double]).map(Float.init)
        XCTAssertLessThan(Fixtures.maxAbsDiff(logits, try Fixtures.expectedTinyLogits()), 1e-4)
        let top = try XCTUnwrap(j["top"] as? [[String: Any]])
        XCTAssertEqual(top.count, 3)
        XCTAssertNotNil(top[0]["id"] as? Int)
        XCTAssertNotNil(top[0]["prob"] as? Double)
        XCTAssertNotNil(top[0]["text"] as? String)
    }

    func testStateCommandWritesTheReferenceState() throws {
        let out = Fixtures.temporaryPath("cli-state.safetensors")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let r = try run(["state", "--model", Fixtures.tinySafetensors, "--text", "\"in", "--out", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let golden = try run(["info", "--model", Fixtures.tinySafetensors, "--json"])
        XCTAssertEqual(try json(golden.stdout)["n_layer"] as? Int, 12)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + ".tmp-\(0)"))
    }

    func testEditJSONShape() throws {
        let r = try run(["edit", "--model", Fixtures.tinySafetensors, "--context", "Alice lives in Paris. Bob lives in Tokyo.",
                         "--from", "Alice lives in Paris.", "--to", "Alice lives in London.", "--query", "Alice lives in",
                         "--old", "Paris", "--new", "London", "--control-query", "Bob lives in", "--control-answer", "Tokyo", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try json(r.stdout)
        XCTAssertEqual(j["method"] as? String, "hyb-u")
        XCTAssertNotNil(j["alpha"] as? Double)
        let target = try XCTUnwrap(j["target"] as? [String: Any])
        XCTAssertEqual(target["old"] as? String, "Paris")
        for phase in ["before", "after"] {
            let p = try XCTUnwrap(target[phase] as? [String: Any])
            XCTAssertNotNil(p["p_old"] as? Double)
            XCTAssertNotNil(p["p_new"] as? Double)
            XCTAssertNotNil(p["top"] as? [[String: Any]])
        }
        let controls = try XCTUnwrap(j["controls"] as? [[String: Any]])
        XCTAssertEqual(controls.count, 1)
        XCTAssertNotNil((controls[0]["after"] as? [String: Any])?["top1"] as? Bool)
    }

    func testChatWorksInAPipeAndReportsBadCommands() throws {
        let script = """
        /feed Alice lives in Paris.
        /edit "Alice lives in Paris." "Alice lives in London." --method uniform
        /undo
        /edit "a" "b" --method nope
        /undo
        /quit
        """
        let r = try run(["chat", "--model", Fixtures.tinySafetensors], stdin: script)
        XCTAssertTrue(r.stdout.contains("applied uniform"), r.stdout)
        XCTAssertTrue(r.stdout.contains("undone: edit"), r.stdout)
        XCTAssertTrue(r.stdout.contains("unknown edit method 'nope'"), r.stdout)
        XCTAssertTrue(r.stdout.contains("nothing to undo"), r.stdout)
        // The session ran to the end, but a piped session with failed lines exits non-zero.
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderr, "error: 2 commands failed (first on line 4); exit status 1\n")
    }

    /// Regression: a bad `/load` printed an error but the piped session still exited 0; and a
    /// script saved with CRLF line endings reads like an LF one.
    func testPipedChatFailsOnABadLoadAndReadsCRLF() throws {
        let bad = Fixtures.temporaryPath("not-a-state.safetensors")
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: bad))
        defer { try? FileManager.default.removeItem(atPath: bad) }
        let failing = try run(["chat", "--model", Fixtures.tinySafetensors], stdin: "/feed Alice lives in Paris.\r\n/load \(bad)\r\n/quit\r\n")
        XCTAssertTrue(failing.stdout.hasPrefix("ok\nerror: "), failing.stdout)
        XCTAssertTrue(failing.stdout.contains(bad), failing.stdout)
        XCTAssertEqual(failing.status, 1, failing.stderr)
        XCTAssertEqual(failing.stderr, "error: 1 command failed (first on line 2); exit status 1\n")
        let clean = try run(["chat", "--model", Fixtures.tinySafetensors], stdin: "/feed Alice lives in Paris.\r\n/help\r\n/quit\r\n")
        XCTAssertEqual(clean.status, 0, clean.stderr)
        XCTAssertTrue(clean.stdout.contains("exits with status 1 if any line failed"), clean.stdout)
    }

    func testBenchCompileReportsTheSplitAndSizePerDType() throws {
        let colours = Fixtures.repoRoot.appendingPathComponent("prompts/colours.txt").path
        let r = try run(["bench", "compile", "--model", Fixtures.tinySafetensors, "--vocab", colours, "--pack-dtype", "f16,int8", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2, r.stdout)
        for (line, dtype) in zip(lines, ["f16", "int8"]) {
            let j = try json(line)
            XCTAssertEqual(j["dtype"] as? String, dtype)
            XCTAssertEqual(j["values_compiled"] as? Int, 12)
            for key in ["seconds_engine", "seconds_svd", "seconds_storage", "values_per_second", "values_per_second_engine_only",
                        "svd_storage_share", "bytes_per_value"] {
                XCTAssertGreaterThan(try XCTUnwrap(j[key] as? Double, key), 0, key)
            }
            XCTAssertLessThan(try XCTUnwrap(j["svd_storage_share"] as? Double), 1)
        }
        let bad = try run(["bench", "compile", "--model", Fixtures.tinySafetensors, "--vocab", colours, "--pack-dtype", "f64"])
        XCTAssertEqual(bad.status, 64, "a usage error")
        XCTAssertTrue(bad.stderr.contains("--pack-dtype"), bad.stderr)
    }

    /// `<model>.json` beside the weights sets the default edit ratio; a malformed one is a typed error.
    func testModelCardSetsTheDefaultRatio() throws {
        let dir = Fixtures.temporaryPath("card")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = "\(dir)/tiny.safetensors"
        try FileManager.default.copyItem(atPath: Fixtures.tinySafetensors, toPath: model)
        let args = ["edit", "--model", model, "--context", "Alice lives in Paris.", "--from", "Alice lives in Paris.",
                    "--to", "Alice lives in Rome.", "--query", "Alice lives in", "--old", "Paris", "--new", "Rome", "--json"]
        func ratio() throws -> Double? {
            let r = try run(args)
            XCTAssertEqual(r.status, 0, r.stderr)
            return try json(r.stdout)["ratio"] as? Double
        }
        XCTAssertEqual(try XCTUnwrap(ratio()), 0.2, accuracy: 1e-6, "no card: the seed's ratio")
        try #"{"edit_ratio": 0.45}"#.write(toFile: "\(dir)/tiny.json", atomically: true, encoding: .utf8)
        XCTAssertEqual(try XCTUnwrap(ratio()), 0.45, accuracy: 1e-6)
        let explicit = try json(run(args + ["--ratio", "0.7"]).stdout)["ratio"] as? Double
        XCTAssertEqual(try XCTUnwrap(explicit), 0.7, accuracy: 1e-6, "--ratio wins over the card")
        try #"{"edit_ratio": "high"}"#.write(toFile: "\(dir)/tiny.json", atomically: true, encoding: .utf8)
        let bad = try run(args)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("tiny.json") && bad.stderr.contains("edit_ratio"), bad.stderr)
    }

    func testBadArgumentsFailCleanly() throws {
        let missing = try run(["logits", "--model", "/nonexistent/model.safetensors", "--tokens", "1"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("/nonexistent/model.safetensors"), missing.stderr)
        let badTokens = try run(["logits", "--model", Fixtures.tinySafetensors, "--tokens", "1,x"])
        XCTAssertNotEqual(badTokens.status, 0)
        XCTAssertTrue(badTokens.stderr.contains("--tokens"), badTokens.stderr)
        let outOfVocab = try run(["logits", "--model", Fixtures.tinySafetensors, "--tokens", "999"])
        XCTAssertEqual(outOfVocab.status, 1)
        XCTAssertTrue(outOfVocab.stderr.contains("999"), outOfVocab.stderr)
        let badMethod = try run(["edit", "--model", Fixtures.tinySafetensors, "--context", "a", "--from", "a", "--to", "b",
                                 "--query", "q", "--old", "a", "--new", "b", "--method", "nope"])
        XCTAssertEqual(badMethod.status, 1)
        XCTAssertTrue(badMethod.stderr.contains("unknown edit method"), badMethod.stderr)
    }
}
