/// Errors of edit packs; each names the file and says what to do next.
public enum PackError: Error, CustomStringConvertible, Equatable {
    /// The file does not exist or cannot be opened.
    case unreadable(file: String, reason: String)
    /// The file is truncated, not an SQLite database, or lacks the pack tables.
    case corrupt(file: String, reason: String)
    /// A blob fails its checksum, does not decompress, or has the wrong size.
    case badBlob(file: String, entry: String, reason: String)
    /// The pack was written by a newer schema than this build reads.
    case newerSchema(file: String, found: Int, supported: Int)
    /// A value (or pair) the caller asked for is not in the pack.
    case missingValue(file: String, value: String, nearest: [String])
    /// The pack does not fit: compiled for another model (`otherModel`), written by a schema before model
    /// identity v2, or not covering what the caller asked for (layers, heads, or an unfinished compile).
    case incompatible(file: String, reason: String)
    /// An SQLite failure not covered above.
    case sqlite(file: String, reason: String)
    /// Bad input to the compiler (vocabulary, template, options).
    case invalidInput(String)
    /// Another compile or merge (process `pid`, when it has recorded it) is writing this pack.
    case locked(file: String, pid: Int?)

    public var description: String {
        switch self {
        case .unreadable(let f, let r):
            return "cannot open pack \(f): \(r)"
        case .corrupt(let f, let r):
            return "pack \(f) is damaged: \(r); recompile it or copy it again"
        case .badBlob(let f, let e, let r):
            return "pack \(f): entry '\(e)' is corrupt (\(r)); run `rwkv-edit packs verify` and recompile the pack"
        case .newerSchema(let f, let found, let supported):
            return "pack \(f) has schema version \(found), newer than the \(supported) this build reads; update rwkv-edit"
        case .missingValue(let f, let v, let near):
            return "pack \(f) has no entry '\(v)'" + (near.isEmpty ? "" : "; nearest: \(near.joined(separator: ", "))")
        case .incompatible(let f, let r):
            return "pack \(f) cannot be used here: \(r)"
        case .sqlite(let f, let r):
            return "pack \(f): SQLite error: \(r)"
        case .invalidInput(let r):
            return r
        case .locked(let f, let pid):
            return "another compile\(pid.map { " (pid \($0))" } ?? "") is writing \(f); wait for it to finish, or stop it and run again (the new compile resumes its work)"
        }
    }
}

extension PackError {
    /// The pack was compiled for another model; `why` says which part of the identity differs
    /// (`ModelIdentity.difference(from:)`: dims, vocabulary or weights).
    public static func otherModel(file: String, _ why: String) -> PackError {
        .incompatible(file: file, reason: "it was compiled for another model (\(why)); compile a pack for this model with `rwkv-edit compile --model MODEL --vocab VALUES -o \(file)` (`--force` replaces the old pack)")
    }
}
