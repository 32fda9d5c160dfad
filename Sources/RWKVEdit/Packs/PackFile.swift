import Foundation

/// What a pack records about itself (stored as JSON in meta.manifest; schemas/manifest.schema.json).
public struct PackManifest: Codable, Equatable, Sendable {
    /// The model a pack was compiled for: its identity (config, vocabulary digest, weight signature;
    /// `ModelIdentity`) and, for people, the file it was compiled from.
    public struct ModelInfo: Codable, Equatable, Sendable {
        /// The model file's name at compile time (informative only: any file with the same identity matches).
        public var file: String
        public var identity: ModelIdentity

        public var nLayer: Int { identity.config.nLayer }
        public var nEmbd: Int { identity.config.nEmbd }
        public var nHead: Int { identity.config.nHead }
        public var headSize: Int { identity.config.headSize }
        public var vocabSize: Int { identity.config.vocabSize }

        package init(file: String, identity: ModelIdentity) {
            self.file = file; self.identity = identity
        }
    }
    public struct CompileSettings: Codable, Equatable, Sendable {
        public var batchSize: Int
        public var pairs: String
        public var engine: String
        public var entity: String?
        public var shard: String?
        public var tool: String

        package init(batchSize: Int, pairs: String, engine: String, entity: String? = nil, shard: String? = nil, tool: String) {
            self.batchSize = batchSize; self.pairs = pairs; self.engine = engine; self.entity = entity; self.shard = shard; self.tool = tool
        }
    }
    public var schemaVersion: Int
    public var name: String
    public var property: String?
    /// The calibration template; {value} is replaced by each value's surface text.
    public var template: String
    /// All calibration templates when there are several (S(X) is the mean over them); nil for one.
    public var templates: [String]?
    /// The sentence form the runtime probes with ("{entity} lives in {value}."), if the vocabulary gave one.
    public var probeTemplate: String?
    /// The question asking for the value, with {entity} (optional; added without a schema bump).
    public var queryTemplate: String?
    public var model: ModelInfo
    /// The vocabulary's size and digest, which the `vocab` table must match (schema 3).
    public var values: ValueList
    /// Inclusive layer range [first, last]; every head of these layers is in the pack, layer-major.
    public var layers: [Int]
    public var nHead: Int
    public var headSize: Int
    public var dtype: StorageDType
    public var compile: CompileSettings
    public var createdAt: String

    public var layerRange: ClosedRange<Int> { layers[0]...layers[1] }
    /// Heads per blob: every head of the pack's layers (bounded by `checkBounds` when a pack is opened).
    public var headCount: Int { (layers[1] - layers[0] + 1) * nHead }
    public var heads: [HeadIndex] { layerRange.flatMap { l in (0..<nHead).map { HeadIndex(layer: l, head: $0) } } }

    package init(schemaVersion: Int, name: String, property: String? = nil, template: String, templates: [String]? = nil, probeTemplate: String? = nil, queryTemplate: String? = nil, model: ModelInfo, values: ValueList, layers: [Int], nHead: Int, headSize: Int, dtype: StorageDType, compile: CompileSettings, createdAt: String) {
        self.schemaVersion = schemaVersion; self.name = name; self.property = property; self.template = template; self.templates = templates; self.probeTemplate = probeTemplate; self.queryTemplate = queryTemplate; self.model = model; self.values = values; self.layers = layers; self.nHead = nHead; self.headSize = headSize; self.dtype = dtype; self.compile = compile; self.createdAt = createdAt
    }

    /// Why this manifest cannot describe a pack for the model it names, or nil. Checks the model
    /// identity (its config within `PackLimits`, its samples), then every number the reader sizes
    /// anything by — layers, heads, head size, value count, the largest blob — against that config
    /// and the ceilings, before any of them is used to allocate or loop.
    func boundsViolation() -> String? {
        if let d = model.identity.damage() { return "the manifest's model identity is damaged: \(d)" }
        let c = model.identity.config
        guard layers.count == 2 else { return "manifest field layers has \(layers.count) numbers instead of [first, last]" }
        guard layers[0] >= 0, layers[0] <= layers[1], layers[1] < c.nLayer else {
            return "manifest field layers is [\(layers[0]), \(layers[1])], not a range inside the model's 0…\(c.nLayer - 1)"
        }
        guard nHead == c.nHead else { return "manifest field n_head is \(nHead), but its model has \(c.nHead) heads per layer" }
        guard headSize == c.headSize else { return "manifest field head_size is \(headSize), but its model's heads are \(c.headSize) wide" }
        guard (2...PackLimits.values).contains(values.count) else {
            return "manifest field values.count is \(values.count), outside 2…\(PackLimits.values)"
        }
        guard values.sha256.count == 64, values.sha256.allSatisfy(\.isHexDigit) else { return "manifest field values.sha256 is not 64 hex digits" }
        // headCount ≤ 1024 layers × 1024 heads and head_size ≤ 1024 here, so these products fit in Int.
        for (kind, row) in [("staged", PackRow.staged("")), ("pair", .pair("", ""))] where shape(of: row).rawSize > PackLimits.blobBytes {
            return "its \(kind) blobs would be \(shape(of: row).rawSize) bytes (\(headCount) heads of \(headSize)), above the \(PackLimits.blobBytes) this build reads"
        }
        return nil
    }

