import Foundation

/// One blob row of a pack, named by what it holds. A row's checksum covers this identity as well as
/// its bytes (`PackManifest.rowChecksum`), so an entry moved to another value's row, a pair row stored
/// reversed, or a row of another pack fails its checksum instead of editing with the wrong vectors.
package enum PackRow: Hashable, Sendable {
    /// v̄_h per head.
    case address
    /// w_X,h per head for value X.
    case vocab(String)
    /// The direct pair entry a → b, stored once per unordered pair with a < b.
    case pair(String, String)
    /// Compile work: S(X) of the pack's heads.
    case staged(String)

    /// The row's name in errors: the value, "a -> b", "address" or "staged X".
    package var label: String {
        switch self {
        case .address: return "address"
        case .vocab(let x): return x
        case .pair(let a, let b): return "\(a) -> \(b)"
        case .staged(let x): return "staged \(x)"
        }
    }

    /// The kind and names, length-prefixed so that no two rows serialise alike.
    fileprivate var identityBytes: [UInt8] {
        var out: [UInt8] = []
        func text(_ s: String) { let b = Array(s.utf8); withUnsafeBytes(of: UInt32(b.count).littleEndian) { out += $0 }; out += b }
        switch self {
        case .address: text("address")
        case .vocab(let x): text("vocab"); text(x)
        case .pair(let a, let b): text("pair"); text(a); text(b)
        case .staged(let x): text("staged"); text(x)
        }
        return out
    }
}

/// The shape a blob must have, known from the manifest before the blob is read.
package struct BlobShape: Equatable, Sendable {
    package var count: Int
    package var dim: Int
    package var scalars: Int
    package var dtype: StorageDType

    /// Decompressed bytes (the blob layout in schemas/README.md). Callers bound count·dim first
    /// (`PackManifest.checkBounds`), so this cannot overflow.
    package var rawSize: Int {
        BlobCodec.headerSize + 4 * scalars + (dtype == .int8 ? 4 * count : 0) + count * dim * dtype.elementSize
    }
}

extension PackManifest {
    /// The vocabulary a pack was compiled from, summarised so that the `vocab` table can be checked
    /// against it: an edited surface text, a changed ordinal, or a row added or deleted changes the digest.
    public struct ValueList: Codable, Equatable, Sendable {
        public var count: Int
        /// SHA-256 (hex) of "rwkv-edit pack values v3\n", the count (u32 LE), then per value in order
        /// its name and surface text, each as a u32 LE byte length and the UTF-8 bytes.
        public var sha256: String

        public init(_ values: [(name: String, surface: String)]) {
            count = values.count
            var bytes = Array("rwkv-edit pack values v3\n".utf8)
            func u32(_ v: Int) { withUnsafeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian) { bytes += $0 } }
            u32(values.count)
            for v in values {
                for t in [v.name, v.surface] { let b = Array(t.utf8); u32(b.count); bytes += b }
            }
            sha256 = SHA256.hexDigest(bytes)
        }
    }

    /// The shape of a row's blob: vocabulary and address rows H vectors of head_size, pair rows 2·H
    /// vectors (u's then v's) and H σ's, staged rows H value-major head_size² matrices in f32.
    package func shape(of row: PackRow) -> BlobShape {
        let h = headCount
        switch row {
        case .address, .vocab: return BlobShape(count: h, dim: headSize, scalars: 0, dtype: dtype)
        case .pair: return BlobShape(count: 2 * h, dim: headSize, scalars: h, dtype: dtype)
        case .staged: return BlobShape(count: h, dim: headSize * headSize, scalars: 0, dtype: .f32)
        }
    }

    /// The checksum stored beside a row's blob: a digest of what binds the row to this pack and place
    /// (the value list's digest, the layers, head shape and dtype, the row's kind and names, its
    /// decompressed size) followed by the stored, compressed bytes. Entries use the first 16 hex digits of
    /// SHA-256; staged rows, megabytes each and temporary, "x64:" and XXH64, where SHA-256 would cost
    /// more than the engine. Neither is a signature: anyone can recompute them; they make a pack's rows
    /// consistent with each other and with their places, which is what a bad copy, a tool bug or a
    /// row-shuffling edit breaks.
    package func rowChecksum(_ row: PackRow, rawSize: Int, payload: [UInt8]) -> String {
        var bytes = Array("rwkv-edit pack row v3\n\(values.sha256)\nlayers \(layers[0])-\(layers[1]) heads \(nHead)x\(headSize) \(dtype.rawValue)\n".utf8)
        bytes += row.identityBytes
        withUnsafeBytes(of: UInt64(bitPattern: Int64(rawSize)).littleEndian) { bytes += $0 }
        bytes += payload
        if case .staged = row { return "x64:" + XXH64.hex(bytes) }
        return String(SHA256.hexDigest(bytes).prefix(16))
    }
}
