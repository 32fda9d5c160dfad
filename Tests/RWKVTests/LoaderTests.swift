import Foundation
import PackCompiler
import RWKVEdit
import XCTest

/// The .pth, GGUF and fla-safetensors loaders: equality with the BlinkDL safetensors, and typed
/// errors (never a crash) on truncated, lying or hostile files.
final class LoaderTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let tiny = root.deletingLastPathComponent().appendingPathComponent("shared/fixtures/tiny-rwkv-7v0")
    static let golden = root.appendingPathComponent("Tests/Fixtures/golden")
    static let tinyPrompt = [34, 105, 110]

    static func tinyFile(_ name: String) -> String { tiny.appendingPathComponent(name).path }
    static func goldenFile(_ name: String) -> String { golden.appendingPathComponent(name).path }

    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("rwkv-loader-tests-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let p = scratch.appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }

    func bytes(of path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    /// Runs `body`, which must throw an RWKVError; returns it.
    @discardableResult
    func expectRWKVError(_ what: String, file: StaticString = #filePath, line: UInt = #line,
                         _ body: () throws -> Void) -> RWKVError? {
        do {
            try body()
            XCTFail("\(what): no error thrown", file: file, line: line)
        } catch let e as RWKVError {
            return e
        } catch {
            XCTFail("\(what): threw \(type(of: error)) \(error), not RWKVError", file: file, line: line)
        }
        return nil
    }

    func isUnsupported(_ e: RWKVError?) -> Bool { if case .unsupported? = e { return true }; return false }
    func isMalformed(_ e: RWKVError?) -> Bool { if case .malformed? = e { return true }; return false }

    func logits(_ model: RWKVModel, _ tokens: [Int]) throws -> [Float] {
        let engine = CPUEngine(model: model, threads: 1)
        var state = engine.newState()
        return try engine.forward(tokens, state: &state)
    }

    func maxDiff(_ a: [Float], _ b: [Float]) -> Float {
        XCTAssertEqual(a.count, b.count)
        return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    func expectedTinyLogits() throws -> [Float] {
        let d = try Data(contentsOf: Self.tiny.appendingPathComponent("expected-logits-7v0-834K.bin"))
        return d.withUnsafeBytes { r in (0..<(d.count / 4)).map { r.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
    }

    /// Two tensor maps hold the same names, shapes and values (widened to fp32).
    func assertSameTensors(_ a: [String: RawTensor], _ b: [String: RawTensor], ignoring: Set<String> = [], tolerance: Float = 0, _ what: String) {
        let ka = Set(a.keys).subtracting(ignoring), kb = Set(b.keys).subtracting(ignoring)
        XCTAssertEqual(ka, kb, "\(what): names differ: only in first \(ka.subtracting(kb).sorted()), only in second \(kb.subtracting(ka).sorted())")
        for k in ka.intersection(kb).sorted() {
            guard let x = a[k], let y = b[k] else { continue }
            XCTAssertEqual(x.shape, y.shape, "\(what): \(k) shape")
            if x.shape == y.shape {
                let d = maxDiff(x.floats(), y.floats())
                XCTAssertLessThanOrEqual(d, tolerance, "\(what): \(k) values differ by up to \(d)")
            }
        }
    }

    // MARK: - the tiny fixture in every format

    func testTinyPthTensorsEqualSafetensors() throws {
        let st = try SafeTensorsFile(path: Self.tinyFile("tiny-rwkv-7v0-834K.blinkdl.safetensors")).floatTensors()
        let pth = try PthReader.tensors(path: Self.tinyFile("tiny-rwkv-7v0-834K.blinkdl.pth"))
        assertSameTensors(pth, st, "tiny .pth vs .safetensors")
    }

    func testTinyGGUFTensorsMapBackToBlinkDL() throws {
        let st = try SafeTensorsFile(path: Self.tinyFile("tiny-rwkv-7v0-834K.blinkdl.safetensors")).floatTensors()
        for name in ["tiny-rwkv7-834K-f32.gguf", "tiny-rwkv7-834K-f16.gguf"] {
            let g = try GGUFFile(path: Self.tinyFile(name))
            XCTAssertEqual(g.version, 3)
            let (tensors, vocab) = try GGUFReader.blinkDLTensors(g)
            // The f16 file rounds a few weights by ≤ 3e-8 (the fixture says "exact in f16" at f16 precision).
            assertSameTensors(tensors, st, tolerance: name.contains("f16") ? 1e-7 : 0, name)
            let v = try XCTUnwrap(vocab, "\(name): vocabulary")
            XCTAssertEqual(v.count, 256)
            XCTAssertEqual(v, (0..<256).map { Data([UInt8($0)]) }, "\(name): token i is byte i")
        }
    }

    func testTinyFixtureLoadsInEveryFormatToTheSameLogits() throws {
        let expected = try expectedTinyLogits()
        let files: [(String, ModelFileFormat)] = [
            ("tiny-rwkv-7v0-834K.blinkdl.safetensors", .safetensors),
            ("tiny-rwkv-7v0-834K.blinkdl.pth", .pth),
            ("tiny-rwkv7-834K-f32.gguf", .gguf),
            ("tiny-rwkv7-834K-f16.gguf", .gguf),
        ]
        var first: [Float]?
        for (name, format) in files {
            let m = try ModelLoader.load(path: Self.tinyFile(name))
            XCTAssertEqual(m.format, format, name)
            XCTAssertEqual(m.config, ModelConfig(nLayer: 12, nEmbd: 64, nHead: 1, headSize: 64, vocabSize: 256, ffnSize: 256,
                                                 loraW: 32, loraA: 32, loraV: 32, loraG: 32), name)
            let l = try logits(m, Self.tinyPrompt)
            XCTAssertLessThan(maxDiff(l, expected), 1e-4, "\(name) vs rwkv.cpp's expected logits")
            if let f = first { XCTAssertLessThan(maxDiff(l, f), 1e-5, "\(name) vs the .safetensors logits") } else { first = l }
        }
    }

    // MARK: - the golden model (Tests/Fixtures/golden)

    func goldenPath(_ name: String) throws -> String {
        let p = Self.goldenFile(name)
        guard FileManager.default.fileExists(atPath: p) else { throw XCTSkip("\(name) is absent (tools/golden/make_golden.py makes it)") }
        return p
    }

    func testGoldenFilesMapToIdenticalTensors() throws {
        let st = try SafeTensorsFile(path: try goldenPath("golden.blinkdl.safetensors")).floatTensors()
        assertSameTensors(try PthReader.tensors(path: try goldenPath("golden.f32.pth")), st, "golden.f32.pth")
        assertSameTensors(try PthReader.tensors(path: try goldenPath("golden.bf16.pth")), st, "golden.bf16.pth (weights are bf16-exact)")
        let fla = try SafeTensorsFile(path: try goldenPath("golden.fla.safetensors"))
        XCTAssertTrue(FLAKeys.looksLikeFLA(fla.entries.keys))
        XCTAssertFalse(FLAKeys.looksLikeFLA(st.keys))
        let flaMapped = try FLAKeys.blinkDLTensors(try fla.floatTensors(), file: fla.path)
        // fla keeps k_k, k_a, ffn.x_k, w0/a0/v0 as [C] and LoRA factors transposed: the mapping restores BlinkDL's.
        assertSameTensors(flaMapped, st, "golden.fla.safetensors")
        let (gg, vocab) = try GGUFReader.blinkDLTensors(try GGUFFile(path: try goldenPath("golden.f32.gguf")))
        assertSameTensors(gg, st, "golden.f32.gguf")
        // The golden GGUF carries the first 1536 World tokens (id 0 '<s>' is a control token: empty).
        let v = try XCTUnwrap(vocab)
        XCTAssertEqual(v.count, 1536)
        XCTAssertEqual(v[0], Data())
        let world = Self.root.deletingLastPathComponent().appendingPathComponent("shared/fixtures/world-vocab/rwkv_vocab_v20230424.txt").path
        if FileManager.default.fileExists(atPath: world) {
            let w = try WorldTokenizer(vocabularyFile: world)
            XCTAssertEqual(v.map { [UInt8]($0) }, Array(w.tokens.prefix(1536)))
        }
    }

    func testGoldenFilesGiveIdenticalLogits() throws {
        let refPath = try goldenPath("golden-ref.safetensors")
        let ref = try SafeTensorsFile(path: refPath)
        let prompt = try ref.int32s("p7.tokens").map(Int.init)
        let expected = try ref.tensor("p7.logits_one").floats()
        let base = try logits(try ModelLoader.load(path: try goldenPath("golden.blinkdl.safetensors")), prompt)
        let scale = expected.map(abs).max() ?? 1
        XCTAssertLessThan(maxDiff(base, expected) / max(1, scale), 1e-4, "golden.blinkdl.safetensors vs the official package")
        for (name, format) in [("golden.f32.pth", ModelFileFormat.pth), ("golden.fla.safetensors", .safetensorsFLA),
                               ("golden.f32.gguf", .gguf)] {
            let m = try ModelLoader.load(path: try goldenPath(name))
            XCTAssertEqual(m.format, format, name)
            XCTAssertEqual(m.config, ModelConfig(nLayer: 3, nEmbd: 256, nHead: 4, headSize: 64, vocabSize: 1536, ffnSize: 1024,
                                                 loraW: 32, loraA: 32, loraV: 16, loraG: 32), name)
            XCTAssertEqual(try logits(m, prompt), base, "\(name): same weights must give identical logits")
        }
        // bf16 weights are bf16-exact copies of the f32 ones: equal up to the bf16 kernel's rounding of activations.
        let bf16 = try ModelLoader.load(path: try goldenPath("golden.bf16.pth"))
        XCTAssertEqual(bf16.weightDType, .bf16)
        let lb = try logits(bf16, prompt)
        XCTAssertLessThan(maxDiff(lb, try ref.tensor("p7.logits_bf16file").floats()) / max(1, scale), 1e-3, "golden.bf16.pth")
        // f16 files round some weights: compare with the official package on the f16 .pth, and loosely with f32.
        let f16 = try ModelLoader.load(path: try goldenPath("golden.f16.pth"))
        XCTAssertEqual(f16.weightDType, .f16)
        XCTAssertLessThan(maxDiff(try logits(f16, prompt), try ref.tensor("p7.logits_f16file").floats()) / max(1, scale), 1e-3, "golden.f16.pth")
        let g16 = try ModelLoader.load(path: try goldenPath("golden.f16.gguf"))
        XCTAssertLessThan(maxDiff(try logits(g16, prompt), base) / max(1, scale), 1e-2, "golden.f16.gguf")
    }

    /// Weights placed in huge pages are the file's bytes: identical logits to the mapped weights, for every
    /// format. The embedding stays in the file's mapping; every other matrix is moved out of it (where
    /// the kernel offers huge pages).
    func testWeightPlacementsGiveIdenticalLogits() throws {
        let hugePages = (try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8))
            .map { $0.contains("[always]") || $0.contains("[madvise]") } ?? false
        for name in ["golden.f16.pth", "golden.blinkdl.safetensors", "golden.f16.gguf", "golden.fla.safetensors"] {
            let path = try goldenPath(name)
            let placed = try ModelLoader.load(path: path, placement: .hugePages), mapped = try ModelLoader.load(path: path, placement: .mapped)
            let prompt = [1, 17, 300, 42, 9]
            XCTAssertEqual(try logits(placed, prompt), try logits(mapped, prompt), name)
            XCTAssertTrue(placed.embedding.data.owner is MappedFile, name)
            XCTAssertTrue(mapped.head.data.owner is MappedFile, name)
            if hugePages {
                for (spec, layer, m) in placed.matrices([.matrix]) where spec.blinkDL != TensorSpec.embedding.blinkDL {
                    XCTAssertFalse(m.data.owner is MappedFile, "\(name): \(spec.blinkDL) of layer \(layer) was left in the mapping")
                }
            }
        }
    }

    // MARK: - hand-made zip / pickle files

    /// A zip of stored entries, as torch.save writes, with their CRC-32s.
    static func zipArchive(_ entries: [(name: String, data: [UInt8])], method: UInt16 = 0, zip64: Bool = false) -> [UInt8] {
        var out: [UInt8] = [], central: [UInt8] = []
        func u16(_ v: Int, _ b: inout [UInt8]) { b += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func u32(_ v: Int, _ b: inout [UInt8]) { u16(v & 0xFFFF, &b); u16(v >> 16 & 0xFFFF, &b) }
        func u64(_ v: Int, _ b: inout [UInt8]) { u32(v & 0xFFFF_FFFF, &b); u32(v >> 32, &b) }
        let ones = 0xFFFF_FFFF
        for e in entries {
            let offset = out.count
            let name = Array(e.name.utf8)
            let crc = Int(CRC32.checksum(e.data))
            u32(0x0403_4B50, &out); u16(45, &out); u16(0, &out); u16(Int(method), &out); u16(0, &out); u16(0, &out)
            u32(crc, &out); u32(zip64 ? ones : e.data.count, &out); u32(zip64 ? ones : e.data.count, &out)
            u16(name.count, &out); u16(zip64 ? 20 : 0, &out)
            out += name
            if zip64 { u16(1, &out); u16(16, &out); u64(e.data.count, &out); u64(e.data.count, &out) }
            out += e.data
            u32(0x0201_4B50, &central); u16(45, &central); u16(45, &central); u16(0, &central); u16(Int(method), &central)
            u16(0, &central); u16(0, &central); u32(crc, &central)
            u32(zip64 ? ones : e.data.count, &central); u32(zip64 ? ones : e.data.count, &central)
            u16(name.count, &central); u16(zip64 ? 28 : 0, &central); u16(0, &central); u16(0, &central); u16(0, &central); u32(0, &central)
            u32(zip64 ? ones : offset, &central); central += name
            if zip64 { u16(1, &central); u16(24, &central); u64(e.data.count, &central); u64(e.data.count, &central); u64(offset, &central) }
        }
        let cdOffset = out.count
        out += central
        if zip64 {
            let z = out.count
            u32(0x0606_4B50, &out); u64(44, &out); u16(45, &out); u16(45, &out); u32(0, &out); u32(0, &out)
            u64(entries.count, &out); u64(entries.count, &out); u64(central.count, &out); u64(cdOffset, &out)
            u32(0x0706_4B50, &out); u32(0, &out); u64(z, &out); u32(1, &out)
        }
        u32(0x0605_4B50, &out); u16(0, &out); u16(0, &out)
        u16(zip64 ? 0xFFFF : entries.count, &out); u16(zip64 ? 0xFFFF : entries.count, &out)
        u32(zip64 ? ones : central.count, &out); u32(zip64 ? ones : cdOffset, &out); u16(0, &out)
        return out
    }

    /// Pickle opcodes for a protocol-2 state dict {name: tensor}, written the way torch.save does.
    struct PickleWriter {
        var b: [UInt8] = [0x80, 0x02]
        mutating func str(_ s: String) {
            let u = Array(s.utf8)
            b.append(0x58); b += withUnsafeBytes(of: UInt32(u.count).littleEndian) { Array($0) }; b += u
        }
        mutating func int(_ v: Int) {
            b.append(0x4A); b += withUnsafeBytes(of: Int32(v).littleEndian) { Array($0) }
        }
        mutating func global(_ module: String, _ name: String) { b.append(0x63); b += Array("\(module)\n\(name)\n".utf8) }
        mutating func tuple(_ items: [Int]) { b.append(0x28); for i in items { int(i) }; b.append(0x74) }
        mutating func tensor(storage: String = "FloatStorage", key: String, numel: Int, offset: Int = 0, shape: [Int], stride: [Int]) {
            global("torch._utils", "_rebuild_tensor_v2")
            b.append(0x28)                                  // MARK (args)
            b.append(0x28); str("storage"); global("torch", storage); str(key); str("cpu"); int(numel); b.append(0x74)
            b.append(0x51)                                  // BINPERSID
            int(offset); tuple(shape); tuple(stride)
            b.append(0x89)                                  // False
            global("collections", "OrderedDict"); b.append(0x29); b.append(0x52)
            b.append(0x74)                                  // TUPLE
            b.append(0x52)                                  // REDUCE
        }
    }

    static func stateDict(_ body: (inout PickleWriter) -> Void) -> [UInt8] {
        var w = PickleWriter()
        w.global("collections", "OrderedDict"); w.b.append(0x29); w.b.append(0x52)
        w.b.append(0x28)
        body(&w)
        w.b.append(0x75)   // SETITEMS
        w.b.append(0x2E)   // STOP
        return w.b
    }

    static func floatBytes(_ v: [Float]) -> [UInt8] { v.withUnsafeBytes { Array($0) } }

    func testHandMadePthLoads() throws {
        let pkl = Self.stateDict { w in
            w.str("a"); w.tensor(key: "0", numel: 6, offset: 2, shape: [2, 2], stride: [2, 1])
            w.str("b"); w.tensor(key: "0", numel: 6, shape: [3, 1], stride: [1, 7])   // size-1 axis: any stride
        }
        for zip64 in [false, true] {
            let p = try write(Self.zipArchive([("m/data.pkl", pkl), ("m/byteorder", Array("little".utf8)),
                                               ("m/data/0", Self.floatBytes([0, 1, 2, 3, 4, 5]))], zip64: zip64), "ok\(zip64).pth")
            let t = try PthReader.tensors(path: p)
            XCTAssertEqual(t["a"]?.shape, [2, 2], "zip64 \(zip64)")
            XCTAssertEqual(t["a"]?.floats(), [2, 3, 4, 5], "zip64 \(zip64)")
            XCTAssertEqual(t["b"]?.floats(), [0, 1, 2], "zip64 \(zip64)")
        }
        // A big-endian archive is refused rather than misread.
        let be = try write(Self.zipArchive([("m/data.pkl", pkl), ("m/byteorder", Array("big".utf8)),
                                            ("m/data/0", Self.floatBytes([0, 1, 2, 3, 4, 5]))]), "be.pth")
        XCTAssertTrue(isUnsupported(expectRWKVError("big endian") { _ = try PthReader.tensors(path: be) }))
    }

    func testHostilePicklesAreRefused() throws {
        func pth(_ pkl: [UInt8], _ name: String, extra: [(String, [UInt8])] = [("m/data/0", floatBytes(4))]) throws -> String {
            try write(Self.zipArchive([("m/data.pkl", pkl)] + extra.map { (name: $0.0, data: $0.1) }), name)
        }
        func floatBytes(_ n: Int) -> [UInt8] { Self.floatBytes([Float](repeating: 1, count: n)) }

        // GLOBAL os.system, then a call: refused before anything could run.
        var evil = PickleWriter()
        evil.global("os", "system"); evil.b.append(0x28); evil.str("touch /tmp/pwned"); evil.b += [0x74, 0x52, 0x2E]
        let e1 = expectRWKVError("os.system") { _ = try ModelLoader.load(path: try pth(evil.b, "evil.pth")) }
        XCTAssertTrue(isUnsupported(e1), "\(String(describing: e1))")
        XCTAssertTrue(e1?.description.contains("os.system") ?? false, "\(String(describing: e1))")
        XCTAssertTrue(e1?.description.contains("evil.pth") ?? false, "the error names the file")

        // builtins.eval via STACK_GLOBAL (protocol 4 form).
        var evil2 = PickleWriter()
        evil2.b = [0x80, 0x04]; evil2.str("builtins"); evil2.str("eval"); evil2.b += [0x93, 0x2E]
        let e2 = expectRWKVError("STACK_GLOBAL builtins.eval") { _ = try PthReader.tensors(path: try pth(evil2.b, "evil2.pth")) }
        XCTAssertTrue(e2?.description.contains("builtins.eval") ?? false, "\(String(describing: e2))")

        // torch.storage._load_from_bytes (would unpickle nested data) is not on the list.
        var evil3 = PickleWriter()
        evil3.global("torch.storage", "_load_from_bytes"); evil3.b.append(0x2E)
        XCTAssertTrue(isUnsupported(expectRWKVError("_load_from_bytes") { _ = try PthReader.tensors(path: try pth(evil3.b, "evil3.pth")) }))

        // An opcode torch.save never emits for a state dict (INST 'i').
        let inst: [UInt8] = [0x80, 0x02] + Array("ios\nsystem\n".utf8) + [0x2E]
        XCTAssertTrue(isUnsupported(expectRWKVError("INST") { _ = try PthReader.tensors(path: try pth(inst, "inst.pth")) }))

        // REDUCE on a storage class (only OrderedDict and the rebuild functions are callable).
        var callStorage = PickleWriter()
        callStorage.global("torch", "FloatStorage"); callStorage.b += [0x29, 0x52, 0x2E]
        XCTAssertTrue(isUnsupported(expectRWKVError("calling a storage class") { _ = try PthReader.tensors(path: try pth(callStorage.b, "call.pth")) }))

        // Unknown dtype: an int64 tensor.
        let long = Self.stateDict { $0.str("x"); $0.tensor(storage: "LongStorage", key: "0", numel: 2, shape: [2], stride: [1]) }
        let e4 = expectRWKVError("LongStorage") { _ = try PthReader.tensors(path: try pth(long, "long.pth")) }
        XCTAssertTrue(isUnsupported(e4) && (e4?.description.contains("LongStorage") ?? false), "\(String(describing: e4))")

        // Non-contiguous strides, a view overrunning its storage, a storage larger than its entry, a missing entry.
        let strided = Self.stateDict { $0.str("x"); $0.tensor(key: "0", numel: 4, shape: [2, 2], stride: [1, 2]) }
        XCTAssertTrue(isUnsupported(expectRWKVError("strides") { _ = try PthReader.tensors(path: try pth(strided, "strided.pth")) }))
        let overrun = Self.stateDict { $0.str("x"); $0.tensor(key: "0", numel: 4, offset: 2, shape: [2, 2], stride: [2, 1]) }
        XCTAssertTrue(isMalformed(expectRWKVError("overrun") { _ = try PthReader.tensors(path: try pth(overrun, "overrun.pth")) }))
        let bigStorage = Self.stateDict { $0.str("x"); $0.tensor(key: "0", numel: 1 << 30, shape: [2], stride: [1]) }
        XCTAssertTrue(isMalformed(expectRWKVError("storage too big") { _ = try PthReader.tensors(path: try pth(bigStorage, "big.pth")) }))
        let missing = Self.stateDict { $0.str("x"); $0.tensor(key: "7", numel: 4, shape: [4], stride: [1]) }
        XCTAssertTrue(isMalformed(expectRWKVError("missing storage") { _ = try PthReader.tensors(path: try pth(missing, "missing.pth")) }))
        let huge = Self.stateDict { $0.str("x"); $0.tensor(key: "0", numel: 4, shape: [1 << 30, 1 << 30], stride: [1 << 30, 1]) }
        expectRWKVError("absurd shape") { _ = try PthReader.tensors(path: try pth(huge, "huge.pth")) }

        // Stack and memo abuse: unbalanced MARKs, popping an empty stack, a memo read before write.
        expectRWKVError("many marks") { _ = try PthReader.tensors(path: try pth([0x80, 0x02] + [UInt8](repeating: 0x28, count: 100_000) + [0x2E], "marks.pth")) }
        expectRWKVError("empty stack") { _ = try PthReader.tensors(path: try pth([0x80, 0x02, 0x2E], "empty.pth")) }
        expectRWKVError("memo") { _ = try PthReader.tensors(path: try pth([0x80, 0x02, 0x68, 0x05, 0x2E], "memo.pth")) }
        // Deep nesting (would recurse when freed) and a list appended into itself.
        let deep: [UInt8] = [0x80, 0x02, 0x4E] + [UInt8](repeating: 0x85, count: 200_000) + [0x2E]
        XCTAssertTrue(isMalformed(expectRWKVError("deep tuples") { _ = try PthReader.tensors(path: try pth(deep, "deep.pth")) }))
        let selfList: [UInt8] = [0x80, 0x02, 0x5D, 0x71, 0x00] + Array(repeating: [0x68, 0x00, 0x61], count: 500).flatMap { $0 } + [0x2E]
        XCTAssertTrue(isMalformed(expectRWKVError("self-appending list") { _ = try PthReader.tensors(path: try pth(selfList, "selflist.pth")) }))
        expectRWKVError("no STOP") { _ = try PthReader.tensors(path: try pth([0x80, 0x02, 0x7D], "nostop.pth")) }

        // A compressed entry (deflate) is refused clearly.
        let ok = Self.stateDict { $0.str("x"); $0.tensor(key: "0", numel: 4, shape: [4], stride: [1]) }
        let zipped = try write(Self.zipArchive([("m/data.pkl", ok), ("m/data/0", floatBytes(4))], method: 8), "deflated.pth")
        let e5 = expectRWKVError("compressed") { _ = try PthReader.tensors(path: zipped) }
        XCTAssertTrue(isUnsupported(e5) && (e5?.description.contains("compressed") ?? false), "\(String(describing: e5))")

        // A zip without data.pkl, and an archive whose central directory points past the file.
        let nopkl = try write(Self.zipArchive([("m/other", [1, 2, 3])]), "nopkl.pth")
        XCTAssertTrue(isMalformed(expectRWKVError("no data.pkl") { _ = try ModelLoader.load(path: nopkl) }))
        var lying = Self.zipArchive([("m/data.pkl", ok), ("m/data/0", floatBytes(4))])
        let eocd = lying.count - 22
        lying[eocd + 16] = 0xF0; lying[eocd + 17] = 0xFF; lying[eocd + 18] = 0xFF; lying[eocd + 19] = 0x7F
        XCTAssertTrue(isMalformed(expectRWKVError("lying EOCD") { _ = try ModelLoader.load(path: try write(lying, "lying.pth")) }))
    }

    // MARK: - hand-made GGUF files

    struct GGUFWriter {
        var b: [UInt8] = Array("GGUF".utf8)
        mutating func u32(_ v: UInt32) { b += withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        mutating func u64(_ v: UInt64) { b += withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        mutating func str(_ s: String) { let u = Array(s.utf8); u64(UInt64(u.count)); b += u }
        mutating func header(version: UInt32 = 3, tensors: UInt64, kvs: UInt64) { u32(version); u64(tensors); u64(kvs) }
        mutating func kvString(_ k: String, _ v: String) { str(k); u32(8); str(v) }
        mutating func kvU32(_ k: String, _ v: UInt32) { str(k); u32(4); u32(v) }
        mutating func tensorInfo(_ name: String, dims: [UInt64], type: UInt32, offset: UInt64) {
            str(name); u32(UInt32(dims.count)); for d in dims { u64(d) }; u32(type); u64(offset)
        }
        mutating func align(_ a: Int = 32) { while b.count % a != 0 { b.append(0) } }
    }

    func testHostileGGUFHeadersAreTypedErrors() throws {
        var w = GGUFWriter()
        w.header(tensors: 1 << 40, kvs: 0)
        let e1 = expectRWKVError("2^40 tensors") { _ = try ModelLoader.load(path: try write(w.b + [UInt8](repeating: 0, count: 64), "many.gguf")) }
        XCTAssertTrue(isMalformed(e1), "\(String(describing: e1))")

        w = GGUFWriter(); w.header(tensors: 0, kvs: 1 << 40)
        XCTAssertTrue(isMalformed(expectRWKVError("2^40 kvs") { _ = try GGUFFile(path: try write(w.b + [UInt8](repeating: 0, count: 64), "kvs.gguf")) }))

        w = GGUFWriter(); w.header(tensors: 0, kvs: 1); w.str("general.architecture"); w.u32(8); w.u64(1 << 62); w.b += Array("rwkv7".utf8)
        XCTAssertTrue(isMalformed(expectRWKVError("huge string") { _ = try ModelLoader.load(path: try write(w.b, "str.gguf")) }))

        w = GGUFWriter(); w.header(tensors: 0, kvs: 1); w.u64(UInt64.max); w.b += [0, 0, 0, 0]
        XCTAssertTrue(isMalformed(expectRWKVError("huge key") { _ = try GGUFFile(path: try write(w.b, "key.gguf")) }))

        w = GGUFWriter(); w.header(tensors: 0, kvs: 1); w.str("tokenizer.ggml.tokens"); w.u32(9); w.u32(8); w.u64(1 << 50)
        XCTAssertTrue(isMalformed(expectRWKVError("huge array") { _ = try GGUFFile(path: try write(w.b + [UInt8](repeating: 0, count: 32), "arr.gguf")) }))

        w = GGUFWriter(); w.header(tensors: 0, kvs: 1); w.str("x"); w.u32(9); w.u32(99); w.u64(1)
        XCTAssertTrue(isMalformed(expectRWKVError("unknown value type") { _ = try GGUFFile(path: try write(w.b + [0, 0, 0, 0], "vt.gguf")) }))

        w = GGUFWriter(); w.header(version: 1, tensors: 0, kvs: 0)
        XCTAssertTrue(isUnsupported(expectRWKVError("version 1") { _ = try GGUFFile(path: try write(w.b, "v1.gguf")) }))

        // A tensor whose data lies past the end of the file.
        w = GGUFWriter(); w.header(tensors: 1, kvs: 1); w.kvString("general.architecture", "rwkv7")
        w.tensorInfo("token_embd.weight", dims: [4, 4], type: 0, offset: 1 << 30); w.align(); w.b += [UInt8](repeating: 0, count: 64)
        let e2 = expectRWKVError("offset past EOF") { _ = try ModelLoader.load(path: try write(w.b, "eof.gguf")) }
        XCTAssertTrue(isMalformed(e2), "\(String(describing: e2))")

        // An unsupported tensor type (Q2_K = 10, and a made-up 200).
        for (type, name) in [(UInt32(10), "q2k.gguf"), (200, "t200.gguf")] {
            w = GGUFWriter(); w.header(tensors: 1, kvs: 0)
            w.tensorInfo("x", dims: [32], type: type, offset: 0); w.align(); w.b += [UInt8](repeating: 0, count: 64)
            XCTAssertTrue(isUnsupported(expectRWKVError(name) { _ = try GGUFFile(path: try write(w.b, name)) }))
        }

        // Quantised rows must hold whole blocks, and the blocks must fit in the file.
        w = GGUFWriter(); w.header(tensors: 1, kvs: 0)
        w.tensorInfo("x", dims: [32, 2], type: 12, offset: 0); w.align(); w.b += [UInt8](repeating: 0, count: 512)
        XCTAssertTrue(isMalformed(expectRWKVError("Q4_K row of 32") { _ = try GGUFFile(path: try write(w.b, "q4k-row.gguf")) }))
        w = GGUFWriter(); w.header(tensors: 1, kvs: 0)
        w.tensorInfo("x", dims: [256, 4], type: 14, offset: 0); w.align(); w.b += [UInt8](repeating: 0, count: 3 * 210)
        XCTAssertTrue(isMalformed(expectRWKVError("Q6_K past EOF") { _ = try GGUFFile(path: try write(w.b, "q6k-eof.gguf")) }))

        // A legacy (pre-zip) torch file is named as such.
        let legacy: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E]
        let e3 = expectRWKVError("legacy torch") { _ = try ModelLoader.load(path: try write(legacy, "legacy.pth")) }
        XCTAssertTrue(isUnsupported(e3) && (e3?.description.contains("legacy") ?? false), "\(String(describing: e3))")

        // Another architecture.
        w = GGUFWriter(); w.header(tensors: 0, kvs: 1); w.kvString("general.architecture", "llama")
        XCTAssertTrue(isUnsupported(expectRWKVError("llama") { _ = try ModelLoader.load(path: try write(w.b, "llama.gguf")) }))
    }

    func testQ8_0IsDequantised() throws {
        var w = GGUFWriter(); w.header(tensors: 1, kvs: 0)
        w.tensorInfo("q", dims: [32, 2], type: 8, offset: 0); w.align()
        for (scale, base) in [(Float16(0.5), 0), (Float16(-2), 10)] {
            w.b += withUnsafeBytes(of: scale.bitPattern.littleEndian) { Array($0) }
            w.b += (0..<32).map { (i: Int) -> UInt8 in UInt8(bitPattern: Int8(i - 16 + base)) }
        }
        let g = try GGUFFile(path: try write(w.b, "q8.gguf"))
        let t = try g.rawTensor(try XCTUnwrap(g.tensorInfos.first))
        XCTAssertEqual(t.shape, [2, 32])
        let first: [Float] = (0..<32).map { (i: Int) -> Float in Float(i - 16) * 0.5 }
        let second: [Float] = (0..<32).map { (i: Int) -> Float in Float(i - 6) * -2 }
        let expected = first + second
        XCTAssertEqual(t.floats(), expected)
    }

    /// The tiny f32 GGUF re-written with its matrices in Q8_0 (ggml's reference quantiser) loads and
    /// stays close to the f32 logits.
    func testQ8_0ModelLoadsAndStaysClose() throws {
        let src = Self.tinyFile("tiny-rwkv7-834K-f32.gguf")
        let full = try bytes(of: src)
        let g = try GGUFFile(path: src)
        var marker = withUnsafeBytes(of: UInt64(17).littleEndian) { Array($0) }
        marker += Array("token_embd.weight".utf8)
        let infoStart = try XCTUnwrap((24...(full.count - marker.count)).first { full[$0..<($0 + marker.count)].elementsEqual(marker) })
        var w = GGUFWriter()
        w.b = Array(full[..<infoStart])
        var data: [UInt8] = []
        var quantised = 0
        for info in g.tensorInfos {
            let values = try g.rawTensor(info).floats()
            let q8 = info.dims.count == 2 && info.dims[0] % 32 == 0
            while data.count % 32 != 0 { data.append(0) }
            w.tensorInfo(info.name, dims: info.dims.map(UInt64.init), type: q8 ? 8 : 0, offset: UInt64(data.count))
            if !q8 { data += Self.floatBytes(values); continue }
            quantised += 1
            for blockStart in stride(from: 0, to: values.count, by: 32) {
                let block = values[blockStart..<(blockStart + 32)]
                let amax = block.map(abs).max() ?? 0
                let d = amax / 127
                let id: Float = d != 0 ? 1 / d : 0
                data += withUnsafeBytes(of: Float16(d).bitPattern.littleEndian) { Array($0) }
                data += block.map { UInt8(bitPattern: Int8(($0 * id).rounded())) }
            }
        }
        w.align()
        let p = try write(w.b + data, "tiny-q8_0.gguf")
        XCTAssertGreaterThan(quantised, 100)
        let m = try ModelLoader.load(path: p)
        let l = try logits(m, Self.tinyPrompt)
        let d = maxDiff(l, try expectedTinyLogits())
        XCTAssertLessThan(d, 0.05, "Q8_0 logits vs f32 reference")
        XCTAssertGreaterThan(d, 0, "the matrices really were quantised")
    }

    func testGGUFMetadataMustAgreeWithTensors() throws {
        var b = try bytes(of: Self.tinyFile("tiny-rwkv7-834K-f32.gguf"))
        let key = Array("rwkv7.block_count".utf8)
        let at = try XCTUnwrap((0...(b.count - key.count)).first { b[$0..<($0 + key.count)].elementsEqual(key) })
        XCTAssertEqual(b[at + key.count], 4)                  // type u32
        XCTAssertEqual(b[at + key.count + 4], 12)             // value
        b[at + key.count + 4] = 11
        let e = expectRWKVError("block_count") { _ = try ModelLoader.load(path: try write(b, "bc.gguf")) }
        XCTAssertTrue(isMalformed(e) && (e?.description.contains("block_count") ?? false), "\(String(describing: e))")
    }

    func testGGUFUnescapesRWKVTokens() {
        XCTAssertEqual(GGUFReader.unescapeRWKV(Data(#"a\x80\xffb\n\t\r\\\'"#.utf8)), Data([0x61, 0x80, 0xFF, 0x62, 0x0A, 0x09, 0x0D, 0x5C, 0x27]))
        XCTAssertNil(GGUFReader.unescapeRWKV(Data(#"\xZ1"#.utf8)))
        XCTAssertNil(GGUFReader.unescapeRWKV(Data(#"ab\"#.utf8)))
    }

    // MARK: - truncation and corruption of real files

    func testTruncatedFilesAreTypedErrors() throws {
        let files = ["tiny-rwkv-7v0-834K.blinkdl.pth", "tiny-rwkv7-834K-f32.gguf", "tiny-rwkv7-834K-f16.gguf",
                     "tiny-rwkv-7v0-834K.blinkdl.safetensors"]
        for name in files {
            let full = try bytes(of: Self.tinyFile(name))
            let n = full.count
            for cut in [1, 3, 4, 7, 8, 16, 23, 24, 40, 100, 1000, 5000, 26000, n / 3, n / 2, n - 100, n - 22, n - 1] where cut < n {
                let p = try write(Array(full[..<cut]), "cut-\(cut)-\(name)")
                expectRWKVError("\(name) cut at \(cut)") { _ = try ModelLoader.load(path: p) }
            }
        }
    }

    func testCorruptedHeadersNeverCrash() throws {
        var rng: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int {
            let m: UInt64 = 6364136223846793005, c: UInt64 = 1442695040888963407
            rng = rng &* m &+ c
            return Int(truncatingIfNeeded: rng >> 33)
        }
        // The pickle sits at the start of the .pth; GGUF metadata and tensor infos fill its first 26 KB.
        for (name, span) in [("tiny-rwkv-7v0-834K.blinkdl.pth", 41_000), ("tiny-rwkv7-834K-f32.gguf", 26_000)] {
            let full = try bytes(of: Self.tinyFile(name))
            for trial in 0..<60 {
                var b = full
                for _ in 0..<(1 + next() % 4) {
                    let i = (name.hasSuffix(".pth") ? 64 : 0) + next() % span
                    b[i] = UInt8(truncatingIfNeeded: next())
                }
                let p = try write(b, "mut-\(trial)-\(name)")
                do { _ = try ModelLoader.load(path: p) } catch is RWKVError {} catch {
                    XCTFail("\(name) trial \(trial): \(type(of: error)) \(error)")
                }
            }
        }
    }

    func testUnknownSafetensorsDtypeAndFLARouting() throws {
        let json = #"{"model.embeddings.weight":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#
        var h = Array(json.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        let bytes = withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) } + h + [UInt8](repeating: 0, count: 8)
        XCTAssertTrue(isUnsupported(expectRWKVError("F64") { _ = try ModelLoader.load(path: try write(bytes, "f64.safetensors")) }))
        // fla name mapping, one of each kind.
        XCTAssertEqual(FLAKeys.blinkDLName("model.layers.3.attn.w_lora.lora.0.weight")?.name, "blocks.3.att.w1")
        XCTAssertEqual(FLAKeys.blinkDLName("model.layers.3.attn.w_lora.lora.0.weight")?.transpose, true)
        XCTAssertEqual(FLAKeys.blinkDLName("model.layers.3.attn.g_lora.lora.2.weight")?.name, "blocks.3.att.g2")
        XCTAssertEqual(FLAKeys.blinkDLName("model.layers.1.attn.v_lora.lora.2.bias")?.name, "blocks.1.att.v0")
        XCTAssertEqual(FLAKeys.blinkDLName("model.layers.0.pre_norm.bias")?.name, "blocks.0.ln0.bias")
        XCTAssertEqual(FLAKeys.blinkDLName("model.layers.2.attn.g_norm.weight")?.name, "blocks.2.att.ln_x.weight")
        XCTAssertEqual(FLAKeys.blinkDLName("model.layers.2.attn.o_proj.weight")?.name, "blocks.2.att.output.weight")
        XCTAssertEqual(FLAKeys.blinkDLName("model.layers.2.ffn.key.weight")?.name, "blocks.2.ffn.key.weight")
        XCTAssertEqual(FLAKeys.blinkDLName("lm_head.weight")?.name, "head.weight")
        XCTAssertNil(FLAKeys.blinkDLName("model.layers.2.attn.unknown"))
    }

    /// Public entry points refuse bad arguments with typed errors instead of trapping: a transpose of a
    /// tensor that is not 2-D (a LoRA factor of another rank in a file), random weights in a quantised type.
    func testTransposeAndSyntheticWeightsRefuseBadArgumentsWithTypedErrors() {
        XCTAssertThrowsError(try RawTensor(shape: [4], floats: [1, 2, 3, 4]).transposed(file: "m.gguf", name: "blk.0.time_mix_w1.weight")) {
            XCTAssertEqual($0 as? RWKVError, .shapeMismatch(file: "m.gguf", name: "blk.0.time_mix_w1.weight", expected: [-1, -1], found: [4]))
        }
        XCTAssertEqual(try RawTensor(shape: [2, 3], floats: Array(repeating: 0, count: 6)).transposed(file: "f", name: "n").shape, [3, 2])
        XCTAssertThrowsError(try SyntheticModel.tensors(SyntheticModel.Shape.named("0.1b")!, dtype: .q8_0)) {
            XCTAssertTrue(($0 as? RWKVError)?.description.contains("not q8_0") ?? false, "\($0)")
        }
    }
}
