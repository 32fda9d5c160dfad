import Foundation

/// The RWKV "World" tokenizer: a vocabulary of byte strings and greedy longest-match over bytes.
/// Any byte sequence (valid UTF-8 or not) round-trips exactly, because every single byte is a token.
public struct WorldTokenizer: Sendable {
    /// Bytes of each token id; id 0 (end of text) is empty.
    public let tokens: [[UInt8]]
    /// Trie as a map (node · 256 + byte) → child node; `tokenAt[node]` is the id ending there, or −1.
    private let edges: [Int: Int32]
    private let tokenAt: [Int32]

    public var count: Int { tokens.count }

    /// Builds from token byte strings indexed by id.
    public init(tokens: [[UInt8]]) {
        self.tokens = tokens
        var edges: [Int: Int32] = [:]
        var tokenAt: [Int32] = [-1]
        for (id, bytes) in tokens.enumerated() where !bytes.isEmpty {
            var node = 0
            for b in bytes {
                let key = node << 8 | Int(b)
                if let next = edges[key] { node = Int(next) } else {
                    tokenAt.append(-1)
                    edges[key] = Int32(tokenAt.count - 1)
                    node = tokenAt.count - 1
                }
            }
            // The first id listed for a byte string wins, as in the official tokenizer.
            if tokenAt[node] < 0 { tokenAt[node] = Int32(id) }
        }
        self.edges = edges
        self.tokenAt = tokenAt
    }

    /// Whether the file starts like a World vocabulary (its first lines all `<id> <literal> <length>`
    /// with ids 1, 2, 3…): to tell a tokenizer passed where another text file belongs. Reads 4 KiB.
    public static func looksLikeVocabularyFile(_ path: String) -> Bool {
        guard let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        guard let head = try? h.read(upToCount: 4096), !head.isEmpty else { return false }
        let lines = head.split(separator: UInt8(ascii: "\n")).dropLast().prefix(8)
        guard lines.count >= 3 else { return false }
        return lines.enumerated().allSatisfy { i, raw in
            var line = Array(raw)
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            guard let first = line.firstIndex(of: 0x20), let last = line.lastIndex(of: 0x20), last > first,
                  Int(String(decoding: line[..<first], as: UTF8.self)) == i + 1,
                  Int(String(decoding: line[(last + 1)...], as: UTF8.self)) != nil else { return false }
            return PythonLiteral.bytes(line[(first + 1)..<last]) != nil
        }
    }

    /// Loads a vocabulary file in the RWKV World format: `<id> <python str/bytes literal> <byte length>`.
    public init(vocabularyFile path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            if !FileManager.default.fileExists(atPath: path) {
                throw RWKVError.unreadable(file: path, reason: "no such World vocabulary (tokenizer) file; give one with lines of `<id> <python literal> <byte length>`, e.g. rwkv_vocab_v20230424.txt, or put <model>-vocab.txt beside the model")
            }
            throw RWKVError.unreadable(file: path, reason: "cannot read the vocabulary file")
        }
        var tokens: [[UInt8]] = [[]]
        var lineNumber = 0
        for lineSub in TextLines.split(data) {
            lineNumber += 1
            let line = Array(lineSub)
            if line.allSatisfy({ $0 == 0x20 }) { continue }
            func bad(_ why: String) -> RWKVError {
                .malformed(file: path, reason: "line \(lineNumber): \(why) (expected `<id> <python literal> <byte length>`)")
            }
            guard let firstSpace = line.firstIndex(of: 0x20), let lastSpace = line.lastIndex(of: 0x20), lastSpace > firstSpace,
                  let id = Int(String(decoding: line[..<firstSpace], as: UTF8.self)),
                  let length = Int(String(decoding: line[(lastSpace + 1)...], as: UTF8.self))
            else { throw bad("cannot split into id, literal and length") }
            guard id == tokens.count else { throw bad("id \(id) out of order, expected \(tokens.count)") }
            guard let bytes = PythonLiteral.bytes(line[(firstSpace + 1)..<lastSpace]) else {
                throw bad("the token is not a valid python str or bytes literal")
            }
            guard bytes.count == length else { throw bad("the token has \(bytes.count) bytes but the line says \(length)") }
            tokens.append(bytes)
        }
        guard tokens.count > 1 else { throw RWKVError.malformed(file: path, reason: "the vocabulary is empty") }
        self.init(tokens: tokens)
    }

    public func encode(_ text: String) -> [Int] { encode(bytes: Array(text.utf8)) }

    public func encode(bytes: [UInt8]) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(bytes.count / 3 + 1)
        var i = 0
        while i < bytes.count {
            var node = 0, best = -1, bestEnd = i + 1
            var j = i
            while j < bytes.count, let next = edges[node << 8 | Int(bytes[j])] {
                node = Int(next)
                j += 1
                if tokenAt[node] >= 0 { best = Int(tokenAt[node]); bestEnd = j }
            }
            // A byte with no token of its own cannot be encoded: skip rather than loop forever.
            if best >= 0 { out.append(best) }
            i = bestEnd
        }
        return out
    }

    public func decodeBytes(_ ids: [Int]) -> [UInt8] {
        var out: [UInt8] = []
        for id in ids where id >= 0 && id < tokens.count { out.append(contentsOf: tokens[id]) }
        return out
    }

    /// Decoded text; invalid UTF-8 becomes U+FFFD (use `decodeBytes` for the exact bytes).
    public func decode(_ ids: [Int]) -> String { String(decoding: decodeBytes(ids), as: UTF8.self) }
}

/// Decodes the python `repr` literals of the vocabulary file: 'str' (UTF-8 encoded) or b'bytes'.
enum PythonLiteral {
    static func bytes(_ lit: ArraySlice<UInt8>) -> [UInt8]? {
        var s = Array(lit)
        var isBytes = false
        if s.first == UInt8(ascii: "b") { isBytes = true; s.removeFirst() }
        guard s.count >= 2, let q = s.first, q == s.last, q == UInt8(ascii: "'") || q == UInt8(ascii: "\"") else { return nil }
        let body = s[1..<(s.count - 1)]
        var out: [UInt8] = []
        var i = body.startIndex
        func hex(_ n: Int) -> UInt32? {
            guard i + n <= body.endIndex, let v = UInt32(String(decoding: body[i..<(i + n)], as: UTF8.self), radix: 16) else { return nil }
            i += n
            return v
        }
        func appendScalar(_ v: UInt32) -> Bool {
            if isBytes { guard v < 256 else { return false }; out.append(UInt8(v)); return true }
            guard let u = Unicode.Scalar(v) else { return false }
            out.append(contentsOf: Array(String(Character(u)).utf8))
            return true
        }
        while i < body.endIndex {
            let c = body[i]
            i += 1
            guard c == UInt8(ascii: "\\") else { out.append(c); continue }
            guard i < body.endIndex else { return nil }
            let e = body[i]
            i += 1
            switch e {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "0"): out.append(0x00)
            case UInt8(ascii: "a"): out.append(0x07)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "v"): out.append(0x0B)
            case UInt8(ascii: "\\"), UInt8(ascii: "'"), UInt8(ascii: "\""): out.append(e)
            case UInt8(ascii: "x"): guard let v = hex(2), appendScalar(v) else { return nil }
            case UInt8(ascii: "u") where !isBytes: guard let v = hex(4), appendScalar(v) else { return nil }
            case UInt8(ascii: "U") where !isBytes: guard let v = hex(8), appendScalar(v) else { return nil }
            default: return nil
            }
        }
        return out
    }
}
