import Foundation

/// Writes a dict of tensors the way `torch.save` does (its zip serialization), so that `torch.load`
/// (weights_only included) and `PthReader` both read it:
/// - a zip archive of STORED entries under one folder (`archive/`): `data.pkl`, `byteorder`
///   ("little"), one `data/<key>` entry per tensor's storage, and `version` ("3");
/// - `data.pkl`: pickle protocol 2 of an `OrderedDict` whose values are
///   `torch._utils._rebuild_tensor_v2((persistent id ('storage', torch.FloatStorage, key, 'cpu', numel)),
///   0, size, contiguous stride, False, OrderedDict())`, the call torch itself pickles for a tensor.
/// Each entry's data starts at a 64-byte boundary (padding in the local header's extra field, as
/// torch does), and carries its CRC-32, which torch's zip reader checks.
public enum PthWriter {
    public struct Tensor: Sendable {
        public var name: String
        public var shape: [Int]
        public var dtype: DType
        /// Little-endian elements, row-major.
        public var bytes: Data

        public init(name: String, shape: [Int], dtype: DType, bytes: Data) {
            self.name = name; self.shape = shape; self.dtype = dtype; self.bytes = bytes
        }
    }

    static let archive = "archive"

    /// The file's bytes.
    public static func encode(_ tensors: [Tensor]) throws -> Data {
        for t in tensors where t.dtype.isQuantized || t.dtype.byteCount(t.shape.reduce(1, *)) != t.bytes.count {
            throw RWKVError.invalidArgument("internal: tensor \(t.name) shape \(t.shape) does not match \(t.bytes.count) bytes of \(t.dtype) (a torch file holds f32, f16 or bf16)")
        }
        var zip = ZipWriter()
        zip.add("\(archive)/data.pkl", pickle(tensors))
        zip.add("\(archive)/byteorder", Data("little".utf8))
        for (i, t) in tensors.enumerated() { zip.add("\(archive)/data/\(i)", t.bytes) }
        zip.add("\(archive)/version", Data("3\n".utf8))
        return try zip.finish()
    }

    /// Writes atomically (a temporary file, then a rename).
    public static func write(_ tensors: [Tensor], to path: String) throws {
        try AtomicFile.write(try encode(tensors), to: path)
    }

    // MARK: Pickle (protocol 2)

    static func pickle(_ tensors: [Tensor]) -> Data {
        var p = PickleWriter()
        p.op(0x80); p.byte(2)                                   // PROTO 2
        p.orderedDict()
        p.op(0x28)                                              // MARK
        for (i, t) in tensors.enumerated() {
            p.string(t.name)
            p.global("torch._utils", "_rebuild_tensor_v2")
            p.op(0x28)                                          // MARK: the call's arguments
            p.op(0x28)                                          // MARK: the persistent id
            p.string("storage")
            p.global("torch", storageClass(t.dtype))
            p.string(String(i))
            p.string("cpu")
            p.int(t.shape.reduce(1, *))
            p.op(0x74)                                          // TUPLE
            p.op(0x51)                                          // BINPERSID
            p.int(0)                                            // storage offset
            p.tuple(t.shape.map(PickleWriter.encodedInt))
            var strides = [Int](repeating: 1, count: t.shape.count)
            for d in stride(from: t.shape.count - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * t.shape[d + 1] }
            p.tuple(strides.map(PickleWriter.encodedInt))
            p.op(0x89)                                          // NEWFALSE: requires_grad
            p.orderedDict()                                     // backward hooks
            p.op(0x74)                                          // TUPLE
            p.op(0x52)                                          // REDUCE
        }
        p.op(0x75)                                              // SETITEMS
        p.op(0x2E)                                              // STOP
        return p.data
    }

    static func storageClass(_ d: DType) -> String {
        switch d {
        case .f32: return "FloatStorage"
        case .f16: return "HalfStorage"
        case .bf16: return "BFloat16Storage"
        // `encode` refuses quantized tensors before any storage is named.
        case .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K: return "ByteStorage"
        }
    }

