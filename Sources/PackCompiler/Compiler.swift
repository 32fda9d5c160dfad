import CLapacke
import Foundation
import RWKVEdit

public enum PairsMode: Equatable, Sendable {
    case none
    case all
    case list([String])   // "A\u{1}B" keys, resolved to vocabulary names

    var label: String {
        switch self { case .none: return "none"; case .all: return "all"; case .list(let l): return "list:\(l.count)" }
    }
}

public struct CompileOptions: Sendable {
    public var template: String = Vocabulary.genericTemplate
    /// More calibration templates: S(X) is then the mean of the states after each template.
    public var extraTemplates: [String] = []
    var templates: [String] { [template] + extraTemplates }
    public var probeTemplate: String?
    /// Fills {entity} in the calibration template (the generic template has none).
    public var entity: String = "Alex"
    /// Layers to calibrate; nil means the upper half, L/2 … L−1 (the edit default).
    public var layers: ClosedRange<Int>?
    public var dtype: StorageDType = .f16
    public var pairs: [(String, String)]? = nil
    public var allPairs = false
    /// Values per engine call (× the number of templates sequences).
    public var batchSize = 8
    /// 1-based shard index and count: this run stages values k (0-based) with k % count == index − 1.
    public var shard: (index: Int, count: Int)?
    /// Replace an existing finished `output` (e.g. a pack for an older export of the model), and start over
    /// when `<output>.partial` does not open (damaged, or from an older schema).
    public var overwrite = false
    /// Test hook: behave as if killed after this many batches were committed (throws `interrupted`).
    public var stopAfterBatches: Int?

    public init() {}

    /// The values file's @template lines, else the generic template.
    public mutating func useTemplates(of vocabulary: Vocabulary) {
        template = vocabulary.template ?? Vocabulary.genericTemplate
        extraTemplates = vocabulary.template == nil ? [] : vocabulary.extraTemplates
    }
}

public struct CompileProgress: Sendable {
    public let done: Int
    public let total: Int
    public let valuesPerSecond: Double
    public var etaSeconds: Double { valuesPerSecond > 0 ? Double(total - done) / valuesPerSecond : .infinity }
}

public struct CompileResult: Sendable {
    public var path: String
    public var status: PackStatus
    public var valuesCompiled = 0
    public var valuesSkipped = 0
    public var engineSeconds: Double = 0
    public var svdSeconds: Double = 0
    public var storageSeconds: Double = 0
    /// Bytes of compressed vocabulary-entry blobs per value (complete packs only).
    public var bytesPerValue: Double?
    /// Mean |cos(u₁ pair, u₁ composed)| per head over the pair entries (when pairs were compiled).
    public var composedCosine: [HeadIndex: Double]?
    public var pairCount = 0
    /// Cosine of each stored vocabulary vector (after the dtype round trip) to its fp32 value: min and mean.
    public var storageCosine: (min: Double, mean: Double)?
}

/// A compile stopped by the test hook, standing in for a kill.
public struct CompileInterrupted: Error, CustomStringConvertible {
    public let batches: Int
    public var description: String { "compile interrupted after \(batches) batches (test hook)" }
}

/// Turns a vocabulary into a pack (DESIGN.md §5). Work goes to `<output>.partial`, committed one
/// transaction per batch of values, so an interrupted compile resumes where it stopped; the finished
/// file is renamed to `<output>` (a shard is renamed once its share is staged; `merge` finalizes).
public final class PackCompiler {
    public let engine: any Engine
    public let tokenizer: WorldTokenizer
    public var model: RWKVModel { engine.model }

    public init(engine: any Engine, tokenizer: WorldTokenizer) {
        self.engine = engine; self.tokenizer = tokenizer
    }

    static func now() -> Double { Date().timeIntervalSince1970 }

    /// What a compile of `values` values over `layers` needs besides the finished pack: the work file
    /// holds one staged state per value (every edited head's n×n matrix in f32; zstd barely shrinks
    /// them), the same states stay in memory for finalize, which adds one stack of every value's
    /// matrix per head it works on at once (`threads` of them).
    public static func workEstimate(values: Int, config c: ModelConfig, layers: ClosedRange<Int>, threads: Int) -> (workFileBytes: Int, memoryBytes: Int) {
        let heads = layers.count * c.nHead, matrix = c.headSize * c.headSize * MemoryLayout<Float>.size
        let staged = values * heads * matrix
        return (staged, staged + min(max(threads, 1), heads) * values * matrix)
    }

