import Foundation
import XCTest

/// End-to-end tests of the `rwkv-edit` executable, run as a subprocess the way users and scripts run it.
final class CLITests: XCTestCase {
    func run(_ args: [String], stdin: String? = nil) throws -> CLI.Result { try CLI.run(args, stdin: stdin) }
    func json(_ s: String) throws -> [String: Any] { try CLI.json(s) }

    override func setUpWithError() throws { try CLI.requireBinary() }

    /// compile: --values (the old --vocab spelling warns), --name, a tokenizer vocabulary refused as a
    /// values file, --max-values, the size estimate, and --version.
    func testCompileFlagsAndGuards() throws {
        let dir = Fixtures.temporaryPath("compile-flags-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let values = "\(dir)/hats.txt"
        try "red\nblue\ngreen\n".write(toFile: values, atomically: true, encoding: .utf8)
        let out = "\(dir)/p.rwkvpack"
        let named = try run(["compile", "--model", Fixtures.tinySafetensors, "--values", values, "--name", "hat-colours", "-o", out, "--threads", "1"])
        XCTAssertEqual(named.status, 0, named.stderr)
        XCTAssertTrue(named.stderr.contains("compiling 3 values"), named.stderr)
        // 3 values × layers 6-11 × 1 head × 64×64 f32 staged: 294,912 bytes; +1 thread's stack in memory.
        XCTAssertTrue(named.stderr.contains("needs a work file of up to 0.3 MB beside the output (removed when the pack is finished) and about 0.3 MB of memory"), named.stderr)
        let list = try run(["packs", "list", out, "--json"])
        XCTAssertTrue(list.stdout.contains("hat-colours"), list.stdout)
        let shipped = Fixtures.repoRoot.appendingPathComponent("packs/cities.rwkvpack").path
        let both = try run(["packs", "list", shipped, out, out, "--json"])
        XCTAssertTrue(both.stderr.contains("are both named 'hat-colours'"), both.stderr)
        let cities = try XCTUnwrap((try json(both.stdout)["packs"] as? [[String: Any]])?.first)
        XCTAssertEqual(cities["property"] as? String, "city")
        XCTAssertEqual(cities["probe"] as? String, "{entity} lives in {value}.")
        XCTAssertEqual(cities["query"] as? String, "Where does {entity} live? {entity} lives in")
        XCTAssertEqual((cities["values"] as? [[String: Any]])?.first?["surface"] as? String, "Paris")

        let old = try run(["compile", "--model", Fixtures.tinySafetensors, "--vocab", values, "-o", "\(dir)/q.rwkvpack", "--threads", "1"])
        XCTAssertEqual(old.status, 0, old.stderr)
        XCTAssertTrue(old.stderr.contains("deprecated"), old.stderr)

        // The tokenizer is --tokenizer in every command (--vocab, its other spelling, outside compile).
        for flag in ["--tokenizer", "--vocab"] {
            let demo = Fixtures.repoRoot.appendingPathComponent("models/demo.safetensors").path
            let l = try run(["logits", "--model", demo, flag, Fixtures.repoRoot.appendingPathComponent("models/demo-vocab.txt").path,
                             "--text", "Alice lives in", "--top", "1", "--json"])
            XCTAssertEqual(l.status, 0, "\(flag): \(l.stderr)")
        }

        let tokenizerAsValues = try run(["compile", "--model", Fixtures.tinySafetensors, "--values", Fixtures.worldVocab, "-o", "\(dir)/w.rwkvpack"])
        XCTAssertEqual(tokenizerAsValues.status, 1)
        XCTAssertTrue(tokenizerAsValues.stderr.contains("looks like a World tokenizer vocabulary"), tokenizerAsValues.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/w.rwkvpack.partial"))

        let tooMany = try run(["compile", "--model", Fixtures.tinySafetensors, "--values", values, "--max-values", "2", "-o", "\(dir)/m.rwkvpack"])
        XCTAssertEqual(tooMany.status, 1)
        XCTAssertTrue(tooMany.stderr.contains("more than --max-values 2"), tooMany.stderr)

        let sharing = "\(dir)/cities.txt"
        try "New York\nNew Delhi\nParis\n".write(toFile: sharing, atomically: true, encoding: .utf8)
        let demo = Fixtures.repoRoot.appendingPathComponent("models/demo.safetensors").path
        let shared = try run(["compile", "--model", demo, "--values", sharing, "-o", "\(dir)/c.rwkvpack", "--threads", "1"])
        XCTAssertEqual(shared.status, 0, shared.stderr)
        XCTAssertTrue(shared.stderr.contains("New York, New Delhi begin with the same token"), shared.stderr)
        // packs inspect lists them too, given the model (and checks the pack is for it).
        let inspect = try run(["packs", "inspect", "\(dir)/c.rwkvpack", "--model", demo, "--json"])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        let groups = try XCTUnwrap(try json(inspect.stdout)["shared_first_token"] as? [[String: Any]], inspect.stdout)
        XCTAssertEqual(groups.map { $0["values"] as? [String] }, [["New York", "New Delhi"]])
        let inspectText = try run(["packs", "inspect", "\(dir)/c.rwkvpack", "--model", demo])
        XCTAssertTrue(inspectText.stdout.contains("New York, New Delhi begin with the same token"), inspectText.stdout)
        let otherModel = try run(["packs", "inspect", "\(dir)/c.rwkvpack", "--model", Fixtures.tinySafetensors])
        XCTAssertEqual(otherModel.status, 1, otherModel.stderr)

        let version = try run(["--version"])
        XCTAssertEqual(version.status, 0)
        XCTAssertTrue(version.stdout.hasPrefix("0."), version.stdout)
    }

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
        XCTAssertEqual(r.status, 1, "a piped session with failed commands ends with status 1: \(r.stderr)")
        XCTAssertTrue(r.stdout.contains("unverified") && r.stdout.contains("uniform α"), r.stdout)
        XCTAssertTrue(r.stdout.contains("undone: edit"), r.stdout)
        XCTAssertTrue(r.stdout.contains("unknown edit method 'nope'"), r.stdout)
        XCTAssertTrue(r.stdout.contains("nothing to undo"), r.stdout)
        // The session ran to the end, but a piped session with failed lines exits non-zero.
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderr, "error: 2 commands failed (first on line 4); exit status 1\n")
    }

