import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where a file's bytes are held in memory. Either way a model needs about its file size in RAM.
public enum FilePlacement: Sendable {
    /// Mapped from the page cache: nothing is copied, so opening is instant (4 KiB pages).
    case mapped
    /// Read into anonymous memory the kernel is asked to back with 2 MiB pages (transparent huge pages),
    /// where available (else mapped). Decoding streams every weight per token, and with 4 KiB pages a
    /// 0.4B f16 file decoded ~10% slower on the AVX2 machine (README "Performance", Decode); reading a
    /// 1 GB file this way costs 0.2–1.2 s once.
    case hugePages

    /// Whether the kernel will give huge pages to a region that asks (`madvise` or `always` mode).
    static let hugePagesAvailable: Bool = {
        guard let mode = try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8) else { return false }
        return mode.contains("[always]") || mode.contains("[madvise]")
    }()
}

/// A whole file in memory, read-only: mapped, or read into huge pages (`FilePlacement`). Weights point
/// into it instead of being copied again, so a model needs little more RAM than its file size.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let base: UnsafeRawPointer
    public let count: Int

    public init(path: String, placement: FilePlacement = .mapped) throws {
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
        if placement == .hugePages, FilePlacement.hugePagesAvailable {
            base = try Self.readIntoHugePages(fd: fd, count: count, path: path)
            return
        }
        guard let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw RWKVError.unreadable(file: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
    }

    /// The file's `count` bytes read into a fresh anonymous mapping advised for huge pages, then made
    /// read-only. Unmapped by `deinit` as a file mapping is.
    private static func readIntoHugePages(fd: Int32, count: Int, path: String) throws -> UnsafeRawPointer {
        guard let p = mmap(nil, count, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
            throw RWKVError.unreadable(file: path, reason: "could not reserve \(count) bytes of memory for it: \(String(cString: strerror(errno)))")
        }
        // Only advice: without it the pages are 4 KiB and the bytes the same.
        _ = madvise(p, count, MADV_HUGEPAGE)
        var done = 0
        while done < count {
            let n = pread(fd, p + done, min(count - done, 1 << 26), off_t(done))
            if n > 0 { done += n; continue }
            if n < 0, errno == EINTR { continue }
            let reason = n == 0 ? "the file ended at byte \(done) of \(count) while it was read (changed on disk?)"
                : "read failed: \(String(cString: strerror(errno)))"
            munmap(p, count)
            throw RWKVError.unreadable(file: path, reason: reason)
        }
        _ = mprotect(p, count, PROT_READ)
        return UnsafeRawPointer(p)
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
