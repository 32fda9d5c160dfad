import Foundation

/// Reader for llama.cpp GGUF files (v2/v3) over a memory map, and the mapping of the `rwkv7`
/// architecture's tensors back to BlinkDL's names and shapes.
public struct GGUFFile: Sendable {
    /// A metadata value. Integers of every width are widened; strings are raw bytes.
    public enum Value: Sendable {
        case int(Int64)
        case uint(UInt64)
        case float(Double)
        case bool(Bool)
        case string(Data)
        case array([Value])
        /// An array too long to be worth holding (over `GGUFFile.maxHeldArray` elements): skipped, only counted.
        case skippedArray(count: Int)

        public var intValue: Int? {
            switch self {
            case .int(let v): return Int(exactly: v)
            case .uint(let v): return Int(exactly: v)
            default: return nil
            }
        }

        public var stringValue: String? {
            if case .string(let d) = self { return String(decoding: d, as: UTF8.self) }
            return nil
        }
    }

    public struct TensorInfo: Sendable {
        public let name: String
        /// Dimensions as GGUF lists them (innermost first, ggml `ne`).
        public let dims: [Int]
        public let typeCode: UInt32
        public let offset: Int
        public let data: ByteRegion
    }

    public let path: String
    public let version: UInt32
    public let metadata: [String: Value]
    public let tensorInfos: [TensorInfo]
    public let alignment: Int

    static let maxArrayDepth = 4
    /// Longer metadata arrays are walked (and bounds-checked) but not kept: no rwkv7 key needs one,
    /// and holding one would cost ~20 bytes of memory per byte of file.
    public static let maxHeldArray = 1 << 22

    /// Parses the header, metadata and tensor infos. With `architecture`, a file of another
    /// `general.architecture` is refused before its tensors are looked at.
    public init(path: String, architecture: String? = nil) throws {
        let file = try MappedFile(path: path)
        self.path = path
        var c = Cursor(region: file.all, file: path)
        guard file.count >= 24 else { throw c.bad("shorter than the 24-byte GGUF header") }
        guard try c.u32() == 0x4655_4747 else { throw c.bad("no GGUF magic") }
        let version = try c.u32()
        guard version == 2 || version == 3 else {
            throw RWKVError.unsupported(file: path, reason: "GGUF version \(version); versions 2 and 3 are read. Re-convert with a current llama.cpp")
        }
        self.version = version
        let tensorCount = try c.u64()
        let kvCount = try c.u64()
        // Each tensor info takes at least 24 bytes and each key/value pair at least 13.
        guard tensorCount <= UInt64(c.remaining / 24) else {
            throw c.bad("the header claims \(tensorCount) tensors, more than the \(file.count)-byte file can describe")
        }
        guard kvCount <= UInt64(c.remaining / 13) else {
            throw c.bad("the header claims \(kvCount) metadata entries, more than the \(file.count)-byte file can hold")
        }
        var metadata: [String: Value] = [:]
        for _ in 0..<Int(kvCount) {
            let key = String(decoding: try c.string(), as: UTF8.self)
            let type = try c.u32()
            metadata[key] = try c.value(type: type, depth: 0)
        }
        self.metadata = metadata
        if let want = architecture {
            let arch = metadata["general.architecture"]?.stringValue
            guard arch == want else {
                throw RWKVError.unsupported(file: path, reason: "GGUF architecture '\(arch ?? "missing")'; only \(want) is supported here")
            }
        }
        var alignment = 32
        if let a = metadata["general.alignment"] {
            guard let v = a.intValue, v > 0, v <= 1 << 20, v & (v - 1) == 0 else {
                throw c.bad("general.alignment is not a power of two")
            }
            alignment = v
        }
        self.alignment = alignment

        struct Pending { let name: String; let dims: [Int]; let type: UInt32; let offset: UInt64 }
        var pending: [Pending] = []
        pending.reserveCapacity(Int(tensorCount))
        for _ in 0..<Int(tensorCount) {
            let name = String(decoding: try c.string(), as: UTF8.self)
            let nd = try c.u32()
            guard nd >= 1, nd <= 4 else { throw c.bad("tensor '\(name)' has \(nd) dimensions (1 to 4 allowed)") }
            var dims: [Int] = []
            for _ in 0..<nd {
                let d = try c.u64()
                guard d < 1 << 40 else { throw c.bad("tensor '\(name)' has a dimension of \(d)") }
                dims.append(Int(d))
            }
            let type = try c.u32()
            let offset = try c.u64()
            pending.append(Pending(name: name, dims: dims, type: type, offset: offset))
        }
        let (aligned, overflow) = c.pos.addingReportingOverflow(alignment - 1)
        guard !overflow else { throw c.bad("bad data offset") }
        let dataStart = aligned / alignment * alignment
        guard dataStart <= file.count || pending.isEmpty else {
            throw c.bad("the tensor data section starts past the end of the file (truncated)")
        }
        let dataSize = max(0, file.count - dataStart)

        var infos: [TensorInfo] = []
        var seen = Set<String>()
        for p in pending {
            guard seen.insert(p.name).inserted else { throw c.bad("tensor '\(p.name)' is listed twice") }
            let n = try checkedElementCount(p.dims, file: path, name: p.name)
            let size = try Self.byteSize(type: p.type, dims: p.dims, elements: n, file: path, name: p.name)
            guard p.offset <= UInt64(dataSize), size <= dataSize - Int(p.offset) else {
                throw RWKVError.malformed(file: path, reason: "tensor '\(p.name)' data (\(size) bytes at data offset \(p.offset)) lies past the end of the file (truncated?)")
            }
            infos.append(TensorInfo(name: p.name, dims: p.dims, typeCode: p.type, offset: Int(p.offset),
                                    data: try file.bytes(at: dataStart + Int(p.offset), count: size)))
        }
        self.tensorInfos = infos
    }