    public func compile(vocabulary vocab: Vocabulary, options o: CompileOptions, output: String,
                        progress: ((CompileProgress) -> Void)? = nil) throws -> CompileResult {
        let c = engine.config
        let layers = o.layers ?? c.upperHalfLayers
        guard layers.lowerBound >= 0, layers.upperBound < c.nLayer else {
            throw PackError.invalidInput("layers \(layers.lowerBound)-\(layers.upperBound) lie outside the model's 0-\(c.nLayer - 1)")
        }
        for t in o.templates { try Vocabulary.checkTemplate(t, what: "the template") }
        guard o.batchSize >= 1 else { throw PackError.invalidInput("--batch must be at least 1") }
        if let s = o.shard, !(s.count >= 1 && s.index >= 1 && s.index <= s.count) {
            throw PackError.invalidInput("--shard \(s.index)/\(s.count) must be i/n with 1 ≤ i ≤ n")
        }
        var result = CompileResult(path: output, status: .staged)
        let identity = ModelIdentity(model: model, tokenizer: tokenizer)
        if let d = identity.damage() { throw PackError.invalidInput("the model's identity cannot be recorded: \(d)") }
        let pairs = try resolvePairs(o, vocab)
        let manifest = PackManifest(
            schemaVersion: PackSchema.version, name: vocab.name, property: vocab.property, template: o.template,
            templates: o.templates.count > 1 ? o.templates : nil,
            probeTemplate: o.probeTemplate ?? vocab.probeTemplate, queryTemplate: vocab.queryTemplate,
            model: .init(file: URL(fileURLWithPath: model.path).lastPathComponent, identity: identity),
            values: .init(vocab.values), layers: [layers.lowerBound, layers.upperBound], nHead: c.nHead, headSize: c.headSize, dtype: o.dtype,
            compile: .init(batchSize: o.batchSize, pairs: o.allPairs ? "all" : (o.pairs == nil ? "none" : "list"),
                           engine: engine.backendName, entity: o.templates.contains { $0.contains("{entity}") } ? o.entity : nil,
                           shard: o.shard.map { "\($0.index)/\($0.count)" }, tool: "rwkv-edit"),
            createdAt: ISO8601DateFormatter().string(from: Date()))

        // Held until this function returns: from the first look at `output` to the rename of the result.
        let lock = try CompileLock(output: output)
        defer { withExtendedLifetime(lock) {} }
        let fm = FileManager.default
        if o.overwrite, fm.fileExists(atPath: output) {
            do { try fm.removeItem(atPath: output) } catch { throw PackError.unreadable(file: output, reason: "cannot replace it: \(error.localizedDescription)") }
        }
        if fm.fileExists(atPath: output) {
            // A finished file: nothing to do when it holds this very compile, else refuse to overwrite.
            let existing = try EditPack(path: output)
            if let why = existing.manifest.model.identity.difference(from: identity) { throw PackError.otherModel(file: output, why) }
            guard existing.manifest.sameCompile(as: manifest), try existing.values().map(\.name) == vocab.values.map(\.name) else {
                throw PackError.invalidInput("\(output) already exists with other settings or values; pass --force to replace it, or choose another -o")
            }
            if existing.status == .complete || o.shard != nil {
                result.status = existing.status
                result.valuesSkipped = vocab.values.count
                return result
            }
        }
        let work = output + ".partial"
        let workPack = try Self.openWork(work, manifest: manifest, vocab: vocab, discardUnreadable: o.overwrite)
        let db = workPack.db
        let heads = manifest.heads
        let n = c.headSize
        let staged = Set(try db.query("SELECT name FROM staged").compactMap { $0.first?.text })
        let mine = vocab.values.enumerated().filter { k, _ in o.shard.map { k % $0.count == $0.index - 1 } ?? true }.map(\.element)
        let todo = mine.filter { !staged.contains($0.name) }
        result.valuesSkipped = mine.count - todo.count
        let start = Self.now()
        var batches = 0
        // States computed in this run stay in memory for finalize (only resumed ones are read back),
        // unless this run only stages a shard.
        let keepInMemory = o.shard == nil || o.shard?.count == 1
        var inMemory: [String: [Float]] = [:]
        for b in stride(from: 0, to: todo.count, by: o.batchSize) {
            let chunk = Array(todo[b..<min(b + o.batchSize, todo.count)])
            let t0 = Self.now()
            // Value-major: sequence k·T + t is value k with template t, all in one engine call.
            let T = o.templates.count
            let texts = chunk.flatMap { v in o.templates.map { fillTemplate($0, value: v.surface, entity: o.entity) } }
            let tokens = texts.map { tokenizer.encode($0) }
            if let i = tokens.firstIndex(where: \.isEmpty) { throw PackError.invalidInput("template for '\(chunk[i / T].name)' encodes to no tokens") }
            // One read from the empty state: the template's shared beginning ("The answer is") fed once,
            // and no logits (only the states are kept), so no output head.
            // Two templates may read the same tokens: each node's state is kept once.
            let (batch, node) = try BranchingBatch.sharingPrefixes(tokens)
            let (kept, slot) = BranchingBatch.keptOnce(node)
            let keptStates = try engine.read(batch.forStatesOnly(), from: engine.newState(), keepingStatesOf: kept, allLogits: false,
                                             keepingInputsOf: nil).states
            let states = slot.map { keptStates[$0] }
            let t1 = Self.now()
            // Gather and encode each value's staged row; values are independent, so they run in parallel
            // (the engine is idle meanwhile), each writing only its own slot.
            let slots = UnsafeMutableBufferPointer<Result<(flat: [Float], row: (String, [UInt8], Int, String)), any Error>?>.allocate(capacity: chunk.count)
            slots.initialize(repeating: nil)
            defer { slots.deinitialize(); slots.deallocate() }
            DispatchQueue.concurrentPerform(iterations: chunk.count) { k in
                // The edited heads of the value's state(s), averaged over templates: a copy of each head for
                // the first template (megabytes per value, so no element loop), additions after it.
                var flat = [Float](repeating: 0, count: heads.count * n * n)
                flat.withUnsafeMutableBufferPointer { f in
                    for t in 0..<T {
                        let s = states[k * T + t]
                        s.wkv.withUnsafeBufferPointer { w in
                            for (hi, h) in heads.enumerated() {
                                let src = w.baseAddress! + s.wkvOffset(layer: h.layer, head: h.head), dst = f.baseAddress! + hi * n * n
                                if t == 0 { dst.update(from: src, count: n * n) } else { for i in 0..<(n * n) { dst[i] += src[i] } }
                            }
                        }
                    }
                }
                if T > 1 { let inv = 1 / Float(T); for i in flat.indices { flat[i] *= inv } }
                slots[k] = Result {
                    let (blob, raw) = try BlobCodec.encode(VectorSet(count: heads.count, dim: n * n, values: flat), dtype: .f32, level: -3)
                    return (flat, (chunk[k].name, blob, raw, manifest.rowChecksum(.staged(chunk[k].name), rawSize: raw, payload: blob)))
                }
            }
            let encoded = try slots.map { try $0!.get() }
            if keepInMemory { for e in encoded { inMemory[e.row.0] = e.flat } }
            let rows = encoded.map(\.row)
            try db.transaction {
                for r in rows {
                    try db.query("INSERT OR REPLACE INTO staged (name, blob, raw_size, checksum) VALUES (?, ?, ?, ?)",
                                 [.text(r.0), .blob(r.1), .int(Int64(r.2)), .text(r.3)])
                }
            }
            result.engineSeconds += t1 - t0
            result.storageSeconds += Self.now() - t1
            result.valuesCompiled += chunk.count
            batches += 1
            let done = result.valuesCompiled
            progress?(CompileProgress(done: done, total: todo.count, valuesPerSecond: Double(done) / max(Self.now() - start, 1e-9)))
            if let stop = o.stopAfterBatches, batches >= stop, done < todo.count { throw CompileInterrupted(batches: batches) }
        }
        if o.shard != nil && o.shard?.count != 1 {
            try Self.rename(work, to: output)
            result.status = .staged
            return result
        }
        try Self.finalize(sources: [workPack], preloaded: inMemory, manifest: manifest, vocab: vocab, pairs: pairs, output: output, result: &result)
        try? FileManager.default.removeItem(atPath: work)
        result.status = .complete
        return result
    }

