import EditEval
import Foundation
import RWKVEdit
import XCTest

/// Regressions of the adversarial runs ("Hostile input II"): each input is the minimal one that
/// showed the bug, generated here in code.
final class HostileInputTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("rwkv-hostile-tests-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

    func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let p = scratch.appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }

    /// Seconds `body` takes.
    func seconds(_ body: () -> Void) -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }

    // MARK: - .pth CRC-32

    func testCRC32KnownAnswersAndContinuation() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926, "the standard check value")
        XCTAssertEqual(CRC32.checksum([]), 0)
        XCTAssertEqual(CRC32.checksum(Array("The quick brown fox jumps over the lazy dog".utf8)), 0x414F_A339)
        // Every length and alignment through the 8-byte path and the byte tail, against the bitwise definition.
        var rng = SplitMix64(seed: 3)
        let data = (0..<77).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        func bitwise(_ b: ArraySlice<UInt8>) -> UInt32 {
            var c: UInt32 = 0xFFFF_FFFF
            for x in b {
                c ^= UInt32(x)
                for _ in 0..<8 { c = c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            }
            return ~c
        }
        for start in 0..<9 {
            for end in start...data.count {
                XCTAssertEqual(CRC32.checksum(Array(data[start..<end])), bitwise(data[start..<end]), "\(start)..<\(end)")
            }
        }
        let whole = CRC32.checksum(data)
        let split = data.withUnsafeBytes { raw in
            CRC32.checksum(UnsafeRawBufferPointer(rebasing: raw[37...]), continuing: CRC32.checksum(UnsafeRawBufferPointer(rebasing: raw[..<37])))
        }
        XCTAssertEqual(whole, split, "a CRC continues across pieces")
    }

    /// Regression: flipped tensor bytes in a .pth loaded without complaint.
    func testFlippedTensorByteInPthIsACRCError() throws {
        let original = LoaderTests.tinyFile("tiny-rwkv-7v0-834K.blinkdl.pth")
        let zip = try ZipArchive(path: original)
        let storage = try XCTUnwrap(zip.entries.first { $0.name.contains("/data/") && $0.uncompressedSize > 100 })
        let offset = try zip.data(of: storage).base - zip.file.base + storage.uncompressedSize / 2
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: original)))
        bytes[offset] ^= 0x10
        let p = try write(bytes, "flipped.pth")
        XCTAssertThrowsError(try ModelLoader.load(path: p)) { e in
            guard case .malformed(let file, let reason)? = e as? RWKVError else { return XCTFail("\(e)") }
            XCTAssertEqual(file, p)
            XCTAssertTrue(reason.contains("'\(storage.name)' fails its CRC-32 check"), reason)
            XCTAssertTrue((e as? RWKVError)?.description.contains("re-export or re-download it") ?? false)
        }
        // The intact file still loads (the check passes on what torch.save wrote).
        XCTAssertNoThrow(try ModelLoader.load(path: original))
    }

    /// The slicing-by-8 CRC-32 every model byte goes through equals the plain byte-at-a-time table loop,
    /// at every start offset and tail length its 8-byte steps can meet. Its speed (the figure for a
    /// 0.4B model, about 0.9 GB of bf16 weights, quoted in the README) is printed, not asserted: a timing
    /// on a shared machine says nothing about the code.
    func testCRC32MatchesTheByteTableLoop() throws {
        let n = 32 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: n, alignment: 64)
        defer { buffer.deallocate() }
        var rng = SplitMix64(seed: 1)
        for i in stride(from: 0, to: n, by: 8) { buffer.storeBytes(of: rng.next(), toByteOffset: i, as: UInt64.self) }
        let table: [UInt32] = (0..<256).map { b in
            var c = UInt32(b)
            for _ in 0..<8 { c = c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            return c
        }
        func bytewise(_ raw: UnsafeRawBufferPointer) -> UInt32 {
            table.withUnsafeBufferPointer { t in
                var c: UInt32 = 0xFFFF_FFFF
                for x in raw { c = (c >> 8) ^ t[Int((c ^ UInt32(x)) & 0xFF)] }
                return ~c
            }
        }
        var fast = Double.infinity, slow = Double.infinity
        var crcFast: UInt32 = 0, crcSlow: UInt32 = 0
        for _ in 0..<3 {
            fast = min(fast, seconds { crcFast = CRC32.checksum(UnsafeRawBufferPointer(buffer)) })
            slow = min(slow, seconds { crcSlow = bytewise(UnsafeRawBufferPointer(buffer)) })
        }
        XCTAssertEqual(crcFast, crcSlow)
        for start in 0..<9 {
            for length in [0, 1, 7, 8, 9, 63, 64, 65, 1000] {
                let slice = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[start..<(start + length)])
                XCTAssertEqual(CRC32.checksum(slice), bytewise(slice), "start \(start), length \(length)")
            }
        }
        let gbPerSecond = Double(n) / fast / 1e9
        print(String(format: "CRC-32: slicing-by-8 %.2f GB/s, byte table %.2f GB/s; %.2f s for a 0.4B bf16 model (0.9 GB)",
                     gbPerSecond, Double(n) / slow / 1e9, 0.9e9 / (gbPerSecond * 1e9)))
    }

    // MARK: - values files

    /// Regression: a values file saved with CRLF endings had "0 values" (Swift's "\r\n" is one Character).
    func testCRLFValuesFileReadsLikeLF() throws {
        let lf = "# colours\n@property colour\n@template The answer is {value}.\nred\ngreen\ndark blue = navy\n"
        let crlf = lf.replacingOccurrences(of: "\n", with: "\r\n")
        let a = try Vocabulary.parse(lf, name: "c")
        let b = try Vocabulary.parse(crlf, name: "c")
        XCTAssertEqual(a, b)
        XCTAssertEqual(b.values.map(\.surface), ["red", "green", "navy"])
        XCTAssertEqual(b.template, "The answer is {value}.")
        XCTAssertEqual(try Vocabulary.parsePairs("a -> b\r\nc, d\r\n", file: "p").map { [$0.0, $0.1] }, [["a", "b"], ["c", "d"]])
    }

    /// Regression: a 100,000-character values line took over a minute and 3.6 GB.
    func testOverlongValuesLineIsRefusedAtOnce() throws {
        let long = String(repeating: "x", count: 100_000)
        var result: Result<Vocabulary, Error>!
        let elapsed = seconds { result = Result { try Vocabulary.parse("red\n\(long)\nblue\n", name: "v", file: "v.txt") } }
        XCTAssertThrowsError(try result.get()) { e in
            XCTAssertEqual((e as? PackError)?.description,
                           "v.txt:2: the line is 100000 bytes; a value, alias or directive may have at most 1024. Shorten it (values are names or short phrases)")
        }
        XCTAssertLessThan(elapsed, 1)
        // At the limit it is a value like any other.
        let edge = String(repeating: "y", count: Vocabulary.Limits.lineBytes)
        XCTAssertEqual(try Vocabulary.parse("red\n\(edge)\n", name: "v").values.count, 2)
        XCTAssertThrowsError(try Vocabulary.parsePairs("a -> \(long)\n", file: "p.txt")) { e in
            XCTAssertTrue((e as? PackError)?.description.hasPrefix("p.txt:1: the line is") ?? false, "\(e)")
        }
    }

    func testWorldVocabularyReadsCRLF() throws {
        let lf = "1 'a' 1\n2 'b' 1\n3 b'\\xff' 1\n"
        let a = try write(Array(lf.utf8), "lf.txt")
        let b = try write(Array(lf.replacingOccurrences(of: "\n", with: "\r\n").utf8), "crlf.txt")
        let ta = try WorldTokenizer(vocabularyFile: a), tb = try WorldTokenizer(vocabularyFile: b)
        XCTAssertEqual(ta.encode("ab"), tb.encode("ab"))
        XCTAssertEqual(tb.encode("ab"), [1, 2])
    }

    func testTextLinesSplitsLFAndCRLFOnly() {
        XCTAssertEqual(TextLines.split("a\r\nb\nc\r\n\r\nd").map(String.init), ["a", "b", "c", "", "d"])
        XCTAssertEqual(TextLines.split("a\rb").map(String.init), ["a\rb"], "a lone CR is not a line ending")
        XCTAssertEqual(TextLines.split("").map(String.init), [""])
        XCTAssertEqual(TextLines.split("é\r\n€").map(String.init), ["é", "€"])
    }

    // MARK: - eval suites

    static let goodCase = #"{"id": "a", "context": "Alice lives in Paris.", "edit": {"from": "Alice lives in Paris.", "to": "Alice lives in Rome."}, "targets": [{"query": "Alice lives in", "old": "Paris", "new": "Rome"}]}"#

    /// Regression: a CRLF .jsonl suite failed with "not a JSON object".
    func testCRLFJSONLSuiteLoads() throws {
        let p = scratch.appendingPathComponent("crlf.jsonl").path
        try (#"{"version": 1, "name": "crlf"}"# + "\r\n" + Self.goodCase + "\r\n\r\n").write(toFile: p, atomically: true, encoding: .utf8)
        let s = try EvalSuite.load(path: p)
        XCTAssertEqual(s.name, "crlf")
        XCTAssertEqual(s.cases.map(\.id), ["a"])
    }

    func expectSuiteError(_ json: String, field: String, reason: String, file: StaticString = #filePath, line: UInt = #line) {
        var result: Result<EvalSuite, Error>!
        let elapsed = seconds { result = Result { try EvalSuite.parse(json: json, file: "s.json") } }
        XCTAssertThrowsError(try result.get(), file: file, line: line) { e in
            guard let err = e as? EvalSuiteError else { return XCTFail("\(e)", file: file, line: line) }
            XCTAssertEqual(err.field, field, err.description, file: file, line: line)
            XCTAssertEqual(err.file, "s.json", file: file, line: line)
            XCTAssertTrue(err.description.contains(reason), err.description, file: file, line: line)
        }
        XCTAssertLessThan(elapsed, 2, "refused while parsing", file: file, line: line)
    }

    /// Regression: `filler.tokens` 1e8 ran forever; 1000 alphas or paraphrases and 100,000-character
    /// strings ran for minutes. Each is now refused while parsing, naming the field and the fix.
    func testSuiteSizesAreBounded() {
        func suite(_ replace: (String) -> String) -> String { #"{"version": 1, "cases": ["# + replace(Self.goodCase) + "]}" }
        let withCase = { (extra: String) in suite { $0.replacingOccurrences(of: #""id": "a","#, with: #""id": "a", \#(extra),"#) } }
        expectSuiteError(withCase(#""filler": {"tokens": 100000000}"#), field: "filler.tokens",
                         reason: "100000000 tokens; at most 32768. Lower it")
        expectSuiteError(withCase(#""filler": {"tokens": 1e300}"#), field: "filler.tokens", reason: "out of range")
        let alphas = (0..<1000).map { _ in "0.5" }.joined(separator: ",")
        expectSuiteError(withCase(#""alphas": [\#(alphas)]"#), field: "alphas", reason: "1000 values; at most 64 per sweep")
        let paraphrases = (0..<1000).map { _ in #"{"query": "Q", "old": "A"}"# }.joined(separator: ",")
        expectSuiteError(withCase(#""paraphrases": [\#(paraphrases)]"#), field: "paraphrases", reason: "1000 queries; at most 256 per case")
        let long = String(repeating: "x", count: 100_000)
        expectSuiteError(suite { $0.replacingOccurrences(of: #""query": "Alice lives in""#, with: #""query": "\#(long)""#) },
                         field: "targets[0].query", reason: "100000 bytes long; at most 4096. Shorten it")
        expectSuiteError(suite { $0.replacingOccurrences(of: #""context": "Alice lives in Paris.""#, with: #""context": "\#(long)""#) },
                         field: "context", reason: "100000 bytes long; at most 32768")
        XCTAssertNoThrow(try EvalSuite.parse(json: withCase(#""filler": {"tokens": 32768}, "alphas": [\#((0..<64).map { _ in "1" }.joined(separator: ","))]"#)))
    }

    /// Regression: the filler loop re-tokenised the whole text after every sentence (quadratic).
    func testFillerTokenisesALinearAmount() {
        var bytesCounted = 0
        let count: (String) -> Int = { s in bytesCounted += s.utf8.count; return s.split(separator: " ").count }
        let text = EvalFiller.text(FillerSpec(tokens: EvalSuite.Limits.fillerTokens, seed: 1), count: count)
        XCTAssertGreaterThanOrEqual(count(text), EvalSuite.Limits.fillerTokens)
        XCTAssertLessThan(bytesCounted, 4 * text.utf8.count, "each byte is tokenised a bounded number of times")
        // A counter that never grows cannot make it loop forever.
        XCTAssertFalse(EvalFiller.text(FillerSpec(tokens: 5, seed: 1), count: { _ in 0 }).isEmpty)
    }
}
