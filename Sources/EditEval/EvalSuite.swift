import Foundation
import RWKVEdit

// Evaluation suites as data (issue 7): cases that edit one fact in a fed context and measure the
// target, paraphrase and neighbour queries before and after. Format: schemas/eval-suite.schema.json.

/// A malformed suite: names the file, the case (index and id) and the field, and says what is wrong.
public struct EvalSuiteError: Error, CustomStringConvertible, Equatable {
    public let file: String?
    /// 0-based index of the case; nil for suite-level fields.
    public let caseIndex: Int?
    public let caseID: String?
    /// JSON path of the field inside the case (or the suite), e.g. "targets[1].old".
    public let field: String
    public let reason: String

    public init(file: String? = nil, caseIndex: Int? = nil, caseID: String? = nil, field: String, reason: String) {
        self.file = file; self.caseIndex = caseIndex; self.caseID = caseID; self.field = field; self.reason = reason
    }

    public var description: String {
        var s = "malformed eval suite"
        if let file { s += " \(file)" }
        if let caseIndex {
            s += ": case \(caseIndex)"
            if let caseID { s += " (\"\(caseID)\")" }
        }
        s += ": field '\(field)': \(reason)"
        return s
    }
}

/// A query whose answer the edit should change (old → new). Without `new` (erase/forget), success
/// means the old answer is no longer the top-1 prediction.
public struct EvalQuery: Sendable, Equatable {
    public var query: String
    public var old: String
    public var new: String?
    public init(query: String, old: String, new: String?) { self.query = query; self.old = old; self.new = new }
}

/// A query whose answer the edit must leave alone.
public struct NeighbourQuery: Sendable, Equatable {
    public var query: String
    public var answer: String
    public init(query: String, answer: String) { self.query = query; self.answer = answer }
}

/// What a case changes in the state.
public enum EvalEdit: Sendable, Equatable {
    /// Free-form: "Alice lives in Paris." → "Alice lives in Madrid.".
    case sentences(from: String, to: String)
    /// By pack entry: entity and value names of a pack given to the runner (`--pack`).
    case pack(entity: String, from: String, to: String, probe: String?)
    /// Remove a property, keep the entity: Δ = S(entity) − S(fact).
    case forget(fact: String, entity: String)
    /// Erase a fact towards a neutral sentence (EditSession.neutralSentence unless given).
    case erase(fact: String, neutral: String?)

    /// The ratio this kind of edit uses when the suite gives none (DESIGN §4).
    public func defaultRatio(_ ratios: DefaultRatios) -> Float {
        switch self {
        case .sentences, .pack: return ratios.edit
        case .forget: return ratios.forget
        case .erase: return ratios.erase
        }
    }

    public var summary: String {
        switch self {
        case .sentences(let a, let b): return "\"\(a)\" → \"\(b)\""
        case .pack(let e, let a, let b, _): return "\(e): \(a) → \(b) (pack)"
        case .forget(let f, let e): return "forget \"\(f)\" keeping \"\(e)\""
        case .erase(let f, let n): return "erase \"\(f)\"" + (n.map { " → \"\($0)\"" } ?? "")
        }
    }
}

/// Unrelated text fed after the context so the fact lies `tokens` tokens back (at least; whole
/// sentences), chosen deterministically from `seed`.
public struct FillerSpec: Sendable, Equatable {
    public var tokens: Int
    public var seed: UInt64
    public init(tokens: Int, seed: UInt64 = 1) { self.tokens = tokens; self.seed = seed }
}

/// How strong an edit is, per method. Fixed-α methods (uniform, projection) use `alphas` (default [1]);
/// adaptive methods use `ratios` when given, else `alphas` as a fixed α (the seed's sense:
/// α multiplies the method's own Δ), else the edit kind's default ratio.
public struct StrengthSpec: Sendable, Equatable {
    public var ratios: [Float]?
    public var alphas: [Float]?
    public init(ratios: [Float]? = nil, alphas: [Float]? = nil) { self.ratios = ratios; self.alphas = alphas }

    /// Fills what this spec leaves open from `fallback`.
    public func merged(over fallback: StrengthSpec) -> StrengthSpec {
        StrengthSpec(ratios: ratios ?? fallback.ratios, alphas: alphas ?? fallback.alphas)
    }

