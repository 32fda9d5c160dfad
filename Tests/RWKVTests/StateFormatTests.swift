import Foundation
import RWKVEdit
import XCTest

/// Every state format: round trips, the exact byte layouts, detection, and refusals of bad input.
final class StateFormatTests: XCTestCase {
    static let goldenModel = Fixtures.golden.appendingPathComponent("golden.f32.pth").path
    static let refPath = Fixtures.golden.appendingPathComponent("golden-ref.safetensors").path

    /// The official package's state after prompt P7 on the golden model: real values in every component.
    func referenceState() throws -> State {
        let m = try ModelLoader.load(path: Self.goldenModel)
        return try State.load(from: Self.refPath, config: m.config, keyPrefix: "p7.")
    }

    func path(_ name: String) -> String {
        let p = Fixtures.temporaryPath("stateformat-\(name)")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: p) }
        return p
    }

    func write(_ s: State, _ format: StateFormat, _ name: String, tokens: [Int32] = [], count: Int = 7) throws -> String {
        let p = path(name)
        try StateFile.write(SavedState(state: s, tokens: count, edits: [], identity: nil), tokenIDs: tokens, as: format, to: p)
        return p
    }

    func zeroShifts(_ s: State) -> State {
        var z = s
        z.attXPrev = [Float](repeating: 0, count: s.attXPrev.count)
        z.ffnXPrev = z.attXPrev
        return z
    }

    func testEveryFormatRoundTripsAndIsDetected() throws {
        let s = try referenceState()
        let shape = StateShape(s)
        for format in StateFormat.allCases {
            let p = try write(s, format, "rt-\(format.rawValue)", tokens: [5, 6, 7])
            XCTAssertEqual(try StateFile.detect(p, expecting: shape), format)
            let back = try StateFile.read(p, expecting: shape)
            XCTAssertEqual(back.format, format)
            switch format {
            case .native, .llamaSession, .llamaSeq, .rwkvcpp:
                XCTAssertEqual(back.state, s, "\(format) is exact")
            case .pth:
                XCTAssertEqual(back.state, zeroShifts(s), "pth keeps the WKV exactly and drops the shifts")
            case .webrwkv:
                XCTAssertEqual(back.state.attXPrev, zeroShifts(s).attXPrev)
                let worst = zip(back.state.wkv, s.wkv).map { abs($0 - $1) / max(abs($1), 1e-3) }.max() ?? 0
                XCTAssertLessThan(worst, 1e-3, "F16 rounding only")
                XCTAssertGreaterThan(worst, 0, "the file really is F16")
            }
            if format == .llamaSession || format == .llamaSeq { XCTAssertEqual(back.tokenIDs, [5, 6, 7]) }
            // The shape comes from the file where the format has a header.
            if format != .rwkvcpp { XCTAssertEqual(StateShape(try StateFile.read(p).state), shape, "\(format) without a model") }
        }
    }

    /// The llama.cpp session bytes, field by field (llama-context.cpp state_save_file, llama-memory-recurrent.cpp).
    func testLlamaSessionLayout() throws {
        let s = try referenceState()
        let p = try write(s, .llamaSession, "layout.session", tokens: [11, 12], count: 2)
        let d = try Data(contentsOf: URL(fileURLWithPath: p))
        func u32(_ o: Int) -> UInt32 { d.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: o, as: UInt32.self) } }
        func u64(_ o: Int) -> UInt64 { d.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: o, as: UInt64.self) } }
        func f32(_ o: Int) -> Float { Float(bitPattern: u32(o)) }
        XCTAssertEqual(Array(d.prefix(4)), Array("nsgg".utf8), "magic 'ggsn' as a little-endian u32")
        XCTAssertEqual(u32(4), 10)
        XCTAssertEqual(u32(8), 2); XCTAssertEqual(u32(12), 11); XCTAssertEqual(u32(16), 12)
        XCTAssertEqual(u32(20), 5); XCTAssertEqual(String(decoding: d[24..<29], as: UTF8.self), "rwkv7")
        XCTAssertEqual(u32(29), 1, "one cell")
        XCTAssertEqual(u32(33), 1, "pos = last token's")
        XCTAssertEqual(u32(37), 1); XCTAssertEqual(u32(41), 0, "the cell's one sequence, 0")
        XCTAssertEqual(u32(45), 0, "s_trans"); XCTAssertEqual(u32(49), 3, "layers")
        var o = 53
        let c = s.nEmbd
        for l in 0..<3 {
            XCTAssertEqual(u32(o), 0, "r type F32"); XCTAssertEqual(u64(o + 4), UInt64(2 * c * 4))
            XCTAssertEqual(f32(o + 12), s.attXPrev[l * c], "att shift first")
            XCTAssertEqual(f32(o + 12 + 4 * c), s.ffnXPrev[l * c], "then ffn shift")
            o += 12 + 8 * c
        }
        let hn = 4 * 64 * 64
        for l in 0..<3 {
            XCTAssertEqual(u32(o), 0); XCTAssertEqual(u64(o + 4), UInt64(hn * 4))
            // wkv[layer][head 1][value 2][key 3]
            XCTAssertEqual(f32(o + 12 + 4 * (1 * 64 * 64 + 2 * 64 + 3)), s.wkv[l * hn + 1 * 64 * 64 + 2 * 64 + 3])
            o += 12 + 4 * hn
        }
        XCTAssertEqual(o, d.count)
    }

    func testRWKVCppAndWebRWKVLayouts() throws {
        let s = try referenceState()
        let raw = try Data(contentsOf: URL(fileURLWithPath: try write(s, .rwkvcpp, "layout.rwkvcpp")))
        let c = s.nEmbd, hn = 4 * 64 * 64, perLayer = 2 * c + hn
        func f32(_ i: Int) -> Float { raw.withUnsafeBytes { Float(bitPattern: $0.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)) } }
        XCTAssertEqual(raw.count, 3 * perLayer * 4)
        XCTAssertEqual(f32(perLayer + 5), s.ffnXPrev[c + 5], "layer 1 starts with the ffn shift")
        XCTAssertEqual(f32(perLayer + c + 5), s.attXPrev[c + 5], "then the att shift")
        XCTAssertEqual(f32(perLayer + 2 * c + 7), s.wkv[hn + 7], "then the heads, value-major")

        let web = try SafeTensorsFile(path: try write(s, .webrwkv, "layout.state"))
        let e = try XCTUnwrap(web.entries["blocks.2.att.time_state"])
        XCTAssertEqual(e.dtypeName, "F16"); XCTAssertEqual(e.shape, [4, 64, 64])
        let t = try web.tensor("blocks.2.att.time_state").floats()
        // key-major: file[h][key j][value i] = wkv[h][value i][key j]
        let (h, i, j) = (3, 10, 50)
        XCTAssertEqual(t[h * 4096 + j * 64 + i], s.wkv[2 * hn + h * 4096 + i * 64 + j], accuracy: abs(s.wkv[2 * hn + h * 4096 + i * 64 + j]) * 1e-3 + 1e-6)
        XCTAssertEqual(web.entries.count, 3, "only the time_state tensors")
    }

    func testOurPthIsReadByOurTorchReader() throws {
        let s = try referenceState()
        let tensors = try PthReader.tensors(path: try write(s, .pth, "reader.pth"))
        XCTAssertEqual(Set(tensors.keys), ["blocks.0.att.time_state", "blocks.1.att.time_state", "blocks.2.att.time_state"])
        XCTAssertEqual(tensors["blocks.1.att.time_state"]?.shape, [4, 64, 64])
        XCTAssertEqual(tensors["blocks.1.att.time_state"]?.floats(), Array(s.wkv[(4 * 4096)..<(8 * 4096)]))
    }

    // MARK: Bad input

    func assertError(_ body: @autoclosure () throws -> Any, _ check: (StateFormatError) -> Bool, _ what: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try body()
            XCTFail("\(what): no error", file: file, line: line)
        } catch let e as StateFormatError {
            XCTAssertTrue(check(e), "\(what): \(e)", file: file, line: line)
        } catch {
            XCTFail("\(what): \(error)", file: file, line: line)
        }
    }

    func testTruncatedLlamaFilesAreRefusedAtEveryCut() throws {
        let s = try referenceState()
        let shape = StateShape(s)
        for format in [StateFormat.llamaSession, .llamaSeq] {
            let full = try Data(contentsOf: URL(fileURLWithPath: try write(s, format, "trunc-\(format.rawValue)", tokens: [1, 2, 3])))
            let cut = path("trunc-cut-\(format.rawValue)")
            for n in [5, 9, 14, 22, 30, 40, 53, 60, 1000, full.count / 2, full.count - 1] {
                try full.prefix(n).write(to: URL(fileURLWithPath: cut))
                assertError(try StateFile.read(cut, expecting: shape), {
                    if case .truncated(let f, _, _, _) = $0 { return f == cut }; return false
                }, "\(format) cut at \(n)")
            }
            var longer = full; longer.append(0)
            try longer.write(to: URL(fileURLWithPath: cut))
            assertError(try StateFile.read(cut, expecting: shape), { if case .malformed = $0 { return true }; return false }, "trailing byte")
        }
    }

    func testOtherModelShapesAreNamed() throws {
        let s = try referenceState()
        let shape = StateShape(s)
        let cases: [(StateShape, String)] = [
            (StateShape(nLayer: 6, nEmbd: 256, nHead: 4, headSize: 64), "layers"),
            (StateShape(nLayer: 3, nEmbd: 384, nHead: 6, headSize: 64), "n_embd"),
            (StateShape(nLayer: 3, nEmbd: 256, nHead: 8, headSize: 32), "heads"),
        ]
        for format in StateFormat.allCases where format != .rwkvcpp {
            let p = try write(s, format, "shape-\(format.rawValue)")
            for (other, dim) in cases {
                assertError(try StateFile.read(p, expecting: other), { e in
                    guard case .otherShape(let f, let fm, let d) = e else { return false }
                    return f == p && fm == format && (d.name == dim || (dim != "layers" && ["n_embd", "heads", "head size"].contains(d.name)))
                }, "\(format) vs \(other)")
            }
            XCTAssertNoThrow(try StateFile.read(p, expecting: shape))
        }
        // rwkv.cpp has no header: the size decides.
        let raw = try write(s, .rwkvcpp, "shape-raw")
        assertError(try StateFile.read(raw, expecting: cases[0].0), { if case .unrecognized = $0 { return true }; return false }, "raw, other size")
        assertError(try StateFile.read(raw), { if case .needsModel(_, .rwkvcpp) = $0 { return true }; return false }, "raw without model")
    }

    func testForeignArchitectureDTypeAndNonFiniteValues() throws {
        let s = try referenceState()
        let shape = StateShape(s)
        // A session of another architecture (same length name, so only the name differs).
        var session = try Data(contentsOf: URL(fileURLWithPath: try write(s, .llamaSession, "arch.session", tokens: [])))
        session.replaceSubrange(16..<21, with: Array("mamba".utf8))
        let arch = path("arch2.session")
        try session.write(to: URL(fileURLWithPath: arch))
        assertError(try StateFile.read(arch, expecting: shape), { $0 == .otherArchitecture(file: arch, found: "mamba") }, "architecture")

        // An F16 r tensor type in a session.
        var typed = try Data(contentsOf: URL(fileURLWithPath: try write(s, .llamaSeq, "type.seq", tokens: [])))
        // seq: magic, version, n_tokens(0), cell_count, pos, n_seq_id(0), s_trans, n_layer, then layer 0's r type at 32.
        typed.replaceSubrange(32..<36, with: [1, 0, 0, 0])
        let tp = path("type2.seq")
        try typed.write(to: URL(fileURLWithPath: tp))
        assertError(try StateFile.read(tp, expecting: shape), { if case .wrongDType(let f, _, _, _) = $0 { return f == tp }; return false }, "ggml type")

        // A web-rwkv state stored as F32 is not what web-rwkv writes.
        let f32 = path("f32.state")
        try SafeTensorsFile.write([("blocks.0.att.time_state", [4, 64, 64], [Float](repeating: 0, count: 4 * 4096))], to: f32)
        assertError(try StateFile.read(f32), { if case .wrongDType(_, "blocks.0.att.time_state", "F32", _) = $0 { return true }; return false }, "F32 web-rwkv")

        // A NaN inside a WKV matrix.
        var bad = s
        bad.wkv[12345] = .nan
        let nanPath = path("nan.rwkvcpp")
        let raw = try write(s, .rwkvcpp, "nan-src")
        var bytes = try Data(contentsOf: URL(fileURLWithPath: raw))
        bytes.replaceSubrange((2 * 256 + 100) * 4..<((2 * 256 + 101) * 4), with: withUnsafeBytes(of: Float.nan.bitPattern) { Array($0) })
        try bytes.write(to: URL(fileURLWithPath: nanPath))
        assertError(try StateFile.read(nanPath, expecting: shape), { if case .notFinite(let f, _, 100) = $0 { return f == nanPath }; return false }, "NaN")
        XCTAssertThrowsError(try StateFile.write(SavedState(state: bad, tokens: 0, edits: [], identity: nil), as: .llamaSeq, to: path("nan-out.seq")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("nan-out.seq")), "nothing written")

        // Foreign files: a model, and text.
        assertError(try StateFile.read(Self.goldenModel), { if case .unrecognized = $0 { return true }; return false }, "a model .pth")
        let text = path("text.txt")
        try Data("hello, this is not a state".utf8).write(to: URL(fileURLWithPath: text))
        assertError(try StateFile.read(text, expecting: shape), { if case .unrecognized = $0 { return true }; return false }, "text")
    }

    func testShiftDropEffectIsMeasured() throws {
        let m = try ModelLoader.load(path: Self.goldenModel)
        let engine = CPUEngine(model: m)
        let s = try referenceState()
        let effect = try ShiftDropEffect.measure(engine: engine, state: s, probe: [42])
        XCTAssertGreaterThan(effect.klDivergence, 1e-6, "the golden state has non-zero shifts")
        XCTAssertGreaterThan(effect.maxAbsProbabilityChange, 0)
        let none = try ShiftDropEffect.measure(engine: engine, state: zeroShifts(s), probe: [42])
        XCTAssertEqual(none.klDivergence, 0, accuracy: 1e-12)
        XCTAssertEqual(none.maxAbsProbabilityChange, 0)
        XCTAssertTrue(none.top1Kept)
    }
}
