import Foundation
import RWKVEdit
import XCTest

/// State files against the official `rwkv` package (run in the venv scripts/test.sh makes from
/// tools/interop/requirements.txt): our `.pth` loaded by torch and by the package the way RWKV-Runner
/// loads a state, our full state continued in the package, and files written by torch and in
/// web-rwkv's layout read here.
final class StateInteropTests: XCTestCase {
    static let model = Fixtures.golden.appendingPathComponent("golden.f32.pth").path
    static let ref = Fixtures.golden.appendingPathComponent("golden-ref.safetensors").path

    static var python: String {
        ProcessInfo.processInfo.environment["RWKV_INTEROP_PYTHON"]
            ?? Fixtures.repoRoot.appendingPathComponent(".build/interop-venv/bin/python").path
    }

    /// Relative where large: |a − b| ≤ tol · max(1, |b|).
    func worst(_ a: [Float], _ b: [Float]) -> Float {
        XCTAssertEqual(a.count, b.count)
        return zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? .infinity
    }

    /// Runs a tools/interop script in the venv and returns its stdout; a failure fails the test with
    /// the script's stderr and returns nil.
    @discardableResult
    func runScript(_ name: String, _ args: [String]) throws -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.python)
        p.arguments = [Fixtures.repoRoot.appendingPathComponent("tools/interop/\(name)").path] + args
        let err = Pipe(), out = Pipe()
        p.standardError = err
        p.standardOutput = out
        try p.run()
        final class Box: @unchecked Sendable { var data = Data() }
        let errData = Box()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { errData.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let outText = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        group.wait()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "\(name) failed: \(String(decoding: errData.data, as: UTF8.self).suffix(2000))")
        return p.terminationStatus == 0 ? outText : nil
    }

    func requireVenv(importing module: String) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.python) else {
            throw XCTSkip("no interop venv at \(Self.python): run scripts/test.sh, or python3 -m venv .build/interop-venv && .build/interop-venv/bin/pip install -r tools/interop/requirements.txt")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.python)
        p.arguments = ["-c", "import \(module)"]
        p.standardError = Pipe()
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw XCTSkip("the interop venv lacks '\(module)': scripts/test.sh installs it (tools/interop/README.md)")
        }
    }

    /// A fresh work folder with the state after the golden prompt P7 and what the scripts read.
    func prepareWork(_ name: String) throws -> (work: String, model: RWKVModel, engine: CPUEngine, state: State, prompt: [Int], cont: [Int]) {
        let work = Fixtures.temporaryPath(name)
        try? FileManager.default.removeItem(atPath: work)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: work) }
        let m = try ModelLoader.load(path: Self.model)
        let engine = CPUEngine(model: m)
        let prompt = try SafeTensorsFile(path: Self.ref).int32s("p7.tokens").map(Int.init)
        let cont = [1031, 77, 500]
        var s = engine.newState()
        _ = try engine.forward(prompt, state: &s)
        try JSONSerialization.data(withJSONObject: ["continue": cont, "prompt": prompt])
            .write(to: URL(fileURLWithPath: (work as NSString).appendingPathComponent("probe.json")))
        return (work, m, engine, s, prompt, cont)
    }

    func testStatesTravelToAndFromLlamaCpp() throws {
        try requireVenv(importing: "llama_cpp")
        let (work, m, engine, s, prompt, cont) = try prepareWork("interop-llama")
        func at(_ name: String) -> String { (work as NSString).appendingPathComponent(name) }
        let saved = SavedState(state: s, tokens: prompt.count, edits: [], identity: nil)
        let ids = prompt.map(Int32.init)
        try StateFile.write(saved, tokenIDs: ids, as: .llamaSession, to: at("ours.session"))
        try StateFile.write(saved, tokenIDs: ids, as: .llamaSeq, to: at("ours.seq"))
        let gguf = Fixtures.golden.appendingPathComponent("golden.f32.gguf").path
        guard try runScript("check_llama.py", [gguf, work]) != nil else { return }
        let llama = try SafeTensorsFile(path: at("llama.safetensors"))

        // (a) our files continued in llama.cpp.
        var ours = s
        let ourLogits = try engine.forward(cont, state: &ours)
        XCTAssertEqual(try llama.int32s("session.tokens"), ids)
        let da = worst(ourLogits, try llama.tensor("session.logits").floats())
        XCTAssertLessThan(da, 1e-3, "our session continued in llama.cpp")
        XCTAssertLessThan(worst(ourLogits, try llama.tensor("seq.logits").floats()), 1e-3, "our seq file continued in llama.cpp")

        // (b) llama.cpp's own files continued here.
        for name in ["theirs.session", "theirs.seq"] {
            let theirs = try StateFile.read(at(name), expecting: StateShape(m.config))
            XCTAssertEqual(theirs.tokenIDs, ids, name)
            var st = theirs.state
            let db = worst(try engine.forward(cont, state: &st), try llama.tensor("own.logits").floats())
            XCTAssertLessThan(db, 1e-3, "\(name) continued here")
            XCTAssertLessThan(try theirs.state.maxAbsDifference(s), 1e-3, "\(name): llama.cpp's state is ours")
        }
        print("interop: llama.cpp continuing our session: logits max rel diff \(da)")
    }

    /// The README walkthrough: edit Bob's city on the demo model, save for llama.cpp, continue there.
    func testEditedConversationContinuesInLlamaCpp() throws {
        try requireVenv(importing: "llama_cpp, gguf")
        try CLI.requireBinary()
        _ = try VerifiedEditTests.demoBundle()
        let work = Fixtures.temporaryPath("walkthrough")
        try? FileManager.default.removeItem(atPath: work)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: work) }
        func at(_ name: String) -> String { (work as NSString).appendingPathComponent(name) }
        let model = Fixtures.repoRoot.appendingPathComponent("models/demo.safetensors").path
        let context = "Alice lives in Paris. Bob lives in Austin."
        let edited = try CLI.run(["apply", "--model", model, "--pack", Fixtures.repoRoot.appendingPathComponent("packs/cities.rwkvpack").path,
                                  "--context", context, "--edit", "Bob: Austin -> Chicago", "--state-out", at("bob.session"), "--threads", "1"])
        XCTAssertEqual(edited.status, 0, edited.stderr)
        let plain = try CLI.run(["state", "--model", model, "--text", context, "--out", at("plain.safetensors"), "--threads", "1"])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        XCTAssertEqual(try CLI.run(["state", "convert", at("plain.safetensors"), at("plain.session")]).status, 0)
        guard try runScript("demo_to_gguf.py", [model, Fixtures.repoRoot.appendingPathComponent("models/demo-vocab.txt").path, at("demo.gguf")]) != nil else { return }
        let query = " Where does Bob live? Bob lives in"
        XCTAssertEqual(try runScript("continue_in_llama.py", [at("demo.gguf"), at("plain.session"), query]), " Austin\n", "unedited")
        XCTAssertEqual(try runScript("continue_in_llama.py", [at("demo.gguf"), at("bob.session"), query]), " Chicago\n", "edited")
    }

    func testStatesTravelToAndFromTheOfficialPackage() throws {
        try requireVenv(importing: "rwkv")
        let (work, m, engine, s, prompt, cont) = try prepareWork("interop")
        func at(_ name: String) -> String { (work as NSString).appendingPathComponent(name) }
        let saved = SavedState(state: s, tokens: prompt.count, edits: [], identity: nil)
        try StateFile.write(saved, as: .pth, to: at("ours.pth"))
        try StateFile.write(saved, as: .native, to: at("ours-full.safetensors"))
        guard try runScript("check_states.py", [Self.model, work]) != nil else { return }
        let official = try SafeTensorsFile(path: at("official.safetensors"))

        // (1) The .pth as RWKV-Runner loads it (shifts zero), in the package and here.
        var runner = try StateFile.read(at("ours.pth"), expecting: StateShape(m.config)).state
        let ourRunnerLogits = try engine.forward(cont, state: &runner)
        let d1 = worst(ourRunnerLogits, try official.tensor("runner.logits").floats())
        XCTAssertLessThan(d1, 1e-4, "Runner-style .pth load")

        // (2) The full state continued in the package.
        var full = s
        let ourFullLogits = try engine.forward(cont, state: &full)
        let d2 = worst(ourFullLogits, try official.tensor("full.logits").floats())
        XCTAssertLessThan(d2, 1e-4, "full state continued")
        for l in 0..<m.config.nLayer {
            XCTAssertLessThan(worst(Array(full.wkvLayer(l)), try official.tensor("full.layer\(l).wkv").floats()), 1e-4, "layer \(l) state")
        }
        XCTAssertGreaterThan(Fixtures.maxAbsDiff(ourRunnerLogits, ourFullLogits), 1e-3, "the shifts matter, so (1) and (2) test different things")

        // (3) torch.save's own bf16 time_state, read here: exactly the package's state rounded to bf16.
        let theirs = try StateFile.read(at("theirs.pth"), expecting: StateShape(m.config))
        XCTAssertEqual(theirs.format, .pth)
        var own: [Float] = []
        for l in 0..<m.config.nLayer { own += try official.tensor("own.wkv.layer\(l)").floats() }
        XCTAssertLessThan(worst(s.wkv, own), 1e-4, "our prompt state is the package's")
        XCTAssertEqual(theirs.state.wkv, Half.bf16Bits(own).map { Float(bitPattern: UInt32($0) << 16) }, "bf16 .pth read exactly")
        XCTAssertTrue(theirs.state.attXPrev.allSatisfy { $0 == 0 })

        // (4) A web-rwkv layout file (F16, heads key-major) written by the script.
        let web = try StateFile.read(at("theirs.state"), expecting: StateShape(m.config))
        XCTAssertEqual(web.format, .webrwkv)
        let d4 = zip(web.state.wkv, own).map { abs($0 - $1) - 1e-3 * abs($1) }.max() ?? 1
        XCTAssertLessThan(d4, 1e-4, "web-rwkv F16 transposed")
        print("interop: Runner-style .pth logits max rel diff \(d1), full state \(d2)")
    }
}
