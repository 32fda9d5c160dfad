import Foundation
import PackCompiler
import RWKVEdit
import XCTest

/// The bundled demo model (models/) against the official `rwkv` package
/// (models/demo-reference.json, written by tools/train-demo-model/reference.py).
final class DemoModelTests: XCTestCase {
    static let models = Fixtures.repoRoot.appendingPathComponent("models")

    func testDemoModelMatchesOfficialPackageInEveryFormat() throws {
        let refURL = Self.models.appendingPathComponent("demo-reference.json")
        guard FileManager.default.fileExists(atPath: refURL.path) else { throw XCTSkip("models/demo-reference.json not present") }
        let ref = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: refURL)) as? [String: Any])
        let cases = try XCTUnwrap(ref["cases"] as? [[String: Any]])
        let tokenizer = try WorldTokenizer(vocabularyFile: Self.models.appendingPathComponent("demo-vocab.txt").path)
        for file in ["demo.safetensors", "demo.pth"] {
            let engine = CPUEngine(model: try ModelLoader.load(path: Self.models.appendingPathComponent(file).path))
            for c in cases {
                let text = try XCTUnwrap(c["text"] as? String)
                let tokens = try XCTUnwrap(c["tokens"] as? [Int])
                XCTAssertEqual(tokenizer.encode(text), tokens, "tokenizer disagrees with the training tokenizer on \(text)")
                let expected = try XCTUnwrap(c["logits"] as? [Double]).map(Float.init)
                var state = engine.newState()
                let logits = try engine.forward(tokens, state: &state)
                XCTAssertLessThan(Fixtures.maxAbsDiff(logits, expected), 1e-4, "\(file): \(text)")
            }
        }
    }
}
