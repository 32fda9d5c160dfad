import CZstd
import Foundation

/// How vectors are stored inside pack blobs.
public enum StorageDType: String, CaseIterable, Sendable, Codable {
    case f32, f16, int8

    package var code: UInt8 { switch self { case .f32: 0; case .f16: 1; case .int8: 2 } }
    package init?(code: UInt8) {
        switch code { case 0: self = .f32; case 1: self = .f16; case 2: self = .int8; default: return nil }
    }
    package var elementSize: Int { switch self { case .f32: 4; case .f16: 2; case .int8: 1 } }
}

/// A set of `count` vectors of length `dim` plus a few fp32 scalars (e.g. σ per head).
public struct VectorSet: Equatable, Sendable {
    public var count: Int
    public var dim: Int
    /// Row-major: vector k is values[k*dim ..< (k+1)*dim].
    public var values: [Float]
    public var scalars: [Float]

    public init(count: Int, dim: Int, values: [Float], scalars: [Float] = []) {
        self.count = count; self.dim = dim; self.values = values; self.scalars = scalars
    }

    public func vector(_ k: Int) -> [Float] { Array(values[(k * dim)..<((k + 1) * dim)]) }
}

/// The blob encoding (schemas/README.md): a 20-byte little-endian header
/// "RWPB", version 1, dtype, 2 reserved bytes, count u32, dim u32, scalar count u32; the fp32 scalars;
/// for int8 one fp32 scale per vector; then count×dim elements. The whole payload is zstd-compressed and
/// the compressed bytes carry a SHA-256 checksum (first 16 hex digits) in the row beside them.
package enum BlobCodec {
    package static let magic: [UInt8] = Array("RWPB".utf8)
    package static let headerSize = 20
    package static let level: Int32 = 9

    /// `level`: zstd level; staged compile work uses 1 (it is temporary), entries the default 9.
    package static func encode(_ set: VectorSet, dtype: StorageDType, level: Int32 = level) -> (payload: [UInt8], rawSize: Int) {
        precondition(set.values.count == set.count * set.dim, "vector set size")
        var out = magic
        out += [1, dtype.code, 0, 0]
        func u32(_ v: Int) { let x = UInt32(v).littleEndian; withUnsafeBytes(of: x) { out += $0 } }
        func f32(_ v: Float) { let x = v.bitPattern.littleEndian; withUnsafeBytes(of: x) { out += $0 } }
        u32(set.count); u32(set.dim); u32(set.scalars.count)
        for s in set.scalars { f32(s) }
        switch dtype {
        case .f32:
            // Bulk copy: every platform Swift runs this package on is little-endian.
            set.values.withUnsafeBytes { out.append(contentsOf: $0) }
        case .f16:
            let half = set.values.map { Float16($0).bitPattern.littleEndian }
            half.withUnsafeBytes { out.append(contentsOf: $0) }
        case .int8:
            var scales: [Float] = []
            for k in 0..<set.count {
                var m: Float = 0
                for j in 0..<set.dim { m = max(m, abs(set.values[k * set.dim + j])) }
                scales.append(m > 0 ? m / 127 : 1)
            }
            for s in scales { f32(s) }
            for k in 0..<set.count {
                for j in 0..<set.dim {
                    let q = (set.values[k * set.dim + j] / scales[k]).rounded()
                    out.append(UInt8(bitPattern: Int8(max(-127, min(127, q)))))
                }
            }
        }
        return (compress(out, level: level), out.count)
    }

    /// First 16 hex digits of the SHA-256 of the stored bytes (entries), or "x64:" + XXH64 (staged rows,
    /// megabytes each and temporary, where SHA-256 would cost more than the engine).
    package static func checksum(_ compressed: [UInt8], fast: Bool = false) -> String {
        fast ? "x64:" + XXH64.hex(compressed) : String(SHA256.hexDigest(compressed).prefix(16))
    }

    /// Checks the checksum, decompresses and decodes, bounds-checking every field.
    package static func decode(_ compressed: [UInt8], rawSize: Int, checksum expected: String, file: String, entry: String) throws -> VectorSet {
        func bad(_ r: String) -> PackError { .badBlob(file: file, entry: entry, reason: r) }
        guard checksum(compressed, fast: expected.hasPrefix("x64:")) == expected else { throw bad("checksum mismatch") }
        guard rawSize >= headerSize, rawSize < 1 << 30 else { throw bad("implausible size \(rawSize)") }
        let raw = try decompress(compressed, rawSize: rawSize, bad: bad)
        guard raw.count == rawSize, Array(raw[0..<4]) == magic else { throw bad("not a vector blob") }
        guard raw[4] == 1 else { throw bad("blob version \(raw[4]) unknown") }
        guard let dtype = StorageDType(code: raw[5]) else { throw bad("unknown dtype code \(raw[5])") }
        return try raw.withUnsafeBytes { p -> VectorSet in
            func u32(_ o: Int) -> Int { Int(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt32.self))) }
            func f32(_ o: Int) -> Float { Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt32.self))) }
            let count = u32(8), dim = u32(12), nScalars = u32(16)
            guard count < 1 << 20, dim < 1 << 16, nScalars < 1 << 20 else { throw bad("implausible shape \(count)×\(dim)") }
            let scaleBytes = dtype == .int8 ? count * 4 : 0
            let need = headerSize + nScalars * 4 + scaleBytes + count * dim * dtype.elementSize
            guard need == raw.count else { throw bad("size \(raw.count) does not match its header (\(need))") }
            var o = headerSize
            let scalars = (0..<nScalars).map { f32(o + $0 * 4) }
            o += nScalars * 4
            var values = [Float](repeating: 0, count: count * dim)
            switch dtype {
            case .f32:
                values.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: p[o..<(o + count * dim * 4)])) }
            case .f16:
                for i in values.indices {
                    values[i] = Float(Float16(bitPattern: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: o + i * 2, as: UInt16.self))))
                }
            case .int8:
                let scales = (0..<count).map { f32(o + $0 * 4) }
                o += count * 4
                for k in 0..<count {
                    for j in 0..<dim {
                        values[k * dim + j] = Float(Int8(bitPattern: p[o + k * dim + j])) * scales[k]
                    }
                }
            }
            return VectorSet(count: count, dim: dim, values: values, scalars: scalars)
        }
    }

    package static func compress(_ raw: [UInt8], level: Int32) -> [UInt8] {
        let bound = ZSTD_compressBound(raw.count)
        var out = [UInt8](repeating: 0, count: bound)
        let n = out.withUnsafeMutableBytes { o in
            raw.withUnsafeBytes { r in ZSTD_compress(o.baseAddress, bound, r.baseAddress, r.count, level) }
        }
        // Compression of an in-memory buffer into a buffer of ZSTD_compressBound bytes cannot fail.
        precondition(ZSTD_isError(n) == 0, "zstd compression failed")
        out.removeSubrange(n...)
        return out
    }

    package static func decompress(_ data: [UInt8], rawSize: Int, bad: (String) -> PackError) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: rawSize)
        let n = out.withUnsafeMutableBytes { o in
            data.withUnsafeBytes { d in ZSTD_decompress(o.baseAddress, rawSize, d.baseAddress, d.count) }
        }
        guard ZSTD_isError(n) == 0 else { throw bad("zstd: \(String(cString: ZSTD_getErrorName(n)))") }
        guard n == rawSize else { throw bad("decompressed to \(n) bytes, expected \(rawSize)") }
        return out
    }
}