    /// The settings that must agree for two files to hold parts of one pack (resume, merge).
    package func sameCompile(as o: PackManifest) -> Bool {
        model.identity.difference(from: o.model.identity) == nil && template == o.template && (templates ?? [template]) == (o.templates ?? [o.template]) && layers == o.layers
            && dtype == o.dtype && compile.pairs == o.compile.pairs && compile.entity == o.compile.entity
    }

    static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return e
    }

    static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }

    public func json() -> String {
        (try? String(decoding: Self.encoder().encode(self), as: UTF8.self)) ?? "{}"
    }
}

public enum PackStatus: String, Sendable { case staged, complete }

/// Schema constants shared by the reader and the writer.
public enum PackSchema {
    /// The schema version this build writes and the newest it reads (migration policy: schemas/README.md).
    /// Version 2 replaced the model fingerprint (a hash of every weight) by `ModelIdentity`; version 3
    /// binds each row's checksum to the row's place and adds the value list's digest to the manifest.
    public static let version = 3
    /// The oldest version this build reads: older packs are refused with a message to rebuild them
    /// (`rebuildReason`).
    public static let oldestReadable = 3

    /// Why a pack of an older schema must be rebuilt, for the error that refuses it.
    static func rebuildReason(_ version: Int) -> String {
        version < 2
            ? "it has schema version \(version), which predates model identity v2 (packs now name their model by config, vocabulary and sampled weights instead of a hash of every weight)"
            : "it has schema version \(version), whose checksums do not bind a row to its value (an entry moved to another value's row would pass)"
    }
    package static let sql: String = """
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS vocab (name TEXT PRIMARY KEY, surface TEXT NOT NULL, ord INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS staged (name TEXT PRIMARY KEY, blob BLOB NOT NULL, raw_size INTEGER NOT NULL, checksum TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS addresses (id INTEGER PRIMARY KEY CHECK (id = 0), blob BLOB NOT NULL, raw_size INTEGER NOT NULL, checksum TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS vocab_entries (name TEXT PRIMARY KEY, blob BLOB NOT NULL, raw_size INTEGER NOT NULL, checksum TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS pair_entries (a TEXT NOT NULL, b TEXT NOT NULL, blob BLOB NOT NULL, raw_size INTEGER NOT NULL, checksum TEXT NOT NULL, PRIMARY KEY (a, b));
    """
    static let tables = ["meta", "vocab", "staged", "addresses", "vocab_entries", "pair_entries"]
}

/// Checks the SQLite header against the file size before SQLite sees the file, so that a truncated
/// pack is reported as such (SQLite itself only notices when it reaches a missing page).
func checkSQLiteHeader(_ path: String) throws {
    guard let h = FileHandle(forReadingAtPath: path) else {
        if !FileManager.default.fileExists(atPath: path) { throw PackError.unreadable(file: path, reason: "no such file") }
        throw PackError.unreadable(file: path, reason: "permission denied or not a file")
    }
    defer { try? h.close() }
    let size = (try? h.seekToEnd()).map(Int.init) ?? 0
    try? h.seek(toOffset: 0)
    let head = [UInt8]((try? h.read(upToCount: 100)) ?? Data())
    guard head.count == 100 else { throw PackError.corrupt(file: path, reason: "the file is \(size) bytes, shorter than an SQLite header (truncated?)") }
    guard head.starts(with: Array("SQLite format 3\0".utf8)) else { throw PackError.corrupt(file: path, reason: "not an SQLite file, so not a pack") }
    func be32(_ o: Int) -> Int { head[o..<(o + 4)].reduce(0) { $0 << 8 | Int($1) } }
    let rawPage = Int(head[16]) << 8 | Int(head[17])
    let pageSize = rawPage == 1 ? 65536 : rawPage
    let pages = be32(28)
    // The in-header page count is valid when the change counter (24) equals version-valid-for (92).
    if be32(24) == be32(92), pages > 0, pageSize >= 512 {
        guard size >= pages * pageSize else {
            throw PackError.corrupt(file: path, reason: "truncated: \(size) bytes on disk, the header says \(pages * pageSize)")
        }
    }
}

