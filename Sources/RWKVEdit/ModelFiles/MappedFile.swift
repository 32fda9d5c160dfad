import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A read-only memory map of a whole file. Weights point into it instead of being copied,
/// so a model needs little more RAM than its file size.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let base: UnsafeRawPointer
    public let count: Int

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            if errno == ENOENT { throw RWKVError.fileNotFound(path) }
            throw RWKVError.unreadable(file: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw RWKVError.unreadable(file: path, reason: String(cString: strerror(errno)))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw RWKVError.unreadable(file: path, reason: "not a regular file")
        }
        count = Int(st.st_size)
        if count == 0 {
            // mmap of length 0 fails; an empty file is malformed for every format we read.
            throw RWKVError.malformed(file: path, reason: "the file is empty")
        }
        guard let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw RWKVError.unreadable(file: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), count) }

    /// The bytes [offset, offset+length), after checking they lie inside the file.
    public func bytes(at offset: Int, count length: Int) throws -> ByteRegion {
        guard offset >= 0, length >= 0, offset <= count, length <= count - offset else {
            throw RWKVError.malformed(file: path, reason: "data range \(offset)..<\(offset &+ length) lies outside the \(count)-byte file")
        }
        return ByteRegion(base: base + offset, count: length, owner: self)
    }

    public var all: ByteRegion { ByteRegion(base: base, count: count, owner: self) }
}

/// A span of bytes kept alive by its owner (a mapped file or an owned allocation).
public struct ByteRegion: @unchecked Sendable {
    public let base: UnsafeRawPointer
    public let count: Int
    public let owner: AnyObject

    /// Little-endian integer at `offset`; the caller has checked bounds.
    @inline(__always) func load<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// Owned copy of `floats` as a region (for weights the loader had to transform).
    public static func owning(_ floats: [Float]) -> ByteRegion {
        let storage = OwnedBytes(count: floats.count * 4)
        floats.withUnsafeBytes { storage.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return ByteRegion(base: UnsafeRawPointer(storage.pointer), count: storage.count, owner: storage)
    }

    public static func owning(bytes: UnsafeRawBufferPointer) -> ByteRegion {
        let storage = OwnedBytes(count: bytes.count)
        if let b = bytes.baseAddress, bytes.count > 0 { storage.pointer.copyMemory(from: b, byteCount: bytes.count) }
        return ByteRegion(base: UnsafeRawPointer(storage.pointer), count: storage.count, owner: storage)
    }
}

final class OwnedBytes: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let count: Int
    init(count: Int) {
        self.count = count
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 64)
    }
    deinit { pointer.deallocate() }
}
