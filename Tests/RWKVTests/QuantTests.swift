import CKernels
import Foundation
import RWKVEdit
import XCTest

/// GGUF files with quantised weights, kept quantised (Tests/Fixtures/quant, made by
/// tools/quant/make_quant_fixtures.py with the `gguf` package).
final class QuantTests: XCTestCase {
    static let dir = Fixtures.repoRoot.appendingPathComponent("Tests/Fixtures/quant")
    static let types: [DType] = [.q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K]

    /// The tensors of the quantised fixture (tools/quant/make_quant_fixtures.py), by name.
    static func fixtureTensors() throws -> (String) throws -> RawTensor {
        let g = try GGUFFile(path: dir.appendingPathComponent("dequant.gguf").path)
        var byName: [String: GGUFFile.TensorInfo] = [:]
        for t in g.tensorInfos { byName[t.name] = t }
        return { name in try g.rawTensor(try XCTUnwrap(byName[name], name)) }
    }

    /// Every type's dequantisation, on every SIMD path this machine has, equals the `gguf` package's
    /// numpy dequantiser bit for bit, on quantised real weights and on random blocks.
    func testDequantisationMatchesGGUFPackageBitForBit() throws {
        let tensor = try Self.fixtureTensors()
        let levels = Array(0...Int(rk_simd_level()))
        var checked = 0
        for type in Self.types {
            for kind in ["real", "random"] {
                let name = type.rawValue.uppercased() + "." + kind
                let q = try tensor(name)
                let expected = try tensor(name + ".expected").floats()
                XCTAssertEqual(q.dtype, type, name)
                XCTAssertEqual(q.shape, try tensor(name + ".expected").shape, name)
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

    /// The fixture models, their weight types, and the bound on RMS(logits − f32 logits) / RMS(f32 logits).
    static let models: [(file: String, types: String, f32Bound: Float)] = [
        // The most over the three prompts, measured (2-core Xeon VM) on the int8 path / RWKV_EDIT_KERNELS=avx512:
        // q8_0 0.25 / 0.13, q4_k 0.56 / 0.55, q5_k 0.21 / 0.26, q6_k 0.16 / 0.10, mixed 0.48 / 0.46 (the
        // fixtures' K-quants come from a simple quantiser without llama.cpp's search).
        ("golden.q8_0.gguf", "q8_0", 0.3), ("golden.q4_k.gguf", "q4_K", 0.65), ("golden.q5_k.gguf", "q5_K", 0.3),
        ("golden.q6_k.gguf", "q6_K", 0.2), ("golden.mixed.gguf", "q4_K+q6_K", 0.55),
    ]

    /// The int8-activation path's tolerance per file and prompt (1, 3, 120 tokens), from what llama.cpp
    /// itself gets on the same file and prompts against its own run of the dequantised copy, as
    /// (max |Δ| / max(1, |reference|), RMS(Δ) / RMS(reference)), times 1.25 rounded up. Measured by
    /// `python tools/quant/llama_logits_error.py Tests/Fixtures/quant/golden.{q8_0,q4_k,q5_k,q6_k,mixed}.gguf`
    /// (llama-cpp-python 0.3.36, 2-core Xeon VM with AVX512-VNNI), which printed for llama.cpp
    /// q8_0 1.52/0.374, 0.107/0.0383, 0.0526/0.0136; q4_k 0.0513/0.0140, 0.205/0.0546, 0.0916/0.0222;
    /// q5_k 1.08/0.269, 0.129/0.0426, 0.0647/0.0218; q6_k 0.225/0.0649, 0.107/0.0339, 0.0776/0.0234;
    /// mixed 0.0924/0.0256, 0.212/0.0494, 0.0500/0.0149. rwkv-edit's int8 path printed the same to three
    /// digits for 1 and 3 tokens on the K-quant files (activations quantised per 256 as llama.cpp's Q8_K),
    /// on q8_0 1.53/0.374 and 0.120/0.0367 (llama.cpp stores its Q8_0 activation scales in f16, we do
    /// not), on mixed 0.085/0.0248 and 0.198/0.0504; after 120 tokens 0.017–0.025 / 0.005–0.007 (the
    /// prompt runs through the fp32 GEMM, only the last token's head through the int8 kernels).
    /// The first token's large error is the model's: its state is empty, and both engines show it.
    static let int8Tolerance: [String: [(maxRel: Float, rms: Float)]] = [
        "golden.q8_0.gguf": [(1.9, 0.47), (0.14, 0.048), (0.066, 0.017)],
        "golden.q4_k.gguf": [(0.064, 0.018), (0.26, 0.069), (0.12, 0.028)],
        "golden.q5_k.gguf": [(1.4, 0.34), (0.17, 0.054), (0.081, 0.028)],
        "golden.q6_k.gguf": [(0.29, 0.082), (0.14, 0.043), (0.097, 0.030)],
        "golden.mixed.gguf": [(0.12, 0.032), (0.27, 0.062), (0.063, 0.019)],
    ]

    func rmsRatio(_ a: [Float], _ b: [Float]) -> Float {
        let rms = { (v: [Float]) -> Float in (v.map { $0 * $0 }.reduce(0, +) / Float(v.count)).squareRoot() }
        return rms(zip(a, b).map { $0 - $1 }) / rms(b)
    }

    /// Checks logits `got` of `file` against its dequantised copy's: within 1e-4 (fp32 arithmetic) on
    /// the fp32 paths, within llama.cpp's own error on the int8-activation path.
    func checkAgainstDequantised(_ got: [Float], _ ref: [Float], file: String, prompt: Int, int8: Bool, _ what: String) throws {
        if int8 {
            let tol = try XCTUnwrap(Self.int8Tolerance[file])[prompt]
            XCTAssertLessThan(relativeError(got, ref), tol.maxRel, "\(what): max relative error")
            XCTAssertLessThan(rmsRatio(got, ref), tol.rms, "\(what): RMS ratio")
        } else {
            XCTAssertLessThan(relativeError(got, ref), 1e-4, what)
        }
    }

    /// A quantised model through the matrix–vector (1 and 3 tokens) and GEMM (120 tokens) paths gives
    /// the logits of its dequantised copy (within llama.cpp's tolerance on the int8-activation path
    /// this machine takes by default, else 1e-4), and stays near the f32 model it was quantised from.
    func testQuantisedModelsMatchTheirDequantisedCopies() throws {
        let ref = try SafeTensorsFile(path: GoldenTests.refPath)
        let p120 = try ref.int32s("p120.tokens").map(Int.init)
        let prompts: [(String, [Int])] = [("1 token", Array(p120.prefix(1))), ("3 tokens", Array(p120.prefix(3))), ("120 tokens", p120)]
        let f32 = try ModelLoader.load(path: Fixtures.golden.appendingPathComponent("golden.f32.gguf").path)
        let int8 = KernelPath.current.quantisesActivations
        for (file, types, bound) in Self.models {
            let path = Self.dir.appendingPathComponent(file).path
            let q = try ModelLoader.load(path: path)
            XCTAssertTrue(q.weightTypes.hasPrefix(types.split(separator: "+")[0]), "\(file): \(q.weightTypes)")
            let dq = try Self.dequantisedModel(path)
            for (i, (what, tokens)) in prompts.enumerated() {
                let lq = try logits(q, tokens)
                try checkAgainstDequantised(lq, try logits(dq, tokens), file: file, prompt: i, int8: int8,
                                            "\(file) \(what) vs its dequantised copy (kernels \(KernelPath.current.rawValue))")
                // Against the unquantised weights: RMS of the difference over the RMS of the f32 logits.
                let lf = try logits(f32, tokens)
                let rms = { (v: [Float]) -> Float in (v.map { $0 * $0 }.reduce(0, +) / Float(v.count)).squareRoot() }
                let err = rms(zip(lq, lf).map { $0 - $1 }) / rms(lf)
                print("\(file) \(what): rms(logits − f32 logits) / rms(f32 logits) = \(err), max |Δ| \(zip(lq, lf).map { abs($0 - $1) }.max()!), max |f32 logit| \(lf.map(abs).max()!)")
                XCTAssertLessThan(err, bound, "\(file) \(what) vs the f32 model")
            }
        }
    }

    /// The portable and fp32 AVX-512 paths (forced through the CLI) on the mixed-type model give the
    /// dequantised copy's logits too, for one token and for a 120-token prompt, and the int8-activation
    /// paths (AVX2, AVX512-VNNI) stay within llama.cpp's tolerance.
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
        let best = KernelPath.current
        for kernels in ["portable", "avx2", "avx512", "default"] {
            let env = kernels == "default" ? [:] : ["RWKV_EDIT_KERNELS": kernels]
            let info = try CLI.run(["info", "--model", path, "--json"], environment: env)
            let ran = try XCTUnwrap(CLI.json(info.stdout)["kernels"] as? String)
            // A cap above this CPU's level leaves it at its own.
            let expected = kernels == "default" || KernelPath.allCases.firstIndex(of: best)! < KernelPath.allCases.firstIndex(of: KernelPath(rawValue: kernels)!)!
                ? best.rawValue : kernels
            XCTAssertEqual(ran, expected, "RWKV_EDIT_KERNELS=\(kernels)")
            for (i, tokens) in [Array(p120.prefix(1)), p120].enumerated() {
                let r = try CLI.run(["logits", "--model", path, "--tokens", tokens.map(String.init).joined(separator: ","), "--json", "--backend", "cpu"],
                                    environment: env)
                XCTAssertEqual(r.status, 0, r.stderr)
                let got = try XCTUnwrap(CLI.json(r.stdout)["logits"] as? [Double]).map(Float.init)
                try checkAgainstDequantised(got, try logits(dq, tokens), file: "golden.mixed.gguf", prompt: i == 0 ? 0 : 2,
                                            int8: KernelPath(rawValue: ran)?.quantisesActivations ?? false, "\(kernels) (\(ran)), \(tokens.count) tokens")
            }
        }
    }

    /// The int8-activation kernels (SIMD levels 1, AVX2, and 3, AVX512-VNNI, where this machine has them)
    /// against the scalar C reference of the same int8 arithmetic, on real and random blocks (zero,
    /// subnormal and f16-maximum scales), rows of several lengths (odd Q8_0 block counts take the VNNI
    /// kernel's one-block tail), an all-zero activation block and an outlier: equal up to fp32 summation
    /// order, i.e. within 1e-5 of Σ|w·x|. The kernels must also differ from the fp32 kernels (the
    /// level below) somewhere, proof that the int8 path ran, by no more than rounding x to int8 can explain.
    func testInt8KernelsMatchTheirScalarReference() throws {
        let levels = [1, 3].filter { $0 <= Int(rk_simd_level()) }
        guard !levels.isEmpty else { throw XCTSkip("no int8-activation path here (kernels \(KernelPath.current.rawValue))") }
        let tensor = try Self.fixtureTensors()
        var checked = 0
        for level in levels {
            for type in Self.types {
                for kind in ["real", "random"] {
                    let name = type.rawValue.uppercased() + "." + kind
                    let q = try tensor(name)
                    let w = q.floats()
                    let blocks = w.count / type.blockElements
                    for perRow in [1, 3, 4, 5, 16] where perRow <= blocks {
                        let cols = perRow * type.blockElements, rows = blocks / perRow
                        var x = [Float](repeating: 0, count: cols)
                        for i in 0..<cols { x[i] = Float(sin(Double(i) * 0.37 + Double(perRow))) * Float(1 + i % 5) }
                        for j in 0..<min(32, cols) where cols > 32 { x[j] = 0 }      // an all-zero block
                        x[cols - 1] = 40                                               // an outlier
                        let blockMax = stride(from: 0, to: cols, by: type.blockElements).map { b in x[b..<(b + type.blockElements)].map(abs).max()! }
                        var int8 = [Float](repeating: .nan, count: rows), ref = int8, fp32 = int8
                        rk_qmatvec_at(Int32(level), type.kernelCode, q.data.base, x, &int8, 1, Int64(cols), Int64(rows), 0, Int64(rows))
                        XCTAssertEqual(rk_qmatvec_int8_ref(type.kernelCode, q.data.base, x, &ref, Int64(cols), 0, Int64(rows)), 1)
                        rk_qmatvec_at(Int32(level - 1), type.kernelCode, q.data.base, x, &fp32, 1, Int64(cols), Int64(rows), 0, Int64(rows))
                        var differs = false
                        for r in 0..<rows {
                            // Σ|w·x|, and the most x's rounding to int8 can move the product: Σ |w| · (half a step
                            // of x's block, max|x| / 254), the block being Q8_0's 32 or the K-quants' 256.
                            var scale: Float = 0, rounding: Float = 0
                            for c in 0..<cols {
                                scale += abs(w[r * cols + c] * x[c])
                                rounding += abs(w[r * cols + c]) * blockMax[c / type.blockElements] / 254
                            }
                            let what = "level \(level), \(name), rows of \(perRow) blocks, row \(r)"
                            XCTAssertTrue(int8[r].isFinite, what)
                            XCTAssertLessThanOrEqual(abs(int8[r] - ref[r]), 1e-5 * scale, "\(what): int8 kernel \(int8[r]) vs reference \(ref[r])")
                            XCTAssertLessThanOrEqual(abs(int8[r] - fp32[r]), 1.001 * rounding + 1e-5 * scale, "\(what): int8 kernel \(int8[r]) vs fp32 \(fp32[r])")
                            if int8[r] != fp32[r] { differs = true }
                        }
                        XCTAssertTrue(differs, "\(name), rows of \(perRow) blocks: the level-\(level) kernel gave the fp32 kernel's results")
                        checked += 1
                    }
                }
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 56 * levels.count)
        // The float types have no int8 path: the reference says so.
        var y: [Float] = [0]
        XCTAssertEqual(rk_qmatvec_int8_ref(DType.f16.kernelCode, [UInt8](repeating: 0, count: 64), [Float](repeating: 1, count: 32), &y, 32, 0, 1), 0)
    }

    /// The int8 prompt GEMM (rk_gemm at level 3 for Q4_K, Q5_K, Q6_K) against the scalar reference of the
    /// same int8 arithmetic, one token at a time (rk_qmatvec_int8_ref): within 1e-5 of Σ|w·x| for T = 1...13,
    /// 64 (every remainder of the 6-token tile) and 200 (two token blocks), on real and random blocks, rows of 1, 3 and 4 blocks,
    /// 75 rows of 2 random blocks (several 32-row panels), row ranges that start off a panel and end mid-panel, a token with an all-zero block and one
    /// with an outlier. It must also differ from the exact product by more than fp32 rounding somewhere:
    /// proof that the int8 path ran.
    func testInt8GemmMatchesTheScalarReference() throws {
        guard rk_simd_level() >= 3 else { throw XCTSkip("no int8-activation path here (kernels \(KernelPath.current.rawValue))") }
        let tensor = try Self.fixtureTensors()
        var checked = 0
        for type in [DType.q4_K, .q5_K, .q6_K] {
            for kind in ["real", "random", "tiled"] {
                let name = type.rawValue.uppercased() + "." + kind
                let q = try tensor(type.rawValue.uppercased() + (kind == "real" ? ".real" : ".random"))
                // "tiled": 75 rows of 2 blocks (three 32-row panels, the last partial) made of the random blocks.
                let blockBytes = Int(rk_block_bytes(type.kernelCode))
                let stored = q.data.count / blockBytes
                let order = kind == "tiled" ? (0..<150).map { ($0 + $0 / 7) % stored } : Array(0..<stored)
                var bytes = [UInt8](repeating: 0, count: order.count * blockBytes)
                for (i, b) in order.enumerated() { for j in 0..<blockBytes { bytes[i * blockBytes + j] = q.data.base.load(fromByteOffset: b * blockBytes + j, as: UInt8.self) } }
                var w = [Float](repeating: 0, count: order.count * type.blockElements)
                rk_dequant_blocks(type.kernelCode, bytes, &w, Int64(order.count))
                let blocks = order.count
                for perRow in (kind == "tiled" ? [2] : [1, 3, 4]) where perRow <= blocks {
                    let cols = perRow * type.blockElements, rows = blocks / perRow
                    let ranges = [(0, rows), (min(1, rows - 1), rows), (0, max(1, rows - 7)), (min(33, rows - 1), rows)]
                    for T in Array(1...13) + [64, 200] {
                        var x = [Float](repeating: 0, count: T * cols)
                        for t in 0..<T {
                            for i in 0..<cols { x[t * cols + i] = Float(sin(Double(i) * 0.37 + Double(perRow + 3 * t))) * Float(1 + (i + t) % 5) }
                        }
                        if T > 1 { for j in 0..<min(256, cols) { x[cols + j] = 0 } }   // token 1: an all-zero block
                        x[T * cols - 1] = 40                                           // the last token: an outlier
                        for (rb, re) in ranges {
                            var y = [Float](repeating: .nan, count: T * rows)
                            rk_gemm(type.kernelCode, bytes, x, &y, Int32(T), Int64(cols), Int64(rows), Int64(rb), Int64(re))
                            var differs = false
                            for t in 0..<T {
                                var ref = [Float](repeating: .nan, count: rows)
                                let xt = Array(x[(t * cols)..<((t + 1) * cols)])
                                XCTAssertEqual(rk_qmatvec_int8_ref(type.kernelCode, bytes, xt, &ref, Int64(cols), Int64(rb), Int64(re)), 1)
                                for r in rb..<re {
                                    var scale: Float = 0
                                    var exact: Double = 0
                                    for c in 0..<cols {
                                        scale += abs(w[r * cols + c] * xt[c])
                                        exact += Double(w[r * cols + c]) * Double(xt[c])
                                    }
                                    let got = y[t * rows + r]
                                    XCTAssertLessThanOrEqual(abs(got - ref[r]), 1e-5 * scale,
                                                             "\(name), rows of \(perRow) blocks, T \(T), rows \(rb)..<\(re), token \(t), row \(r): gemm \(got) vs reference \(ref[r])")
                                    if abs(Double(got) - exact) > 1e-5 * Double(scale) { differs = true }
                                }
                                for r in 0..<rows where r < rb || r >= re { XCTAssertTrue(y[t * rows + r].isNaN, "row \(r) outside the range was written") }
                            }
                            XCTAssertTrue(differs, "\(name), T \(T): the int8 GEMM gave the exact product (did it run?)")
                            checked += 1
                        }
                    }
                }
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 3 * 7 * 15 * 4)
    }
}
