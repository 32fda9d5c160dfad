import Foundation
import PackCompiler
import RWKVEdit
import XCTest

final class TokenizerTests: XCTestCase {
    static let world: WorldTokenizer? = try? WorldTokenizer(vocabularyFile: Fixtures.worldVocab)

    func world() throws -> WorldTokenizer { try XCTUnwrap(Self.world, "World vocabulary fixture missing") }

    func testLoadsWorldVocabulary() throws {
        let t = try world()
        XCTAssertEqual(t.count, 65530)
        XCTAssertEqual(t.encode("\n\n"), [261])
        XCTAssertEqual(t.tokens[300], Array(" A".utf8))
    }

    func testRoundTripsArbitraryBytes() throws {
        let t = try world()
        var rng = SplitMix64(seed: 5)
        for n in [0, 1, 2, 17, 300] {
            let bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            XCTAssertEqual(t.decodeBytes(t.encode(bytes: bytes)), bytes)
        }
        let text = "Héllo, 世界! 🧑‍🚀 \t\t  \r\n\n\n  end"
        XCTAssertEqual(t.decode(t.encode(text)), text)
    }

    /// Token ids from the official `rwkv` package's tokenizer (tools/golden/make_golden.py).
    func testMatchesOfficialTokenizer() throws {
        let goldenJSON = Fixtures.golden.appendingPathComponent("tokenizer-golden.json")
        let textFile = Fixtures.golden.appendingPathComponent("tokenizer-text.txt")
        guard FileManager.default.fileExists(atPath: goldenJSON.path) else { throw XCTSkip("golden tokenizer fixture not generated yet") }
        let t = try world()
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: goldenJSON)) as? [String: Any])
        let expected = try XCTUnwrap(json["tokens"] as? [Int])
        let text = try Data(contentsOf: textFile)
        XCTAssertEqual(t.encode(bytes: [UInt8](text)), expected)
        for c in (json["cases"] as? [[String: Any]]) ?? [] {
            let s = try XCTUnwrap(c["text"] as? String)
            XCTAssertEqual(t.encode(s), try XCTUnwrap(c["tokens"] as? [Int]), s)
        }
    }

    func testMalformedVocabularyLinesAreTypedErrors() throws {
        let cases = ["1 'a' 2\n", "1 'a 1\n", "2 'a' 1\n", "1 b'\\xzz' 1\n", "x 'a' 1\n", "1 'a'\n", ""]
        for (i, body) in cases.enumerated() {
            let path = Fixtures.temporaryPath("vocab-\(i).txt")
            defer { try? FileManager.default.removeItem(atPath: path) }
            try body.write(toFile: path, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try WorldTokenizer(vocabularyFile: path), body) { error in
                guard case .malformed(let file, _) = error as? RWKVError else { return XCTFail("\(error)") }
                XCTAssertEqual(file, path)
            }
        }
        XCTAssertThrowsError(try WorldTokenizer(vocabularyFile: "/nonexistent/vocab.txt")) {
            // The error names the kind of file expected, not a model file.
            guard case .unreadable(let file, let reason) = $0 as? RWKVError else { return XCTFail("\($0)") }
            XCTAssertEqual(file, "/nonexistent/vocab.txt")
            XCTAssertTrue(reason.contains("World vocabulary"), reason)
        }
    }
}
