import CSQLite
import CZstd
import PackCompiler
import RWKVEdit
import Foundation
import XCTest

/// Packs are untrusted input: they travel beside a model. Each test takes a pack compiled on the tiny
/// fixture model and damages it the way the adversarial run did ("Hostile input II"), through SQLite
/// and code, then checks the reader refuses it with a typed error naming the file, the field or row,
/// before allocating by a declared size or editing with a moved row. IDs (H1…) match schemas/README.md
/// "Failure modes".
extension PackTests {
    // MARK: Helpers

    /// Rewrites the manifest's JSON with `change` (a dictionary, so any field can be set to any number).
    func mutateManifest(_ path: String, _ change: (inout [String: Any]) -> Void) throws {
        var db: OpaquePointer?
        XCTAssertEqual(sqlite3_open(path, &db), SQLITE_OK)
        defer { sqlite3_close(db) }
        var stmt: OpaquePointer?
        XCTAssertEqual(sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'manifest'", -1, &stmt, nil), SQLITE_OK)
        XCTAssertEqual(sqlite3_step(stmt), SQLITE_ROW)
        let text = String(cString: try XCTUnwrap(sqlite3_column_text(stmt, 0)))
        sqlite3_finalize(stmt)
        var obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        change(&obj)
        let json = String(decoding: try JSONSerialization.data(withJSONObject: obj), as: UTF8.self)
        XCTAssertEqual(sqlite3_prepare_v2(db, "UPDATE meta SET value = ? WHERE key = 'manifest'", -1, &stmt, nil), SQLITE_OK)
        sqlite3_bind_text(stmt, 1, json, -1, unsafeBitCast(-1, to: sqlite3_destructor_type.self))
        XCTAssertEqual(sqlite3_step(stmt), SQLITE_DONE)
        sqlite3_finalize(stmt)
    }

    /// Sets `key` in the manifest's model config and at the top level (when `top` names one) to `value`:
    /// the pack then claims a model of that shape, consistent with itself.
    func claim(_ path: String, config key: String, top: String? = nil, _ value: Int) throws {
        try mutateManifest(path) { m in
            var model = m["model"] as? [String: Any] ?? [:], identity = model["identity"] as? [String: Any] ?? [:]
            var config = identity["config"] as? [String: Any] ?? [:]
            config[key] = value
            identity["config"] = config; model["identity"] = identity; m["model"] = model
            if let top { m[top] = value }
        }
    }

    /// Stores `blob` with `rawSize` in a row and signs it the way the compiler does, so that only the
    /// check under test can refuse it (what a tool that knows the format could write).
    func storeSigned(_ path: String, _ row: PackRow, blob: [UInt8], rawSize: Int) throws {
        let checksum = try EditPack(path: path).manifest.rowChecksum(row, rawSize: rawSize, payload: blob)
        let (table, condition): (String, String)
        switch row {
        case .address: (table, condition) = ("addresses", "id = 0")
        case .vocab(let x): (table, condition) = ("vocab_entries", "name = '\(x)'")
        case .pair(let a, let b): (table, condition) = ("pair_entries", "a = '\(a)' AND b = '\(b)'")
        case .staged(let x): (table, condition) = ("staged", "name = '\(x)'")
        }
        try sql(path, "UPDATE \(table) SET blob = ?, raw_size = \(rawSize), checksum = '\(checksum)' WHERE \(condition)", blob: blob)
    }

    func isCorrupt(_ path: String, _ words: String...) -> (PackError) -> Bool { isCorrupt(path, words) }

    func isCorrupt(_ path: String, _ words: [String]) -> (PackError) -> Bool {
        { if case .corrupt(path, let why) = $0 { return words.allSatisfy { why.contains($0) } }; return false }
    }

    func isBadBlob(_ path: String, _ entry: String, _ words: String...) -> (PackError) -> Bool {
        { if case .badBlob(path, entry, let why) = $0 { return words.allSatisfy { why.contains($0) } }; return false }
    }

    /// Peak resident memory of this process so far, in MB.
    static func peakMB() -> Double {
        var u = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
        return Double(u.ru_maxrss) / 1024
    }

    func copyPack(_ from: String, _ to: String) throws -> String {
        let out = "\(dir)/\(to)"
        try? FileManager.default.removeItem(atPath: out)
        try FileManager.default.copyItem(atPath: "\(dir)/\(from)", toPath: out)
        return out
    }

    // MARK: H1 sizes and counts

    /// H1: every count and size a manifest declares is bounded against its model config and
    /// `PackLimits` on open, before `heads` or any blob is sized by it: 2³¹ heads (34 GB of head list),
    /// 2⁶³−1 heads (an overflow in finalize), 2⁴⁰ layers, and the other fields.
    func testH1ManifestSizesAreBoundedOnOpen() throws {
        try compile("c.rwkvpack", pairs: false)
        let cases: [(String, (String) throws -> Void, [String])] = [
            ("n_head 2^31", { try self.claim($0, config: "n_head", top: "n_head", 1 << 31) }, ["config.n_head is 2147483648", "1…1024"]),
            ("n_head 2^63-1", { try self.claim($0, config: "n_head", top: "n_head", Int.max) }, ["config.n_head is \(Int.max)"]),
            ("n_layer 2^40", { p in
                try self.claim(p, config: "n_layer", 1 << 40)
                try self.mutateManifest(p) { $0["layers"] = [0, (1 << 40) - 1] }
            }, ["config.n_layer is 1099511627776"]),
            ("head_size", { try self.claim($0, config: "head_size", top: "head_size", 1 << 20) }, ["config.head_size"]),
            ("n_embd", { try self.claim($0, config: "n_embd", 65) }, ["n_embd is 65"]),
            ("vocab_size", { try self.claim($0, config: "vocab_size", -1) }, ["config.vocab_size is -1"]),
            ("layers past the model", { p in try self.mutateManifest(p) { $0["layers"] = [6, 12] } }, ["manifest field layers is [6, 12]"]),
            ("layers reversed", { p in try self.mutateManifest(p) { $0["layers"] = [11, 6] } }, ["manifest field layers"]),
            ("layers of three", { p in try self.mutateManifest(p) { $0["layers"] = [6, 7, 11] } }, ["3 numbers"]),
            ("n_head only", { p in try self.mutateManifest(p) { $0["n_head"] = 1 << 31 } }, ["manifest field n_head is 2147483648"]),
            ("samples_per_tensor", { p in try self.mutateManifest(p) { m in
                var model = m["model"] as! [String: Any], id = model["identity"] as! [String: Any]
                id["samples_per_tensor"] = 1 << 40; model["identity"] = id; m["model"] = model
            } }, ["samples_per_tensor is 1099511627776"]),
            ("values.count", { p in try self.mutateManifest(p) { m in
                var v = m["values"] as! [String: Any]; v["count"] = 1 << 40; m["values"] = v
            } }, ["values.count is 1099511627776"]),
        ]
        for (name, damage, words) in cases {
            let path = try copyPack("c.rwkvpack", "h1.rwkvpack")
            try damage(path)
            let peak = Self.peakMB(), t0 = Date()
            assertPackError(try EditPack(path: path), isCorrupt(path, words))
            let ms = Date().timeIntervalSince(t0) * 1000
            XCTAssertLessThan(ms, 200, name)
            XCTAssertLessThan(Self.peakMB() - peak, 64, name)
        }
        // A manifest too large to be one is not read.
        let big = try copyPack("c.rwkvpack", "big.rwkvpack")
        try mutateManifest(big) { $0["property"] = String(repeating: "x", count: PackLimits.manifestBytes) }
        assertPackError(try EditPack(path: big), isCorrupt(big, "meta 'manifest' is", "above the \(PackLimits.manifestBytes)"))
        // The CLI: a typed error and exit 1, not an abort allocating 34 GB.
        try CLI.requireBinary()
        let path = try copyPack("c.rwkvpack", "cli.rwkvpack")
        try claim(path, config: "n_head", top: "n_head", 1 << 31)
        for args in [["packs", "verify", path], ["packs", "inspect", path, "--json"]] {
            let r = try CLI.run(args)
            XCTAssertEqual(r.status, 1, args.joined(separator: " "))
            XCTAssertEqual(CLI.errorMessage(r.stderr), "pack \(path) is damaged: the manifest's model identity is damaged: config.n_head is 2147483648, outside 1…1024; recompile it or copy it again")
        }
    }

    /// H1: `packs merge` opens each shard through the same bounds, so a staged shard claiming
    /// 2⁶³−1 heads is refused instead of overflowing in finalize.
    func testH1MergeRefusesAShardWithHugeHeads() throws {
        try compile("s1.rwkvpack", shard: (1, 2))
        try compile("s2.rwkvpack", shard: (2, 2))
        let s2 = "\(dir)/s2.rwkvpack"
        try claim(s2, config: "n_head", top: "n_head", Int.max)
        assertPackError(try PackCompiler.merge(shards: ["\(dir)/s1.rwkvpack", s2], output: "\(dir)/m.rwkvpack"),
                        isCorrupt(s2, "config.n_head is \(Int.max)"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/m.rwkvpack"))
    }

    /// A vector set whose values do not fill count × dim is a typed error when encoded, not a trap.
    func testMismatchedVectorSetIsATypedErrorWhenEncoded() {
        assertPackError(try BlobCodec.encode(VectorSet(count: 3, dim: 4, values: [Float](repeating: 1, count: 11)), dtype: .f16)) {
            if case .invalidInput(let r) = $0 { return r.contains("3 vectors of 4 holds 11 values") }
            return false
        }
    }

    // MARK: H2 non-finite numbers

    /// H2: a NaN or infinity in an entry (f16 vector, int8 scale, f32 σ), stored with a valid
    /// checksum, is refused when the blob is read: by `verify`, by `inspect`, and by an edit before it
    /// changes the state.
    func testH2NonFiniteEntriesAreRefused() throws {
        try compile("c.rwkvpack")
        let m = try EditPack(path: "\(dir)/c.rwkvpack").manifest
        let h = m.headCount, n = m.headSize
        func entry(_ dtype: StorageDType, _ bad: Float, at i: Int, scalars: Int = 0, count: Int? = nil) throws -> (payload: [UInt8], rawSize: Int) {
            var v = VectorSet(count: count ?? h, dim: n, values: (0..<((count ?? h) * n)).map { Float($0 % 7) * 0.01 }, scalars: [Float](repeating: 0.5, count: scalars))
            if scalars > 0 { v.scalars[i] = bad } else { v.values[i] = bad }
            return try BlobCodec.encode(v, dtype: dtype)
        }
        // f16: NaN in a vector; f16: infinity; the σ of a pair.
        let cases: [(PackRow, (payload: [UInt8], rawSize: Int), String)] = [
            (.vocab("blue"), try entry(.f16, .nan, at: 3 * n + 5), "vector 3 element 5 is nan"),
            (.vocab("green"), try entry(.f16, .infinity, at: 0), "vector 0 element 0 is inf"),
            (.pair("blue", "red"), try entry(.f16, .nan, at: 2, scalars: h, count: 2 * h), "scalar 2 is nan"),
        ]
        for (row, blob, words) in cases {
            let path = try copyPack("c.rwkvpack", "h2.rwkvpack")
            try storeSigned(path, row, blob: blob.payload, rawSize: blob.rawSize)
            let p = try EditPack(path: path)
            assertPackError(try p.verify(), isBadBlob(path, row.label, words, "not a finite number"))
            let session = EditSession(engine: CPUEngine(model: try XCTUnwrap(Self.model), threads: 2), tokenizer: Self.tokenizer)
            try session.feed("Bob's hat is red.")
            let before = session.state
            if case .pair = row {
                assertPackError(try session.edit(pack: p, entity: "Bob", from: "red", to: "blue"), isBadBlob(path, row.label, words))
            } else {
                assertPackError(try session.edit(pack: p, entity: "Bob", from: "red", to: row.label, preferComposed: true), isBadBlob(path, row.label, words))
            }
            XCTAssertEqual(session.state, before, "no edit before the refusal")
        }
        // int8: a NaN scale (the int8 values are finite; the scale multiplies them).
        var o = CompileOptions()
        o.dtype = .int8
        _ = try compiler().compile(vocabulary: try vocab(), options: o, output: "\(dir)/i8.rwkvpack")
        var raw = try BlobCodec.encode(VectorSet(count: h, dim: n, values: [Float](repeating: 0.25, count: h * n)), dtype: .int8)
        var bytes = try BlobCodec.decompress(raw.payload, rawSize: raw.rawSize) { PackError.invalidInput($0) }
        withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { bytes.replaceSubrange((BlobCodec.headerSize + 4)..<(BlobCodec.headerSize + 8), with: $0) }
        raw = (try BlobCodec.compress(bytes, level: 3), bytes.count)
        let i8 = "\(dir)/i8.rwkvpack"
        try storeSigned(i8, .vocab("white"), blob: raw.payload, rawSize: raw.rawSize)
        assertPackError(try EditPack(path: i8).vocabEntry("white"), isBadBlob(i8, "white", "vector 1's scale is nan"))
        // The CLI: inspect and apply exit 1 with the entry named (they trapped or printed -nan before).
        try CLI.requireBinary()
        let path = try copyPack("c.rwkvpack", "cli.rwkvpack")
        try storeSigned(path, .vocab("blue"), blob: cases[0].1.payload, rawSize: cases[0].1.rawSize)
        let expected = "pack \(path): entry 'blue' is corrupt (vector 3 element 5 is nan, not a finite number); run `rwkv-edit packs verify` and recompile the pack"
        for args in [["packs", "inspect", path], ["packs", "inspect", path, "--json"], ["packs", "verify", path],
                     ["apply", "--model", Fixtures.tinySafetensors, "--pack", path, "--context", "Bob's hat is red.",
                      "--query", "Bob's hat is", "--edit", "Bob: red -> blue", "--composed"]] {
            let r = try CLI.run(args)
            XCTAssertEqual(r.status, 1, args.joined(separator: " "))
            XCTAssertEqual(CLI.errorMessage(r.stderr), expected, args.joined(separator: " "))
        }
    }

    // MARK: H3 rows bound to their place

    /// H3: an entry moved into another value's row (valid checksum for its old place), two rows
    /// swapped, or a pair row reversed fails its checksum, naming the row; an edit using it changes
    /// nothing. (The report: Tokyo's entry in Chicago's row made "Bob: Austin -> Chicago" answer Tokyo.)
    func testH3MovedSwappedAndReversedRowsFail() throws {
        try compile("c.rwkvpack")
        let src = "\(dir)/c.rwkvpack"
        let mismatch = "checksum mismatch"
        // Moved: blue's entry, with its checksum, into green's row.
        let moved = try copyPack("c.rwkvpack", "moved.rwkvpack")
        try sql(moved, "UPDATE vocab_entries SET (blob, raw_size, checksum) = (SELECT blob, raw_size, checksum FROM vocab_entries WHERE name = 'blue') WHERE name = 'green'")
        let p = try EditPack(path: moved)
        XCTAssertNoThrow(try p.vocabEntry("blue"))
        assertPackError(try p.vocabEntry("green"), isBadBlob(moved, "green", mismatch))
        assertPackError(try p.verify(), isBadBlob(moved, "green", mismatch))
        let session = EditSession(engine: CPUEngine(model: try XCTUnwrap(Self.model), threads: 2), tokenizer: Self.tokenizer)
        try session.feed("Bob's hat is red. Ann's hat is blue.")
        let before = session.state
        assertPackError(try session.edit(pack: p, entity: "Bob", from: "red", to: "green", preferComposed: true), isBadBlob(moved, "green", mismatch))
        XCTAssertEqual(session.state, before)
        // The same through the CLI: verify --model fails (it passed before).
        try CLI.requireBinary()
        let r = try CLI.run(["packs", "verify", moved, "--model", Fixtures.tinySafetensors])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("entry 'green' is corrupt (checksum mismatch"), r.stderr)
        // Swapped: red's and green's names exchanged.
        let swapped = try copyPack("c.rwkvpack", "swapped.rwkvpack")
        for statement in ["UPDATE vocab_entries SET name = 'swap' WHERE name = 'red'", "UPDATE vocab_entries SET name = 'red' WHERE name = 'green'",
                          "UPDATE vocab_entries SET name = 'green' WHERE name = 'swap'"] { try sql(swapped, statement) }
        assertPackError(try EditPack(path: swapped).vocabEntry("red"), isBadBlob(swapped, "red", mismatch))
        assertPackError(try EditPack(path: swapped).vocabEntry("green"), isBadBlob(swapped, "green", mismatch))
        // A pair row between other values (blue→red's blob in the green→white row).
        let pairMoved = try copyPack("c.rwkvpack", "pairmoved.rwkvpack")
        try sql(pairMoved, "UPDATE pair_entries SET (blob, raw_size, checksum) = (SELECT blob, raw_size, checksum FROM pair_entries WHERE a = 'blue' AND b = 'red') WHERE a = 'green' AND b = 'white'")
        assertPackError(try EditPack(path: pairMoved).pairEntry("white", "green"), isBadBlob(pairMoved, "green -> white", mismatch))
        // Reversed: blue→red stored as red→blue (so a lookup of blue→red would have read it un-negated).
        let reversed = try copyPack("c.rwkvpack", "reversed.rwkvpack")
        try sql(reversed, "UPDATE pair_entries SET a = b, b = a WHERE a = 'blue' AND b = 'red'")
        let rp = try EditPack(path: reversed)
        XCTAssertNil(try rp.pairEntry("blue", "red"))
        assertPackError(try rp.verify(), isBadBlob(reversed, "red -> blue", "reversed"))
        // Reversed and re-signed for its new place: verify still refuses the order.
        let blob = try blobOf(reversed, "SELECT blob FROM pair_entries WHERE a = 'red' AND b = 'blue'")
        let rawSize = try EditPack(path: src).manifest.shape(of: .pair("blue", "red")).rawSize
        try storeSigned(reversed, .pair("red", "blue"), blob: blob, rawSize: rawSize)
        assertPackError(try EditPack(path: reversed).verify(), isBadBlob(reversed, "red -> blue", "reversed"))
        // An entry of a pack with other layers (same value, same shape, its own valid checksum there).
        var o = CompileOptions()
        o.layers = 0...5
        let low = "\(dir)/low.rwkvpack"
        _ = try compiler().compile(vocabulary: try vocab(), options: o, output: low)
        let lowManifest = try EditPack(path: low).manifest
        let lowBlob = try blobOf(low, "SELECT blob FROM vocab_entries WHERE name = 'red'")
        let lowRaw = lowManifest.shape(of: .vocab("red")).rawSize
        let lowSum = lowManifest.rowChecksum(.vocab("red"), rawSize: lowRaw, payload: lowBlob)
        XCTAssertNoThrow(try EditPack(path: low).vocabEntry("red"))
        let foreign = try copyPack("c.rwkvpack", "foreign.rwkvpack")
        try sql(foreign, "UPDATE vocab_entries SET blob = ?, raw_size = \(lowRaw), checksum = '\(lowSum)' WHERE name = 'red'", blob: lowBlob)
        assertPackError(try EditPack(path: foreign).vocabEntry("red"), isBadBlob(foreign, "red", mismatch))
    }

    /// H4: the vocabulary and pair tables agree with each other and the manifest on open: pairs name
    /// two different values of the vocabulary, entries name values, surface texts and ordinals are
    /// the ones compiled (the manifest's value-list digest), ordinals are dense, no row was deleted.
    func testH4TablesAreConsistentOnOpen() throws {
        try compile("c.rwkvpack")
        let blob = "(SELECT blob FROM pair_entries WHERE a = 'blue' AND b = 'red')"
        let cases: [(String, String, [String])] = [
            ("a = b", "INSERT INTO pair_entries (a, b, blob, raw_size, checksum) SELECT 'red', 'red', blob, raw_size, checksum FROM pair_entries WHERE a = 'blue' AND b = 'red'",
             ["pair_entries has a row 'red' -> 'red'", "two different values"]),
            ("pair names a missing value", "UPDATE pair_entries SET b = 'purple' WHERE a = 'blue' AND b = 'red'", ["'blue' -> 'purple'"]),
            ("pair name not text", "INSERT INTO pair_entries (a, b, blob, raw_size, checksum) VALUES (X'00', 'red', \(blob), 1, 'x')", ["X'00' -> 'red'"]),
            ("entry for no value", "UPDATE vocab_entries SET name = 'purple' WHERE name = 'red'", ["vocab_entries has a row 'purple'"]),
            ("value without entry", "DELETE FROM vocab_entries WHERE name = 'red'", ["value 'red' has no vocabulary entry"]),
            ("surface edited", "UPDATE vocab SET surface = 'coal black' WHERE name = 'black'", ["does not match the manifest's value list"]),
            ("ordinals swapped", "UPDATE vocab SET ord = 5 - ord WHERE name IN ('red', 'white')", ["does not match the manifest's value list"]),
            ("ordinal gap", "UPDATE vocab SET ord = 9 WHERE name = 'white'", ["ordinals are not 0…5", "'white' has ord 9"]),
            ("row deleted", "DELETE FROM vocab WHERE name = 'white'", ["the vocab table has 5 values, the manifest lists 6"]),
            ("row and entry deleted", "DELETE FROM vocab WHERE name = 'white'; DELETE FROM vocab_entries WHERE name = 'white'", ["has 5 values"]),
            ("name as blob", "UPDATE vocab SET name = CAST(name AS BLOB) WHERE name = 'red'", ["is not a name and surface text"]),
            ("huge surface", "UPDATE vocab SET surface = zeroblob(2000) || '' WHERE name = 'red'", ["is not a name and surface text of 1…1024 bytes"]),
            ("address deleted", "DELETE FROM addresses", ["the address row is missing"]),
        ]
        for (_, statement, words) in cases {
            let path = try copyPack("c.rwkvpack", "h4.rwkvpack")
            for part in statement.components(separatedBy: "; ") { try sql(path, part) }
            assertPackError(try EditPack(path: path), isCorrupt(path, words))
        }
        // The CLI names the row (verify passed these before).
        try CLI.requireBinary()
        let path = try copyPack("c.rwkvpack", "cli.rwkvpack")
        try sql(path, "UPDATE pair_entries SET b = 'purple' WHERE a = 'blue' AND b = 'red'")
        let r = try CLI.run(["packs", "verify", path])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderr, "error: pack \(path) is damaged: pair_entries has a row 'blue' -> 'purple' that does not name two different values of the vocabulary; recompile it or copy it again\n")
    }

    /// A zstd frame that decompresses to `size` zero bytes, built from RLE blocks (RFC 8878 §3.1.1):
    /// a few kilobytes whose header declares `size`, the way a hostile blob would claim a gigabyte.
    static func zeroFrame(declaring size: Int) -> [UInt8] {
        var f: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD]   // magic
        f.append(0xC0)                              // descriptor: 8-byte content size, windowed, no checksum
        f.append(10 << 3)                           // window descriptor: 2^(10+10) = 1 MiB
        withUnsafeBytes(of: UInt64(size).littleEndian) { f += $0 }
        let block = 1 << 17                          // the largest block, 128 KiB
        var left = size
        while left > 0 {
            let n = min(left, block)
            left -= n
            let header = UInt32(n) << 3 | 1 << 1 | (left == 0 ? 1 : 0)   // size, type RLE, last flag
            f += [UInt8(header & 0xFF), UInt8(header >> 8 & 0xFF), UInt8(header >> 16 & 0xFF), 0]
        }
        return f
    }

