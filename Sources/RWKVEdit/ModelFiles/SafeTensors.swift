import Foundation

/// Reader and writer for the safetensors format: an 8-byte little-endian header length, a JSON
/// header {name: {dtype, shape, data_offsets}}, then the raw little-endian data.
public struct SafeTensorsFile: Sendable {
    public struct Entry: Sendable {
        public let dtypeName: String
        public let shape: [Int]
        public let data: ByteRegion
    }

    public let path: String
    public let entries: [String: Entry]
    public let metadata: [String: String]

    public init(path: String) throws {
        let file = try MappedFile(path: path)
        self.path = path
        guard file.count >= 8 else { throw RWKVError.malformed(file: path, reason: "shorter than the 8-byte safetensors header length") }
        let headerLength = Int(clamping: file.all.load(UInt64.self, at: 0))
        guard headerLength >= 2, headerLength <= 100_000_000, headerLength <= file.count - 8 else {
            throw RWKVError.malformed(file: path, reason: "header length \(headerLength) does not fit the \(file.count)-byte file")
        }
        let headerBytes = Data(bytes: file.base + 8, count: headerLength)
        guard let json = try? JSONSerialization.jsonObject(with: headerBytes) as? [String: Any] else {
            throw RWKVError.malformed(file: path, reason: "the safetensors header is not a JSON object")
        }
        let dataStart = 8 + headerLength
        let dataSize = file.count - dataStart
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in json {
            if name == "__metadata__" {
                for (k, v) in (value as? [String: Any]) ?? [:] { metadata[k] = v as? String }
                continue
            }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2
            else { throw RWKVError.malformed(file: path, reason: "tensor '\(name)' has an incomplete header entry") }
            let count = try checkedElementCount(shape, file: path, name: name)
            guard let size = Self.elementSize(dtype) else {
                throw RWKVError.unsupported(file: path, reason: "tensor '\(name)' has dtype \(dtype); supported: F32, F16, BF16, I32")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, end >= begin, end <= dataSize else {
                throw RWKVError.malformed(file: path, reason: "tensor '\(name)' data \(begin)..<\(end) lies outside the \(dataSize)-byte data section")
            }
            guard end - begin == count * size else {
                throw RWKVError.malformed(file: path, reason: "tensor '\(name)' has \(end - begin) bytes but shape \(shape) of \(dtype) needs \(count * size)")
            }
            entries[name] = Entry(dtypeName: dtype, shape: shape, data: try file.bytes(at: dataStart + begin, count: end - begin))
        }
        self.entries = entries
        self.metadata = metadata
    }

    static func elementSize(_ dtype: String) -> Int? {
        switch dtype {
        case "F32", "I32": return 4
        case "F16", "BF16": return 2
        default: return nil
        }
    }

    /// A floating-point tensor by name.
    public func tensor(_ name: String) throws -> RawTensor {
        guard let e = entries[name] else { throw RWKVError.missingTensor(file: path, name: name) }
        let dtype: DType
        switch e.dtypeName {
        case "F32": dtype = .f32
        case "F16": dtype = .f16
        case "BF16": dtype = .bf16
        default: throw RWKVError.unsupported(file: path, reason: "tensor '\(name)' is \(e.dtypeName), expected a float type")
        }
        return RawTensor(shape: e.shape, dtype: dtype, data: e.data)
    }

    /// All floating-point tensors (the form model loaders consume).
    public func floatTensors() throws -> [String: RawTensor] {
        var out: [String: RawTensor] = [:]
        for name in entries.keys where entries[name]?.dtypeName != "I32" { out[name] = try tensor(name) }
        return out
    }

    public func int32s(_ name: String) throws -> [Int32] {
        guard let e = entries[name] else { throw RWKVError.missingTensor(file: path, name: name) }
        guard e.dtypeName == "I32" else { throw RWKVError.unsupported(file: path, reason: "tensor '\(name)' is \(e.dtypeName), expected I32") }
        return (0..<(e.data.count / 4)).map { e.data.load(Int32.self, at: $0 * 4) }
    }

    /// Writes f32 tensors atomically (temp file, then rename) so no half-written file is left behind.
    public static func write(_ tensors: [(name: String, shape: [Int], values: [Float])],
                             metadata: [String: String] = [:], to path: String) throws {
        try write(encoded: tensors.map { t in
            (t.name, t.shape, DType.f32, t.values.withUnsafeBytes { Data($0) })
        }, metadata: metadata, to: path)
    }

    /// Writes tensors already encoded in `dtype` (little-endian bytes), atomically.
    public static func write(encoded tensors: [(name: String, shape: [Int], dtype: DType, bytes: Data)],
                             metadata: [String: String] = [:], to path: String) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for t in tensors {
            let name: String
            switch t.dtype {
            case .f32: name = "F32"
            case .f16: name = "F16"
            case .bf16: name = "BF16"
            case .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K:
                throw RWKVError.invalidArgument("internal: tensor \(t.name) is \(t.dtype); safetensors holds f32, f16 or bf16")
            }
            guard t.dtype.byteCount(t.shape.reduce(1, *)) == t.bytes.count else {
                throw RWKVError.invalidArgument("internal: tensor \(t.name) shape \(t.shape) does not match \(t.bytes.count) bytes of \(t.dtype)")
            }
            header[t.name] = ["dtype": name, "shape": t.shape, "data_offsets": [offset, offset + t.bytes.count]]
            offset += t.bytes.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for t in tensors { out.append(t.bytes) }
        try AtomicFile.write(out, to: path)
    }
}

enum AtomicFile {
    /// Writes to `path.tmp-PID` and renames over `path`.
    static func write(_ data: Data, to path: String) throws {
        let tmp = path + ".tmp-\(ProcessInfo.processInfo.processIdentifier)"
        do {
            try data.write(to: URL(fileURLWithPath: tmp))
            if FileManager.default.fileExists(atPath: path) {
                _ = try FileManager.default.replaceItemAt(URL(fileURLWithPath: path), withItemAt: URL(fileURLWithPath: tmp))
            } else {
                try FileManager.default.moveItem(atPath: tmp, toPath: path)
            }
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw RWKVError.unreadable(file: path, reason: "cannot write: \(error.localizedDescription)")
        }
    }
}