    static func typeName(_ t: UInt32) -> String {
        let names: [UInt32: String] = [0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0",
                                       9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K",
                                       15: "Q8_K", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 30: "BF16"]
        return names[t] ?? "type \(t)"
    }

    /// The GGML type codes read, and the type each is kept as in memory.
    static let dtypes: [UInt32: DType] = [0: .f32, 1: .f16, 30: .bf16, 8: .q8_0, 2: .q4_0, 3: .q4_1, 6: .q5_0,
                                          7: .q5_1, 12: .q4_K, 13: .q5_K, 14: .q6_K]

    /// Bytes of a tensor's data, from its type and shape: rows (ggml's innermost dimension) must hold
    /// whole blocks of a quantised type.
    static func byteSize(type: UInt32, dims: [Int], elements n: Int, file: String, name: String) throws -> Int {
        guard let dtype = dtypes[type] else {
            throw RWKVError.unsupported(file: file, reason: "tensor '\(name)' has GGML type \(typeName(type)); supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K")
        }
        guard dims[0] % dtype.blockElements == 0 else {
            throw RWKVError.malformed(file: file, reason: "\(typeName(type)) tensor '\(name)' has a row of \(dims[0]) elements, not a multiple of its \(dtype.blockElements)-weight blocks")
        }
        // n < 2^40 (checkedElementCount) and a block is at most 210 bytes: no overflow.
        return dtype.byteCount(n)
    }

    /// A tensor with its dimensions reversed into row-major (numpy/torch) order, pointing into the
    /// map; quantised types stay quantised (the kernels dequantise as they read).
    public func rawTensor(_ info: TensorInfo) throws -> RawTensor {
        guard let dtype = Self.dtypes[info.typeCode] else {
            throw RWKVError.unsupported(file: path, reason: "tensor '\(info.name)' has GGML type \(Self.typeName(info.typeCode))")
        }
        return RawTensor(shape: Array(info.dims.reversed()), dtype: dtype, data: info.data)
    }