/// A pack opened for reading. Each instance owns one SQLite connection (open one per thread).
public final class EditPack {
    public let path: String
    public let manifest: PackManifest
    public let status: PackStatus
    package let db: SQLiteDB
    /// The vocabulary, checked when the pack is opened.
    private let vocabCache: [(name: String, surface: String)]
    private var addressCache: VectorSet?

    public var name: String { manifest.name }
    public var heads: [HeadIndex] { manifest.heads }

    public convenience init(path: String) throws { try self.init(path: path, readOnly: true) }

    package init(path: String, readOnly: Bool) throws {
        self.path = path
        try checkSQLiteHeader(path)
        db = try SQLiteDB(path: path, readOnly: readOnly)
        func corrupt(_ why: String) -> PackError { .corrupt(file: path, reason: why) }
        let tables = Set(try db.query("SELECT name FROM sqlite_master WHERE type = 'table'").compactMap { $0.first?.text })
        guard tables.contains("meta") else { throw corrupt("no meta table: not an rwkv-edit pack") }
        // Sizes first: the manifest is read only when it is of a size a manifest can have.
        var meta: [String: String] = [:]
        for r in try db.query("SELECT key, length(CAST(value AS BLOB)), CASE WHEN length(CAST(value AS BLOB)) <= ? THEN value END FROM meta",
                              [.int(Int64(PackLimits.manifestBytes))]) {
            guard r.count == 3, let k = r[0].text, meta[k] == nil else { continue }
            guard let v = r[2].text else {
                throw corrupt("meta '\(k)' is \(r[1].int ?? 0) bytes, above the \(PackLimits.manifestBytes) this build reads, or not text")
            }
            meta[k] = v
        }
        guard let vtext = meta["schema_version"], let version = Int(vtext) else { throw corrupt("meta has no schema_version") }
        guard version <= PackSchema.version else { throw PackError.newerSchema(file: path, found: version, supported: PackSchema.version) }
        guard version >= 1 else { throw corrupt("schema_version \(version) is not valid") }
        guard version >= PackSchema.oldestReadable else {
            throw PackError.incompatible(file: path, reason: PackSchema.rebuildReason(version) + "; rebuild it for your model with `rwkv-edit compile --model MODEL --vocab VALUES -o \(path) --force` (the packs shipped in packs/ are rebuilt already)")
        }
        for t in PackSchema.tables where !tables.contains(t) { throw corrupt("table '\(t)' is missing") }
        guard let mtext = meta["manifest"] else { throw corrupt("meta has no manifest") }
        let m: PackManifest
        do { m = try PackManifest.decoder().decode(PackManifest.self, from: Data(mtext.utf8)) } catch {
            throw corrupt("the manifest is not valid: \(Self.describe(error))")
        }
        if let why = m.boundsViolation() { throw corrupt(why) }
        manifest = m
        guard let s = meta["status"].flatMap(PackStatus.init(rawValue:)) else { throw corrupt("meta has no valid status") }
        status = s
        vocabCache = try Self.readValues(db, manifest: m, file: path)
        try checkRowNames()
    }

