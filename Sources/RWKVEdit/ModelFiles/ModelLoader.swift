import Foundation

/// Opens a model file of any supported format, recognised by its leading bytes rather than its name.
public enum ModelLoader {
    /// `placement`: huge pages (the default) for a model that will run; `.mapped` when only its
    /// description or identity is wanted, as loading is then instant.
    public static func load(path: String, placement: WeightPlacement = .hugePages) throws -> RWKVModel {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw RWKVError.unreadable(file: path, reason: "it is a directory; give a model file (.pth, .safetensors or .gguf)")
        }
        let head = try leadingBytes(path, 10)
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) {
            return try PthReader.loadModel(path: path, placement: placement)
        }
        if head.starts(with: [0x80, 0x02, 0x8A, 0x0A]) {
            throw RWKVError.unsupported(file: path, reason: "this is torch's legacy (pre-1.6, non-zip) format; re-save it with a current torch: torch.save(torch.load(f), f)")
        }
        if head.starts(with: Array("GGUF".utf8)) {
            return try GGUFReader.loadModel(path: path, placement: placement)
        }
        // safetensors: an 8-byte header length, then the JSON header, which starts with '{'.
        guard head.count == 10, head[8] == UInt8(ascii: "{") else {
            let shown = String(decoding: head.prefix(8).map { (0x20..<0x7F).contains($0) ? $0 : UInt8(ascii: ".") }, as: UTF8.self)
            throw RWKVError.unsupported(file: path, reason: "not a model file: it is neither a torch zip (.pth), safetensors nor GGUF (it starts with \"\(shown)\"); give an RWKV-7 model file")
        }
        let st = try SafeTensorsFile(path: path)
        if FLAKeys.looksLikeFLA(st.entries.keys) {
            return try RWKVModel(blinkDLTensors: placement.place(try FLAKeys.blinkDLTensors(try st.floatTensors(), file: path)),
                                 path: path, format: .safetensorsFLA)
        }
        return try RWKVModel(blinkDLTensors: placement.place(try st.floatTensors()), path: path, format: .safetensors)
    }

    static func leadingBytes(_ path: String, _ n: Int) throws -> [UInt8] {
        guard let h = FileHandle(forReadingAtPath: path) else {
            if !FileManager.default.fileExists(atPath: path) { throw RWKVError.fileNotFound(path) }
            throw RWKVError.unreadable(file: path, reason: "permission denied or not a file")
        }
        defer { try? h.close() }
        return [UInt8]((try? h.read(upToCount: n)) ?? Data())
    }
}
