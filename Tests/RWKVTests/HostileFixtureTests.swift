import Foundation
import XCTest

/// The minimal inputs of every crash, hang, silent wrong result and wrong error found so far
/// (Tests/Fixtures/hostile/, written by tools/fuzz/make_hostile_fixtures.py; `expected.json` says what
/// each once did), each run through the CLI command that met it: it must end promptly with the exit
/// status and the words expected — a typed error naming the file and the field, or success for the
/// inputs that were wrongly refused.
final class HostileFixtureTests: XCTestCase {
    struct Case: Decodable {
        let file: String
        let command: [String]
        let status: Int32
        let stderr: [String]
        let about: String
    }

    func testEveryHostileFixtureIsHandled() throws {
        try CLI.requireBinary()
        let folder = Fixtures.repoRoot.appendingPathComponent("Tests/Fixtures/hostile")
        let cases = try JSONDecoder().decode([Case].self, from: Data(contentsOf: folder.appendingPathComponent("expected.json")))
        XCTAssertGreaterThanOrEqual(cases.count, 15)
        let listed = Set(cases.map(\.file))
        let present = Set(try FileManager.default.contentsOfDirectory(atPath: folder.path)).subtracting(["expected.json"])
        XCTAssertEqual(present, listed, "every fixture has an expectation and every expectation a fixture")
        for c in cases {
            let scratch = Fixtures.temporaryPath("hostile-\(UUID().uuidString)")
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            // Packs are copied first: a reader must not need to write beside them.
            let input = "\(scratch)/\(c.file)"
            try FileManager.default.copyItem(atPath: folder.appendingPathComponent(c.file).path, toPath: input)
            let args = c.command.map {
                $0.replacingOccurrences(of: "{file}", with: input).replacingOccurrences(of: "{tiny}", with: Fixtures.tinySafetensors)
                    .replacingOccurrences(of: "{tmp}", with: scratch)
            }
            let t0 = Date()
            let r = try CLI.run(args)
            let seconds = Date().timeIntervalSince(t0)
            XCTAssertEqual(r.status, c.status, "\(c.file) (once: \(c.about)): \(r.stderr)")
            for w in c.stderr { XCTAssertTrue(r.stderr.contains(w), "\(c.file): '\(w)' not in: \(r.stderr)") }
            if c.status != 0 { XCTAssertTrue(r.stderr.contains(input), "\(c.file): the error names the file: \(r.stderr)") }
            XCTAssertLessThan(seconds, 20, "\(c.file) (once: \(c.about))")
        }
    }
}