    /// The `vocab` table, checked against the manifest's value list: types and lengths first (SQL, so
    /// nothing oversized is loaded), then ordinals 0, 1, … in order, unique names, and the digest.
    private static func readValues(_ db: SQLiteDB, manifest m: PackManifest, file: String) throws -> [(name: String, surface: String)] {
        func corrupt(_ why: String) -> PackError { .corrupt(file: file, reason: why) }
        let rows = try db.query("SELECT count(*) FROM vocab").first?.first?.int ?? 0
        guard rows == m.values.count else {
            throw corrupt("the vocab table has \(rows) values, the manifest lists \(m.values.count) (a row was added or deleted)")
        }
        let limit = Int64(PackLimits.nameBytes)
        if let r = try db.query("""
            SELECT rowid FROM vocab WHERE typeof(name) != 'text' OR typeof(surface) != 'text' OR typeof(ord) != 'integer'
              OR length(CAST(name AS BLOB)) NOT BETWEEN 1 AND ? OR length(CAST(surface AS BLOB)) NOT BETWEEN 1 AND ? LIMIT 1
            """, [.int(limit), .int(limit)]).first {
            throw corrupt("vocab row \(r.first?.int ?? 0) is not a name and surface text of 1…\(limit) bytes with an integer ord")
        }
        var values: [(name: String, surface: String)] = []
        var seen = Set<String>()
        for r in try db.query("SELECT name, surface, ord FROM vocab ORDER BY ord") {
            guard r.count == 3, let name = r[0].text, let surface = r[1].text, let ord = r[2].int else { throw corrupt("a vocab row changed while it was read") }
            guard ord == values.count else {
                throw corrupt("vocab ordinals are not 0…\(m.values.count - 1) in order: '\(name)' has ord \(ord) at position \(values.count)")
            }
            guard seen.insert(name).inserted else { throw corrupt("vocab lists '\(name)' twice") }
            values.append((name, surface))
        }
        guard PackManifest.ValueList(values) == m.values else {
            throw corrupt("the vocab table does not match the manifest's value list (a name, surface text or ordinal was edited)")
        }
        return values
    }

    /// Every row of the blob tables names values of the vocabulary, pairs name two different ones, and a
    /// finished pack has its address and one entry per value. (Each row's checksum, checked when it is
    /// read, binds its blob to these names.)
    private func checkRowNames() throws {
        func corrupt(_ why: String) -> PackError { .corrupt(file: path, reason: why) }
        let inVocab = "IN (SELECT name FROM vocab)"
        for table in ["vocab_entries", "staged"] {
            if let r = try db.query("SELECT quote(name) FROM \(table) WHERE typeof(name) != 'text' OR name NOT \(inVocab) LIMIT 1").first {
                throw corrupt("\(table) has a row \(r.first?.text ?? "") for no value of the vocabulary")
            }
        }
        if let r = try db.query("SELECT quote(a), quote(b) FROM pair_entries WHERE typeof(a) != 'text' OR typeof(b) != 'text' OR a = b OR a NOT \(inVocab) OR b NOT \(inVocab) LIMIT 1").first {
            throw corrupt("pair_entries has a row \(r.first?.text ?? "") -> \(r.last?.text ?? "") that does not name two different values of the vocabulary")
        }
        guard status == .complete else { return }
        guard try db.query("SELECT count(*) FROM addresses").first?.first?.int == 1 else { throw corrupt("the address row is missing") }
        if let r = try db.query("SELECT name FROM vocab WHERE name NOT IN (SELECT name FROM vocab_entries) LIMIT 1").first {
            throw corrupt("value '\(r.first?.text ?? "")' has no vocabulary entry")
        }
    }

    /// Throws `PackError.incompatible` unless the pack was compiled for this model and vocabulary
    /// (`ModelIdentity`: config, vocabulary digest and a few hundred sampled weights; no pass over the weights).
    public func requireModel(_ model: RWKVModel, tokenizer: WorldTokenizer) throws {
        let here = ModelIdentity(model: model, tokenizer: tokenizer, samplesPerTensor: manifest.model.identity.samplesPerTensor)
        if let why = manifest.model.identity.difference(from: here) { throw PackError.otherModel(file: path, why) }
    }

    /// A decoding error as one line: what was wrong and where.
    static func describe(_ error: Error) -> String {
        switch error as? DecodingError {
        case .dataCorrupted(let c)?: return c.debugDescription + Self.at(c.codingPath)
        case .keyNotFound(let k, let c)?: return "no key '\(k.stringValue)'" + Self.at(c.codingPath)
        case .typeMismatch(_, let c)?, .valueNotFound(_, let c)?: return c.debugDescription + Self.at(c.codingPath)
        default: return "\(error)"
        }
    }

    private static func at(_ path: [CodingKey]) -> String { path.isEmpty ? "" : " (at \(path.map(\.stringValue).joined(separator: ".")))" }

    func requireComplete() throws {
        guard status == .complete else {
            throw PackError.incompatible(file: path, reason: "its compile has not finished (a shard or an interrupted compile); re-run `rwkv-edit compile` or `rwkv-edit packs merge`")
        }
    }