    /// Regression: `/feed Bob's cat…` failed with "unterminated quote": /feed and /ask take the rest of
    /// the line as it is, while the other commands still group quoted words.
    func testChatFeedAndAskTakeApostrophesAsText() throws {
        let script = """
        /feed Alice's favourite drink is tea. Bob's is "coffee".
        /ask What is Alice's favourite drink?
        /edit "unterminated
        """
        let r = try run(["chat", "--model", Fixtures.tinySafetensors, "--max-tokens", "2"], stdin: script)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first, "ok", r.stdout)
        XCTAssertTrue(lines.count > 1 && lines[1].hasPrefix("What is Alice's favourite drink?"), r.stdout)
        XCTAssertTrue(r.stdout.contains("unterminated quote"), r.stdout)
        XCTAssertEqual(r.stderr, "error: 1 command failed (first on line 3); exit status 1\n")
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

    /// `bench speed --prompt-lengths` measures prefill at each length (issue: tok/s at 64, 512, 4096).
    func testBenchSpeedMeasuresPrefillByPromptLength() throws {
        let r = try run(["bench", "speed", "--model", Fixtures.tinySafetensors, "--prompt-lengths", "8,32", "--decode-tokens", "2",
                         "--threads", "1", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try XCTUnwrap(try json(r.stdout)["prefill_by_length"] as? [[String: Any]], r.stdout)
        XCTAssertEqual(rows.map { $0["prompt_tokens"] as? Int }, [8, 32])
        XCTAssertTrue(rows.allSatisfy { ($0["tok_s"] as? Double ?? 0) > 0 }, r.stdout)
        let bad = try run(["bench", "speed", "--model", Fixtures.tinySafetensors, "--prompt-lengths", "8,0"])
        XCTAssertEqual(bad.status, 64)
        XCTAssertTrue(bad.stderr.contains("--prompt-lengths takes"), bad.stderr)
    }

    func testBenchCompileReportsTheSplitAndSizePerDType() throws {
        let colours = Fixtures.repoRoot.appendingPathComponent("prompts/colours.txt").path
        let r = try run(["bench", "compile", "--model", Fixtures.tinySafetensors, "--values", colours, "--pack-dtype", "f16,int8", "--json"])
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
        // With --json the error is JSON too.
        let jsonError = try run(["logits", "--model", "/nonexistent/model.safetensors", "--tokens", "1", "--json"])
        XCTAssertEqual(jsonError.status, 1)
        let errorObject = try json(jsonError.stderr)
        XCTAssertEqual(errorObject["kind"] as? String, "RWKVError")
        XCTAssertTrue((errorObject["error"] as? String)?.contains("/nonexistent/model.safetensors") == true, jsonError.stderr)
        // Each error names the kind of input expected.
        let text = Fixtures.temporaryPath("not-a-model.txt")
        try "hello world, this is text\n".write(toFile: text, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: text) }
        let textModel = try run(["info", "--model", text])
        XCTAssertEqual(textModel.status, 1)
        XCTAssertTrue(textModel.stderr.contains("not a model file") && textModel.stderr.contains("hello wo"), textModel.stderr)
        let dirModel = try run(["info", "--model", Fixtures.repoRoot.appendingPathComponent("models").path])
        XCTAssertTrue(dirModel.stderr.contains("is a directory"), dirModel.stderr)
        let dirOut = try run(["compile", "--model", Fixtures.tinySafetensors, "--values", "prompts/colours.txt", "-o", NSTemporaryDirectory()])
        XCTAssertEqual(dirOut.status, 64)
        XCTAssertTrue(dirOut.stderr.contains("is a directory"), dirOut.stderr)
        let negative = try run(["edit", "--model", Fixtures.tinySafetensors, "--context", "a", "--from", "a", "--to", "b",
                                "--query", "q", "--old", "a", "--new", "b", "--ratio", "-1"])
        XCTAssertEqual(negative.status, 64)
        XCTAssertTrue(negative.stderr.contains("--ratio must be a number in (0, 100]"), negative.stderr)
        let isolate = try run(["apply", "--model", Fixtures.tinySafetensors, "--pack", "p.rwkvpack", "--context", "a", "--edit", "A: b -> c",
                               "--method", "isolate"])
        XCTAssertEqual(isolate.status, 64)
        XCTAssertTrue(isolate.stderr.contains("with a pack use hyb-u"), isolate.stderr)
        // Rejected while parsing (usage error, 64), listing the methods there are.
        XCTAssertEqual(badMethod.status, 64)
        XCTAssertTrue(badMethod.stderr.contains("'nope' is invalid for '--method") && badMethod.stderr.contains("hyb-u"), badMethod.stderr)
    }

    /// A misspelt subcommand or option is named with the nearest correct one (usage status 64),
    /// before ArgumentParser would call it an unknown option or a missing required one.
    func testMisspellingsSuggestTheNearestName() throws {
        let cases: [([String], String)] = [
            (["aply", "--model", "m"], "'aply' is not a subcommand of rwkv-edit; did you mean 'apply'?"),
            (["packs", "inspct", "x"], "'inspct' is not a subcommand of rwkv-edit packs; did you mean 'inspect'?"),
            (["apply", "--modle", "m", "--pack", "p"], "unknown option '--modle' for rwkv-edit apply; did you mean '--model'?"),
            (["compile", "--valeus=v.txt"], "unknown option '--valeus' for rwkv-edit compile; did you mean '--values'?"),
            (["state", "convert", "--too", "pth"], "unknown option '--too' for rwkv-edit state convert; did you mean '--to'?"),
            (["bench", "--modle", "m"], "unknown option '--modle' for rwkv-edit bench speed; did you mean '--model'?"),
        ]
        for (args, message) in cases {
            let r = try run(args)
            XCTAssertEqual(r.status, 64, "\(args)")
            XCTAssertTrue(r.stderr.contains(message), "\(args): \(r.stderr)")
        }
        let json = try run(["apply", "--modle", "m", "--json"])
        XCTAssertEqual(try self.json(json.stderr)["kind"] as? String, "UsageError", json.stderr)
        // Nothing close: ArgumentParser's own message.
        let far = try run(["apply", "--zzzzzzzz"])
        XCTAssertEqual(far.status, 64)
        XCTAssertFalse(far.stderr.contains("did you mean"), far.stderr)
        // Right spellings pass through (values after an option are not names).
        let ok = try run(["logits", "--model", Fixtures.tinySafetensors, "--tokens", "1", "--json"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
    }
}
