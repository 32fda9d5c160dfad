// Shared by every fuzz target (scripts/fuzz.sh compiles it into each): how an input becomes a file,
// and the oracle. The readers take paths and memory-map them, so inputs go through real files in
// /dev/shm (memory-backed), as the CLI's would.
import Foundation
import RWKVEdit
#if canImport(Glibc)
import Glibc
#endif

/// A per-process scratch path with extension `ext`: parallel fuzz jobs never share a file.
func scratchPath(_ ext: String) -> String {
    let dir = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    return "\(dir)/rwkv-fuzz-\(getpid()).\(ext)"
}

/// Writes `bytes` to `path`, then extends the file with zeros to `length` bytes if that is longer.
/// Extending with ftruncate costs nothing (a sparse file), so a small input can describe a header
/// followed by megabytes of tensor data.
func writeFile(_ path: String, _ bytes: UnsafeRawBufferPointer, length: Int = 0) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    precondition(fd >= 0, "cannot create \(path)")
    var done = 0
    while done < bytes.count {
        let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
        precondition(n > 0, "cannot write \(path)")
        done += n
    }
    if length > bytes.count { precondition(ftruncate(fd, off_t(length)) == 0) }
    close(fd)
}

/// Input layout of the file targets: byte 0 even → the rest is the whole file; odd → bytes 1...3
/// are a little-endian length in 256-byte units (at most 16 MiB) and the rest is the file's head,
/// padded with zeros to that length (a real header over zero tensor data).
func writeInputFile(_ data: UnsafePointer<UInt8>, _ size: Int, ext: String) -> String? {
    guard size >= 1 else { return nil }
    let path = scratchPath(ext)
    if data[0] & 1 == 0 {
        writeFile(path, UnsafeRawBufferPointer(start: data + 1, count: size - 1))
    } else {
        guard size >= 4 else { return nil }
        let units = Int(data[1]) | Int(data[2]) << 8 | Int(data[3] & 0xFF) << 16
        writeFile(path, UnsafeRawBufferPointer(start: data + 4, count: size - 4), length: min(units * 256, 16 << 20))
    }
    return path
}

/// The oracle besides "no crash, no sanitizer report": every failure is the reader's own typed error.
/// Anything else (a Foundation error leaking out, say) would reach the user without the file and fix.
func expectTyped<E: Error>(_: E.Type, _ body: () throws -> Void) {
    do { try body() } catch is E {} catch {
        fatalError("untyped error \(type(of: error)): \(error)")
    }
}