    /// The vocabulary, in file order.
    public func values() throws -> [(name: String, surface: String)] { vocabCache }

    /// The value a user's word refers to: exact name, then surface text, then case-insensitive;
    /// otherwise a `missingValue` error naming the nearest entries.
    public func resolve(_ word: String) throws -> String {
        let w = word.trimmingCharacters(in: .whitespaces)
        let vs = try values()
        if let v = vs.first(where: { $0.name == w }) ?? vs.first(where: { $0.surface == w })
            ?? vs.first(where: { $0.name.lowercased() == w.lowercased() || $0.surface.lowercased() == w.lowercased() }) {
            return v.name
        }
        let near = vs.map(\.name).sorted { editDistance($0.lowercased(), w.lowercased()) < editDistance($1.lowercased(), w.lowercased()) }
        throw PackError.missingValue(file: path, value: word, nearest: Array(near.prefix(3)))
    }

    /// Reads and decodes one row's blob, or nil when the row is absent. The stored size is checked in
    /// SQL before the blob is loaded, the checksum (which covers the row's place, `rowChecksum`) before
    /// it is decompressed, and the declared sizes against the manifest's shape before anything is
    /// allocated for it (`BlobCodec.decode`).
    package func read(_ row: PackRow) throws -> VectorSet? {
        let (sql, args): (String, [SQLValue])
        switch row {
        case .address: (sql, args) = ("FROM addresses WHERE id = 0", [])
        case .vocab(let x): (sql, args) = ("FROM vocab_entries WHERE name = ?", [.text(x)])
        case .pair(let a, let b): (sql, args) = ("FROM pair_entries WHERE a = ? AND b = ?", [.text(a), .text(b)])
        case .staged(let x): (sql, args) = ("FROM staged WHERE name = ?", [.text(x)])
        }
        let shape = manifest.shape(of: row)
        let bound = BlobCodec.compressedBound(shape.rawSize)
        let rows = try db.query("SELECT length(blob), CASE WHEN typeof(blob) = 'blob' AND length(blob) <= ? THEN blob END, raw_size, checksum " + sql,
                                [.int(Int64(bound))] + args)
        guard let r = rows.first else { return nil }
        func bad(_ why: String) -> PackError { .badBlob(file: path, entry: row.label, reason: why) }
        guard rows.count == 1 else { throw bad("the row is stored \(rows.count) times") }
        guard r.count == 4, let stored = r[1].blob, let rawSize = r[2].int, let sum = r[3].text else {
            throw bad("the row holds \(r[0].int ?? 0) stored bytes, above the \(bound) its shape can compress to, or has the wrong column types")
        }
        guard manifest.rowChecksum(row, rawSize: rawSize, payload: stored) == sum else {
            throw bad("checksum mismatch: the bytes are damaged, or the row holds another row's data (moved, swapped or reversed)")
        }
        return try BlobCodec.decode(stored, rawSize: rawSize, shape: shape, file: path, entry: row.label)
    }

    /// v̄_h per head, in `heads` order.
    public func address() throws -> VectorSet {
        try requireComplete()
        if let addressCache { return addressCache }
        guard let a = try read(.address) else { throw PackError.corrupt(file: path, reason: "the address row is missing") }
        addressCache = a
        return a
    }

    /// w_X,h = σ_X,h u_X,h per head for a value (by name, as `resolve` returns it).
    public func vocabEntry(_ name: String) throws -> VectorSet {
        try requireComplete()
        guard let v = try read(.vocab(name)) else { throw PackError.missingValue(file: path, value: name, nearest: []) }
        return v
    }

    /// The direct pair entry A→B (or B→A with u negated), if the pack has one.
    public func pairEntry(_ a: String, _ b: String) throws -> [HeadIndex: RankOne]? {
        try requireComplete()
        let (x, y, flip) = a < b ? (a, b, false) : (b, a, true)
        guard let s = try read(.pair(x, y)) else { return nil }
        let hs = heads
        var out: [HeadIndex: RankOne] = [:]
        for (i, h) in hs.enumerated() {
            var u = s.vector(i)
            if flip { u = u.map { -$0 } }
            out[h] = RankOne(sigma: s.scalars[i], u: u, v: s.vector(hs.count + i))
        }
        return out
    }

    /// S(X) of the pack's heads for a staged value (compile work), value-major head_size² per head.
    package func stagedState(_ name: String) throws -> [Float]? { try read(.staged(name))?.values }

