import CSQLite
import PackCompiler
import RWKVEdit
import Foundation
import XCTest

/// Edit packs: format round trips per dtype, typed errors for damaged or foreign packs, resumable
/// and sharded compiles, concurrent readers, and pack-based edits. Uses the tiny fixture model
/// (12 layers × 1 head of 64, byte vocabulary) so the whole class runs in seconds.
final class PackTests: XCTestCase {
    static let model: RWKVModel? = try? ModelLoader.load(path: Fixtures.tinySafetensors)
    static let tokenizer = WorldTokenizer(tokens: (0..<256).map { [UInt8($0)] })
    static let colours = """
    # test vocabulary
    @property hat
    @probe {entity}'s hat is {value}.
    red
    green
    blue
    yellow
    black = jet black
    white
    """

    var dir: String = ""

    override func setUpWithError() throws {
        guard Self.model != nil else { throw XCTSkip("tiny fixture model not found at \(Fixtures.tinySafetensors)") }
        dir = Fixtures.temporaryPath("packs-\(name.filter { $0.isLetter || $0.isNumber })")
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func compiler() throws -> PackCompiler {
        PackCompiler(engine: CPUEngine(model: try XCTUnwrap(Self.model), threads: 2), tokenizer: Self.tokenizer)
    }

    func vocab(_ text: String = colours, name: String = "colours") throws -> Vocabulary { try Vocabulary.parse(text, name: name) }

    @discardableResult
    func compile(_ file: String, dtype: StorageDType = .f16, pairs: Bool = true, batch: Int = 2,
                 shard: (Int, Int)? = nil, stopAfter: Int? = nil, vocabulary: Vocabulary? = nil) throws -> CompileResult {
        var o = CompileOptions()
        o.dtype = dtype
        o.allPairs = pairs
        o.batchSize = batch
        o.shard = shard
        o.stopAfterBatches = stopAfter
        return try compiler().compile(vocabulary: try vocabulary ?? vocab(), options: o, output: "\(dir)/\(file)")
    }

    func cosine(_ a: [Float], _ b: [Float]) -> Double {
        var d = 0.0, na = 0.0, nb = 0.0
        for (x, y) in zip(a, b) { d += Double(x * y); na += Double(x * x); nb += Double(y * y) }
        return na > 0 && nb > 0 ? d / (na * nb).squareRoot() : 1
    }

    /// Runs one SQL statement on a pack file directly (to damage it the way a bad copy or a newer tool would).
    func sql(_ path: String, _ statement: String, blob: [UInt8]? = nil) throws {
        var db: OpaquePointer?
        XCTAssertEqual(sqlite3_open(path, &db), SQLITE_OK)
        defer { sqlite3_close(db) }
        var stmt: OpaquePointer?
        XCTAssertEqual(sqlite3_prepare_v2(db, statement, -1, &stmt, nil), SQLITE_OK, String(cString: sqlite3_errmsg(db)))
        if let blob { _ = blob.withUnsafeBytes { sqlite3_bind_blob(stmt, 1, $0.baseAddress, Int32($0.count), nil) } }
        XCTAssertEqual(sqlite3_step(stmt), SQLITE_DONE)
        sqlite3_finalize(stmt)
    }

    func blobOf(_ path: String, _ query: String) throws -> [UInt8] {
        var db: OpaquePointer?
        XCTAssertEqual(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, nil), SQLITE_OK)
        defer { sqlite3_close(db) }
        var stmt: OpaquePointer?
        XCTAssertEqual(sqlite3_prepare_v2(db, query, -1, &stmt, nil), SQLITE_OK)
        defer { sqlite3_finalize(stmt) }
        XCTAssertEqual(sqlite3_step(stmt), SQLITE_ROW)
        let n = Int(sqlite3_column_bytes(stmt, 0))
        return [UInt8](UnsafeRawBufferPointer(start: sqlite3_column_blob(stmt, 0), count: n))
    }