    struct Cursor {
        let region: ByteRegion
        let file: String
        var pos = 0

        var remaining: Int { region.count - pos }

        func bad(_ why: String) -> RWKVError { .malformed(file: file, reason: "GGUF: \(why)") }

        mutating func take(_ n: Int) throws -> Int {
            guard n >= 0, n <= remaining else { throw bad("needs \(n) bytes at offset \(pos) but the file ends (truncated)") }
            defer { pos += n }
            return pos
        }
        mutating func u8() throws -> UInt8 { region.load(UInt8.self, at: try take(1)) }
        mutating func u16() throws -> UInt16 { region.load(UInt16.self, at: try take(2)) }
        mutating func u32() throws -> UInt32 { region.load(UInt32.self, at: try take(4)) }
        mutating func u64() throws -> UInt64 { region.load(UInt64.self, at: try take(8)) }

        mutating func string() throws -> Data {
            let n = try u64()
            guard n <= UInt64(remaining) else {
                throw bad("a string at offset \(pos - 8) claims \(n) bytes but only \(remaining) remain")
            }
            let at = try take(Int(n))
            return Data(bytes: region.base + at, count: Int(n))
        }

        static func minSize(_ type: UInt32) -> Int? {
            switch type {
            case 0, 1, 7: return 1
            case 2, 3: return 2
            case 4, 5, 6: return 4
            case 8, 10, 11, 12: return 8
            case 9: return 12
            default: return nil
            }
        }

        mutating func value(type: UInt32, depth: Int) throws -> Value {
            switch type {
            case 0: return .uint(UInt64(try u8()))
            case 1: return .int(Int64(Int8(bitPattern: try u8())))
            case 2: return .uint(UInt64(try u16()))
            case 3: return .int(Int64(Int16(bitPattern: try u16())))
            case 4: return .uint(UInt64(try u32()))
            case 5: return .int(Int64(Int32(bitPattern: try u32())))
            case 6: return .float(Double(Float(bitPattern: try u32())))
            case 7:
                let b = try u8()
                guard b <= 1 else { throw bad("a bool metadata value is \(b)") }
                return .bool(b == 1)
            case 8: return .string(try string())
            case 9:
                guard depth < GGUFFile.maxArrayDepth else { throw bad("metadata arrays nest deeper than \(GGUFFile.maxArrayDepth)") }
                let et = try u32()
                let n = try u64()
                guard let m = Self.minSize(et) else { throw bad("an array has unknown element type \(et)") }
                guard n <= UInt64(remaining / m) else {
                    throw bad("an array claims \(n) elements but only \(remaining) bytes remain")
                }
                if n > UInt64(GGUFFile.maxHeldArray) {
                    for _ in 0..<Int(n) { _ = try value(type: et, depth: depth + 1) }
                    return .skippedArray(count: Int(n))
                }
                var items: [Value] = []
                items.reserveCapacity(Int(n))
                for _ in 0..<Int(n) { items.append(try value(type: et, depth: depth + 1)) }
                return .array(items)
            case 10: return .uint(try u64())
            case 11: return .int(Int64(bitPattern: try u64()))
            case 12: return .float(Double(bitPattern: try u64()))
            default: throw bad("unknown metadata value type \(type)")
            }
        }
    }
}

