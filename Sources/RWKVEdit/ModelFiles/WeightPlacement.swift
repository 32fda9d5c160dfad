import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where a loaded model's weights live in memory. Either way it needs about its file size in RAM.
public enum WeightPlacement: Sendable {
    /// Pointing into the file's memory map: nothing is copied, so loading is instant (4 KiB pages).
    case mapped
    /// Every tensor but the embedding copied into one block of anonymous memory that the kernel is asked
    /// to back with 2 MiB pages (transparent huge pages), where it gives them and the copy fits in the
    /// memory available with room to spare (else `mapped`: mapped pages can be dropped and read again
    /// under memory pressure, copied ones cannot, so a model near the machine's RAM stays mapped). Decoding
    /// streams each of these weights once per token, and with 4 KiB pages a 0.4B f16 file decoded 7–15%
    /// slower on the AVX2 machine (README "Performance"); copying a 1 GB file costs 0.2–0.8 s once. The
    /// embedding stays mapped: a token reads one row of it, and only the rows used become resident.
    case hugePages

    /// Whether the kernel gives huge pages to a region that asks (`madvise` or `always` mode).
    static let hugePagesAvailable: Bool = {
        guard let mode = try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8) else { return false }
        return mode.contains("[always]") || mode.contains("[madvise]")
    }()

    /// `tensors` with their bytes where this placement keeps them. For `.hugePages`, each copied
    /// tensor's source pages are released from the file's mapping (they are read-only file pages: a
    /// later read would fault them back in, unchanged), so the copy does not double the resident memory.
    func place(_ tensors: [String: RawTensor]) -> [String: RawTensor] {
        guard self == .hugePages, Self.hugePagesAvailable else { return tensors }
        let embedding = TensorSpec.embedding.blinkDL
        let moved = tensors.filter { $0.key != embedding && !$0.value.isTransposedView && $0.value.data.count > 0 }
            .sorted { $0.value.data.base < $1.value.data.base }
        let size = moved.reduce(0) { $0 + Self.aligned($1.value.data.count) }
        // Not enough memory for the copy: the mapped weights serve the same, only slower.
        guard size > 0, size <= Self.availableMemory() / 2, let arena = HugePageArena(count: size) else { return tensors }
        var out = tensors, offset = 0
        for (name, t) in moved {
            let destination = arena.base + offset
            destination.copyMemory(from: t.data.base, byteCount: t.data.count)
            if t.data.owner is MappedFile { Self.release(t.data) }
            out[name] = RawTensor(shape: t.shape, dtype: t.dtype,
                                  data: ByteRegion(base: UnsafeRawPointer(destination), count: t.data.count, owner: arena))
            offset += Self.aligned(t.data.count)
        }
        arena.seal()
        return out
    }

    private static func aligned(_ n: Int) -> Int { (n + 63) & ~63 }

    /// The memory the kernel could give without swapping (`MemAvailable`: free memory plus the page cache
    /// it can drop, the file's own pages included), or 0 when it does not say.
    private static func availableMemory() -> Int {
        guard let info = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return 0 }
        for line in info.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let fields = line.split(separator: " ")
            if fields.count >= 2, let kib = Int(fields[1]), kib >= 0 { return kib > Int.max / 1024 ? Int.max : kib * 1024 }
        }
        return 0
    }

    /// Drops the whole pages inside `region` from this process's mapping of its file.
    private static func release(_ region: ByteRegion) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (Int(bitPattern: region.base) + page - 1) / page * page
        let end = (Int(bitPattern: region.base) + region.count) / page * page
        guard end > start, let p = UnsafeMutableRawPointer(bitPattern: start) else { return }
        _ = madvise(p, end - start, MADV_DONTNEED)
    }
}

/// Zeroed anonymous memory advised for huge pages: the weights `WeightPlacement.place` copies (then
/// sealed read-only), and the engine's activation buffers.
final class HugePageArena: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let count: Int

    init?(count: Int) {
        guard let p = mmap(nil, count, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else { return nil }
        // Only advice: refused, the pages are 4 KiB and the bytes the same.
        _ = madvise(p, count, MADV_HUGEPAGE)
        base = p
        self.count = count
    }

    func seal() { _ = mprotect(base, count, PROT_READ) }

    deinit { munmap(base, count) }
}
