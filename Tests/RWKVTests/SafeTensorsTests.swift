import Foundation
import PackCompiler
import RWKVEdit
import XCTest

final class SafeTensorsTests: XCTestCase {
    func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let path = Fixtures.temporaryPath(name)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    func header(_ json: String, data: Int) -> [UInt8] {
        let h = Array(json.utf8)
        return withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) } + h + [UInt8](repeating: 0, count: data)
    }

    func testTruncatedAndLyingFilesAreTypedErrors() throws {
        let good = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.tinySafetensors)))
        let cases: [(String, [UInt8])] = [
            ("empty", []),
            ("short", Array(good.prefix(5))),
            ("header cut", Array(good.prefix(200))),
            ("data cut", Array(good.prefix(good.count - 1000))),
            ("huge header length", [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f] + Array(repeating: 0, count: 16)),
            ("offset past end", header(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,1600000000000]}}"#, data: 16)),
            ("shape disagrees with bytes", header(#"{"a":{"dtype":"F32","shape":[1000000000,1000000000],"data_offsets":[0,16]}}"#, data: 16)),
            ("negative dim", header(#"{"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}"#, data: 16)),
            ("unknown dtype", header(#"{"a":{"dtype":"C64","shape":[2],"data_offsets":[0,16]}}"#, data: 16)),
            ("not json", header("[[[", data: 0)),
        ]
        for (i, (name, bytes)) in cases.enumerated() {
            let path = try write(bytes, "bad-\(i).safetensors")
            defer { try? FileManager.default.removeItem(atPath: path) }
            XCTAssertThrowsError(try ModelLoader.load(path: path), name) { error in
                XCTAssertTrue(error is RWKVError, "\(name): \(error)")
                XCTAssertTrue("\(error)".contains(path), "\(name): the error names the file")
            }
        }
    }

    func testMissingTensorAndWrongShapeAreNamed() throws {
        var tensors = try SafeTensorsFile(path: Fixtures.tinySafetensors).floatTensors()
        tensors["blocks.3.att.key.weight"] = nil
        XCTAssertThrowsError(try RWKVModel(blinkDLTensors: tensors, path: "x", format: .safetensors)) {
            XCTAssertEqual($0 as? RWKVError, .missingTensor(file: "x", name: "blocks.3.att.key.weight"))
        }
        tensors["blocks.3.att.key.weight"] = RawTensor(shape: [64, 63], floats: [Float](repeating: 0, count: 64 * 63))
        XCTAssertThrowsError(try RWKVModel(blinkDLTensors: tensors, path: "x", format: .safetensors)) {
            XCTAssertEqual($0 as? RWKVError, .shapeMismatch(file: "x", name: "blocks.3.att.key.weight", expected: [64, 64], found: [64, 63]))
        }
    }
}