/// Loads llama.cpp `rwkv7` GGUF files as RWKV-7 models.
public enum GGUFReader {
    /// The tensors of an `rwkv7` GGUF under BlinkDL's names and shapes, plus the hyper-parameters
    /// checked against them, and the embedded vocabulary (token bytes by id) when it is an RWKV one.
    public static func blinkDLTensors(_ g: GGUFFile) throws -> (tensors: [String: RawTensor], vocabulary: [Data]?) {
        let path = g.path
        func bad(_ why: String) -> RWKVError { .malformed(file: path, reason: "GGUF: \(why)") }
        let arch = g.metadata["general.architecture"]?.stringValue
        guard arch == "rwkv7" else {
            throw RWKVError.unsupported(file: path, reason: "GGUF architecture '\(arch ?? "missing")'; only rwkv7 (RWKV-7 x070) is supported here")
        }
        func meta(_ key: String) throws -> Int? {
            guard let v = g.metadata["rwkv7." + key] else { return nil }
            guard let i = v.intValue else { throw bad("metadata rwkv7.\(key) is not an integer") }
            return i
        }
        guard let headSize = try meta("wkv.head_size"), headSize > 0 else { throw bad("metadata rwkv7.wkv.head_size is missing or zero") }

        var byName: [String: GGUFFile.TensorInfo] = [:]
        for t in g.tensorInfos { byName[t.name] = t }
        func raw(_ name: String) throws -> RawTensor {
            guard let t = byName[name] else { throw RWKVError.missingTensor(file: path, name: name) }
            return try g.rawTensor(t)
        }
        func reshaped(_ t: RawTensor, _ shape: [Int], _ name: String) throws -> RawTensor {
            guard shape.reduce(1, *) == t.elementCount else {
                throw RWKVError.shapeMismatch(file: path, name: name, expected: shape, found: t.shape)
            }
            return t.isTransposedView ? RawTensor(shape: shape, floats: t.floats()) : RawTensor(shape: shape, dtype: t.dtype, data: t.data)
        }

        var out: [String: RawTensor] = [:]
        let embName = TensorSpec.embedding.ggufName(layer: 0) ?? ""
        let emb = try raw(embName)
        guard emb.shape.count == 2 else { throw RWKVError.shapeMismatch(file: path, name: embName, expected: [-1, -1], found: emb.shape) }
        let (vocab, C) = (emb.shape[0], emb.shape[1])
        guard C % headSize == 0 else { throw bad("embedding width \(C) is not a multiple of rwkv7.wkv.head_size \(headSize)") }

        var nLayer = 0
        for t in g.tensorInfos where t.name.hasPrefix("blk.") {
            let parts = t.name.split(separator: ".")
            guard parts.count > 2, let i = Int(parts[1]), i >= 0, i < 4096 else { throw bad("tensor name '\(t.name)' has no valid layer number") }
            nLayer = max(nLayer, i + 1)
        }
        guard nLayer > 0 else { throw bad("no layer tensors (blk.N.*)") }

        // The token-shift mixes of layer i, sliced by bytes: a quantised copy (blocks may straddle the
        // slices) is dequantised first.
        func lerp(_ i: Int) throws -> RawTensor {
            let name = "blk.\(i)." + TensorSpec.GGUFName.lerpFused
            var t = try raw(name)
            if t.dtype.isQuantized { t = RawTensor(shape: t.shape, floats: t.floats()) }
            guard t.elementCount == 6 * C, t.shape.first == 6 else {
                throw RWKVError.shapeMismatch(file: path, name: name, expected: [6, 1, 1, C], found: t.shape)
            }
            return t
        }
        var lerps: [Int: RawTensor] = [:]
        for (spec, i) in TensorSpec.all(nLayer: nLayer) {
            let b = spec.blinkDLName(layer: i)
            guard let name = spec.ggufName(layer: i) else {
                guard case .lerpSlice(let j) = spec.gguf else { continue }
                let fused = try lerps[i] ?? lerp(i)
                lerps[i] = fused
                let sliceBytes = fused.dtype.byteCount(C)
                out[b] = RawTensor(shape: [1, 1, C], dtype: fused.dtype,
                                   data: ByteRegion(base: fused.data.base + j * sliceBytes, count: sliceBytes, owner: fused.data.owner))
                continue
            }
            let t = try raw(name)
            switch spec.role {
            case .matrix, .norm:
                out[b] = t
            case .loraIn, .loraOut:
                // Stored transposed relative to BlinkDL's x·W1, h·W2.
                out[b] = try t.transposed(file: path, name: name)
            case .mix:
                out[b] = try reshaped(t, [1, 1, C], name)
            case .heads:
                out[b] = try reshaped(t, [C / headSize, headSize], name)
            }
        }

        // Hyper-parameters in the metadata must agree with the tensors.
        func check(_ key: String, _ actual: Int?) throws {
            guard let want = try meta(key), let actual else { return }
            guard want == actual else { throw bad("metadata rwkv7.\(key) = \(want) but the tensors say \(actual)") }
        }
        try check("block_count", nLayer)
        try check("embedding_length", C)
        try check("feed_forward_length", out[TensorSpec.ffnKey.blinkDLName(layer: 0)]?.shape.first)
        try check("attention.decay_lora_rank", out[TensorSpec.w1.blinkDLName(layer: 0)]?.shape.last)
        try check("attention.iclr_lora_rank", out[TensorSpec.a1.blinkDLName(layer: 0)]?.shape.last)
        try check("attention.gate_lora_rank", out[TensorSpec.g1.blinkDLName(layer: 0)]?.shape.last)
        if nLayer > 1 { try check("attention.value_residual_mix_lora_rank", out[TensorSpec.v1.blinkDLName(layer: 1)]?.shape.last) }

        var vocabulary: [Data]?
        if case .array(let tokens)? = g.metadata["tokenizer.ggml.tokens"] {
            guard tokens.count == vocab else {
                throw bad("tokenizer.ggml.tokens lists \(tokens.count) tokens but token_embd has \(vocab) rows")
            }
            if g.metadata["tokenizer.ggml.model"]?.stringValue == "rwkv" {
                var types: [Value] = []
                if case .array(let t)? = g.metadata["tokenizer.ggml.token_type"], t.count == tokens.count { types = t }
                vocabulary = try tokens.enumerated().map { id, v in
                    guard case .string(let s) = v else { throw bad("token \(id) is not a string") }
                    // CONTROL ('<s>', id 0: end of text) and UNUSED ('[PAD65530]'…, llama.cpp's padding up to
                    // the embedding's row count) are not text: empty, so the tokenizer never produces them.
                    if id < types.count, let t = types[id].intValue, t == 3 || t == 5 { return Data() }
                    guard let bytes = unescapeRWKV(s) else { throw bad("token \(id) has a malformed escape") }
                    return bytes
                }
            }
        }
        return (out, vocabulary)
    }

