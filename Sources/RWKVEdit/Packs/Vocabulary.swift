import Foundation

/// A calibration vocabulary (prompts/README.md): one value per line, `#` comments, `name = surface`
/// aliases, and `@property`, `@template`, `@probe` directives.
public struct Vocabulary: Sendable, Equatable {
    public var name: String
    public var property: String?
    public var template: String?
    /// Further @template lines (the calibration averages the states of all templates).
    public var extraTemplates: [String] = []
    public var probeTemplate: String?
    /// The question form that asks for the value ("Where does {entity} live? {entity} lives in").
    public var queryTemplate: String?
    public var values: [(name: String, surface: String)]

    public static let genericTemplate = "The answer is {value}."

    /// Bounds on what a values file may hold, checked before any work that grows with it: a value or
    /// template is a phrase, not a document, and every value costs model passes when compiled (a
    /// 100,000-character line took over a minute and 3.6 GB before this limit).
    public enum Limits {
        /// Bytes of one line (UTF-8, after the line ending is removed).
        public static let lineBytes = 1024
        /// Values in one file.
        public static let values = 65_536
        /// Bytes of the whole file.
        public static let fileBytes = 16 << 20
    }

    public static func == (a: Vocabulary, b: Vocabulary) -> Bool {
        a.name == b.name && a.property == b.property && a.template == b.template && a.extraTemplates == b.extraTemplates && a.probeTemplate == b.probeTemplate && a.queryTemplate == b.queryTemplate
            && a.values.map(\.name) == b.values.map(\.name) && a.values.map(\.surface) == b.values.map(\.surface)
    }

    public init(name: String, property: String? = nil, template: String? = nil, probeTemplate: String? = nil,
                values: [(name: String, surface: String)]) {
        self.name = name; self.property = property; self.template = template; self.probeTemplate = probeTemplate; self.values = values
    }

    public static func load(path: String) throws -> Vocabulary {
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size > Limits.fileBytes {
            throw PackError.invalidInput("values file \(path) is \(size) bytes; at most \(Limits.fileBytes) are read. Split it into several packs")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PackError.invalidInput("cannot read vocabulary file \(path)")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw PackError.invalidInput("vocabulary file \(path) is not UTF-8") }
        let stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        return try parse(text, name: stem, file: path)
    }

    public static func parse(_ text: String, name: String, file: String = "<text>") throws -> Vocabulary {
        var v = Vocabulary(name: name, values: [])
        var seen = Set<String>()
        for (i, raw) in TextLines.split(text).enumerated() {
            try checkLineLength(raw, file: file, line: i + 1)
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("@") {
                let parts = line.dropFirst().split(separator: " ", maxSplits: 1).map(String.init)
                let value = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
                switch parts.first ?? "" {
                case "property": v.property = value
                case "template": if v.template == nil { v.template = value } else { v.extraTemplates.append(value) }
                case "probe": v.probeTemplate = value
                case "query": v.queryTemplate = value
                default: throw PackError.invalidInput("\(file):\(i + 1): unknown directive '\(line)' (known: @property, @template, @probe, @query)")
                }
                continue
            }
            var nm = line, surface = line
            if let eq = line.firstIndex(of: "=") {
                nm = line[..<eq].trimmingCharacters(in: .whitespaces)
                surface = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            }
            guard !nm.isEmpty, !surface.isEmpty else { throw PackError.invalidInput("\(file):\(i + 1): empty name or surface text") }
            guard seen.insert(nm).inserted else { throw PackError.invalidInput("\(file):\(i + 1): '\(nm)' appears twice") }
            guard v.values.count < Limits.values else {
                throw PackError.invalidInput("\(file):\(i + 1): more than \(Limits.values) values; split the file into several packs")
            }
            v.values.append((nm, surface))
        }
        guard v.values.count >= 2 else { throw PackError.invalidInput("vocabulary \(file) needs at least two values (it has \(v.values.count))") }
        for t in (v.template.map { [$0] } ?? []) + v.extraTemplates { try checkTemplate(t, what: "@template in \(file)") }
        if let p = v.probeTemplate {
            try checkTemplate(p, what: "@probe in \(file)")
            guard p.contains("{entity}") else { throw PackError.invalidInput("@probe in \(file) must contain {entity}") }
        }
        return v
    }

    /// Refuses an over-long line before it is trimmed, split or tokenised.
    static func checkLineLength(_ line: Substring, file: String, line number: Int) throws {
        let n = line.utf8.count
        guard n <= Limits.lineBytes else {
            throw PackError.invalidInput("\(file):\(number): the line is \(n) bytes; a value, alias or directive may have at most \(Limits.lineBytes). Shorten it (values are names or short phrases)")
        }
    }

    public static func checkTemplate(_ t: String, what: String) throws {
        guard t.contains("{value}") else { throw PackError.invalidInput("\(what) '\(t)' has no {value} placeholder") }
    }

    /// Parses a pairs file: one "A -> B" (or "A, B") per line, `#` comments.
    public static func parsePairs(_ text: String, file: String) throws -> [(String, String)] {
        var out: [(String, String)] = []
        for (i, raw) in TextLines.split(text).enumerated() {
            try checkLineLength(raw, file: file, line: i + 1)
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let sep = line.contains("->") ? "->" : ","
            let parts = line.components(separatedBy: sep).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw PackError.invalidInput("\(file):\(i + 1): expected 'A -> B', got '\(line)'")
            }
            out.append((parts[0], parts[1]))
        }
        return out
    }
}

/// Fills a template: {value} with the value's surface text, {entity} with the entity.
public func fillTemplate(_ t: String, value: String, entity: String) -> String {
    t.replacingOccurrences(of: "{value}", with: value).replacingOccurrences(of: "{entity}", with: entity)
}

/// Values whose answers begin with the same token (" " + surface, as the answer after a query): a
/// verdict reads an answer's first token, so an edit between two of them cannot be judged by top-1.
public struct SharedFirstToken: Sendable, Equatable {
    /// The shared token's text.
    public let token: String
    /// The values' names, in the order given.
    public let values: [String]

    /// The groups of two or more values sharing a first token, in token order.
    public static func groups(_ values: [(name: String, surface: String)], tokenizer: WorldTokenizer) -> [SharedFirstToken] {
        var byToken: [Int: [String]] = [:]
        for v in values { if let first = tokenizer.encode(" " + v.surface).first { byToken[first, default: []].append(v.name) } }
        return byToken.filter { $0.value.count > 1 }.sorted { $0.key < $1.key }.map { SharedFirstToken(token: tokenizer.decode([$0.key]), values: $0.value) }
    }

    /// The warning `compile` and `packs inspect` print.
    public var warning: String {
        "\(values.joined(separator: ", ")) begin with the same token \(token.debugDescription) after a space; edits between them cannot be verified by the top-1 answer"
    }
}
