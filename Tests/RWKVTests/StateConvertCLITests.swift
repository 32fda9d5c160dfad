import Foundation
import RWKVEdit
import XCTest

/// `state convert` and `--state-in/--state-out` in every format, through the executable.
final class StateConvertCLITests: XCTestCase {
    static let model = Fixtures.repoRoot.appendingPathComponent("models/demo.safetensors").path
    static let pack = Fixtures.repoRoot.appendingPathComponent("packs/cities.rwkvpack").path

    func path(_ name: String) -> String {
        let p = Fixtures.temporaryPath("cli-\(UUID().uuidString)-\(name)")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: p) }
        return p
    }

    func testConvertBetweenEveryFormat() throws {
        try CLI.requireBinary()
        _ = try VerifiedEditTests.demoBundle()
        let native = path("s.safetensors")
        // The old usage of `state` (now its default subcommand `save`) still works.
        let saved = try CLI.run(["state", "--model", Self.model, "--text", "Bob lives in Austin.", "--out", native, "--threads", "1"])
        XCTAssertEqual(saved.status, 0, saved.stderr)
        let original = try StateFile.read(native).state

        var previous = native
        for format in [StateFormat.llamaSession, .llamaSeq, .rwkvcpp, .native] {
            let out = path("s.\(format.rawValue)")
            var args = ["state", "convert", previous, out, "--to", format.rawValue]
            if format == .rwkvcpp || format == .native { args += ["--model", Self.model] }
            let r = try CLI.run(args)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(r.stdout, "converted \(previous) (\(try StateFile.detect(previous, expecting: StateShape(original)).rawValue)) to \(out) (\(format.rawValue)): 6 layers × 6 heads of 64, n_embd 384\n")
            XCTAssertEqual(r.stderr, "")
            XCTAssertEqual(try StateFile.read(out, expecting: StateShape(original)).state, original, "\(format): exact")
            previous = out
        }
        // rwkv.cpp buffers have no header: reading one needs the model.
        let raw = path("raw.rwkvcpp")
        _ = try CLI.run(["state", "convert", native, raw])
        let noModel = try CLI.run(["state", "convert", raw, path("x.safetensors")])
        XCTAssertEqual(noModel.status, 1)
        XCTAssertEqual(noModel.stderr, "error: \(raw): no state format's magic or keys; if it is a rwkvcpp state buffer (it has no header), pass --model to read it with that model's shape.\n")

        // Shift-less formats warn, and with --model say by how much the next-token distribution moves.
        let pth = path("s.pth")
        let measured = try CLI.run(["state", "convert", native, pth, "--model", Self.model])
        XCTAssertEqual(measured.status, 0, measured.stderr)
        XCTAssertTrue(measured.stderr.hasPrefix("warning: pth files carry no token shifts (att_x_prev, ffn_x_prev): they are dropped, and a loader starts them at zero; next-token distribution after \"\\n\\n\": KL "), measured.stderr)
        XCTAssertTrue(measured.stderr.contains("max |Δp| "), measured.stderr)
        let web = try CLI.run(["state", "convert", native, path("s.state")])
        XCTAssertEqual(web.status, 0, web.stderr)
        XCTAssertTrue(web.stderr.hasSuffix("a loader starts them at zero (pass --model to measure the effect)\n"), web.stderr)
        let back = try CLI.run(["state", "convert", pth, path("back.session")])
        XCTAssertEqual(back.stderr, "warning: \(pth) (pth) has no token shifts; they start at zero\n")

        let unknown = try CLI.run(["state", "convert", native, path("s.xyz")])
        XCTAssertEqual(unknown.status, 1)
        XCTAssertTrue(unknown.stderr.contains("cannot tell the format from the extension; pass --to"), unknown.stderr)
        let wrongModel = try CLI.run(["state", "convert", native, path("o.session"), "--model", Fixtures.tinySafetensors])
        XCTAssertEqual(wrongModel.status, 1)
        XCTAssertEqual(wrongModel.stderr, "error: \(native): the native state has layers 6, the model 12: it was saved with another model. Load it with the model it was saved with.\n")
    }

    /// An edit saved for llama.cpp (a session file) and continued from that file: the answer is the edited one.
    func testEditedStateThroughALlamaSessionFile() throws {
        try CLI.requireBinary()
        _ = try VerifiedEditTests.demoBundle()
        let session = path("bob.session")
        let r1 = try CLI.run(["apply", "--model", Self.model, "--pack", Self.pack, "--context", "Alice lives in Paris. Bob lives in Austin.",
                              "--edit", "Bob: Austin -> Chicago", "--state-out", session, "--threads", "1"])
        XCTAssertEqual(r1.status, 0, r1.stderr)
        XCTAssertEqual(try StateFile.detect(session), .llamaSession)
        let chat = try CLI.run(["chat", "--model", Self.model, "--state-in", session], stdin: "/ask Where does Bob live? Bob lives in\n")
        XCTAssertEqual(chat.status, 0, chat.stderr)
        XCTAssertTrue(chat.stdout.contains("Chicago"), chat.stdout)
        XCTAssertTrue(chat.stderr.contains("(llama-session) has no model identity or checksum"), chat.stderr)

        // chat's /save and /load take every format too.
        let fromChat = path("chat.seq")
        let c1 = try CLI.run(["chat", "--model", Self.model, "--state-in", session], stdin: "/save \(fromChat)\n")
        XCTAssertTrue(c1.stdout.contains("saved \(fromChat) ("), c1.stdout)
        XCTAssertEqual(try StateFile.detect(fromChat), .llamaSeq)
        let c2 = try CLI.run(["chat", "--model", Self.model], stdin: "/load \(fromChat)\n/ask Where does Bob live? Bob lives in\n")
        XCTAssertTrue(c2.stdout.contains("loaded \(fromChat)"), c2.stdout)
        XCTAssertTrue(c2.stdout.contains("Chicago"), c2.stdout)

        // A native file converted with its model is checked (identity, checksum) first.
        let native = path("bob.safetensors")
        XCTAssertEqual(try CLI.run(["chat", "--model", Self.model, "--state-in", session], stdin: "/save \(native)\n").status, 0)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: native))
        bytes[bytes.count - 5] ^= 0x10
        try bytes.write(to: URL(fileURLWithPath: native))
        let damaged = try CLI.run(["state", "convert", native, path("d.session"), "--model", Self.model])
        XCTAssertEqual(damaged.status, 1)
        XCTAssertTrue(damaged.stderr.contains("checksum"), damaged.stderr)

        // --state-format overrides the extension.
        let seq = path("bob.bin")
        let r2 = try CLI.run(["apply", "--model", Self.model, "--pack", Self.pack, "--context", "Alice lives in Paris. Bob lives in Austin.",
                              "--edit", "Bob: Austin -> Chicago", "--state-out", seq, "--state-format", "llama-seq", "--threads", "1"])
        XCTAssertEqual(r2.status, 0, r2.stderr)
        XCTAssertEqual(try StateFile.detect(seq), .llamaSeq)
    }
}
