// Fuzz target: edit packs (SQLite) — open, verify, and everything `packs inspect` and an edit read.
// Random bytes mostly exercise SQLite's own corruption checks, and every blob row carries a checksum
// over its place and bytes, so the structured form edits a valid pack through SQL instead (and can
// re-sign a row, as a tool that knows the format could) to reach the manifest, table and blob checks.
import RWKVEdit

/// The tables a pack has, with their columns (PackSchema.sql), in the order the ops name them.
let packTables: [(name: String, columns: [String])] = [
    ("meta", ["key", "value"]),
    ("vocab", ["name", "surface", "ord"]),
    ("staged", ["name", "blob", "raw_size", "checksum"]),
    ("addresses", ["id", "blob", "raw_size", "checksum"]),
    ("vocab_entries", ["name", "blob", "raw_size", "checksum"]),
    ("pair_entries", ["a", "b", "blob", "raw_size", "checksum"]),
]

/// Input byte 0 even: the rest is the whole pack file. Odd: bytes 1…3 are the little-endian length L
/// of a base pack that follows, then ops, each `table row column kind` (one byte each), a 16-bit
/// little-endian payload length and the payload. Kinds: 0 blob, 1 text, 2 integer (8 bytes LE),
/// 3 real (8 bytes), 4 null, 5 delete the row, 6 re-sign the row's blob with its place's checksum.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPack(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 1 else { return 0 }
    let path = scratchPath("rwkvpack")
    if data[0] & 1 == 0 {
        writeFile(path, UnsafeRawBufferPointer(start: data + 1, count: size - 1))
    } else {
        guard size >= 4 else { return 0 }
        let base = min(Int(data[1]) | Int(data[2]) << 8 | Int(data[3]) << 16, size - 4)
        writeFile(path, UnsafeRawBufferPointer(start: data + 4, count: base))
        applyOps(path, Array(UnsafeBufferPointer(start: data + 4 + base, count: size - 4 - base)))
    }
    expectTyped(PackError.self) { try readLikeTheCLI(path) }
    return 0
}

/// What `packs verify`, `packs inspect` and an edit by name read from a pack.
func readLikeTheCLI(_ path: String) throws {
    let pack = try EditPack(path: path)
    try pack.verify()
    _ = try pack.counts()
    _ = try pack.storedBytes()
    guard pack.status == .complete else { return }
    _ = try pack.sigmaHeat()
    _ = try pack.composedVsPairCosine(maxPairs: 8)
    let values = try pack.values()
    if values.count >= 2 {
        _ = try pack.resolve(values[1].surface)
        _ = try pack.calibration(from: values[0].name, to: values[1].name)
        _ = try pack.calibration(from: values[1].name, to: values[0].name, preferComposed: true)
    }
}

/// Applies the ops; an op SQLite refuses (a constraint, a type) is skipped: the reader's checks are
/// under test, not the setup.
func applyOps(_ path: String, _ ops: [UInt8]) {
    guard let db = try? SQLiteDB(path: path, readOnly: false) else { return }
    try? db.exec("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF")
    var i = 0
    while i + 6 <= ops.count {
        let table = packTables[Int(ops[i]) % packTables.count]
        let row = Int(ops[i + 1]), column = table.columns[Int(ops[i + 2]) % table.columns.count], kind = ops[i + 3] % 7
        let n = min(Int(ops[i + 4]) | Int(ops[i + 5]) << 8, ops.count - i - 6)
        let payload = Array(ops[(i + 6)..<(i + 6 + n)])
        i += 6 + n
        let target = "rowid = (SELECT rowid FROM \(table.name) ORDER BY rowid LIMIT 1 OFFSET \(row))"
        func eightBytes() -> UInt64 { payload.prefix(8).enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) } }
        let value: SQLValue
        switch kind {
        case 0: value = .blob(payload)
        case 1: value = .text(String(decoding: payload, as: UTF8.self))
        case 2: value = .int(Int64(bitPattern: eightBytes()))
        case 3: value = .real(Double(bitPattern: eightBytes()))
        case 4: value = .null
        case 5: _ = try? db.query("DELETE FROM \(table.name) WHERE \(target)"); continue
        default: resign(db, path: path, table: table.name, target: target); continue
        }
        _ = try? db.query("UPDATE \(table.name) SET \(column) = ? WHERE \(target)", [value])
    }
}

/// Recomputes a blob row's checksum for its place with the pack's own manifest (when it still opens).
func resign(_ db: SQLiteDB, path: String, table: String, target: String) {
    guard let manifest = try? EditPack(path: path).manifest else { return }
    let names = table == "pair_entries" ? "a, b" : table == "addresses" ? "id, id" : "name, name"
    guard let r = try? db.query("SELECT \(names), blob, raw_size FROM \(table) WHERE \(target)").first, r.count == 4,
          let blob = r[2].blob, let rawSize = r[3].int else { return }
    let row: PackRow
    switch table {
    case "addresses": row = .address
    case "pair_entries": guard let a = r[0].text, let b = r[1].text else { return }; row = .pair(a, b)
    case "vocab_entries": guard let x = r[0].text else { return }; row = .vocab(x)
    default: guard let x = r[0].text else { return }; row = .staged(x)
    }
    let sum = manifest.rowChecksum(row, rawSize: rawSize, payload: blob)
    _ = try? db.query("UPDATE \(table) SET checksum = ? WHERE \(target)", [.text(sum)])
}
