import CKernels
import Foundation
import RWKVEdit
import XCTest

/// GGUF files with quantised weights, kept quantised (Tests/Fixtures/quant, made by
/// tools/quant/make_quant_fixtures.py with the `gguf` package).
final class QuantTests: XCTestCase {
    static let dir = Fixtures.repoRoot.appendingPathComponent("Tests/Fixtures/quant")
    static let types: [DType] = [.q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K]

    /// Every type's dequantisation, on every SIMD path this machine has, equals the `gguf` package's
    /// numpy dequantiser bit for bit, on quantised real weights and on random blocks.
    func testDequantisationMatchesGGUFPackageBitForBit() throws {
        let g = try GGUFFile(path: Self.dir.appendingPathComponent("dequant.gguf").path)
        var byName: [String: GGUFFile.TensorInfo] = [:]
        for t in g.tensorInfos { byName[t.name] = t }
        let levels = Array(0...Int(rk_simd_level()))
        var checked = 0
        for type in Self.types {
            for kind in ["real", "random"] {
                let name = type.rawValue.uppercased() + "." + kind
                let q = try g.rawTensor(try XCTUnwrap(byName[name], name))
                let expected = try g.rawTensor(try XCTUnwrap(byName[name + ".expected"])).floats()
                XCTAssertEqual(q.dtype, type, name)
                XCTAssertEqual(q.shape, try g.rawTensor(try XCTUnwrap(byName[name + ".expected"])).shape, name)
                for level in levels {
                    var out = [Float](repeating: .nan, count: expected.count)
                    rk_dequant_blocks_at(Int32(level), type.kernelCode, q.data.base, &out, Int64(expected.count / type.blockElements))
                    let differing = zip(out, expected).filter { $0.bitPattern != $1.bitPattern }.count
                    XCTAssertEqual(differing, 0, "\(name) at SIMD level \(level): \(differing) of \(expected.count) values differ")
                    checked += 1
                }
                // The public path (RawTensor.floats) is the dispatching one.
                XCTAssertEqual(q.floats().map(\.bitPattern), expected.map(\.bitPattern), name)
            }
        }
        XCTAssertEqual(checked, Self.types.count * 2 * levels.count)
    }

    /// The same file with every quantised tensor dequantised to f32 at load: the model the quantised
    /// kernels must reproduce (up to fp32 summation order).
    static func dequantisedModel(_ path: String) throws -> RWKVModel {
        let g = try GGUFFile(path: path, architecture: "rwkv7")
        var (tensors, vocabulary) = try GGUFReader.blinkDLTensors(g)
        for (k, t) in tensors where t.dtype.isQuantized { tensors[k] = RawTensor(shape: t.shape, floats: t.floats()) }
        return try RWKVModel(blinkDLTensors: tensors, path: path, format: .gguf, vocabulary: vocabulary)
    }

    func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? .infinity
    }

    func logits(_ m: RWKVModel, _ tokens: [Int]) throws -> [Float] {
        let e = CPUEngine(model: m)
        var s = e.newState()
        return try e.forward(tokens, state: &s)
    }

    /// A quantised model through the matrix–vector (1 and 3 tokens) and GEMM (120 tokens) paths gives
    /// the logits of its dequantised copy, and stays near the f32 model it was quantised from.
    func testQuantisedModelsMatchTheirDequantisedCopies() throws {
        let ref = try SafeTensorsFile(path: GoldenTests.refPath)
        let p120 = try ref.int32s("p120.tokens").map(Int.init)
        let prompts: [(String, [Int])] = [("1 token", Array(p120.prefix(1))), ("3 tokens", Array(p120.prefix(3))), ("120 tokens", p120)]
        let f32 = try ModelLoader.load(path: Fixtures.golden.appendingPathComponent("golden.f32.gguf").path)
        for (file, types, bound) in [("golden.q8_0.gguf", "q8_0", Float(0.2)), ("golden.mixed.gguf", "q4_K+q6_K", 0.6)] {
            let path = Self.dir.appendingPathComponent(file).path
            let q = try ModelLoader.load(path: path)
            XCTAssertTrue(q.weightTypes.hasPrefix(types.split(separator: "+")[0]), "\(file): \(q.weightTypes)")
            let dq = try Self.dequantisedModel(path)
            for (what, tokens) in prompts {
                let lq = try logits(q, tokens)
                XCTAssertLessThan(relativeError(lq, try logits(dq, tokens)), 1e-4, "\(file) \(what) vs its dequantised copy")
                // Against the unquantised weights: RMS of the difference over the RMS of the f32 logits.
                let lf = try logits(f32, tokens)
                let rms = { (v: [Float]) -> Float in (v.map { $0 * $0 }.reduce(0, +) / Float(v.count)).squareRoot() }
                let err = rms(zip(lq, lf).map { $0 - $1 }) / rms(lf)
                print("\(file) \(what): rms(logits − f32 logits) / rms(f32 logits) = \(err), max |Δ| \(zip(lq, lf).map { abs($0 - $1) }.max()!), max |f32 logit| \(lf.map(abs).max()!)")
                XCTAssertLessThan(err, bound, "\(file) \(what) vs the f32 model")
            }
        }
    }

    /// The portable and AVX2 paths (forced through the CLI) on the mixed-type model give the
    /// dequantised copy's logits too, for one token and for a 120-token prompt.
    func testEveryKernelPathRunsEveryQuantisedType() throws {
        try CLI.requireBinary()
        let ref = try SafeTensorsFile(path: GoldenTests.refPath)
        let path = Self.dir.appendingPathComponent("golden.mixed.gguf").path
        let dq = try Self.dequantisedModel(path)
        let p120 = try ref.int32s("p120.tokens").map(Int.init)
        let info = try CLI.run(["info", "--model", path, "--json"])
        XCTAssertEqual(info.status, 0, info.stderr)
        let types = try XCTUnwrap(CLI.json(info.stdout)["weight_types"] as? String).split(separator: "+").map(String.init)
        XCTAssertEqual(Set(types), Set(Self.types.map(\.rawValue)), "info names every type the file holds")
        for kernels in ["portable", "avx2"] {
            for tokens in [Array(p120.prefix(1)), p120] {
                let r = try CLI.run(["logits", "--model", path, "--tokens", tokens.map(String.init).joined(separator: ","), "--json", "--backend", "cpu"],
                                    environment: ["RWKV_EDIT_KERNELS": kernels])
                XCTAssertEqual(r.status, 0, r.stderr)
                let got = try XCTUnwrap(CLI.json(r.stdout)["logits"] as? [Double]).map(Float.init)
                XCTAssertLessThan(relativeError(got, try logits(dq, tokens)), 1e-4, "\(kernels), \(tokens.count) tokens")
            }
        }
    }
}
