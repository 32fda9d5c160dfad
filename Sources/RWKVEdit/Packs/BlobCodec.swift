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
/// for int8 one fp32 scale per vector; then count×dim elements. The whole payload is zstd-compressed;
/// the row beside it holds a checksum over the compressed bytes and the row's place
/// (`PackManifest.rowChecksum`).
package enum BlobCodec {
    package static let magic: [UInt8] = Array("RWPB".utf8)
    package static let headerSize = 20
    package static let level: Int32 = 9

    /// `level`: zstd level; staged compile work uses 1 (it is temporary), entries the default 9.
    package static func encode(_ set: VectorSet, dtype: StorageDType, level: Int32 = level) throws -> (payload: [UInt8], rawSize: Int) {
        guard set.values.count == set.count * set.dim else {
            throw PackError.invalidInput("a set of \(set.count) vectors of \(set.dim) holds \(set.values.count) values, not \(set.count * set.dim)")
        }
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
        return (try compress(out, level: level), out.count)
    }

    /// The most bytes zstd can compress `rawSize` bytes to: a stored blob longer than this is not one of
    /// that size, and is refused before it is loaded.
    package static func compressedBound(_ rawSize: Int) -> Int { ZSTD_compressBound(rawSize) }

    /// Decompresses and decodes a blob whose checksum the caller has checked, refusing before any
    /// allocation a `rawSize` or zstd frame size other than the shape's, then checking the header
    /// against the shape and every decoded number for being finite (a NaN would reach the edit).
    package static func decode(_ compressed: [UInt8], rawSize: Int, shape: BlobShape, file: String, entry: String) throws -> VectorSet {
        func bad(_ r: String) -> PackError { .badBlob(file: file, entry: entry, reason: r) }
        let need = shape.rawSize
        guard rawSize == need else { throw bad("raw_size is \(rawSize) bytes; its shape (\(shape.count)×\(shape.dim) \(shape.dtype.rawValue), \(shape.scalars) scalars) takes \(need)") }
        guard compressed.count <= compressedBound(need) else { throw bad("\(compressed.count) stored bytes cannot hold \(need) compressed ones") }
        // The frame's own declared content size, read from its header without decompressing anything.
        let declared = compressed.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
        guard declared == UInt64(need) else {
            // ZSTD_CONTENTSIZE_UNKNOWN and ZSTD_CONTENTSIZE_ERROR (macros Swift does not import).
            let what = declared == UInt64.max ? "no size" : declared == UInt64.max - 1 ? "no valid zstd frame" : "\(declared) bytes"
            throw bad("its zstd frame declares \(what), the blob is \(need)")
        }
        let raw = try decompress(compressed, rawSize: need, bad: bad)
        guard Array(raw[0..<4]) == magic else { throw bad("not a vector blob") }
        guard raw[4] == 1 else { throw bad("blob version \(raw[4]) unknown") }
        guard StorageDType(code: raw[5]) == shape.dtype else { throw bad("dtype code \(raw[5]), expected \(shape.dtype.rawValue)") }
        return try raw.withUnsafeBytes { p -> VectorSet in
            func u32(_ o: Int) -> Int { Int(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt32.self))) }
            func f32(_ o: Int) -> Float { Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt32.self))) }
            let count = u32(8), dim = u32(12), nScalars = u32(16)
            guard count == shape.count, dim == shape.dim, nScalars == shape.scalars else {
                throw bad("shape \(count)×\(dim)+\(nScalars) instead of \(shape.count)×\(shape.dim)+\(shape.scalars)")
            }
            var o = headerSize
            let scalars = (0..<nScalars).map { f32(o + $0 * 4) }
            o += nScalars * 4
            var values = [Float](repeating: 0, count: count * dim)
            switch shape.dtype {
            case .f32:
                values.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: p[o..<(o + count * dim * 4)])) }
            case .f16:
                for i in values.indices {
                    values[i] = Float(Float16(bitPattern: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: o + i * 2, as: UInt16.self))))
                }
            case .int8:
                let scales = (0..<count).map { f32(o + $0 * 4) }
                if let k = scales.firstIndex(where: { !$0.isFinite }) { throw bad("vector \(k)'s scale is \(scales[k]), not a finite number") }
                o += count * 4
                for k in 0..<count {
                    for j in 0..<dim {
                        values[k * dim + j] = Float(Int8(bitPattern: p[o + k * dim + j])) * scales[k]
                    }
                }
            }
            if let i = scalars.firstIndex(where: { !$0.isFinite }) { throw bad("scalar \(i) is \(scalars[i]), not a finite number") }
            if let i = values.firstIndex(where: { !$0.isFinite }) {
                throw bad("vector \(i / dim) element \(i % dim) is \(values[i]), not a finite number")
            }
            return VectorSet(count: count, dim: dim, values: values, scalars: scalars)
        }
    }

    package static func compress(_ raw: [UInt8], level: Int32) throws -> [UInt8] {
        let bound = ZSTD_compressBound(raw.count)
        var out = [UInt8](repeating: 0, count: bound)
        let n = out.withUnsafeMutableBytes { o in
            raw.withUnsafeBytes { r in ZSTD_compress(o.baseAddress, bound, r.baseAddress, r.count, level) }
        }
        // Into a buffer of ZSTD_compressBound bytes only an allocation failure inside zstd can stop it.
        guard ZSTD_isError(n) == 0 else { throw PackError.invalidInput("zstd could not compress a blob: \(String(cString: ZSTD_getErrorName(n)))") }
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
