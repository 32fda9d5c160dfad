/// Errors of the editing layer; each says what to change.
public enum EditError: Error, CustomStringConvertible, Equatable {
    case unknownMethod(String)
    case emptyText(String)
    case layerRange(String)
    case headOutOfRange(Int, heads: Int)
    case nothingToUndo
    /// The conversation does not hold the fact an edit names.
    case notInContext(String)
    case incompatibleState(String)
    case numerical(String)
    case invalid(String)

    public var description: String {
        switch self {
        case .unknownMethod(let m):
            return "unknown edit method '\(m)'; choose one of: \(EditMethod.allCases.map(\.rawValue).joined(separator: ", "))"
        case .emptyText(let what):
            return "\(what) is empty or encodes to no tokens; give a non-empty sentence"
        case .layerRange(let why):
            return "bad layer range: \(why)"
        case .headOutOfRange(let h, let n):
            return "head \(h) does not exist; this model has heads 0…\(n - 1)"
        case .nothingToUndo:
            return "nothing to undo: no edit has been applied in this session"
        case .incompatibleState(let why):
            return "the state does not fit this model: \(why)"
        case .numerical(let why):
            return "numerical failure: \(why)"
        case .notInContext(let why):
            return why
        case .invalid(let why):
            return why
        }
    }
}