    /// Number of pair entries stored.
    public func pairCount() throws -> Int { try db.query("SELECT count(*) FROM pair_entries").first?.first?.int ?? 0 }

    /// The composed pair A→B from vocabulary entries: u₁ ∝ w_B − w_A, σ₁ = ‖w_B − w_A‖, v₁ = v̄.
    /// Computed in double precision: the entries are finite, but a difference of two large ones need not
    /// be in f32.
    public func composedPair(_ a: String, _ b: String) throws -> [HeadIndex: RankOne] {
        let wa = try vocabEntry(a), wb = try vocabEntry(b), addr = try address()
        var out: [HeadIndex: RankOne] = [:]
        for (i, h) in heads.enumerated() {
            let d = zip(wb.vector(i), wa.vector(i)).map { Double($0) - Double($1) }
            let s = d.reduce(0) { $0 + $1 * $1 }.squareRoot()
            out[h] = RankOne(sigma: Float(s), u: d.map { Float(s > 0 ? $0 / s : 0) }, v: addr.vector(i))
        }
        return out
    }

    public enum CalibrationSource: String, Sendable { case pair, composed }

    /// The calibration an edit A→B takes from this pack: the direct pair entry when there is one
    /// (unless `preferComposed`), else one composed from the two vocabulary entries. Refused when any
    /// of its numbers is not finite (σ of two huge entries can overflow f32), before an edit uses it.
    public func calibration(from a: String, to b: String, preferComposed: Bool = false) throws -> (Calibration, CalibrationSource) {
        let x = try resolve(a), y = try resolve(b)
        guard x != y else { throw PackError.invalidInput("'\(a)' and '\(b)' are the same pack entry; nothing to edit") }
        let pair = preferComposed ? nil : try pairEntry(x, y)
        let (heads, source) = try pair.map { ($0, CalibrationSource.pair) } ?? (composedPair(x, y), .composed)
        if let h = heads.first(where: { !$0.value.sigma.isFinite || !$0.value.u.allSatisfy(\.isFinite) || !$0.value.v.allSatisfy(\.isFinite) })?.key {
            throw PackError.badBlob(file: path, entry: x < y ? "\(x) -> \(y)" : "\(y) -> \(x)",
                                    reason: "the \(source.rawValue) calibration of layer \(h.layer) head \(h.head) is not finite (entries too large)")
        }
        return (Calibration(heads: heads), source)
    }

    /// Decodes every blob, checking its checksum (and so its place), shape and values; checks that
    /// pair rows are stored in order (a < b). The vocabulary and the rows' names were checked on open.
    /// Returns the number of blobs checked.
    @discardableResult
    public func verify() throws -> Int {
        var n = 0
        for name in try db.query("SELECT name FROM staged").compactMap({ $0.first?.text }) {
            _ = try read(.staged(name)); n += 1
        }
        guard status == .complete else { return n }
        _ = try address(); n += 1
        for v in vocabCache { _ = try vocabEntry(v.name); n += 1 }
        for r in try db.query("SELECT a, b FROM pair_entries") {
            guard r.count == 2, let a = r[0].text, let b = r[1].text else { throw PackError.corrupt(file: path, reason: "a pair row's names are not text") }
            guard a < b else {
                throw PackError.badBlob(file: path, entry: "\(a) -> \(b)", reason: "pair rows are stored once, with the names in order (\(b) -> \(a)); this one is reversed")
            }
            _ = try read(.pair(a, b)); n += 1
        }
        return n
    }

    /// Total bytes of stored (compressed) blobs per table.
    public func storedBytes() throws -> (vocab: Int, pairs: Int, address: Int) {
        func sum(_ t: String) throws -> Int { try db.query("SELECT coalesce(sum(length(blob)), 0) FROM \(t)").first?.first?.int ?? 0 }
        return (try sum("vocab_entries"), try sum("pair_entries"), try sum("addresses"))
    }
}

/// Levenshtein distance over Unicode scalars.
public func editDistance(_ a: String, _ b: String) -> Int {
    let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
    if x.isEmpty { return y.count }
    if y.isEmpty { return x.count }
    var prev = Array(0...y.count), cur = [Int](repeating: 0, count: y.count + 1)
    for i in 1...x.count {
        cur[0] = i
        for j in 1...y.count {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
        }
        swap(&prev, &cur)
    }
    return prev[y.count]
}
