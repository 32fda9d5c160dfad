import Foundation

/// The state files of the RWKV runtimes: the same numbers (per layer the two token shifts and the WKV
/// matrices) in different clothes. `StateFile` reads any of them (detected by magic or keys) and writes
/// each one.
public enum StateFormat: String, CaseIterable, Sendable {
    /// Ours: safetensors with the official package's keys (`layerN.att_x_prev`, `layerN.wkv`,
    /// `layerN.ffn_x_prev`) plus provenance metadata (`SavedState`).
    case native
    /// llama.cpp `llama_state_save_file` (`--prompt-cache`): magic `ggsn`, the prompt tokens, the
    /// architecture name, then the recurrent memory.
    case llamaSession = "llama-session"
    /// llama.cpp `llama_state_seq_save_file`: magic `ggsq`, one sequence's memory without architecture.
    case llamaSeq = "llama-seq"
    /// RWKV-PEFT state tuning as RWKV-Runner loads it: a torch zip with `blocks.{i}.att.time_state`
    /// (H, N, N) value-major; no shifts.
    case pth
    /// web-rwkv / ai00 `.state`: safetensors, `blocks.{i}.att.time_state` F16, key-major [head][key][value];
    /// no shifts.
    case webrwkv
    /// rwkv.cpp's flat f32 state buffer: per layer [ffn shift (C), att shift (C), WKV (H·N·N)]; no header.
    case rwkvcpp

    /// Whether the format stores the token shifts; the others start them at zero on import.
    public var carriesShifts: Bool {
        switch self {
        case .native, .llamaSession, .llamaSeq, .rwkvcpp: return true
        case .pth, .webrwkv: return false
        }
    }

    /// The format a file name's extension asks for when writing, if it names one.
    public static func forExtension(of path: String) -> StateFormat? {
        switch (path as NSString).pathExtension.lowercased() {
        case "safetensors": return .native
        case "session", "ggsn": return .llamaSession
        case "ggsq", "seq": return .llamaSeq
        case "pth", "pt": return .pth
        case "state", "st": return .webrwkv
        case "rwkvcpp", "f32": return .rwkvcpp
        default: return nil
        }
    }
}

/// The dimensions a state has; a model's config fixes them.
public struct StateShape: Sendable, Equatable, CustomStringConvertible {
    public var nLayer: Int
    public var nEmbd: Int
    public var nHead: Int
    public var headSize: Int

    public init(nLayer: Int, nEmbd: Int, nHead: Int, headSize: Int) {
        self.nLayer = nLayer; self.nEmbd = nEmbd; self.nHead = nHead; self.headSize = headSize
    }
    public init(_ c: ModelConfig) { self.init(nLayer: c.nLayer, nEmbd: c.nEmbd, nHead: c.nHead, headSize: c.headSize) }
    public init(_ s: State) { self.init(nLayer: s.nLayer, nEmbd: s.nEmbd, nHead: s.nHead, headSize: s.headSize) }

    public var description: String { "\(nLayer) layers × \(nHead) heads of \(headSize), n_embd \(nEmbd)" }

    /// Values per layer of the WKV matrices (H·N·N).
    var wkvPerLayer: Int { nHead * headSize * headSize }

    /// The first dimension that differs from `other`, as "layers 3 in the file, 6 in the model".
    func difference(file: StateShape) -> StateFormatError.Dimension? {
        if file.nLayer != nLayer { return .init(name: "layers", inFile: file.nLayer, expected: nLayer) }
        if file.nEmbd != nEmbd { return .init(name: "n_embd", inFile: file.nEmbd, expected: nEmbd) }
        if file.nHead != nHead { return .init(name: "heads", inFile: file.nHead, expected: nHead) }
        if file.headSize != headSize { return .init(name: "head size", inFile: file.headSize, expected: headSize) }
        return nil
    }

    /// Refuses sizes no real model has before anything is allocated from them.
    func checkPlausible(file: String) throws {
        guard nLayer >= 1, nLayer <= 4096, nHead >= 1, headSize >= 1, headSize <= 4096, nEmbd == nHead * headSize,
              nEmbd <= 1 << 20, nLayer * (2 * nEmbd + wkvPerLayer) <= 1 << 34 else {
            throw StateFormatError.malformed(file: file, reason: "it describes \(self), which no RWKV-7 model has")
        }
    }
}

/// A state read from a file of any format.
public struct ImportedState: Sendable {
    public var state: State
    public var format: StateFormat
    /// Prompt tokens the file lists (llama.cpp files); empty for the others.
    public var tokenIDs: [Int32]
    /// Tokens the state has read, where the file says (llama.cpp: its token list; native: its metadata).
    public var tokenCount: Int
    /// The edit log of a native file; empty elsewhere.
    public var edits: [EditRecord]
}