    /// The strength points to run `method` at, in sweep order.
    public func points(for method: EditMethod, defaultRatio: Float) -> [Strength] {
        if method.usesFixedAlpha { return (alphas ?? [1]).map { .alpha($0) } }
        if let ratios { return ratios.map { .ratio($0) } }
        if let alphas { return alphas.map { .alpha($0) } }
        return [.ratio(defaultRatio)]
    }
}

/// One strength setting: a ratio (α = ratio·‖S‖/‖Δ‖) or a fixed α.
public enum Strength: Sendable, Equatable, Hashable, CustomStringConvertible {
    case ratio(Float)
    case alpha(Float)

    public var value: Float {
        switch self { case .ratio(let r): return r; case .alpha(let a): return a }
    }

    public var description: String {
        switch self {
        case .ratio(let r): return "r=" + formatStrength(r)
        case .alpha(let a): return "α=" + formatStrength(a)
        }
    }

    public func apply(to options: inout EditOptions) {
        switch self {
        case .ratio(let r): options.ratio = r; options.alpha = nil
        case .alpha(let a): options.alpha = a
        }
    }
}

func formatStrength(_ v: Float) -> String {
    let s = String(format: "%.2f", v)
    return s
}

public struct EvalCase: Sendable, Equatable {
    public var id: String
    /// Row label for sweep tables (the edited entity); defaults to the id.
    public var group: String
    public var context: String
    public var filler: FillerSpec?
    public var edit: EvalEdit
    /// Methods to run; nil means the suite's default (or the runner's override).
    public var methods: [EditMethod]?
    public var strength: StrengthSpec
    /// Layer range "a-b"; nil means the library default (upper half).
    public var layers: ClosedRange<Int>?
    public var targets: [EvalQuery]
    public var paraphrases: [EvalQuery]
    public var neighbours: [NeighbourQuery]
    /// Prompt of the greedy continuation whose n-gram entropy measures fluency; default: the first target query.
    public var fluencyPrompt: String?

    public init(id: String, group: String? = nil, context: String, filler: FillerSpec? = nil, edit: EvalEdit,
                methods: [EditMethod]? = nil, strength: StrengthSpec = StrengthSpec(), layers: ClosedRange<Int>? = nil,
                targets: [EvalQuery], paraphrases: [EvalQuery] = [], neighbours: [NeighbourQuery] = [], fluencyPrompt: String? = nil) {
        self.id = id; self.group = group ?? id; self.context = context; self.filler = filler; self.edit = edit
        self.methods = methods; self.strength = strength; self.layers = layers; self.targets = targets
        self.paraphrases = paraphrases; self.neighbours = neighbours; self.fluencyPrompt = fluencyPrompt
    }
}

/// Published figures of the same experiment (e.g. the seed's 2.9B tables), shown beside ours.
public struct EvalReference: Sendable, Equatable {
    public struct Method: Sendable, Equatable {
        /// The name the source uses (e.g. "FULL-R1").
        public var label: String
        public var flips: Int?
        public var of: Int?
        public var best: Double?
        public var selectivity: Double?
        public var pTarget: Double?
        public var flipsByStep: [Int]?
    }
    public var source: String
    /// Keyed by our method name (EditMethod.rawValue).
    public var methods: [String: Method]
    /// Per group (entity) and method: the source's cells, e.g. ["0.324*", "0.017*", "0.000*"].
    public var groups: [String: [String: [String]]]
}

public struct EvalSuite: Sendable, Equatable {
    /// The suite format version this code reads.
    public static let formatVersion = 1

    /// Bounds on what a suite may ask for, checked while parsing so a hostile or mistaken suite fails
    /// at once with the field to fix instead of running for hours (every string is tokenised and fed,
    /// and every strength point and query multiplies the model passes of a case).
    public enum Limits {
        /// Bytes of the suite file.
        public static let fileBytes = 64 << 20
        /// Cases in one suite.
        public static let cases = 10_000
        /// UTF-8 bytes of a case's context.
        public static let contextBytes = 32_768
        /// UTF-8 bytes of any other string (queries, answers, edit sentences, probes, names).
        public static let stringBytes = 4096
        /// Tokens of filler after the context.
        public static let fillerTokens = 32_768
        /// Ratios or alphas in one sweep.
        public static let strengthPoints = 64
        /// Queries in one list (targets, paraphrases, neighbours).
        public static let queries = 256
    }

