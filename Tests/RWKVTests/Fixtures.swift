import Foundation
import PackCompiler
import RWKVEdit
import XCTest

/// Paths of test data: the repo's own fixtures and the shared ones beside the checkout.
enum Fixtures {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let shared = repoRoot.deletingLastPathComponent().appendingPathComponent("shared/fixtures")
    static let tinyDir = shared.appendingPathComponent("tiny-rwkv-7v0")
    static let tinySafetensors = tinyDir.appendingPathComponent("tiny-rwkv-7v0-834K.blinkdl.safetensors").path
    static let worldVocab = shared.appendingPathComponent("world-vocab/rwkv_vocab_v20230424.txt").path
    static let golden = repoRoot.appendingPathComponent("Tests/Fixtures/golden")

    static func expectedTinyLogits() throws -> [Float] {
        let data = try Data(contentsOf: tinyDir.appendingPathComponent("expected-logits-7v0-834K.bin"))
        return data.withUnsafeBytes { raw in (0..<(data.count / 4)).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
    }

    static func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "lengths differ")
        return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    static func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("rwkv-edit-tests-\(ProcessInfo.processInfo.processIdentifier)-\(name)").path
    }
}
