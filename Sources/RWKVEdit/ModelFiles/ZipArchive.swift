import Foundation

/// Read-only view of a zip archive's central directory over a memory-mapped file, as written by
/// `torch.save` (STORED entries, ZIP64 when large). Entry data is handed out as regions of the map
/// (zero copy); every offset and size read from the file is checked against the file's bounds, and
/// every entry handed out is checked against its CRC-32, so flipped bytes are reported, not loaded.
public struct ZipArchive: Sendable {
    public struct Entry: Sendable {
        public let name: String
        /// 0 = stored; anything else is compressed and refused on access.
        public let method: UInt16
        public let flags: UInt16
        public let compressedSize: Int
        public let uncompressedSize: Int
        public let localHeaderOffset: Int
        /// CRC-32 of the uncompressed data, from the central directory.
        public let crc32: UInt32
    }

    public let file: MappedFile
    public var path: String { file.path }
    /// Entries in central-directory order.
    public let entries: [Entry]
    private let index: [String: Int]

    public init(path: String) throws {
        try self.init(file: try MappedFile(path: path))
    }

    public init(file: MappedFile) throws {
        self.file = file
        let path = file.path
        let all = file.all
        let n = file.count
        func bad(_ why: String) -> RWKVError { .malformed(file: path, reason: "zip archive: \(why)") }

        // End of central directory: 22 bytes + a comment of at most 65535 bytes, at the file's end.
        guard n >= 22 else { throw bad("too short to hold an end-of-central-directory record") }
        var eocd = -1
        var p = n - 22
        let lowest = max(0, n - 22 - 65535)
        while p >= lowest {
            if all.load(UInt32.self, at: p) == 0x0605_4B50 { eocd = p; break }
            p -= 1
        }
        guard eocd >= 0 else { throw bad("no end-of-central-directory record (the file is truncated or not a zip)") }
        var entryCount = Int(all.load(UInt16.self, at: eocd + 10))
        var cdSize = Int(all.load(UInt32.self, at: eocd + 12))
        var cdOffset = Int(all.load(UInt32.self, at: eocd + 16))
        if entryCount == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            // ZIP64: a 20-byte locator sits just before the classic record.
            let loc = eocd - 20
            guard loc >= 0, all.load(UInt32.self, at: loc) == 0x0706_4B50 else {
                throw bad("the end record needs ZIP64 fields but no ZIP64 locator precedes it")
            }
            let z64 = all.load(UInt64.self, at: loc + 8)
            guard z64 <= UInt64(n - 56) else { throw bad("ZIP64 end record offset \(z64) lies outside the file") }
            let z = Int(z64)
            guard all.load(UInt32.self, at: z) == 0x0606_4B50 else { throw bad("no ZIP64 end record at offset \(z)") }
            let c = all.load(UInt64.self, at: z + 32)
            let s = all.load(UInt64.self, at: z + 40)
            let o = all.load(UInt64.self, at: z + 48)
            guard c <= UInt64(n), s <= UInt64(n), o <= UInt64(n) else { throw bad("ZIP64 end record fields exceed the file size") }
            entryCount = Int(c); cdSize = Int(s); cdOffset = Int(o)
        }
        guard cdOffset <= n, cdSize <= n - cdOffset else {
            throw bad("central directory \(cdOffset)..<\(cdOffset &+ cdSize) lies outside the \(n)-byte file")
        }
        guard entryCount <= cdSize / 46 + 1 else { throw bad("\(entryCount) entries cannot fit a \(cdSize)-byte central directory") }

