import Foundation

/// Reads a PyTorch `.pth` state dict (torch.save's zip format) without executing its pickle:
/// tensors come back as regions of the memory-mapped file.
public enum PthReader {
    /// All float tensors (f32, f16, bf16) of the top-level dict, by name.
    public static func tensors(path: String) throws -> [String: RawTensor] {
        let zip = try ZipArchive(path: path)
        guard let pkl = zip.entries.first(where: { $0.name == "data.pkl" || $0.name.hasSuffix("/data.pkl") }) else {
            throw RWKVError.malformed(file: path, reason: "no data.pkl in the zip archive: not a torch.save file (legacy non-zip .pth files are not supported; re-save with a recent torch)")
        }
        let prefix = String(pkl.name.dropLast("data.pkl".count))
        if let bo = zip.entry(named: prefix + "byteorder") {
            let region = try zip.data(of: bo)
            let s = String(decoding: UnsafeRawBufferPointer(start: region.base, count: region.count), as: UTF8.self)
            guard s.trimmingCharacters(in: .whitespacesAndNewlines) == "little" else {
                throw RWKVError.unsupported(file: path, reason: "the tensors are stored \(s) endian; only little endian is read")
            }
        }
        let root = try Pickle.load(try zip.data(of: pkl), file: path)
        guard case .dict(let dict) = root else {
            throw RWKVError.unsupported(file: path, reason: "the pickle holds a \(root.kind), not a state dict (a dict of tensors)")
        }
        var storages: [String: ByteRegion] = [:]
        var out: [String: RawTensor] = [:]
        for (k, v) in dict.items {
            guard case .string(let name) = k else { continue }
            guard case .tensor(let t) = v else { continue }
            guard let dtype = t.storage.dtype else {
                throw RWKVError.unsupported(file: path, reason: "tensor '\(name)' is stored as \(t.storage.typeName); supported dtypes: float32, float16, bfloat16")
            }
            let region: ByteRegion
            if let r = storages[t.storage.key] {
                region = r
            } else {
                let entryName = prefix + "data/" + t.storage.key
                guard let e = zip.entry(named: entryName) else {
                    throw RWKVError.malformed(file: path, reason: "tensor '\(name)' refers to storage '\(entryName)', which the archive lacks")
                }
                region = try zip.data(of: e)
                storages[t.storage.key] = region
            }
            let (need, o1) = t.storage.numel.multipliedReportingOverflow(by: dtype.blockBytes)
            guard !o1, need <= region.count else {
                throw RWKVError.malformed(file: path, reason: "storage '\(t.storage.key)' claims \(t.storage.numel) elements of \(dtype.blockBytes) bytes but holds \(region.count) bytes")
            }
            let count = try checkedElementCount(t.shape, file: path, name: name)
            let begin = t.offset * dtype.blockBytes
            let length = count * dtype.blockBytes
            guard begin >= 0, length >= 0, begin <= region.count, length <= region.count - begin else {
                throw RWKVError.malformed(file: path, reason: "tensor '\(name)' overruns its storage")
            }
            out[name] = RawTensor(shape: t.shape, dtype: dtype,
                                  data: ByteRegion(base: region.base + begin, count: length, owner: region.owner))
        }
        guard !out.isEmpty else {
            throw RWKVError.malformed(file: path, reason: "the state dict holds no tensors")
        }
        return out
    }

    /// Loads an RWKV-7 model from a BlinkDL `.pth`.
    public static func loadModel(path: String, placement: WeightPlacement = .hugePages) throws -> RWKVModel {
        try RWKVModel(blinkDLTensors: placement.place(try tensors(path: path)), path: path, format: .pth)
    }
}
