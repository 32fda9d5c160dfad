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
    /// Inclusive layer range [first, last]; every head of these layers is in the pack, layer-major.
    public var layers: [Int]
    public var nHead: Int
    public var headSize: Int
    public var dtype: StorageDType
    public var compile: CompileSettings
    public var createdAt: String

    public var layerRange: ClosedRange<Int> { layers[0]...layers[1] }
    public var heads: [HeadIndex] { layerRange.flatMap { l in (0..<nHead).map { HeadIndex(layer: l, head: $0) } } }

    package init(schemaVersion: Int, name: String, property: String? = nil, template: String, templates: [String]? = nil, probeTemplate: String? = nil, queryTemplate: String? = nil, model: ModelInfo, layers: [Int], nHead: Int, headSize: Int, dtype: StorageDType, compile: CompileSettings, createdAt: String) {
        self.schemaVersion = schemaVersion; self.name = name; self.property = property; self.template = template; self.templates = templates; self.probeTemplate = probeTemplate; self.queryTemplate = queryTemplate; self.model = model; self.layers = layers; self.nHead = nHead; self.headSize = headSize; self.dtype = dtype; self.compile = compile; self.createdAt = createdAt
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
    /// Version 2 replaced the model fingerprint (a hash of every weight) by `ModelIdentity`.
    public static let version = 2
    /// The oldest version this build reads: packs of schema 1 carry only the old fingerprint, so they
    /// are refused with a message to rebuild them.
    public static let oldestReadable = 2
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
    private var vocabCache: [(name: String, surface: String)]?
    private var addressCache: VectorSet?

    public var name: String { manifest.name }
    public var heads: [HeadIndex] { manifest.heads }

    public convenience init(path: String) throws { try self.init(path: path, readOnly: true) }

    package init(path: String, readOnly: Bool) throws {
        self.path = path
        try checkSQLiteHeader(path)
        db = try SQLiteDB(path: path, readOnly: readOnly)
        let tables = Set(try db.query("SELECT name FROM sqlite_master WHERE type = 'table'").compactMap { $0.first?.text })
        guard tables.contains("meta") else { throw PackError.corrupt(file: path, reason: "no meta table: not an rwkv-edit pack") }
        let meta = Dictionary(try db.query("SELECT key, value FROM meta").compactMap { r -> (String, String)? in
            guard r.count == 2, let k = r[0].text, let v = r[1].text else { return nil }
            return (k, v)
        }, uniquingKeysWith: { a, _ in a })
        guard let vtext = meta["schema_version"], let version = Int(vtext) else {
            throw PackError.corrupt(file: path, reason: "meta has no schema_version")
        }
        guard version <= PackSchema.version else { throw PackError.newerSchema(file: path, found: version, supported: PackSchema.version) }
        guard version >= 1 else { throw PackError.corrupt(file: path, reason: "schema_version \(version) is not valid") }
        guard version >= PackSchema.oldestReadable else {
            throw PackError.incompatible(file: path, reason: "it has schema version \(version), which predates model identity v2 (packs now name their model by config, vocabulary and sampled weights instead of a hash of every weight); rebuild it for your model with `rwkv-edit compile --model MODEL --vocab VALUES -o \(path) --force` (the packs shipped in packs/ are rebuilt already)")
        }
        for t in PackSchema.tables where !tables.contains(t) {
            throw PackError.corrupt(file: path, reason: "table '\(t)' is missing")
        }
        guard let mtext = meta["manifest"] else { throw PackError.corrupt(file: path, reason: "meta has no manifest") }
        let m: PackManifest
        do { m = try PackManifest.decoder().decode(PackManifest.self, from: Data(mtext.utf8)) } catch {
            throw PackError.corrupt(file: path, reason: "the manifest is not valid: \(Self.describe(error))")
        }
        if let d = m.model.identity.damage() { throw PackError.corrupt(file: path, reason: "the manifest's model identity is damaged: \(d)") }
        guard m.layers.count == 2, m.layers[0] <= m.layers[1], m.layers[0] >= 0, m.layers[1] < m.model.nLayer,
              m.nHead > 0, m.headSize > 0, m.nHead == m.model.nHead, m.headSize == m.model.headSize else {
            throw PackError.corrupt(file: path, reason: "the manifest's layers/heads do not fit its model")
        }
        manifest = m
        guard let s = meta["status"].flatMap(PackStatus.init(rawValue:)) else { throw PackError.corrupt(file: path, reason: "meta has no valid status") }
        status = s
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
    public func values() throws -> [(name: String, surface: String)] {
        if let vocabCache { return vocabCache }
        let v = try db.query("SELECT name, surface FROM vocab ORDER BY ord").compactMap { r -> (String, String)? in
            guard r.count == 2, let n = r[0].text, let s = r[1].text else { return nil }
            return (n, s)
        }
        vocabCache = v
        return v
    }

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

    private func blob(_ sql: String, _ args: [SQLValue], entry: String) throws -> VectorSet? {
        guard let r = try db.query(sql, args).first else { return nil }
        guard r.count == 3, let b = r[0].blob, let size = r[1].int, let sum = r[2].text else {
            throw PackError.badBlob(file: path, entry: entry, reason: "row has the wrong column types")
        }
        return try BlobCodec.decode(b, rawSize: size, checksum: sum, file: path, entry: entry)
    }

    private func checkShape(_ v: VectorSet, count: Int, dim: Int, scalars: Int, entry: String) throws -> VectorSet {
        guard v.count == count, v.dim == dim, v.scalars.count == scalars else {
            throw PackError.badBlob(file: path, entry: entry, reason: "shape \(v.count)×\(v.dim)+\(v.scalars.count) instead of \(count)×\(dim)+\(scalars)")
        }
        return v
    }

    /// v̄_h per head, in `heads` order.
    public func address() throws -> VectorSet {
        try requireComplete()
        if let addressCache { return addressCache }
        guard let v = try blob("SELECT blob, raw_size, checksum FROM addresses WHERE id = 0", [], entry: "address") else {
            throw PackError.corrupt(file: path, reason: "the address row is missing")
        }
        let a = try checkShape(v, count: heads.count, dim: manifest.headSize, scalars: 0, entry: "address")
        addressCache = a
        return a
    }

    /// w_X,h = σ_X,h u_X,h per head for a value (by name, as `resolve` returns it).
    public func vocabEntry(_ name: String) throws -> VectorSet {
        try requireComplete()
        guard let v = try blob("SELECT blob, raw_size, checksum FROM vocab_entries WHERE name = ?", [.text(name)], entry: name) else {
            throw PackError.missingValue(file: path, value: name, nearest: [])
        }
        return try checkShape(v, count: heads.count, dim: manifest.headSize, scalars: 0, entry: name)
    }

    /// The direct pair entry A→B (or B→A with u negated), if the pack has one.
    public func pairEntry(_ a: String, _ b: String) throws -> [HeadIndex: RankOne]? {
        try requireComplete()
        let (x, y, flip) = a < b ? (a, b, false) : (b, a, true)
        let entry = "\(x) -> \(y)"
        guard let v = try blob("SELECT blob, raw_size, checksum FROM pair_entries WHERE a = ? AND b = ?", [.text(x), .text(y)], entry: entry) else { return nil }
        let hs = heads
        let s = try checkShape(v, count: 2 * hs.count, dim: manifest.headSize, scalars: hs.count, entry: entry)
        var out: [HeadIndex: RankOne] = [:]
        for (i, h) in hs.enumerated() {
            var u = s.vector(i)
            if flip { u = u.map { -$0 } }
            out[h] = RankOne(sigma: s.scalars[i], u: u, v: s.vector(hs.count + i))
        }
        return out
    }

    /// Number of pair entries stored.
    public func pairCount() throws -> Int { try db.query("SELECT count(*) FROM pair_entries").first?.first?.int ?? 0 }

    /// The composed pair A→B from vocabulary entries: u₁ ∝ w_B − w_A, σ₁ = ‖w_B − w_A‖, v₁ = v̄.
    public func composedPair(_ a: String, _ b: String) throws -> [HeadIndex: RankOne] {
        let wa = try vocabEntry(a), wb = try vocabEntry(b), addr = try address()
        var out: [HeadIndex: RankOne] = [:]
        for (i, h) in heads.enumerated() {
            var u = zip(wb.vector(i), wa.vector(i)).map { $0 - $1 }
            let s = u.reduce(0) { $0 + $1 * $1 }.squareRoot()
            if s > 0 { u = u.map { $0 / s } }
            out[h] = RankOne(sigma: s, u: u, v: addr.vector(i))
        }
        return out
    }

    public enum CalibrationSource: String, Sendable { case pair, composed }

    /// The calibration an edit A→B takes from this pack: the direct pair entry when there is one
    /// (unless `preferComposed`), else one composed from the two vocabulary entries.
    public func calibration(from a: String, to b: String, preferComposed: Bool = false) throws -> (Calibration, CalibrationSource) {
        let x = try resolve(a), y = try resolve(b)
        guard x != y else { throw PackError.invalidInput("'\(a)' and '\(b)' are the same pack entry; nothing to edit") }
        if !preferComposed, let p = try pairEntry(x, y) { return (Calibration(heads: p), .pair) }
        return (Calibration(heads: try composedPair(x, y)), .composed)
    }

    /// Decodes every blob, checking its checksum and shape; returns the number checked.
    @discardableResult
    public func verify() throws -> Int {
        var n = 0
        for r in try db.query("SELECT name, blob, raw_size, checksum FROM staged") {
            guard r.count == 4, let name = r[0].text, let b = r[1].blob, let s = r[2].int, let c = r[3].text else { throw PackError.corrupt(file: path, reason: "bad staged row") }
            _ = try checkShape(try BlobCodec.decode(b, rawSize: s, checksum: c, file: path, entry: "staged \(name)"),
                               count: heads.count, dim: manifest.headSize * manifest.headSize, scalars: 0, entry: "staged \(name)")
            n += 1
        }
        guard status == .complete else { return n }
        _ = try address(); n += 1
        for name in try db.query("SELECT name FROM vocab_entries").compactMap({ $0.first?.text }) { _ = try vocabEntry(name); n += 1 }
        for r in try db.query("SELECT a, b FROM pair_entries") {
            guard r.count == 2, let a = r[0].text, let b = r[1].text else { continue }
            _ = try pairEntry(a, b); n += 1
        }
        let missing = try db.query("SELECT count(*) FROM vocab WHERE name NOT IN (SELECT name FROM vocab_entries)").first?.first?.int ?? 0
        guard missing == 0 else { throw PackError.corrupt(file: path, reason: "\(missing) vocabulary values have no entry") }
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