        var entries: [Entry] = []
        entries.reserveCapacity(entryCount)
        var index: [String: Int] = [:]
        var q = cdOffset
        let cdEnd = cdOffset + cdSize
        for i in 0..<entryCount {
            guard cdEnd - q >= 46 else { throw bad("central directory entry \(i) is truncated") }
            guard all.load(UInt32.self, at: q) == 0x0201_4B50 else { throw bad("central directory entry \(i) has a bad signature") }
            let flags = all.load(UInt16.self, at: q + 8)
            let method = all.load(UInt16.self, at: q + 10)
            let crc = all.load(UInt32.self, at: q + 16)
            var csize = UInt64(all.load(UInt32.self, at: q + 20))
            var usize = UInt64(all.load(UInt32.self, at: q + 24))
            let nameLen = Int(all.load(UInt16.self, at: q + 28))
            let extraLen = Int(all.load(UInt16.self, at: q + 30))
            let commentLen = Int(all.load(UInt16.self, at: q + 32))
            var local = UInt64(all.load(UInt32.self, at: q + 42))
            let total = 46 + nameLen + extraLen + commentLen
            guard cdEnd - q >= total else { throw bad("central directory entry \(i) runs past the directory's end") }
            let name = String(decoding: UnsafeRawBufferPointer(start: all.base + q + 46, count: nameLen), as: UTF8.self)
            // ZIP64 extended information: the 64-bit values present are exactly those whose 32-bit field is all ones.
            var e = q + 46 + nameLen
            let extraEnd = e + extraLen
            while extraEnd - e >= 4 {
                let id = all.load(UInt16.self, at: e)
                let len = Int(all.load(UInt16.self, at: e + 2))
                guard extraEnd - e - 4 >= len else { throw bad("entry '\(name)' has a truncated extra field") }
                if id == 0x0001 {
                    var f = e + 4
                    let fEnd = f + len
                    func next() throws -> UInt64 {
                        guard fEnd - f >= 8 else { throw bad("entry '\(name)' has a short ZIP64 extra field") }
                        defer { f += 8 }
                        return all.load(UInt64.self, at: f)
                    }
                    if usize == 0xFFFF_FFFF { usize = try next() }
                    if csize == 0xFFFF_FFFF { csize = try next() }
                    if local == 0xFFFF_FFFF { local = try next() }
                }
                e += 4 + len
            }
            guard usize <= UInt64(n), csize <= UInt64(n), local <= UInt64(n) else {
                throw bad("entry '\(name)' claims sizes or an offset beyond the \(n)-byte file")
            }
            if index[name] == nil { index[name] = entries.count }
            entries.append(Entry(name: name, method: method, flags: flags, compressedSize: Int(csize),
                                 uncompressedSize: Int(usize), localHeaderOffset: Int(local), crc32: crc))
            q += total
        }
        self.entries = entries
        self.index = index
    }

    public func entry(named name: String) -> Entry? { index[name].map { entries[$0] } }

    /// The bytes of a stored (uncompressed, unencrypted) entry, as a region of the map, after checking
    /// their CRC-32 (computed over the mapped bytes: no copy).
    public func data(of entry: Entry) throws -> ByteRegion {
        let path = file.path
        guard entry.flags & 1 == 0 else {
            throw RWKVError.unsupported(file: path, reason: "zip entry '\(entry.name)' is encrypted")
        }
        guard entry.method == 0 else {
            throw RWKVError.unsupported(file: path, reason: "zip entry '\(entry.name)' is compressed (method \(entry.method)); only stored (uncompressed) entries are read, as torch.save writes them. Re-save the file with torch.save")
        }
        guard entry.compressedSize == entry.uncompressedSize else {
            throw RWKVError.malformed(file: path, reason: "zip entry '\(entry.name)' is stored but its sizes differ (\(entry.compressedSize) vs \(entry.uncompressedSize))")
        }
        let h = entry.localHeaderOffset
        let header = try file.bytes(at: h, count: 30)
        guard header.load(UInt32.self, at: 0) == 0x0403_4B50 else {
            throw RWKVError.malformed(file: path, reason: "zip entry '\(entry.name)': no local header at offset \(h)")
        }
        let nameLen = Int(header.load(UInt16.self, at: 26))
        let extraLen = Int(header.load(UInt16.self, at: 28))
        let region = try file.bytes(at: h + 30 + nameLen + extraLen, count: entry.uncompressedSize)
        let crc = CRC32.checksum(UnsafeRawBufferPointer(start: region.base, count: region.count))
        guard crc == entry.crc32 else {
            throw RWKVError.malformed(file: path, reason: "zip entry '\(entry.name)' fails its CRC-32 check (stored \(hex(entry.crc32)), computed \(hex(crc))): its bytes were changed after it was written")
        }
        return region
    }

    private func hex(_ v: UInt32) -> String { "0x" + String(v, radix: 16, uppercase: false) }

    public func data(named name: String) throws -> ByteRegion {
        guard let e = entry(named: name) else {
            throw RWKVError.malformed(file: file.path, reason: "zip archive has no entry '\(name)'")
        }
        return try data(of: e)
    }
}