    /// Merges shard files (staged packs of one compile) into a finished pack at `output`.
    public static func merge(shards: [String], output: String) throws -> CompileResult {
        guard let first = shards.first else { throw PackError.invalidInput("merge needs at least one shard") }
        let lock = try CompileLock(output: output)
        defer { withExtendedLifetime(lock) {} }
        let packs = try shards.map { try EditPack(path: $0) }
        let m0 = packs[0].manifest
        let names = try packs[0].values()
        for p in packs.dropFirst() {
            guard p.manifest.sameCompile(as: m0), try p.values().map(\.name) == names.map(\.name) else {
                throw PackError.invalidInput("\(p.path) is not a shard of the same compile as \(first) (settings or vocabulary differ)")
            }
        }
        guard !FileManager.default.fileExists(atPath: output) else { throw PackError.invalidInput("\(output) already exists; delete it or choose another -o") }
        var manifest = m0
        manifest.compile.shard = nil
        manifest.createdAt = ISO8601DateFormatter().string(from: Date())
        var vocab = Vocabulary(name: m0.name, property: m0.property, template: m0.template, probeTemplate: m0.probeTemplate, values: names)
        vocab.queryTemplate = m0.queryTemplate
        for p in packs where p.status == .complete {
            throw PackError.invalidInput("\(p.path) is already a finished pack, not a shard")
        }
        var result = CompileResult(path: output, status: .staged)
        let pairs: [(String, String)]
        switch m0.compile.pairs {
        case "all": pairs = Self.allPairs(names.map(\.name))
        case "none": pairs = []
        default: throw PackError.invalidInput("merging shards compiled with a pairs file is not supported; compile pairs after merging")
        }
        try Self.finalize(sources: packs, manifest: manifest, vocab: vocab, pairs: pairs, output: output, result: &result)
        result.status = .complete
        return result
    }