    typealias Value = GGUFFile.Value

    /// llama.cpp's rwkv vocabulary stores each token's bytes as Python's `repr(bytes)[2:-1]`:
    /// `\t`, `\n`, `\r`, `\xHH` and `\<c>` (meaning c) escapes over otherwise literal bytes.
    public static func unescapeRWKV(_ s: Data) -> Data? {
        var out = Data()
        out.reserveCapacity(s.count)
        var it = s.makeIterator()
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x61...0x66: return c - 0x61 + 10
            case 0x41...0x46: return c - 0x41 + 10
            default: return nil
            }
        }
        while let c = it.next() {
            guard c == 0x5C else { out.append(c); continue }
            guard let e = it.next() else { return nil }
            switch e {
            case 0x74: out.append(0x09)
            case 0x6E: out.append(0x0A)
            case 0x72: out.append(0x0D)
            case 0x78:
                guard let h = it.next().flatMap(hex), let l = it.next().flatMap(hex) else { return nil }
                out.append(h << 4 | l)
            default: out.append(e)
            }
        }
        return out
    }

    /// Loads an RWKV-7 model (and its vocabulary) from a llama.cpp `rwkv7` GGUF.
    public static func loadModel(path: String, placement: WeightPlacement = .hugePages) throws -> RWKVModel {
        let g = try GGUFFile(path: path, architecture: "rwkv7")
        let (tensors, vocabulary) = try blinkDLTensors(g)
        return try RWKVModel(blinkDLTensors: placement.place(tensors), path: path, format: .gguf, vocabulary: vocabulary)
    }
}