    /// H5: a blob is sized from the manifest before it is decompressed: a raw_size or a zstd frame
    /// declaring 2³⁰ bytes, or more stored bytes than its shape can compress to, is refused without
    /// allocating (it was decompressed, 1 GB, before).
    func testH5BlobSizesAreCheckedBeforeDecompression() throws {
        try compile("c.rwkvpack")
        let shape = try EditPack(path: "\(dir)/c.rwkvpack").manifest.shape(of: .vocab("blue"))
        let gigabyte = Self.zeroFrame(declaring: 1 << 30)
        // The frame is well formed and declares a gigabyte.
        XCTAssertEqual(gigabyte.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }, 1 << 30)
        XCTAssertEqual(gigabyte.withUnsafeBytes { ZSTD_findFrameCompressedSize($0.baseAddress, $0.count) }, gigabyte.count)
        let small = Self.zeroFrame(declaring: 4096)
        let random = (0..<(BlobCodec.compressedBound(shape.rawSize) + 1)).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) }
        // Sizes the reader is told, each refused by the check that reads it (all signed, so only the
        // size checks can refuse them): the row's raw_size, the frame header's declared size, the
        // stored length (the whole gigabyte frame is 32 KB of RLE blocks, more than 6×64 f16 values
        // can compress to).
        let cases: [(String, [UInt8], Int, String)] = [
            ("raw_size 2^30", small, 1 << 30, "raw_size is 1073741824 bytes; its shape (6×64 f16, 0 scalars) takes \(shape.rawSize)"),
            // Found by the `pack` fuzz target: a negative raw_size trapped while its checksum was computed.
            ("raw_size -1", small, -1, "raw_size is -1 bytes"),
            ("frame header declares 2^30", Array(gigabyte.prefix(64)), shape.rawSize, "its zstd frame declares 1073741824 bytes, the blob is \(shape.rawSize)"),
            ("frame of 2^30 zeros", gigabyte, 1 << 30, "holds \(gigabyte.count) stored bytes, above the \(BlobCodec.compressedBound(shape.rawSize))"),
            ("frame declares 4096", small, shape.rawSize, "its zstd frame declares 4096 bytes"),
            ("not zstd", Array("not a zstd frame".utf8), shape.rawSize, "declares no valid zstd frame"),
        ]
        for (name, blob, rawSize, words) in cases {
            let path = try copyPack("c.rwkvpack", "h5.rwkvpack")
            try storeSigned(path, .vocab("blue"), blob: blob, rawSize: rawSize)
            let peak = Self.peakMB(), t0 = Date()
            assertPackError(try EditPack(path: path).vocabEntry("blue"), isBadBlob(path, "blue", words))
            let ms = Date().timeIntervalSince(t0) * 1000, grew = Self.peakMB() - peak
            print("H5 \(name): refused in \(String(format: "%.2f", ms)) ms, peak memory +\(String(format: "%.1f", grew)) MB")
            XCTAssertLessThan(grew, 64, name)
        }
        // More stored bytes than any compression of the shape: not even loaded.
        let path = try copyPack("c.rwkvpack", "h5.rwkvpack")
        try storeSigned(path, .vocab("blue"), blob: random, rawSize: shape.rawSize)
        assertPackError(try EditPack(path: path).vocabEntry("blue"),
                        isBadBlob(path, "blue", "holds \(random.count) stored bytes, above the \(BlobCodec.compressedBound(shape.rawSize))"))
    }

    /// H6: a compile holds `<output>.lock`; a second compile or merge of the same output is refused
    /// with the holder's pid instead of raw SQLite errors, and the lock dies with its process.
    func testH6SecondCompileOfOneOutputIsRefused() throws {
        let out = "\(dir)/c.rwkvpack"
        do {
            let lock = try CompileLock(output: out)
            let me = Int(getpid())
            assertPackError(try compile("c.rwkvpack")) { $0 == .locked(file: out, pid: me) }
            assertPackError(try PackCompiler.merge(shards: [out], output: out)) { $0 == .locked(file: out, pid: me) }
            XCTAssertEqual(PackError.locked(file: out, pid: me).description,
                           "another compile (pid \(me)) is writing \(out); wait for it to finish, or stop it and run again (the new compile resumes its work)")
            withExtendedLifetime(lock) {}
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + ".lock"), "the lock file goes with its lock")
        XCTAssertEqual(try compile("c.rwkvpack").status, .complete)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + ".lock"))
        // Two processes: the second is told the first's pid; killing the first frees the lock.
        try CLI.requireBinary()
        let vfile = "\(dir)/many.txt"
        try (0..<300).map { "value\($0)" }.joined(separator: "\n").write(toFile: vfile, atomically: true, encoding: .utf8)
        let many = "\(dir)/many.rwkvpack"
        let args = ["compile", "--model", Fixtures.tinySafetensors, "--values", vfile, "--batch", "1", "--threads", "1", "-o", many]
        let first = Process()
        first.executableURL = CLI.binary
        first.arguments = args
        first.standardOutput = FileHandle.nullDevice
        first.standardError = FileHandle.nullDevice
        try first.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, first.isRunning, (try? String(contentsOfFile: many + ".lock", encoding: .utf8)) != "\(first.processIdentifier)\n" { usleep(2000) }
        guard first.isRunning else { throw XCTSkip("the first compile finished before the second started") }
        let second = try CLI.run(args)
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        XCTAssertEqual(second.status, 1)
        XCTAssertTrue(second.stderr.hasSuffix("\nerror: another compile (pid \(first.processIdentifier)) is writing \(many); wait for it to finish, or stop it and run again (the new compile resumes its work)\n"), second.stderr)
        XCTAssertNoThrow(try CompileLock(output: many), "a killed holder's lock is released by the kernel")
    }

    /// H7: packs of schema 2 (checksums not bound to rows) are refused with a message to rebuild them.
    func testH7Schema2PackIsRefusedWithRebuild() throws {
        try compile("c.rwkvpack", pairs: false)
        let path = "\(dir)/c.rwkvpack"
        try sql(path, "UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        assertPackError(try EditPack(path: path)) {
            if case .incompatible(path, let why) = $0 {
                return why.contains("schema version 2, whose checksums do not bind a row to its value") && why.contains("rwkv-edit compile --model MODEL --vocab VALUES -o \(path) --force")
            }
            return false
        }
        // A work file left by a schema-2 build: refused, and started over with --force (`overwrite`).
        let out = "\(dir)/w.rwkvpack"
        XCTAssertThrowsError(try compile("w.rwkvpack", pairs: false, stopAfter: 1)) { XCTAssertTrue($0 is CompileInterrupted) }
        try sql(out + ".partial", "UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        assertPackError(try compile("w.rwkvpack", pairs: false)) {
            if case .incompatible(let f, let why) = $0 { return f == out + ".partial" && why.contains("schema version 2") }; return false
        }
        var o = CompileOptions()
        o.overwrite = true
        let r = try compiler().compile(vocabulary: try vocab(), options: o, output: out)
        XCTAssertEqual(r.status, .complete)
        XCTAssertEqual(r.valuesCompiled, 6, "nothing resumed from the old work file")
        XCTAssertEqual(try EditPack(path: out).verify(), 7)
    }
}