    func assertPackError<T>(_ body: @autoclosure () throws -> T, _ check: (PackError) -> Bool, file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try body()
            XCTFail("expected a PackError", file: file, line: line)
        } catch let e as PackError {
            XCTAssertTrue(check(e), "unexpected error: \(e)", file: file, line: line)
        } catch {
            XCTFail("expected a PackError, got \(error)", file: file, line: line)
        }
    }

    // MARK: Format

    func testSHA256KnownAnswers() {
        XCTAssertEqual(SHA256.hexDigest(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hexDigest([]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let bytes = [UInt8]((0..<5).flatMap { _ in (0..<256).map { UInt8($0) } })
        XCTAssertEqual(SHA256.hexDigest(bytes), "d414b085826eb06778483ba35564dc849e643359f69ed9747878ba6e54985bed")
        var inc = SHA256()   // the same bytes fed in odd pieces
        inc.update(Array(bytes[0..<7])); inc.update(Array(bytes[7..<700])); inc.update(Array(bytes[700...]))
        XCTAssertEqual(SHA256.hex(inc.finalize()), "d414b085826eb06778483ba35564dc849e643359f69ed9747878ba6e54985bed")
    }

    func testXXH64KnownAnswers() {
        XCTAssertEqual(XXH64.hash([]), 0xEF46DB3751D8E999)
        XCTAssertEqual(XXH64.hash(Array("abc".utf8)), 0x44BC2CF5AD770999)
        XCTAssertEqual(XXH64.hash(Array("Nobody inspects the spammish repetition".utf8)), 0xFBCEA83C8A378BF1)
    }

    func testVocabularyParsing() throws {
        let v = try vocab()
        XCTAssertEqual(v.values.count, 6)
        XCTAssertEqual(v.values[4].name, "black")
        XCTAssertEqual(v.values[4].surface, "jet black")
        XCTAssertEqual(v.property, "hat")
        XCTAssertThrowsError(try Vocabulary.parse("a\na\n", name: "x"))
        XCTAssertThrowsError(try Vocabulary.parse("@bogus x\na\nb\n", name: "x"))
        XCTAssertEqual(try EditPack.parseEdit("Bob: Austin -> Chicago").to, "Chicago")
        XCTAssertThrowsError(try EditPack.parseEdit("Bob Austin Chicago"))
        // Every shipped vocabulary parses.
        let prompts = Fixtures.repoRoot.appendingPathComponent("prompts")
        for f in ["cities", "colours", "pets", "drinks", "jobs", "items"] {
            let v = try Vocabulary.load(path: prompts.appendingPathComponent("\(f).txt").path)
            XCTAssertGreaterThanOrEqual(v.values.count, 10, f)
            XCTAssertNotNil(v.probeTemplate, f)
        }
    }

    func testRoundTripEachDType() throws {
        var packs: [StorageDType: EditPack] = [:]
        for d in StorageDType.allCases {
            let r = try compile("c-\(d.rawValue).rwkvpack", dtype: d)
            XCTAssertEqual(r.status, .complete)
            XCTAssertEqual(r.pairCount, 15)
            let p = try EditPack(path: "\(dir)/c-\(d.rawValue).rwkvpack")
            XCTAssertEqual(try p.verify(), 1 + 6 + 15)
            XCTAssertEqual(p.manifest.dtype, d)
            XCTAssertEqual(p.manifest.layers, [6, 11])
            packs[d] = p
        }
        let ref = try XCTUnwrap(packs[.f32])
        for d in StorageDType.allCases {
            let p = try XCTUnwrap(packs[d])
            var worst = 1.0
            for x in try p.values().map(\.name) {
                let a = try p.vocabEntry(x), b = try ref.vocabEntry(x)
                for i in 0..<a.count { worst = min(worst, cosine(a.vector(i), b.vector(i))) }
            }
            let pa = try XCTUnwrap(try p.pairEntry("blue", "red")), pb = try XCTUnwrap(try ref.pairEntry("blue", "red"))
            for (h, t) in pa { worst = min(worst, cosine(t.u, pb[h]?.u ?? [])) }
            let bytes = try p.storedBytes()
            print("pack dtype \(d.rawValue): \(bytes.vocab / 6) bytes per value (6 heads × 64), \(bytes.pairs / 15) bytes per pair, worst cosine to f32 \(String(format: "%.6f", worst))")
            XCTAssertGreaterThan(worst, d == .int8 ? 0.999 : 0.99999, d.rawValue)
        }
        // Reversed pairs negate u; composed pairs exist for every two values.
        let ab = try XCTUnwrap(try ref.pairEntry("blue", "red")), ba = try XCTUnwrap(try ref.pairEntry("red", "blue"))
        for (h, t) in ab { XCTAssertEqual(cosine(t.u, ba[h]?.u ?? []), -1, accuracy: 1e-6) }
        let (cal, src) = try ref.calibration(from: "red", to: "black", preferComposed: true)
        XCTAssertEqual(src, .composed)
        XCTAssertEqual(cal.heads.count, 6)
    }

    func testMissingValueNamesNearest() throws {
        try compile("c.rwkvpack", pairs: false)
        let p = try EditPack(path: "\(dir)/c.rwkvpack")
        XCTAssertEqual(try p.resolve("jet black"), "black")
        XCTAssertEqual(try p.resolve("RED"), "red")
        assertPackError(try p.resolve("gren")) {
            if case .missingValue(_, "gren", let near) = $0 { return near.first == "green" }
            return false
        }
        XCTAssertNil(try p.pairEntry("red", "blue"))   // compiled without pairs: composed only
        XCTAssertEqual(try p.calibration(from: "red", to: "blue").1, .composed)
    }

    // MARK: Damage and mismatch

    func testTruncatedPack() throws {
        try compile("c.rwkvpack")
        let path = "\(dir)/c.rwkvpack"
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        for keep in [data.count / 2, 60] {
            try data.prefix(keep).write(to: URL(fileURLWithPath: "\(dir)/t.rwkvpack"))
            assertPackError(try EditPack(path: "\(dir)/t.rwkvpack")) {
                if case .corrupt(let f, let why) = $0 { return f.hasSuffix("t.rwkvpack") && why.contains("truncated") }
                return false
            }
        }
        assertPackError(try EditPack(path: "\(dir)/none.rwkvpack")) { if case .unreadable = $0 { return true }; return false }
        try Data("not a pack at all, just some text that is long enough to have a header........................................".utf8)
            .write(to: URL(fileURLWithPath: "\(dir)/x.rwkvpack"))
        assertPackError(try EditPack(path: "\(dir)/x.rwkvpack")) { if case .corrupt = $0 { return true }; return false }
    }

    func testFlippedBlobByte() throws {
        try compile("c.rwkvpack")
        let path = "\(dir)/c.rwkvpack"
        // A byte flipped inside one entry's stored blob (as a bad disk or copy would).
        var blob = try blobOf(path, "SELECT blob FROM vocab_entries WHERE name = 'blue'")
        blob[blob.count / 2] ^= 0x20
        try sql(path, "UPDATE vocab_entries SET blob = ? WHERE name = 'blue'", blob: blob)
        let p = try EditPack(path: path)
        XCTAssertNoThrow(try p.vocabEntry("red"))
        assertPackError(try p.vocabEntry("blue")) {
            if case .badBlob(let f, "blue", let why) = $0 { return f == path && why.contains("checksum") }
            return false
        }
        assertPackError(try p.verify()) { if case .badBlob = $0 { return true }; return false }
        // A byte flipped in the raw file inside a zstd frame: verify reports a bad blob, never crashes.
        try compile("d.rwkvpack")
        let dpath = "\(dir)/d.rwkvpack"
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dpath)))
        let magic: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD]
        let at = try XCTUnwrap((4096..<(bytes.count - 40)).first { Array(bytes[$0..<($0 + 4)]) == magic })
        bytes[at + 24] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: dpath))
        assertPackError(try EditPack(path: dpath).verify()) { if case .badBlob = $0 { return true }; return false }
    }

    func testWrongModelAndNewerSchema() throws {
        try compile("c.rwkvpack")
        let path = "\(dir)/c.rwkvpack"
        let p = try EditPack(path: path)
        let m = try XCTUnwrap(Self.model)
        XCTAssertNoThrow(try p.requireModel(m, tokenizer: Self.tokenizer))
        func otherModel(_ part: String) -> (PackError) -> Bool {
            { if case .incompatible(path, let why) = $0 { return why.contains("another model (\(part):") && why.contains("rwkv-edit compile") }; return false }
        }
        // Another model (the golden random-weight model) and the same model with another vocabulary.
        let golden = try ModelLoader.load(path: Fixtures.golden.appendingPathComponent("golden.blinkdl.safetensors").path)
        let world = try WorldTokenizer(vocabularyFile: Fixtures.worldVocab)
        assertPackError(try p.requireModel(golden, tokenizer: world), otherModel("dims"))
        assertPackError(try p.requireModel(m, tokenizer: WorldTokenizer(tokens: (0..<256).map { [UInt8(255 - $0)] })), otherModel("vocabulary"))
        let session = EditSession(engine: CPUEngine(model: golden, threads: 2), tokenizer: world)
        assertPackError(try session.edit(pack: p, entity: "Bob", from: "red", to: "blue"), otherModel("dims"))
        // Two loads of one file agree, bit for bit.
        XCTAssertEqual(ModelIdentity(model: try ModelLoader.load(path: Fixtures.tinySafetensors), tokenizer: Self.tokenizer),
                       p.manifest.model.identity)
        // A newer schema version.
        try sql(path, "UPDATE meta SET value = '\(PackSchema.version + 1)' WHERE key = 'schema_version'")
        assertPackError(try EditPack(path: path)) {
            if case .newerSchema(path, PackSchema.version + 1, PackSchema.version) = $0 { return true }; return false
        }
        // A pack of schema 1 (model fingerprint, before model identity v2): refused with what to do.
        try sql(path, "UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        assertPackError(try EditPack(path: path)) {
            if case .incompatible(path, let why) = $0 { return why.contains("predates model identity v2") && why.contains("rwkv-edit compile") }
            return false
        }
    }

    // MARK: Model identity

    /// The golden model's weights in every file and dtype it ships in: one identity. f32, bf16, the
    /// BlinkDL and fla safetensors and the f32 GGUF hold exactly the same values (the golden weights
    /// are bf16-rounded), so their samples are equal bit for bit; the f16 files round 322 tiny values.
    func testIdentitySurvivesFormatsAndDTypes() throws {
        let files = ["golden.f32.pth", "golden.bf16.pth", "golden.f16.pth", "golden.blinkdl.safetensors", "golden.fla.safetensors",
                     "golden.f32.gguf", "golden.f16.gguf"]
        let tok = try Self.goldenTokenizer()
        let ref = try Self.identity(Fixtures.golden.appendingPathComponent(files[0]).path, tok)
        XCTAssertEqual(ref.samples.count, (2 + 6 * 3) * ModelIdentity.defaultSamplesPerTensor)
        XCTAssertNil(ref.damage())
        for f in files.dropFirst() {
            let x = try Self.identity(Fixtures.golden.appendingPathComponent(f).path, tok)
            XCTAssertNil(ref.difference(from: x), f)
            XCTAssertNil(x.difference(from: ref), f)
            if !f.contains("f16") { XCTAssertEqual(x, ref, f) }
            print("identity \(f) vs golden.f32.pth: max |Δ| = \(Self.deviation(ref, x)) × tensor RMS")
        }
        // The GGUF's own vocabulary (1536 entries, "<s>" read as empty) and the same list padded with
        // empty entries give one digest; a changed token does not.
        let padded = WorldTokenizer(tokens: tok.tokens + [[], []])
        XCTAssertEqual(ModelIdentity.vocabularyDigest(padded.tokens), ref.vocabSha256)
        var changed = tok.tokens
        changed[300] = Array("x".utf8)
        XCTAssertNotEqual(ModelIdentity.vocabularyDigest(changed), ref.vocabSha256)
    }

    /// The demo model's .pth and .safetensors, and its weights rounded the way a q8_0 GGUF stores them.
    func testDemoModelIdentityAcrossFiles() throws {
        let models = Fixtures.repoRoot.appendingPathComponent("models")
        let tok = try WorldTokenizer(vocabularyFile: models.appendingPathComponent("demo-vocab.txt").path)
        let st = try Self.identity(models.appendingPathComponent("demo.safetensors").path, tok)
        let pth = try Self.identity(models.appendingPathComponent("demo.pth").path, tok)
        XCTAssertNil(st.difference(from: pth))
        print("identity demo.pth vs demo.safetensors: max |Δ| = \(Self.deviation(st, pth)) × tensor RMS")
        let file = try SafeTensorsFile(path: models.appendingPathComponent("demo.safetensors").path)
        let q8 = ModelIdentity(model: try RWKVModel(blinkDLTensors: Self.q8_0(try file.floatTensors()), path: "demo-q8_0", format: .gguf),
                               tokenizer: tok)
        print("identity demo q8_0 vs demo.safetensors: max |Δ| = \(Self.deviation(st, q8)) × tensor RMS, \(Self.notClose(st, q8)) of \(st.samples.count) samples beyond the tolerance")
        XCTAssertNil(st.difference(from: q8))
    }

    /// Rounding the same weights to bf16, f16 or q8_0 stays inside the tolerance with room to spare;
    /// another model of the same shape (another seed) differs in almost every sample. Random uniform
    /// weights (not pre-rounded like the golden model's), so the rounding is real.
    func testIdentityToleranceAgainstRoundingAndOtherWeights() throws {
        let shape = SyntheticModel.Shape(nLayer: 2, nEmbd: 256, vocab: 1024, loraW: 32, loraA: 32, loraV: 16, loraG: 32)
        let tok = WorldTokenizer(tokens: [[]] + (0..<1023).map { Array("t\($0)".utf8) })
        func id(_ d: DType, seed: UInt64 = 1) throws -> ModelIdentity {
            ModelIdentity(model: try SyntheticModel.model(shape, dtype: d, seed: seed), tokenizer: tok)
        }
        let ref = try id(.f32)
        let q8 = ModelIdentity(model: try RWKVModel(blinkDLTensors: Self.q8_0(SyntheticModel.tensors(shape, dtype: .f32)), path: "q8_0",
                                                    format: .gguf), tokenizer: tok)
        for (name, x) in [("bf16", try id(.bf16)), ("f16", try id(.f16)), ("q8_0", q8)] {
            let dev = Self.deviation(ref, x)
            print("identity synthetic \(name) vs f32: max |Δ| = \(dev) × tensor RMS")
            XCTAssertNil(ref.difference(from: x), name)
            XCTAssertLessThan(dev, ModelIdentity.closeRMS / 2, name)
        }
        let other = try id(.f32, seed: 2)
        let why = try XCTUnwrap(ref.difference(from: other))
        print("identity synthetic seed 2 vs seed 1: \(why)")
        XCTAssertTrue(why.hasPrefix("weights: "), why)
        XCTAssertGreaterThan(Self.notClose(ref, other), ref.samples.count * 9 / 10)
    }

    /// A q8_0 GGUF of the golden model (its f32 GGUF rewritten with every matrix whose rows hold a
    /// multiple of 32 values in Q8_0, ggml's reference quantiser), loaded by the GGUF reader.
    func testIdentityOfQ8_0GGUF() throws {
        let tok = try Self.goldenTokenizer()
        let ref = try Self.identity(Fixtures.golden.appendingPathComponent("golden.f32.pth").path, tok)
        let path = "\(dir)/golden.q8_0.gguf"
        try Self.q8_0GGUF(from: Fixtures.golden.appendingPathComponent("golden.f32.gguf").path, to: path)
        let m = try ModelLoader.load(path: path)
        let q8 = ModelIdentity(model: m, tokenizer: tok)
        XCTAssertNotEqual(q8.samples, ref.samples, "the matrices really were quantised")
        print("identity golden q8_0 GGUF vs golden.f32.pth: max |Δ| = \(Self.deviation(ref, q8)) × tensor RMS, \(Self.notClose(ref, q8)) of \(ref.samples.count) samples beyond the tolerance")
        XCTAssertNil(ref.difference(from: q8))
    }

    /// A pack for another model of the same shape is refused naming the pack and the weights; a pack
    /// whose stored signature was tampered with (one sample moved, or made NaN) is refused too.
    func testIdentityRefusesOtherWeightsAndTampering() throws {
        try compile("c.rwkvpack", pairs: false)
        let path = "\(dir)/c.rwkvpack"
        let m = try XCTUnwrap(Self.model)
        let p = try EditPack(path: path)
        // The tiny model's tensors with every signature matrix replaced by another random one.
        var t = try SafeTensorsFile(path: Fixtures.tinySafetensors).floatTensors()
        var rng = SplitMix64(seed: 5)
        for name in ModelIdentity.tensorNames(m.config) {
            let x = try XCTUnwrap(t[name])
            let s = (x.floats().reduce(0) { $0 + $1 * $1 } / Float(x.elementCount)).squareRoot()
            t[name] = RawTensor(shape: x.shape, floats: (0..<x.elementCount).map { _ in s * (2 * rng.nextFloat() - 1) * 1.7 })
        }
        let other = try RWKVModel(blinkDLTensors: t, path: "other", format: .safetensors)
        XCTAssertEqual(other.config, m.config)
        assertPackError(try p.requireModel(other, tokenizer: Self.tokenizer)) {
            guard case .incompatible(path, let why) = $0 else { return false }
            return why.contains("another model (weights: ") && why.contains(" of \(p.manifest.model.identity.samples.count) sampled weights differ")
        }
        // One sampled value moved by its tensor's RMS: refused; by 1% of it: still the same model.
        func tampered(_ change: (inout [Float]) -> Void) throws -> String {
            var manifest = p.manifest
            change(&manifest.model.identity.samples)
            let out = "\(dir)/t\(UUID().uuidString.prefix(6)).rwkvpack"
            try FileManager.default.copyItem(atPath: path, toPath: out)
            let json = manifest.json().replacingOccurrences(of: "'", with: "''")
            try sql(out, "UPDATE meta SET value = '\(json)' WHERE key = 'manifest'")
            return out
        }
        let k = ModelIdentity.defaultSamplesPerTensor
        let s = p.manifest.model.identity.samples
        let rms = (s[(5 * k)..<(6 * k)].reduce(0) { $0 + $1 * $1 } / Float(k)).squareRoot()
        let far = try tampered { $0[5 * k + 3] += rms }
        assertPackError(try EditPack(path: far).requireModel(m, tokenizer: Self.tokenizer)) {
            guard case .incompatible(far, let why) = $0 else { return false }
            return why.contains("weights: 1 of \(s.count) sampled weights differ")
        }
        let near = try tampered { $0[5 * k + 3] += 0.01 * rms }
        XCTAssertNoThrow(try EditPack(path: near).requireModel(m, tokenizer: Self.tokenizer))
        for bad in [Float.nan, .infinity] {
            let out = try tampered { $0[7] = bad }
            assertPackError(try EditPack(path: out)) {
                if case .corrupt(out, let why) = $0 { return why.contains("model identity is damaged") && why.contains("not a finite number") }
                return false
            }
        }
        let short = try tampered { $0.removeLast() }
        assertPackError(try EditPack(path: short)) { if case .corrupt(short, let why) = $0 { return why.contains("sampled weights, expected") }; return false }
    }

    /// `rwkv-edit bench identity --json` reports the cost of computing and checking an identity.
    func testBenchIdentityCommand() throws {
        try CLI.requireBinary()
        let r = try CLI.run(["bench", "identity", "--model", Fixtures.tinySafetensors, "--runs", "2", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        XCTAssertEqual(obj["tensors"] as? Int, 2 + 6 * 12)
        XCTAssertEqual(obj["sampled_weights"] as? Int, (2 + 6 * 12) * ModelIdentity.defaultSamplesPerTensor)
        for key in ["ms_identity", "ms_identity_first", "ms_vocabulary_digest", "ms_open_pack", "ms_check"] {
            let ms = try XCTUnwrap(obj[key] as? Double, key)
            XCTAssertGreaterThan(ms, 0, key)
            XCTAssertLessThan(ms, 50, key)
        }
    }

    /// The golden GGUF's own vocabulary (1536 tokens), used for every golden file so only the weights vary.
    static func goldenTokenizer() throws -> WorldTokenizer {
        let g = try ModelLoader.load(path: Fixtures.golden.appendingPathComponent("golden.f32.gguf").path)
        return WorldTokenizer(tokens: try XCTUnwrap(g.embeddedVocabulary).map { [UInt8]($0) })
    }

    static func identity(_ path: String, _ tok: WorldTokenizer) throws -> ModelIdentity {
        ModelIdentity(model: try ModelLoader.load(path: path), tokenizer: tok)
    }

    /// Per-sample |a − b| / RMS of the tensor's samples in `a`.
    static func scaledDifferences(_ a: ModelIdentity, _ b: ModelIdentity) -> [Float] {
        let k = a.samplesPerTensor
        return (0..<(a.samples.count / k)).flatMap { t -> [Float] in
            let x = a.samples[(t * k)..<((t + 1) * k)], y = b.samples[(t * k)..<((t + 1) * k)]
            let rms = max((x.reduce(0) { $0 + $1 * $1 } / Float(k)).squareRoot(), .leastNormalMagnitude)
            return zip(x, y).map { abs($0 - $1) / rms }
        }
    }

    static func deviation(_ a: ModelIdentity, _ b: ModelIdentity) -> Float { scaledDifferences(a, b).max() ?? 0 }
    static func notClose(_ a: ModelIdentity, _ b: ModelIdentity) -> Int { scaledDifferences(a, b).filter { $0 > ModelIdentity.closeRMS }.count }

    /// ggml's reference Q8_0 of a row-major block of values (32 per block): d = max|x|/127 stored as f16,
    /// q = round(x/d); returns the dequantised values, as a q8_0 GGUF gives them to the loader.
    static func q8_0Values(_ values: [Float]) -> [Float] {
        stride(from: 0, to: values.count, by: 32).flatMap { b -> [Float] in
            let block = values[b..<min(b + 32, values.count)]
            let d = (block.map(abs).max() ?? 0) / 127
            let id: Float = d != 0 ? 1 / d : 0
            let stored = Float(Float16(d))
            return block.map { stored * Float(Int8(($0 * id).rounded())) }
        }
    }

    /// Every 2-D tensor whose rows are a multiple of 32 long, through Q8_0 (what llama.cpp quantises).
    static func q8_0(_ t: [String: RawTensor]) -> [String: RawTensor] {
        t.mapValues { x in
            guard x.shape.count == 2, x.shape[1] % 32 == 0 else { return x }
            return RawTensor(shape: x.shape, floats: q8_0Values(x.floats()))
        }
    }

    /// Rewrites an f32 GGUF with its Q8_0-able matrices in Q8_0 (as LoaderTests does for the tiny model).
    static func q8_0GGUF(from src: String, to out: String) throws {
        let full = [UInt8](try Data(contentsOf: URL(fileURLWithPath: src)))
        let g = try GGUFFile(path: src)
        let firstName = try XCTUnwrap(g.tensorInfos.first?.name)
        var marker = withUnsafeBytes(of: UInt64(firstName.utf8.count).littleEndian) { Array($0) }
        marker += Array(firstName.utf8)
        let infoStart = try XCTUnwrap((24...(full.count - marker.count)).first { full[$0..<($0 + marker.count)].elementsEqual(marker) })
        var w = LoaderTests.GGUFWriter()
        w.b = Array(full[..<infoStart])
        var data: [UInt8] = []
        for info in g.tensorInfos {
            let values = try g.rawTensor(info).floats()
            let q8 = info.dims.count == 2 && info.dims[0] % 32 == 0
            while data.count % 32 != 0 { data.append(0) }
            w.tensorInfo(info.name, dims: info.dims.map(UInt64.init), type: q8 ? 8 : 0, offset: UInt64(data.count))
            guard q8 else { data += values.withUnsafeBytes { Array($0) }; continue }
            for b in stride(from: 0, to: values.count, by: 32) {
                let block = values[b..<(b + 32)]
                let d = (block.map(abs).max() ?? 0) / 127
                let id: Float = d != 0 ? 1 / d : 0
                data += withUnsafeBytes(of: Float16(d).bitPattern.littleEndian) { Array($0) }
                data += block.map { UInt8(bitPattern: Int8(($0 * id).rounded())) }
            }
        }
        w.align()
        try Data(w.b + data).write(to: URL(fileURLWithPath: out))
    }

    // MARK: Compile

    func testInterruptedCompileResumes() throws {
        let out = "\(dir)/c.rwkvpack"
        XCTAssertThrowsError(try compile("c.rwkvpack", batch: 2, stopAfter: 1)) { XCTAssertTrue($0 is CompileInterrupted) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + ".partial"))
        let partial = try EditPack(path: out + ".partial")
        XCTAssertEqual(partial.status, .staged)
        XCTAssertEqual(try partial.counts()["staged"], 2)
        assertPackError(try partial.vocabEntry("red")) { if case .incompatible = $0 { return true }; return false }
        let r = try compile("c.rwkvpack", batch: 2)
        XCTAssertEqual(r.valuesSkipped, 2)
        XCTAssertEqual(r.valuesCompiled, 4)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + ".partial"))
        let p = try EditPack(path: out)
        XCTAssertEqual(try p.counts(), ["vocab": 6, "staged": 0, "vocab_entries": 6, "pair_entries": 15])
        XCTAssertEqual(try p.verify(), 22)
        // Same entries as an uninterrupted compile.
        try compile("ref.rwkvpack", batch: 2)
        let ref = try EditPack(path: "\(dir)/ref.rwkvpack")
        for x in try ref.values().map(\.name) { XCTAssertEqual(try p.vocabEntry(x), try ref.vocabEntry(x)) }
        // A re-run of a finished compile does nothing; other settings are refused.
        XCTAssertEqual(try compile("c.rwkvpack", batch: 2).valuesCompiled, 0)
        XCTAssertThrowsError(try compile("c.rwkvpack", dtype: .int8))
    }

    func testKilledCompileProcessResumes() throws {
        let binary = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("rwkv-edit")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw XCTSkip("rwkv-edit not built beside the tests") }
        let values = (0..<300).map { "value\($0)" }.joined(separator: "\n")
        let vfile = "\(dir)/many.txt"
        try values.write(toFile: vfile, atomically: true, encoding: .utf8)
        let out = "\(dir)/many.rwkvpack"
        let args = ["compile", "--model", Fixtures.tinySafetensors, "--values", vfile, "--batch", "1", "--threads", "1", "-o", out, "--json"]
        func run() throws -> Process {
            let p = Process()
            p.executableURL = binary
            p.arguments = args
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            return p
        }
        let p = try run()
        // Kill it once some batches are committed (poll the work file).
        let deadline = Date().addingTimeInterval(30)
        var staged = 0
        while Date() < deadline, p.isRunning {
            if FileManager.default.fileExists(atPath: out + ".partial"), let w = try? EditPack(path: out + ".partial"),
               let n = try? w.counts()["staged"], n >= 20 { staged = n; break }
            usleep(2000)
        }
        guard p.isRunning else { throw XCTSkip("the compile finished before it could be killed") }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertGreaterThanOrEqual(staged, 20)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        let q = try run()
        q.waitUntilExit()
        XCTAssertEqual(q.terminationStatus, 0)
        let pack = try EditPack(path: out)
        XCTAssertEqual(try pack.counts(), ["vocab": 300, "staged": 0, "vocab_entries": 300, "pair_entries": 0])
        XCTAssertEqual(try pack.verify(), 301)
    }

    func testShardsMerge() throws {
        XCTAssertEqual(try compile("s1.rwkvpack", shard: (1, 2)).status, .staged)
        let s1 = try EditPack(path: "\(dir)/s1.rwkvpack")
        XCTAssertEqual(try s1.counts()["staged"], 3)
        try compile("s2.rwkvpack", shard: (2, 2))
        assertPackError(try PackCompiler.merge(shards: ["\(dir)/s1.rwkvpack"], output: "\(dir)/half.rwkvpack")) {
            if case .incompatible = $0 { return true }; return false
        }
        let r = try PackCompiler.merge(shards: ["\(dir)/s1.rwkvpack", "\(dir)/s2.rwkvpack"], output: "\(dir)/m.rwkvpack")
        XCTAssertEqual(r.status, .complete)
        try compile("ref.rwkvpack")
        let m = try EditPack(path: "\(dir)/m.rwkvpack"), ref = try EditPack(path: "\(dir)/ref.rwkvpack")
        XCTAssertEqual(try m.counts(), try ref.counts())
        // Shards batch the values differently, so states may differ in the last bits (f16 storage: ~1 ulp).
        for x in try ref.values().map(\.name) {
            let a = try m.vocabEntry(x), b = try ref.vocabEntry(x)
            XCTAssertLessThan(Fixtures.maxAbsDiff(a.values, b.values), 1e-2, x)
            for i in 0..<a.count { XCTAssertGreaterThan(cosine(a.vector(i), b.vector(i)), 0.9999, x) }
        }
    }

    func testTwoReadersAtOnce() throws {
        try compile("c.rwkvpack")
        let path = "\(dir)/c.rwkvpack"
        let expected = try EditPack(path: path).vocabEntry("white")
        let failures = NSLock()
        var errors: [String] = []
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            do {
                let p = try EditPack(path: path)   // one connection per reader
                for _ in 0..<20 {
                    _ = try p.verify()
                    if try p.vocabEntry("white") != expected { throw PackError.invalidInput("a reader saw other values") }
                }
            } catch {
                failures.lock(); errors.append("\(error)"); failures.unlock()
            }
        }
        XCTAssertEqual(errors, [])
    }

    func testPairsFromList() throws {
        var o = CompileOptions()
        o.pairs = try Vocabulary.parsePairs("# pairs\nred -> blue\nblue, red\ngreen -> white\n", file: "pairs.txt")
        let r = try compiler().compile(vocabulary: try vocab(), options: o, output: "\(dir)/p.rwkvpack")
        XCTAssertEqual(r.pairCount, 2)   // red/blue once (unordered), green/white
        let p = try EditPack(path: "\(dir)/p.rwkvpack")
        XCTAssertEqual(try p.calibration(from: "white", to: "green").1, .pair)
        XCTAssertEqual(try p.calibration(from: "red", to: "white").1, .composed)
        o.pairs = [("red", "purple")]
        XCTAssertThrowsError(try compiler().compile(vocabulary: try vocab(), options: o, output: "\(dir)/q.rwkvpack")) {
            XCTAssertTrue("\($0)".contains("purple"), "\($0)")
        }
    }

    /// The compiler's address v̄ (LAPACK's leading eigenvector of a head's Gram matrix) is the leading
    /// right singular vector the runtime's Jacobi SVD finds, up to sign; a non-finite matrix is refused.
    func testLeadingEigenvectorOfTheGramMatrixMatchesTheSVD() throws {
        var rng = SystemRandomNumberGenerator()
        for n in [64, 16, 5] {
            // D = stacked heads with one dominant direction, as a property's deltas have.
            let rows = 3 * n
            let dominant = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
            let d = (0..<(rows * n)).map { i in Float.random(in: -0.2...0.2, using: &rng) + Float(i / n % 3 + 1) * dominant[i % n] }
            var gram = [Float](repeating: 0, count: n * n)
            for r in 0..<rows { for i in 0..<n { for j in 0..<n { gram[i * n + j] += d[r * n + i] * d[r * n + j] } } }
            let v = try PackCompiler.leadingEigenvector(of: gram, n: n), reference = try HeadSVD(matrix: gram, n: n).v(0)
            XCTAssertEqual(v.reduce(0) { $0 + $1 * $1 }, 1, accuracy: 1e-5, "n = \(n): unit length")
            XCTAssertGreaterThan(abs(zip(v, reference).reduce(0) { $0 + $1.0 * $1.1 }), 1 - 1e-5, "n = \(n)")
        }
        var bad = [Float](repeating: 0, count: 4)
        bad[1] = .nan
        XCTAssertThrowsError(try PackCompiler.leadingEigenvector(of: bad, n: 2))
        XCTAssertThrowsError(try PackCompiler.leadingEigenvector(of: [1, 2, 3], n: 2))
    }

    func testSeveralTemplatesAverage() throws {
        var o = CompileOptions()
        o.extraTemplates = [o.template]   // the same template twice: the mean is the single state
        _ = try compiler().compile(vocabulary: try vocab(), options: o, output: "\(dir)/twice.rwkvpack")
        try compile("once.rwkvpack", pairs: false, batch: 8)
        let twice = try EditPack(path: "\(dir)/twice.rwkvpack"), once = try EditPack(path: "\(dir)/once.rwkvpack")
        XCTAssertEqual(twice.manifest.templates?.count, 2)
        XCTAssertNil(once.manifest.templates)
        for x in try once.values().map(\.name) {
            let a = try twice.vocabEntry(x), b = try once.vocabEntry(x)
            for i in 0..<a.count { XCTAssertGreaterThan(cosine(a.vector(i), b.vector(i)), 0.9999, x) }
        }
        o.extraTemplates = ["{entity}'s hat is {value}."]
        let r = try compiler().compile(vocabulary: try vocab(), options: o, output: "\(dir)/two.rwkvpack")
        XCTAssertEqual(r.status, .complete)
        XCTAssertEqual(try EditPack(path: "\(dir)/two.rwkvpack").manifest.compile.entity, "Alex")
        let v = try Vocabulary.parse("@template A {value}.\n@template B {value}.\nx\ny\n", name: "t")
        XCTAssertEqual(v.template, "A {value}.")
        XCTAssertEqual(v.extraTemplates, ["B {value}."])
    }

    func testApplyCommandJSONShape() throws {
        try CLI.requireBinary()
        try compile("c.rwkvpack")
        func run(_ args: [String]) throws -> (Int32, String, String) {
            let r = try CLI.run(args)
            return (r.status, r.stdout, r.stderr)
        }
        let base = ["apply", "--model", Fixtures.tinySafetensors, "--pack", "\(dir)/c.rwkvpack", "--context", "Bob's hat is red. Ann's hat is blue.",
                    "--query", "Bob's hat is", "--control-query", "Ann's hat is", "--control-answer", "blue", "--json"]
        let (status, out, err) = try run(base + ["--edit", "Bob: red -> green"])
        XCTAssertEqual(status, 0, err)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        XCTAssertEqual(obj["method"] as? String, "hyb-u")
        XCTAssertNotNil(obj["alpha"] as? Double)
        let target = try XCTUnwrap(obj["target"] as? [String: Any])
        XCTAssertEqual(target["old"] as? String, "red")
        XCTAssertEqual(target["new"] as? String, "green")
        for k in ["before", "after"] {
            let t = try XCTUnwrap(target[k] as? [String: Any])
            XCTAssertNotNil(t["p_old"] as? Double); XCTAssertNotNil(t["p_new"] as? Double); XCTAssertNotNil(t["top"] as? [Any])
        }
        let controls = try XCTUnwrap(obj["controls"] as? [[String: Any]])
        XCTAssertEqual(controls.count, 1)
        XCTAssertNotNil((controls[0]["after"] as? [String: Any])?["top1"] as? Bool)
        XCTAssertEqual((obj["pack"] as? [String: Any])?["source"] as? String, "pair")
        // A value the pack lacks: exit 1 and the nearest entries.
        let (s2, _, e2) = try run(base + ["--edit", "Bob: red -> gren"])
        XCTAssertEqual(s2, 1)
        XCTAssertTrue(e2.contains("nearest: green"), e2)
        // Another model: a typed error, not a crash.
        var other = base
        other[2] = Fixtures.golden.appendingPathComponent("golden.blinkdl.safetensors").path
        let (s3, _, e3) = try run(other + ["--edit", "Bob: red -> green", "--vocab", Fixtures.worldVocab])
        XCTAssertEqual(s3, 1)
        XCTAssertTrue(e3.contains("another model"), e3)
    }

    func testTwoProcessesReadOnePack() throws {
        try CLI.requireBinary()
        try compile("c.rwkvpack")
        let path = "\(dir)/c.rwkvpack"
        let procs = try (0..<2).map { _ -> (Process, Pipe) in
            let p = Process()
            p.executableURL = CLI.binary
            p.arguments = ["packs", "verify", path, path, path, "--model", Fixtures.tinySafetensors, "--json"]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            return (p, out)
        }
        for (p, out) in procs {
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0)
            let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
            let packs = try XCTUnwrap(obj["packs"] as? [[String: Any]])
            XCTAssertEqual(packs.count, 3)
            XCTAssertEqual(packs.first?["blobs"] as? Int, 22)
        }
    }

    // MARK: Runtime

    func testPackEditAppliesAndUndoes() throws {
        try compile("c.rwkvpack")
        let p = try EditPack(path: "\(dir)/c.rwkvpack")
        let m = try XCTUnwrap(Self.model)
        let session = EditSession(engine: CPUEngine(model: m, threads: 2), tokenizer: Self.tokenizer)
        try session.feed("Bob's hat is red. Ann's hat is blue.")
        let before = session.state
        for composed in [false, true] {
            let r = try session.edit(pack: p, entity: "Bob", from: "red", to: "green", preferComposed: composed)
            XCTAssertEqual(r.source, composed ? .composed : .pair)
            XCTAssertEqual(r.oldProbe, "Bob's hat is red.")
            XCTAssertEqual(r.newProbe, "Bob's hat is green.")
            XCTAssertEqual(r.applied.heads.count, 6)
            XCTAssertTrue(r.applied.alpha.isFinite && r.applied.alpha > 0)
            XCTAssertGreaterThan(try session.state.maxAbsDifference(before), 0)
            // Only the pack's layers changed.
            for l in 0..<6 { XCTAssertEqual(session.state.wkvLayer(l), before.wkvLayer(l)) }
            try session.undo()
            XCTAssertEqual(session.state, before)
        }
        assertPackError(try session.edit(pack: p, entity: "Bob", from: "red", to: "gren")) {
            if case .missingValue(_, "gren", let near) = $0 { return near.contains("green") }; return false
        }
        assertPackError(try session.edit(pack: p, entity: "Bob", from: "red", to: "green", options: EditOptions(layers: 2...3))) {
            if case .incompatible = $0 { return true }; return false
        }
        XCTAssertEqual(session.state, before)
    }
}
