import Foundation

/// One edit in a conversation's history, as a saved state carries it.
public struct EditRecord: Codable, Sendable, Equatable {
    public var description: String
    public var method: String
    public var alpha: Float
    public var ratio: Float?
    /// The verdict of a verified edit; nil for an unverified one (`EditSession.edit(from:to:)`).
    public var verdict: EditVerdict?

    public init(description: String, method: String, alpha: Float, ratio: Float?, verdict: EditVerdict?) {
        self.description = description; self.method = method; self.alpha = alpha; self.ratio = ratio; self.verdict = verdict
    }
}

/// A state file with its provenance: the tensors of `State.save` (the official package's keys) and, in
/// the safetensors metadata, the model's identity, the number of tokens fed, the edit log and a SHA-256
/// of the state's values. Reading checks the checksum and the model before the state is used.
public struct SavedState: Sendable {
    public static let formatName = "rwkv-edit state 1"
    enum Key {
        static let format = "rwkv_edit.format", identity = "rwkv_edit.model_identity", tokens = "rwkv_edit.tokens"
        static let edits = "rwkv_edit.edits", sha256 = "rwkv_edit.sha256"
    }
    /// The edit log and its JSON are bounded, so that a hostile file cannot make a loader hold much.
    public static let maxEdits = 100_000

    public var state: State
    /// Tokens the state has read since it was empty.
    public var tokens: Int
    /// The edits applied to it, oldest first.
    public var edits: [EditRecord]
    /// The model it belongs to; nil for a state file without provenance (e.g. the official package's dump).
    public var identity: ModelIdentity?

    public init(state: State, tokens: Int, edits: [EditRecord], identity: ModelIdentity?) {
        self.state = state; self.tokens = tokens; self.edits = edits; self.identity = identity
    }

    /// SHA-256 over every value of the state (att_x_prev, wkv, ffn_x_prev, each in memory order, f32 LE).
    public static func checksum(_ s: State) -> String {
        var h = SHA256()
        for part in [s.attXPrev, s.wkv, s.ffnXPrev] {
            part.map { $0.bitPattern.littleEndian }.withUnsafeBytes { h.update($0) }
        }
        return SHA256.hex(h.finalize())
    }

    /// Writes the file (a temporary file, then a rename: never half-written).
    public func write(to path: String) throws {
        // Without an identity there is nothing to check a reader against: a plain state file (read by
        // shape only), with the token count.
        guard let identity else {
            try state.save(to: path, metadata: [Key.tokens: String(tokens)])
            return
        }
        var meta: [String: String] = [Key.format: Self.formatName, Key.tokens: String(tokens), Key.sha256: Self.checksum(state)]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        meta[Key.edits] = String(decoding: try encoder.encode(edits), as: UTF8.self)
        meta[Key.identity] = String(decoding: try encoder.encode(identity), as: UTF8.self)
        try state.save(to: path, metadata: meta)
    }

    /// Reads a state for `model`: a file written by `write` must match its checksum and the model's
    /// identity; a file without provenance is read by shape only (`identity` nil, no edit log).
    public static func read(from path: String, model: RWKVModel, tokenizer: WorldTokenizer) throws -> SavedState {
        let meta = try SafeTensorsFile(path: path).metadata
        let state = try State.load(from: path, config: model.config)
        guard let format = meta[Key.format] else { return SavedState(state: state, tokens: 0, edits: [], identity: nil) }
        guard format == formatName else {
            throw StateFileError.unsupported(file: path, reason: "it is a '\(format)' file; this version reads '\(formatName)'")
        }
        guard let sum = meta[Key.sha256] else { throw StateFileError.missingField(file: path, field: Key.sha256) }
        guard sum == checksum(state) else { throw StateFileError.checksumMismatch(file: path) }
        guard let tokensText = meta[Key.tokens], let tokens = Int(tokensText), tokens >= 0 else {
            throw StateFileError.invalidField(file: path, field: Key.tokens, reason: "not a token count")
        }
        guard let identityText = meta[Key.identity] else { throw StateFileError.missingField(file: path, field: Key.identity) }
        let identity: ModelIdentity
        do { identity = try JSONDecoder().decode(ModelIdentity.self, from: Data(identityText.utf8)) } catch {
            throw StateFileError.invalidField(file: path, field: Key.identity, reason: "\(error)")
        }
        if let why = identity.difference(from: ModelIdentity(model: model, tokenizer: tokenizer)) {
            throw StateFileError.otherModel(file: path, why: why)
        }
        let edits: [EditRecord]
        do { edits = try JSONDecoder().decode([EditRecord].self, from: Data((meta[Key.edits] ?? "[]").utf8)) } catch {
            throw StateFileError.invalidField(file: path, field: Key.edits, reason: "\(error)")
        }
        guard edits.count <= maxEdits else {
            throw StateFileError.invalidField(file: path, field: Key.edits, reason: "\(edits.count) edits, more than the \(maxEdits) a state may carry")
        }
        return SavedState(state: state, tokens: tokens, edits: edits, identity: identity)
    }
}

/// Why a state file cannot be used; each names the file and what to do.
public enum StateFileError: Error, CustomStringConvertible, Equatable {
    case checksumMismatch(file: String)
    case otherModel(file: String, why: String)
    case missingField(file: String, field: String)
    case invalidField(file: String, field: String, reason: String)
    case unsupported(file: String, reason: String)

    public var description: String {
        switch self {
        case .checksumMismatch(let f):
            return "\(f): the state's values do not match the checksum it was saved with: the file was changed or damaged after saving. Save the state again."
        case .otherModel(let f, let why):
            return "\(f): the state was saved with another model (\(why)). Load it with the model it was saved with."
        case .missingField(let f, let field):
            return "\(f): the state file's metadata lacks '\(field)'. The file is damaged; save the state again."
        case .invalidField(let f, let field, let reason):
            return "\(f): the state file's '\(field)' is invalid (\(reason)). The file is damaged; save the state again."
        case .unsupported(let f, let reason):
            return "\(f): unsupported state file: \(reason)."
        }
    }
}
