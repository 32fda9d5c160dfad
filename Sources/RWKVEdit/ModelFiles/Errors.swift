import Foundation

/// Errors from reading model, vocabulary and state files. Each names the file and says what to do.
public enum RWKVError: Error, CustomStringConvertible, Equatable {
    case fileNotFound(String)
    case unreadable(file: String, reason: String)
    case malformed(file: String, reason: String)
    case unsupported(file: String, reason: String)
    case missingTensor(file: String, name: String)
    case shapeMismatch(file: String, name: String, expected: [Int], found: [Int])
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .fileNotFound(let f):
            return "\(f): no such file. Check the path (model files end in .pth, .safetensors or .gguf)."
        case .unreadable(let f, let r):
            return "\(f): cannot be read (\(r))."
        case .malformed(let f, let r):
            return "\(f): malformed file: \(r). The file may be truncated or not what its name says; re-export or re-download it."
        case .unsupported(let f, let r):
            return "\(f): unsupported: \(r)."
        case .missingTensor(let f, let n):
            return "\(f): tensor '\(n)' is missing; is this an RWKV-7 (x070) model?"
        case .shapeMismatch(let f, let n, let e, let s):
            return "\(f): tensor '\(n)' has shape \(s), expected \(e); the file does not describe a consistent RWKV-7 model."
        case .invalidArgument(let m):
            return m
        }
    }
}
