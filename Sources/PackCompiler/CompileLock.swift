import Foundation
import RWKVEdit
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An advisory lock on a pack being written: `<output>.lock`, held with `flock` for the whole compile
/// or merge and holding the writer's pid. Two compiles of one output would otherwise both write
/// `<output>.partial` and fail with raw SQLite errors ("UNIQUE constraint failed", "readonly database")
/// or leave a mixed file. The kernel drops the lock when its process dies, so a killed compile leaves
/// no stale lock, only a lock file the next compile takes over.
package final class CompileLock {
    package let path: String
    private let fd: Int32

    /// Takes the lock or throws `PackError.locked` naming the holder's pid, without waiting.
    package init(output: String) throws {
        path = output + ".lock"
        while true {
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw PackError.unreadable(file: path, reason: "cannot create the lock file: \(String(cString: strerror(errno)))") }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                let holder = Self.pid(in: fd)
                close(fd)
                throw PackError.locked(file: output, pid: holder)
            }
            // The previous holder deletes the file before it unlocks; a lock taken on a file it already
            // deleted guards nothing, so take it again on the file now at the path.
            var held = stat(), atPath = stat()
            if fstat(fd, &held) == 0, stat(path, &atPath) == 0, held.st_ino == atPath.st_ino, held.st_dev == atPath.st_dev {
                let text = Array("\(getpid())\n".utf8)
                _ = ftruncate(fd, 0)
                _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
                self.fd = fd
                return
            }
            close(fd)
        }
    }

    /// Deletes the lock file, then unlocks (closing the descriptor drops the lock).
    deinit {
        unlink(path)
        close(fd)
    }

    /// The pid the holder wrote, if it has written it yet.
    private static func pid(in fd: Int32) -> Int? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        return Int(String(decoding: buffer[..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