    public var version: Int
    public var name: String
    public var description: String
    /// Default methods of cases that name none.
    public var methods: [EditMethod]
    public var strength: StrengthSpec
    /// Tokens of greedy continuation for fluency.
    public var fluencyTokens: Int
    public var cases: [EvalCase]
    /// Published figures to print beside ours.
    public var reference: EvalReference?

    public init(name: String, description: String = "", methods: [EditMethod] = [.hybU], strength: StrengthSpec = StrengthSpec(),
                fluencyTokens: Int = 24, cases: [EvalCase]) {
        version = Self.formatVersion
        self.name = name; self.description = description; self.methods = methods; self.strength = strength
        self.fluencyTokens = fluencyTokens; self.cases = cases
    }

    /// Reads a suite from a .json file (one object with "cases") or a .jsonl file (one case per line;
    /// a line without "context" but with "version" is the suite header).
    public static func load(path: String) throws -> EvalSuite {
        let data: Data
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size > Limits.fileBytes {
            throw EvalSuiteError(file: path, field: "(file)", reason: "the file is \(size) bytes; at most \(Limits.fileBytes) are read. Split the suite into several files")
        }
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw EvalSuiteError(file: path, field: "(file)", reason: "cannot read it: \(error.localizedDescription)")
        }
        let stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        if path.hasSuffix(".jsonl") {
            var header: [String: Any] = [:]
            var cases: [Any] = []
            for (n, line) in TextLines.split(String(decoding: data, as: UTF8.self)).enumerated() {
                let t = line.trimmingCharacters(in: .whitespaces)
                if t.isEmpty { continue }
                guard let obj = try? JSONSerialization.jsonObject(with: Data(t.utf8)) as? [String: Any] else {
                    throw EvalSuiteError(file: path, field: "(line \(n + 1))", reason: "not a JSON object")
                }
                if obj["context"] == nil && obj["version"] != nil { header = obj } else { cases.append(obj) }
            }
            header["cases"] = cases
            if header["version"] == nil { header["version"] = formatVersion }
            return try parse(header, file: path, defaultName: stem)
        }
        let obj: Any
        do { obj = try JSONSerialization.jsonObject(with: data) } catch {
            throw EvalSuiteError(file: path, field: "(file)", reason: "not valid JSON: \(error.localizedDescription)")
        }
        return try parse(obj, file: path, defaultName: stem)
    }

    /// Parses a suite from JSON text.
    public static func parse(json: String, file: String? = nil) throws -> EvalSuite {
        let obj: Any
        do { obj = try JSONSerialization.jsonObject(with: Data(json.utf8)) } catch {
            throw EvalSuiteError(file: file, field: "(file)", reason: "not valid JSON: \(error.localizedDescription)")
        }
        return try parse(obj, file: file, defaultName: "suite")
    }

    static func parse(_ obj: Any, file: String?, defaultName: String) throws -> EvalSuite {
        let r = FieldReader(file: file, caseIndex: nil, caseID: nil)
        guard let top = obj as? [String: Any] else { throw r.error("(suite)", "the suite must be a JSON object") }
        guard let version = top["version"] else { throw r.error("version", "missing; this reader understands version \(formatVersion)") }
        guard !isJSONBool(version), let vn = version as? NSNumber, vn.doubleValue == vn.doubleValue.rounded() else {
            throw r.error("version", "must be an integer")
        }
        let v = vn.intValue
        guard v == formatVersion else { throw r.error("version", "version \(v) is not supported; this reader understands version \(formatVersion)") }
        let name = try r.string(top, "name", optional: true) ?? defaultName
        let description = try r.string(top, "description", optional: true) ?? ""
        let methods = try r.methods(top, "methods") ?? [.hybU]
        let strength = try r.strength(top, prefix: "")
        let fluencyTokens = try r.int(top, "fluency_tokens", min: 0) ?? 24
        try r.rejectUnknown(top, allowed: ["$schema", "version", "name", "description", "methods", "ratio", "ratios", "alpha", "alphas",
                                           "fluency_tokens", "cases", "reference"], prefix: "")
        guard let rawCases = top["cases"] else { throw r.error("cases", "missing") }
        guard let list = rawCases as? [Any] else { throw r.error("cases", "must be an array of case objects") }
        guard !list.isEmpty else { throw r.error("cases", "the suite has no cases") }
        guard list.count <= Limits.cases else { throw r.error("cases", "\(list.count) cases; at most \(Limits.cases). Split the suite into several files") }
        var cases: [EvalCase] = []
        var seen = Set<String>()
        for (i, c) in list.enumerated() {
            var cr = FieldReader(file: file, caseIndex: i, caseID: nil)
            let parsed = try cr.evalCase(c)
            guard seen.insert(parsed.id).inserted else { throw cr.error("id", "duplicate id '\(parsed.id)'") }
            cases.append(parsed)
        }
        var s = EvalSuite(name: name, description: description, methods: methods, strength: strength, fluencyTokens: fluencyTokens, cases: cases)
        s.version = v
        if let ref = top["reference"], !(ref is NSNull) { s.reference = try r.reference(ref) }
        return s
    }
}