    private static func rename(_ from: String, to: String) throws {
        let fm = FileManager.default
        try? fm.removeItem(atPath: to)
        do { try fm.moveItem(atPath: from, toPath: to) } catch {
            throw PackError.unreadable(file: to, reason: "cannot rename \(from): \(error.localizedDescription)")
        }
    }

    /// The unit eigenvector of the largest eigenvalue of a symmetric n×n matrix (a head's Gram matrix
    /// DᵀD, whose leading eigenvector is D's leading right singular vector): LAPACK's ssyevr for that one
    /// eigenpair, a fraction of a full SVD's work (the runtime's Jacobi SVD of each head took 0.13 s of
    /// a 0.1B compile, 0.77 s in all, on the AVX2 machine).
    package static func leadingEigenvector(of symmetric: [Float], n: Int) throws -> [Float] {
        guard n > 0, symmetric.count == n * n else { throw EditError.invalid("an eigenvector needs an n×n matrix; got \(symmetric.count) values for n = \(n)") }
        guard symmetric.allSatisfy({ $0.isFinite }) else { throw EditError.numerical("the Gram matrix has a non-finite value") }
        var a = symmetric, w = [Float](repeating: 0, count: n), z = [Float](repeating: 0, count: n), support = [Int32](repeating: 0, count: 2)
        var found: Int32 = 0
        let info = LAPACKE_ssyevr(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "V")), Int8(UInt8(ascii: "I")), Int8(UInt8(ascii: "U")), Int32(n), &a, Int32(n),
                                  0, 0, Int32(n), Int32(n), 0, &found, &w, &z, 1, &support)
        guard info == 0, found == 1, z.allSatisfy({ $0.isFinite }) else {
            throw EditError.numerical("ssyevr found no leading eigenvector (info \(info), \(found) found)")
        }
        return z
    }

    private static func allPairs(_ names: [String]) -> [(String, String)] {
        var out: [(String, String)] = []
        let sorted = names.sorted()
        for i in sorted.indices { for j in (i + 1)..<sorted.count { out.append((sorted[i], sorted[j])) } }
        return out
    }

    private func resolvePairs(_ o: CompileOptions, _ vocab: Vocabulary) throws -> [(String, String)] {
        if o.allPairs { return Self.allPairs(vocab.values.map(\.name)) }
        guard let list = o.pairs else { return [] }
        let names = Set(vocab.values.map(\.name))
        var seen = Set<String>()
        var out: [(String, String)] = []
        for (a, b) in list {
            for x in [a, b] where !names.contains(x) {
                let near = vocab.values.map(\.name).sorted { editDistance($0, x) < editDistance($1, x) }.prefix(3)
                throw PackError.invalidInput("pair value '\(x)' is not in the vocabulary; nearest: \(near.joined(separator: ", "))")
            }
            guard a != b else { continue }
            let (x, y) = a < b ? (a, b) : (b, a)
            if seen.insert(x + "\u{1}" + y).inserted { out.append((x, y)) }
        }
        return out
    }

    /// Opens (resuming) or creates the working file, checking that a resumed one is the same compile.
    /// `discardUnreadable` (`--force`): a work file that does not open as a pack (damaged, or left by a
    /// build of an older schema, whose rows this one cannot resume) is deleted and the compile starts over.
    private static func openWork(_ work: String, manifest: PackManifest, vocab: Vocabulary, discardUnreadable: Bool) throws -> EditPack {
        if FileManager.default.fileExists(atPath: work) {
            let existing: EditPack
            do {
                // Opening read-write first rolls back a transaction a kill left half-written (hot journal).
                _ = try SQLiteDB(path: work, readOnly: false).query("SELECT count(*) FROM sqlite_master")
                existing = try EditPack(path: work, readOnly: false)
            } catch is PackError where discardUnreadable {
                try? FileManager.default.removeItem(atPath: work)
                try? FileManager.default.removeItem(atPath: work + "-journal")
                return try openWork(work, manifest: manifest, vocab: vocab, discardUnreadable: false)
            }
            guard existing.manifest.sameCompile(as: manifest), existing.manifest.compile.shard == manifest.compile.shard,
                  try existing.values().map(\.name) == vocab.values.map(\.name),
                  try existing.values().map(\.surface) == vocab.values.map(\.surface) else {
                throw PackError.invalidInput("\(work) holds an unfinished compile with other settings or values; delete it to start over, or re-run with the same settings to resume")
            }
            try relaxSync(existing.db)
            return existing
        }
        _ = try createPack(work, manifest: manifest, vocab: vocab, status: .staged, pageSize: 16384)
        let created = try EditPack(path: work, readOnly: false)
        try relaxSync(created.db)
        return created
    }

    /// The work file skips fsync: its rollback journal still makes every batch all-or-nothing when the
    /// process is killed (the case resuming is for); only an OS crash or power loss mid-compile can
    /// damage it, and then the next run reports it corrupt and the work file is deleted and recompiled.
    /// Its megabytes of staged states usually never reach the disk before finalize deletes the file.
    private static func relaxSync(_ db: SQLiteDB) throws { try db.exec("PRAGMA synchronous = OFF") }

    /// A new pack file with the schema, meta and vocabulary (replacing any file at `path`).
    private static func createPack(_ path: String, manifest: PackManifest, vocab: Vocabulary, status: PackStatus,
                                   pageSize: Int = 4096, body: (SQLiteDB) throws -> Void = { _ in }) throws -> SQLiteDB {
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.removeItem(atPath: path + "-journal")
        let db = try SQLiteDB(path: path, readOnly: false)
        try db.exec("PRAGMA journal_mode = DELETE")
        try db.exec("PRAGMA page_size = \(pageSize)")   // big pages for the MB-sized staged rows, small for shipping
        try db.transaction {
            try db.exec(PackSchema.sql)
            try db.query("INSERT INTO meta (key, value) VALUES ('schema_version', ?), ('status', ?), ('manifest', ?)",
                         [.text(String(PackSchema.version)), .text(status.rawValue), .text(manifest.json())])
            for (i, v) in vocab.values.enumerated() {
                try db.query("INSERT INTO vocab (name, surface, ord) VALUES (?, ?, ?)", [.text(v.name), .text(v.surface), .int(Int64(i))])
            }
            try body(db)
        }
        return db
    }

    /// Computes v̄ per head, the vocabulary entries and the pair entries from the staged states of
    /// `sources` (the first row of each value wins), writes them into a fresh file `<output>.tmp` in one
    /// transaction and renames it to `output`. The sources are left as they are.
    private static func finalize(sources: [EditPack], preloaded: [String: [Float]] = [:], manifest: PackManifest, vocab vocabulary: Vocabulary,
                                 pairs: [(String, String)], output: String, result: inout CompileResult) throws {
        let vocab = vocabulary.values.map(\.name)
        let file = sources.first?.path ?? output
        let heads = manifest.heads
        let H = heads.count, n = manifest.headSize, nn = n * n
        let t0 = Self.now()
        var states = preloaded
        for source in sources {
            // Only the rows not already in memory are read: staged rows are megabytes each.
            let names = try source.db.query("SELECT name FROM staged").compactMap { $0.first?.text }
            for name in names where states[name] == nil {
                states[name] = try source.stagedState(name)
            }
        }
        let missing = vocab.filter { states[$0] == nil }
        guard missing.isEmpty else {
            throw PackError.incompatible(file: file, reason: "\(missing.count) values are not compiled yet (e.g. \(missing.prefix(3).joined(separator: ", "))); run the remaining shards")
        }
        let V = vocab.count
        let tLoaded = Self.now()
        result.storageSeconds += tLoaded - t0
        let ordered = vocab.compactMap { states[$0] }
        guard ordered.count == V else { throw PackError.corrupt(file: file, reason: "staged rows changed during finalize") }
        // Per head: D_X = S(X) − mean_Y S(Y) stacked into a (V·n)×n matrix, v̄ = its leading right singular
        // vector, and every value's w = D_X·v̄. Heads are independent and run in parallel (BLAS calls are
        // single-threaded here), each writing only its own slices of `vbars` and `projs`.
        let vbars = UnsafeMutableBufferPointer<Float>.allocate(capacity: H * n)
        let projs = UnsafeMutableBufferPointer<Float>.allocate(capacity: H * V * n)
        defer { vbars.deallocate(); projs.deallocate() }
        let failures = UnsafeMutableBufferPointer<Error?>.allocate(capacity: H)
        failures.initialize(repeating: nil)
        defer { failures.deinitialize(); failures.deallocate() }
        let ones = [Float](repeating: 1, count: V)
        DispatchQueue.concurrentPerform(iterations: H) { hi in
            var stack = [Float](repeating: 0, count: V * nn), mean = [Float](repeating: 0, count: nn)
            stack.withUnsafeMutableBufferPointer { st in
                for (k, s) in ordered.enumerated() {
                    s.withUnsafeBufferPointer { (st.baseAddress! + k * nn).update(from: $0.baseAddress! + hi * nn, count: nn) }
                }
            }
            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(V), Int32(nn), 1 / Float(V), stack, Int32(nn), ones, 1, 0, &mean, 1)
            cblas_sger(CblasRowMajor, Int32(V), Int32(nn), -1, ones, 1, mean, 1, &stack, Int32(nn))
            var gram = [Float](repeating: 0, count: nn)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(n), Int32(n), Int32(V * n), 1, stack, Int32(n), stack, Int32(n), 0, &gram, Int32(n))
            var vbar: [Float]
            do { vbar = try Self.leadingEigenvector(of: gram, n: n) } catch { failures[hi] = error; return }
            // Fix the sign (SVD signs are arbitrary) so that recompiles agree: largest component positive.
            if let m = vbar.indices.max(by: { abs(vbar[$0]) < abs(vbar[$1]) }), vbar[m] < 0 { vbar = vbar.map { -$0 } }
            _ = UnsafeMutableBufferPointer(rebasing: vbars[(hi * n)..<((hi + 1) * n)]).update(fromContentsOf: vbar)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(V * n), Int32(n), 1, stack, Int32(n), vbar, 1, 0, projs.baseAddress! + hi * V * n, 1)
        }
        if let e = failures.lazy.compactMap({ $0 }).first { throw e }
        let addr = Array(vbars)
        // w[k]: value k's projections, head after head.
        var w = [[Float]](repeating: [], count: V)
        for k in 0..<V {
            var row = [Float]()
            row.reserveCapacity(H * n)
            for hi in 0..<H {
                let start: Int = hi * V * n + k * n
                row.append(contentsOf: projs[start..<(start + n)])
            }
            w[k] = row
        }
        var pairRows: [(String, String, VectorSet)] = []
        var cosSum = [Double](repeating: 0, count: H)
        let index = Dictionary(uniqueKeysWithValues: vocab.enumerated().map { ($1, $0) })
        for (a, b) in pairs {
            guard let sa = states[a], let sb = states[b], let ia = index[a], let ib = index[b] else { continue }
            var sig = [Float](repeating: 0, count: H)
            var us = [Float](), vs = [Float]()
            for hi in 0..<H {
                let d = (0..<nn).map { sb[hi * nn + $0] - sa[hi * nn + $0] }
                let top = try HeadSVD.leading(matrix: d, n: n)
                sig[hi] = top.sigma; us += top.u; vs += top.v
                // |cos| between the direct u₁ and the composed one (w_B − w_A).
                let comp = (0..<n).map { w[ib][hi * n + $0] - w[ia][hi * n + $0] }
                let cn = comp.reduce(0) { $0 + $1 * $1 }.squareRoot()
                let dp = zip(comp, top.u).reduce(0) { $0 + $1.0 * $1.1 }
                cosSum[hi] += cn > 0 ? Double(abs(dp) / cn) : 0
            }
            pairRows.append((a, b, VectorSet(count: 2 * H, dim: n, values: us + vs, scalars: sig)))
        }
        let t1 = Self.now()
        result.svdSeconds += t1 - tLoaded
        let dtype = manifest.dtype
        let encodedVocab = try vocab.enumerated().map { k, x in (x, try BlobCodec.encode(VectorSet(count: H, dim: n, values: w[k]), dtype: dtype)) }
        let encodedPairs = try pairRows.map { ($0.0, $0.1, try BlobCodec.encode($0.2, dtype: dtype)) }
        let encodedAddr = try BlobCodec.encode(VectorSet(count: H, dim: n, values: addr), dtype: dtype)
        let tmp = output + ".tmp"
        _ = try createPack(tmp, manifest: manifest, vocab: vocabulary, status: .complete) { db in
            try db.query("INSERT OR REPLACE INTO addresses (id, blob, raw_size, checksum) VALUES (0, ?, ?, ?)",
                         [.blob(encodedAddr.payload), .int(Int64(encodedAddr.rawSize)),
                          .text(manifest.rowChecksum(.address, rawSize: encodedAddr.rawSize, payload: encodedAddr.payload))])
            for (x, e) in encodedVocab {
                try db.query("INSERT OR REPLACE INTO vocab_entries (name, blob, raw_size, checksum) VALUES (?, ?, ?, ?)",
                             [.text(x), .blob(e.payload), .int(Int64(e.rawSize)), .text(manifest.rowChecksum(.vocab(x), rawSize: e.rawSize, payload: e.payload))])
            }
            for (a, b, e) in encodedPairs {
                try db.query("INSERT OR REPLACE INTO pair_entries (a, b, blob, raw_size, checksum) VALUES (?, ?, ?, ?, ?)",
                             [.text(a), .text(b), .blob(e.payload), .int(Int64(e.rawSize)), .text(manifest.rowChecksum(.pair(a, b), rawSize: e.rawSize, payload: e.payload))])
            }
        }
        try rename(tmp, to: output)
        result.storageSeconds += Self.now() - t1
        result.bytesPerValue = Double(encodedVocab.reduce(0) { $0 + $1.1.payload.count }) / Double(max(V, 1))
        // Fidelity of the storage dtype: decode what was written and compare with the fp32 vectors.
        var cmin = 1.0, csum = 0.0, ccount = 0
        for (k, (x, e)) in encodedVocab.enumerated() {
            let back = try BlobCodec.decode(e.payload, rawSize: e.rawSize, shape: manifest.shape(of: .vocab(x)), file: output, entry: x)
            for hi in 0..<H {
                let a = Array(w[k][(hi * n)..<((hi + 1) * n)]), b = back.vector(hi)
                var d = 0.0, na = 0.0, nb = 0.0
                for j in 0..<n { d += Double(a[j] * b[j]); na += Double(a[j] * a[j]); nb += Double(b[j] * b[j]) }
                let c = na > 0 && nb > 0 ? d / (na * nb).squareRoot() : 1
                cmin = min(cmin, c); csum += c; ccount += 1
            }
        }
        result.storageCosine = (cmin, csum / Double(max(ccount, 1)))
        result.pairCount = pairRows.count
        if !pairRows.isEmpty {
            result.composedCosine = Dictionary(uniqueKeysWithValues: heads.enumerated().map { ($1, cosSum[$0] / Double(pairRows.count)) })
        }
    }
}