/// Why a state file cannot be read or written; each names the file and what differs.
public enum StateFormatError: Error, CustomStringConvertible, Equatable, LocalizedError {
    public struct Dimension: Sendable, Equatable {
        public var name: String
        public var inFile: Int
        public var expected: Int
    }
    case unrecognized(file: String, reason: String)
    case truncated(file: String, field: String, needed: Int, available: Int)
    case malformed(file: String, reason: String)
    case otherShape(file: String, format: StateFormat, dimension: Dimension)
    case wrongDType(file: String, tensor: String, found: String, expected: String)
    case otherArchitecture(file: String, found: String)
    case unsupportedVersion(file: String, format: StateFormat, found: UInt32, supported: UInt32)
    case notFinite(file: String, tensor: String, index: Int)
    case needsModel(file: String, format: StateFormat)
    case unknownOutputFormat(file: String)

    public var description: String {
        switch self {
        case .unrecognized(let f, let r):
            return "\(f): not a state file this version reads (\(r)). Formats: \(StateFormat.allCases.map(\.rawValue).joined(separator: ", "))."
        case .truncated(let f, let field, let n, let a):
            return "\(f): truncated state file: \(field) needs \(n) bytes, \(a) remain. Export the state again."
        case .malformed(let f, let r):
            return "\(f): malformed state file: \(r)."
        case .otherShape(let f, let format, let d):
            return "\(f): the \(format.rawValue) state has \(d.name) \(d.inFile), the model \(d.expected): it was saved with another model. Load it with the model it was saved with."
        case .wrongDType(let f, let t, let found, let expected):
            return "\(f): tensor '\(t)' is \(found), expected \(expected)."
        case .otherArchitecture(let f, let found):
            return "\(f): the llama.cpp session is of architecture '\(found)', not 'rwkv7'."
        case .unsupportedVersion(let f, let format, let found, let supported):
            return "\(f): \(format.rawValue) file version \(found); this version reads version \(supported) (llama.cpp's of the same version)."
        case .notFinite(let f, let t, let i):
            return "\(f): '\(t)' holds a value that is not finite (NaN or infinity) at index \(i); the state is damaged."
        case .needsModel(let f, let format):
            return "\(f): no state format's magic or keys; if it is a \(format.rawValue) state buffer (it has no header), pass --model to read it with that model's shape."
        case .unknownOutputFormat(let f):
            return "\(f): cannot tell the format from the extension; pass --to (or --state-format) with one of \(StateFormat.allCases.map(\.rawValue).joined(separator: ", "))."
        }
    }
    public var errorDescription: String? { description }
}

/// Bounded little-endian reads over a file's bytes; every read names its field when it runs out.
struct StateByteReader {
    let region: ByteRegion
    let file: String
    private(set) var offset = 0

    init(_ region: ByteRegion, file: String) { self.region = region; self.file = file }

    var remaining: Int { region.count - offset }

    mutating func bytes(_ n: Int, _ field: String) throws -> ByteRegion {
        guard n >= 0, n <= remaining else { throw StateFormatError.truncated(file: file, field: field, needed: n, available: remaining) }
        defer { offset += n }
        return ByteRegion(base: region.base + offset, count: n, owner: region.owner)
    }
    mutating func u32(_ field: String) throws -> UInt32 { try bytes(4, field).load(UInt32.self, at: 0) }
    mutating func i32(_ field: String) throws -> Int32 { try bytes(4, field).load(Int32.self, at: 0) }
    mutating func u64(_ field: String) throws -> UInt64 { try bytes(8, field).load(UInt64.self, at: 0) }

    /// `count` f32 values, checked finite.
    mutating func floats(_ count: Int, _ field: String) throws -> [Float] {
        let (size, o) = count.multipliedReportingOverflow(by: 4)
        guard !o else { throw StateFormatError.malformed(file: file, reason: "\(field) claims \(count) values") }
        let b = try bytes(size, field)
        let values = (0..<count).map { Float(bitPattern: b.load(UInt32.self, at: $0 * 4)) }
        try StateValues.checkFinite(values, file: file, tensor: field)
        return values
    }
}

/// Little-endian writes into a growing buffer.
struct StateByteWriter {
    var data = Data()
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    mutating func i32(_ v: Int32) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    mutating func floats<C: Collection>(_ values: C) where C.Element == Float {
        for v in values { u32(v.bitPattern) }
    }
}

/// Per-layer views and the transposition the key-major formats need.
enum StateValues {
    static func checkFinite(_ values: [Float], file: String, tensor: String) throws {
        if let i = values.firstIndex(where: { !$0.isFinite }) {
            throw StateFormatError.notFinite(file: file, tensor: tensor, index: i)
        }
    }

    /// [H][a][b] → [H][b][a] for square N×N heads (value-major ↔ key-major).
    static func transposeHeads(_ values: [Float], nHead: Int, headSize n: Int) -> [Float] {
        var out = values
        for h in 0..<nHead {
            let o = h * n * n
            for i in 0..<n { for j in 0..<n { out[o + j * n + i] = values[o + i * n + j] } }
        }
        return out
    }

    static func layer(_ all: [Float], _ l: Int, size: Int) -> ArraySlice<Float> { all[(l * size)..<((l + 1) * size)] }
}