/// Whether a value JSONSerialization produced is true/false (on Linux numbers also pass `is Bool`).
func isJSONBool(_ v: Any) -> Bool {
    guard let n = v as? NSNumber else { return false }
    return String(cString: n.objCType) == "c"
}

/// Reads typed fields and throws EvalSuiteError naming the case and field.
struct FieldReader {
    let file: String?
    let caseIndex: Int?
    var caseID: String?

    func error(_ field: String, _ reason: String) -> EvalSuiteError {
        EvalSuiteError(file: file, caseIndex: caseIndex, caseID: caseID, field: field, reason: reason)
    }

    func string(_ o: [String: Any], _ key: String, optional: Bool = false, prefix: String = "", nonEmpty: Bool = true,
                maxBytes: Int = EvalSuite.Limits.stringBytes) throws -> String? {
        guard let v = o[key], !(v is NSNull) else {
            if optional { return nil }
            throw error(prefix + key, "missing")
        }
        guard let s = v as? String else { throw error(prefix + key, "must be a string") }
        let n = s.utf8.count
        guard n <= maxBytes else { throw error(prefix + key, "\(n) bytes long; at most \(maxBytes). Shorten it") }
        if nonEmpty && s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw error(prefix + key, "must not be empty") }
        return s
    }

    func int(_ o: [String: Any], _ key: String, min: Int, prefix: String = "") throws -> Int? {
        guard let v = o[key], !(v is NSNull) else { return nil }
        guard !isJSONBool(v), let n = v as? NSNumber, n.doubleValue == n.doubleValue.rounded() else { throw error(prefix + key, "must be an integer") }
        // Beyond 2^53 a JSON number is not an exact integer, and intValue of a larger double is undefined.
        guard n.doubleValue.magnitude <= 9_007_199_254_740_992 else { throw error(prefix + key, "\(n) is out of range") }
        guard n.intValue >= min else { throw error(prefix + key, "must be ≥ \(min)") }
        return n.intValue
    }

    func number(_ v: Any, _ field: String) throws -> Float {
        guard !isJSONBool(v), let n = v as? NSNumber else { throw error(field, "must be a number") }
        let f = n.floatValue
        guard f.isFinite, f > 0 else { throw error(field, "must be a finite number > 0") }
        return f
    }

    func methods(_ o: [String: Any], _ key: String, prefix: String = "") throws -> [EditMethod]? {
        guard let v = o[key], !(v is NSNull) else { return nil }
        let names: [Any]
        if let s = v as? String { names = [s] } else if let a = v as? [Any] { names = a } else {
            throw error(prefix + key, "must be a method name or an array of names")
        }
        guard !names.isEmpty else { throw error(prefix + key, "must not be empty") }
        var out: [EditMethod] = []
        for (i, n) in names.enumerated() {
            guard let s = n as? String else { throw error("\(prefix)\(key)[\(i)]", "must be a string") }
            if s.lowercased() == "all" { out += EditMethod.allCases; continue }
            guard let m = EditMethod(rawValue: s.lowercased()) else {
                throw error("\(prefix)\(key)[\(i)]", "unknown method '\(s)'; choose from \(EditMethod.allCases.map(\.rawValue).joined(separator: ", ")) or all")
            }
            out.append(m)
        }
        var seen = Set<EditMethod>()
        return out.filter { seen.insert($0).inserted }
    }

    func strength(_ o: [String: Any], prefix: String) throws -> StrengthSpec {
        func list(_ single: String, _ plural: String) throws -> [Float]? {
            if o[single] != nil && o[plural] != nil { throw error(prefix + plural, "give '\(single)' or '\(plural)', not both") }
            if let v = o[single], !(v is NSNull) { return [try number(v, prefix + single)] }
            guard let v = o[plural], !(v is NSNull) else { return nil }
            guard let a = v as? [Any], !a.isEmpty else { throw error(prefix + plural, "must be a non-empty array of numbers") }
            guard a.count <= EvalSuite.Limits.strengthPoints else {
                throw error(prefix + plural, "\(a.count) values; at most \(EvalSuite.Limits.strengthPoints) per sweep. Split the sweep over several cases or suites")
            }
            return try a.enumerated().map { try number($1, "\(prefix)\(plural)[\($0)]") }
        }
        return StrengthSpec(ratios: try list("ratio", "ratios"), alphas: try list("alpha", "alphas"))
    }

    func rejectUnknown(_ o: [String: Any], allowed: Set<String>, prefix: String) throws {
        if let bad = o.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw error(prefix + bad, "unknown field; allowed: \(allowed.sorted().joined(separator: ", "))")
        }
    }

    func reference(_ v: Any) throws -> EvalReference {
        guard let o = v as? [String: Any] else { throw error("reference", "must be an object") }
        try rejectUnknown(o, allowed: ["source", "methods", "groups"], prefix: "reference.")
        let source = try string(o, "source", prefix: "reference.")!
        var methods: [String: EvalReference.Method] = [:]
        if let ms = o["methods"] {
            guard let mo = ms as? [String: Any] else { throw error("reference.methods", "must be an object keyed by method name") }
            for (name, mv) in mo {
                let p = "reference.methods.\(name)."
                guard EditMethod(rawValue: name) != nil else { throw error("reference.methods.\(name)", "unknown method '\(name)'") }
                guard let m = mv as? [String: Any] else { throw error("reference.methods.\(name)", "must be an object") }
                try rejectUnknown(m, allowed: ["label", "flips", "of", "best", "selectivity", "p_tgt", "flips_by_step"], prefix: p)
                func num(_ k: String) throws -> Double? {
                    guard let x = m[k], !(x is NSNull) else { return nil }
                    guard !isJSONBool(x), let n = x as? NSNumber else { throw error(p + k, "must be a number") }
                    return n.doubleValue
                }
                var steps: [Int]?
                if let a = m["flips_by_step"], !(a is NSNull) {
                    guard let arr = a as? [Any] else { throw error(p + "flips_by_step", "must be an array of integers") }
                    steps = try arr.enumerated().map { i, x in
                        guard !isJSONBool(x), let n = x as? NSNumber else { throw error("\(p)flips_by_step[\(i)]", "must be an integer") }
                        return n.intValue
                    }
                }
                methods[name] = EvalReference.Method(
                    label: try string(m, "label", optional: true, prefix: p) ?? name.uppercased(), flips: try int(m, "flips", min: 0, prefix: p),
                    of: try int(m, "of", min: 0, prefix: p), best: try num("best"), selectivity: try num("selectivity"),
                    pTarget: try num("p_tgt"), flipsByStep: steps)
            }
        }
        var groups: [String: [String: [String]]] = [:]
        if let gs = o["groups"] {
            guard let go = gs as? [String: Any] else { throw error("reference.groups", "must be an object keyed by group") }
            for (g, gv) in go {
                guard let rows = gv as? [String: Any] else { throw error("reference.groups.\(g)", "must be an object keyed by method name") }
                for (m, cells) in rows {
                    guard let a = cells as? [String] else { throw error("reference.groups.\(g).\(m)", "must be an array of strings") }
                    groups[g, default: [:]][m] = a
                }
            }
        }
        return EvalReference(source: source, methods: methods, groups: groups)
    }

    mutating func evalCase(_ c: Any) throws -> EvalCase {
        guard let o = c as? [String: Any] else { throw error("(case)", "a case must be a JSON object") }
        let id = try string(o, "id")!
        caseID = id
        try rejectUnknown(o, allowed: ["id", "group", "context", "filler", "edit", "method", "methods", "ratio", "ratios", "alpha", "alphas",
                                       "layers", "targets", "paraphrases", "neighbours", "fluency_prompt", "note"], prefix: "")
        let group = try string(o, "group", optional: true)
        let context = try string(o, "context", maxBytes: EvalSuite.Limits.contextBytes)!
        var filler: FillerSpec?
        if let f = o["filler"], !(f is NSNull) {
            guard let fo = f as? [String: Any] else { throw error("filler", "must be an object {\"tokens\": N, \"seed\": S}") }
            try rejectUnknown(fo, allowed: ["tokens", "seed"], prefix: "filler.")
            guard let t = try int(fo, "tokens", min: 0, prefix: "filler.") else { throw error("filler.tokens", "missing") }
            guard t <= EvalSuite.Limits.fillerTokens else {
                throw error("filler.tokens", "\(t) tokens; at most \(EvalSuite.Limits.fillerTokens). Lower it (longer filler needs a model with that much context anyway)")
            }
            let seed = try int(fo, "seed", min: 0, prefix: "filler.") ?? 1
            filler = FillerSpec(tokens: t, seed: UInt64(seed))
        }
        guard let e = o["edit"] else { throw error("edit", "missing") }
        let edit = try parseEdit(e)
        if o["method"] != nil && o["methods"] != nil { throw error("methods", "give 'method' or 'methods', not both") }
        let methods = try self.methods(o, "method") ?? self.methods(o, "methods")
        let strength = try self.strength(o, prefix: "")
        var layers: ClosedRange<Int>?
        if let l = o["layers"], !(l is NSNull) {
            guard let s = l as? String else { throw error("layers", "must be a string 'a-b'") }
            do { layers = try EditOptions.parseLayers(s) } catch { throw self.error("layers", "'\(s)' is not 'a-b' with a ≤ b") }
        }
        let targets = try queries(o, "targets", required: true, needsNew: { if case .pack = edit { return true }; return false }())
        let paraphrases = try queries(o, "paraphrases", required: false, needsNew: false)
        var neighbours: [NeighbourQuery] = []
        if let n = o["neighbours"], !(n is NSNull) {
            guard let a = n as? [Any] else { throw error("neighbours", "must be an array of {\"query\", \"answer\"}") }
            try checkQueryCount(a, "neighbours")
            for (i, q) in a.enumerated() {
                let p = "neighbours[\(i)]."
                guard let qo = q as? [String: Any] else { throw error("neighbours[\(i)]", "must be an object {\"query\", \"answer\"}") }
                try rejectUnknown(qo, allowed: ["query", "answer"], prefix: p)
                neighbours.append(NeighbourQuery(query: try string(qo, "query", prefix: p)!, answer: try string(qo, "answer", prefix: p)!))
            }
        }
        let fluency = try string(o, "fluency_prompt", optional: true)
        return EvalCase(id: id, group: group, context: context, filler: filler, edit: edit, methods: methods, strength: strength,
                        layers: layers, targets: targets, paraphrases: paraphrases, neighbours: neighbours, fluencyPrompt: fluency)
    }

    func parseEdit(_ e: Any) throws -> EvalEdit {
        guard let o = e as? [String: Any] else { throw error("edit", "must be an object, e.g. {\"from\": \"Alice lives in Paris.\", \"to\": \"Alice lives in Madrid.\"}") }
        let type = try string(o, "type", optional: true, prefix: "edit.") ?? "sentences"
        switch type {
        case "sentences":
            try rejectUnknown(o, allowed: ["type", "from", "to"], prefix: "edit.")
            return .sentences(from: try string(o, "from", prefix: "edit.")!, to: try string(o, "to", prefix: "edit.")!)
        case "pack":
            try rejectUnknown(o, allowed: ["type", "entity", "from", "to", "probe"], prefix: "edit.")
            let probe = try string(o, "probe", optional: true, prefix: "edit.")
            if let probe, !(probe.contains("{entity}") && probe.contains("{value}")) {
                throw error("edit.probe", "must contain {entity} and {value}")
            }
            return .pack(entity: try string(o, "entity", prefix: "edit.")!, from: try string(o, "from", prefix: "edit.")!,
                         to: try string(o, "to", prefix: "edit.")!, probe: probe)
        case "forget":
            try rejectUnknown(o, allowed: ["type", "fact", "entity"], prefix: "edit.")
            return .forget(fact: try string(o, "fact", prefix: "edit.")!, entity: try string(o, "entity", prefix: "edit.")!)
        case "erase":
            try rejectUnknown(o, allowed: ["type", "fact", "neutral"], prefix: "edit.")
            return .erase(fact: try string(o, "fact", prefix: "edit.")!, neutral: try string(o, "neutral", optional: true, prefix: "edit."))
        default:
            throw error("edit.type", "unknown edit type '\(type)'; choose sentences, pack, forget or erase")
        }
    }

    func checkQueryCount(_ a: [Any], _ key: String) throws {
        guard a.count <= EvalSuite.Limits.queries else {
            throw error(key, "\(a.count) queries; at most \(EvalSuite.Limits.queries) per case. Split them over several cases")
        }
    }

    func queries(_ o: [String: Any], _ key: String, required: Bool, needsNew: Bool) throws -> [EvalQuery] {
        guard let v = o[key], !(v is NSNull) else {
            if required { throw error(key, "missing; give at least one {\"query\", \"old\", \"new\"}") }
            return []
        }
        guard let a = v as? [Any] else { throw error(key, "must be an array of {\"query\", \"old\", \"new\"}") }
        if required && a.isEmpty { throw error(key, "must have at least one query") }
        try checkQueryCount(a, key)
        return try a.enumerated().map { i, q in
            let p = "\(key)[\(i)]."
            guard let qo = q as? [String: Any] else { throw error("\(key)[\(i)]", "must be an object {\"query\", \"old\", \"new\"}") }
            try rejectUnknown(qo, allowed: ["query", "old", "new"], prefix: p)
            let new = try string(qo, "new", optional: !needsNew, prefix: p)
            return EvalQuery(query: try string(qo, "query", prefix: p)!, old: try string(qo, "old", prefix: p)!, new: new)
        }
    }
}

