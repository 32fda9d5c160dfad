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

    func testStatesTravelToAndFromTheOfficialPackage() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.python) else {
            throw XCTSkip("no interop venv at \(Self.python): run scripts/test.sh, or python3 -m venv .build/interop-venv && .build/interop-venv/bin/pip install -r tools/interop/requirements.txt")
        }
        let work = Fixtures.temporaryPath("interop")
        try? FileManager.default.removeItem(atPath: work)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: work) }
        func at(_ name: String) -> String { (work as NSString).appendingPathComponent(name) }

        let m = try ModelLoader.load(path: Self.model)
        let engine = CPUEngine(model: m)
        let prompt = try SafeTensorsFile(path: Self.ref).int32s("p7.tokens").map(Int.init)
        let cont = [1031, 77, 500]
        var s = engine.newState()
        _ = try engine.forward(prompt, state: &s)
        let saved = SavedState(state: s, tokens: prompt.count, edits: [], identity: nil)
        try StateFile.write(saved, as: .pth, to: at("ours.pth"))
        try StateFile.write(saved, as: .native, to: at("ours-full.safetensors"))
        try JSONSerialization.data(withJSONObject: ["continue": cont, "prompt": prompt]).write(to: URL(fileURLWithPath: at("probe.json")))

        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.python)
        p.arguments = [Fixtures.repoRoot.appendingPathComponent("tools/interop/check_states.py").path, Self.model, work]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = Pipe()
        try p.run()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "check_states.py failed: \(errText.suffix(2000))")
        guard p.terminationStatus == 0 else { return }
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
