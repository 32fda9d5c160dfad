// Fuzz target: `.pth` files — zip central directory, CRC-32, pickle VM, tensor views, model checks.
import RWKVEdit

/// Input byte 0 selects the form. Even: the rest is the whole file (the zip layer is fuzzed; its
/// CRC-32s stop most mutations of the pickle). Odd: bytes 1...2 = storage count K (little endian, at
/// most 1024), bytes 3...5 = storage size (little endian, at most 256 KiB), the rest = data.pkl; the target wraps it in a valid zip
/// whose K storage entries all point at one block of zeros, so the pickle and the model checks
/// behind it are reached with correct CRCs.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPth(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 1 else { return 0 }
    let path = scratchPath("pth")
    if data[0] & 1 == 0 {
        writeFile(path, UnsafeRawBufferPointer(start: data + 1, count: size - 1))
    } else {
        guard size >= 6 else { return 0 }
        let k = min(Int(data[1]) | Int(data[2]) << 8, 1024)
        let storage = min(Int(data[3]) | Int(data[4]) << 8 | Int(data[5]) << 16, 256 << 10)
        let pickle = Array(UnsafeBufferPointer(start: data + 6, count: size - 6))
        let zip = sharedStorageZip(pickle: pickle, storages: k, storageBytes: storage)
        zip.withUnsafeBytes { writeFile(path, $0) }
    }
    expectTyped(RWKVError.self) { _ = try PthReader.loadModel(path: path) }
    return 0
}

/// A stored zip as torch.save writes it (prefix "m/"), with K central-directory entries
/// m/data/0 ... m/data/K-1 sharing one local entry of zeros.
func sharedStorageZip(pickle: [UInt8], storages: Int, storageBytes: Int) -> [UInt8] {
    var out: [UInt8] = [], central: [UInt8] = []
    func u16(_ v: Int, _ b: inout [UInt8]) { b += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
    func u32(_ v: Int, _ b: inout [UInt8]) { u16(v & 0xFFFF, &b); u16(v >> 16 & 0xFFFF, &b) }
    var count = 0
    func local(_ name: String, _ data: [UInt8]) -> (offset: Int, crc: Int) {
        let offset = out.count, n = Array(name.utf8), crc = Int(CRC32.checksum(data))
        u32(0x0403_4B50, &out); u16(20, &out); u16(0, &out); u16(0, &out); u16(0, &out); u16(0, &out)
        u32(crc, &out); u32(data.count, &out); u32(data.count, &out); u16(n.count, &out); u16(0, &out)
        out += n; out += data
        return (offset, crc)
    }
    func entry(_ name: String, size: Int, at l: (offset: Int, crc: Int)) {
        let n = Array(name.utf8)
        u32(0x0201_4B50, &central); u16(20, &central); u16(20, &central); u16(0, &central); u16(0, &central)
        u16(0, &central); u16(0, &central); u32(l.crc, &central); u32(size, &central); u32(size, &central)
        u16(n.count, &central); u16(0, &central); u16(0, &central); u16(0, &central); u16(0, &central); u32(0, &central)
        u32(l.offset, &central); central += n
        count += 1
    }
    let order = Array("little".utf8)
    entry("m/data.pkl", size: pickle.count, at: local("m/data.pkl", pickle))
    entry("m/byteorder", size: order.count, at: local("m/byteorder", order))
    let zeros = local("m/data/0", [UInt8](repeating: 0, count: storageBytes))
    for i in 0..<storages { entry("m/data/\(i)", size: storageBytes, at: zeros) }
    let cdOffset = out.count
    out += central
    u32(0x0605_4B50, &out); u16(0, &out); u16(0, &out); u16(count, &out); u16(count, &out)
    u32(central.count, &out); u32(cdOffset, &out); u16(0, &out)
    return out
}