// MARK: Filler

/// Deterministic filler text: whole sentences drawn with a seeded generator (SplitMix64) from
/// neutral sentences the demo corpus uses as filler.
public enum EvalFiller {
    public static let sentences = [
        "The weather was mild that day.", "It was a quiet morning in the town.",
        "The shops opened early and the streets were busy.", "Some people like to walk in the park after lunch.",
        "The train was late again, as it often is.", "There is a small cafe near the station.",
        "The river runs through the middle of the town.", "Many people read the news in the morning.",
        "The market sells fresh bread and fruit.", "It rained for most of the afternoon.",
        "The library is open every day of the week.", "A new bridge was built over the river last spring.",
        "The children played in the garden until dinner.", "Nobody knew what time the meeting would start.",
        "The old clock in the square still works.", "There was a concert in the park on Sunday.",
        "The bus stops right outside the school.", "In the evening the lights of the city came on.",
        "The museum has a large collection of old maps.", "Everyone agreed that the soup was very good.",
    ]

    /// Sentences joined by spaces until `count(text) ≥ spec.tokens` (empty for 0 tokens).
    ///
    /// Linear in the filler's length: the text grows by sentences whose token counts are summed
    /// (each counted once, with its joining space), and the whole text is recounted only when that
    /// sum reaches the goal — a tokeniser may merge across a join, so the sum is only an estimate,
    /// and any shortfall found by the recount is filled the same way.
    public static func text(_ spec: FillerSpec, count: (String) -> Int) -> String {
        guard spec.tokens > 0 else { return "" }
        var rng = SplitMix64(seed: spec.seed)
        let costs = sentences.map { max(1, count(" " + $0)) }
        var text = ""
        var counted = -1
        var estimate = 0
        while true {
            while estimate < spec.tokens {
                let i = Int(rng.next() % UInt64(sentences.count))
                text += text.isEmpty ? sentences[i] : " " + sentences[i]
                estimate += costs[i]
            }
            let previous = counted
            counted = count(text)
            // A count that stops growing is no tokeniser's; returning then keeps the loop finite.
            if counted >= spec.tokens || counted <= previous { return text }
            // The next pass adds at least one sentence; the estimate restarts from the true count.
            estimate = counted
        }
    }}