    struct PickleWriter {
        var data = Data()
        mutating func op(_ code: UInt8) { data.append(code) }
        mutating func byte(_ b: UInt8) { data.append(b) }
        mutating func string(_ s: String) {
            op(0x58)                                            // BINUNICODE: u32 length + UTF-8
            withUnsafeBytes(of: UInt32(s.utf8.count).littleEndian) { data.append(contentsOf: $0) }
            data.append(contentsOf: Array(s.utf8))
        }
        mutating func global(_ module: String, _ name: String) {
            op(0x63)                                            // GLOBAL "module\nname\n"
            data.append(contentsOf: Array("\(module)\n\(name)\n".utf8))
        }
        /// collections.OrderedDict(): what torch pickles for a state dict and for backward hooks.
        mutating func orderedDict() {
            global("collections", "OrderedDict")
            op(0x29)                                            // EMPTY_TUPLE
            op(0x52)                                            // REDUCE
        }
        static func encodedInt(_ v: Int) -> Data {
            var d = Data()
            if v >= 0 && v < 256 {
                d.append(0x4B); d.append(UInt8(v))              // BININT1
            } else if v >= Int(Int32.min) && v <= Int(Int32.max) {
                d.append(0x4A)                                  // BININT
                withUnsafeBytes(of: Int32(v).littleEndian) { d.append(contentsOf: $0) }
            } else {
                d.append(0x8A); d.append(8)                     // LONG1, 8 bytes two's complement
                withUnsafeBytes(of: Int64(v).littleEndian) { d.append(contentsOf: $0) }
            }
            return d
        }
        mutating func int(_ v: Int) { data.append(Self.encodedInt(v)) }
        mutating func tuple(_ items: [Data]) {
            op(0x28)                                            // MARK
            for i in items { data.append(i) }
            op(0x74)                                            // TUPLE
        }
    }
}

/// A zip archive of STORED entries, each entry's data aligned to 64 bytes.
struct ZipWriter {
    private var out = Data()
    private var central = Data()
    private var count = 0
    static let alignment = 64

    mutating func add(_ name: String, _ bytes: Data) {
        let nameBytes = Array(name.utf8)
        let offset = out.count
        // Pad with an extra field (id 'FB', as torch's writer uses) so the data lands on the boundary.
        var extraLength = 0
        let headerEnd = offset + 30 + nameBytes.count
        if headerEnd % Self.alignment != 0 {
            extraLength = Self.alignment - headerEnd % Self.alignment
            if extraLength < 4 { extraLength += Self.alignment }
        }
        let crc = bytes.withUnsafeBytes { CRC32.checksum($0) }
        var h = StateByteWriter()
        h.u32(0x0403_4B50); h.data.append(contentsOf: le16(20)); h.data.append(contentsOf: le16(0)); h.data.append(contentsOf: le16(0))
        h.data.append(contentsOf: le16(0)); h.data.append(contentsOf: le16(0x21))   // time 00:00, date 1980-01-01
        h.u32(crc); h.u32(UInt32(bytes.count)); h.u32(UInt32(bytes.count))
        h.data.append(contentsOf: le16(UInt16(nameBytes.count))); h.data.append(contentsOf: le16(UInt16(extraLength)))
        h.data.append(contentsOf: nameBytes)
        if extraLength > 0 {
            h.data.append(contentsOf: le16(0x4246)); h.data.append(contentsOf: le16(UInt16(extraLength - 4)))
            h.data.append(contentsOf: [UInt8](repeating: 0, count: extraLength - 4))
        }
        out.append(h.data)
        out.append(bytes)

        var c = StateByteWriter()
        c.u32(0x0201_4B50); c.data.append(contentsOf: le16(20)); c.data.append(contentsOf: le16(20))
        c.data.append(contentsOf: le16(0)); c.data.append(contentsOf: le16(0))
        c.data.append(contentsOf: le16(0)); c.data.append(contentsOf: le16(0x21))
        c.u32(crc); c.u32(UInt32(bytes.count)); c.u32(UInt32(bytes.count))
        c.data.append(contentsOf: le16(UInt16(nameBytes.count)))
        c.data.append(contentsOf: le16(0)); c.data.append(contentsOf: le16(0))   // extra, comment
        c.data.append(contentsOf: le16(0)); c.data.append(contentsOf: le16(0))   // disk, internal attributes
        c.u32(0); c.u32(UInt32(offset))
        c.data.append(contentsOf: nameBytes)
        central.append(c.data)
        count += 1
    }

    /// Appends the central directory and the end record; sizes past 4 GiB (ZIP64) are refused.
    mutating func finish() throws -> Data {
        guard out.count + central.count < Int(UInt32.max), count < 0xFFFF else {
            throw RWKVError.invalidArgument("a .pth state of \(out.count) bytes needs ZIP64, which this writer does not produce")
        }
        let cdOffset = out.count
        out.append(central)
        var e = StateByteWriter()
        e.u32(0x0605_4B50); e.data.append(contentsOf: le16(0)); e.data.append(contentsOf: le16(0))
        e.data.append(contentsOf: le16(UInt16(count))); e.data.append(contentsOf: le16(UInt16(count)))
        e.u32(UInt32(central.count)); e.u32(UInt32(cdOffset)); e.data.append(contentsOf: le16(0))
        out.append(e.data)
        return out
    }

    private func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
}
