import Foundation

/// Reads a state file of any `StateFormat` (detected from its magic or keys) and writes each format.
/// Reading checks every size against the file before allocating, every value for finiteness, and the
/// shape against the model's when one is given; nothing is returned half-read. Writing goes to a
/// temporary file that is renamed over the target.
public enum StateFile {
    /// The format of an existing file, from its first bytes (and, for safetensors, its keys). A file
    /// with no magic may be an rwkv.cpp buffer: that needs `expecting` with a matching size.
    public static func detect(_ path: String, expecting expected: StateShape? = nil) throws -> StateFormat {
        let file = try MappedFile(path: path)
        return try detect(file, expecting: expected)
    }

    static func detect(_ file: MappedFile, expecting expected: StateShape?) throws -> StateFormat {
        let all = file.all
        if file.count >= 4 {
            switch all.load(UInt32.self, at: 0) {
            case LlamaStateFile.sessionMagic: return .llamaSession
            case LlamaStateFile.sequenceMagic: return .llamaSeq
            case 0x0403_4B50: return .pth                                  // "PK\3\4": a torch zip
            default: break
            }
        }
        if file.count >= 9, all.load(UInt8.self, at: 8) == UInt8(ascii: "{"), let st = try? SafeTensorsFile(path: file.path) {
            if st.entries["layer0.wkv"] != nil { return .native }
            if st.entries[TimeStateFile.key(0)] != nil { return .webrwkv }
            throw StateFormatError.unrecognized(file: file.path, reason: "a safetensors file with neither 'layer0.wkv' nor '\(TimeStateFile.key(0))'")
        }
        guard let expected else { throw StateFormatError.needsModel(file: file.path, format: .rwkvcpp) }
        if file.count == RWKVCppStateFile.byteCount(expected) { return .rwkvcpp }
        let head = (0..<min(4, file.count)).map { String(format: "%02x", all.load(UInt8.self, at: $0)) }.joined(separator: " ")
        throw StateFormatError.unrecognized(file: file.path, reason: "no known magic (first bytes \(head)) and \(file.count) bytes, not the \(RWKVCppStateFile.byteCount(expected)) of an rwkv.cpp state of \(expected)")
    }

    /// Reads `path` in whatever format it is. With `expecting`, a state of another shape is an error
    /// naming the dimension that differs; without, the shape comes from the file (not possible for
    /// rwkv.cpp buffers).
    public static func read(_ path: String, expecting expected: StateShape? = nil) throws -> ImportedState {
        let file = try MappedFile(path: path)
        let format = try detect(file, expecting: expected)
        let imported: ImportedState
        switch format {
        case .llamaSession, .llamaSeq:
            imported = try LlamaStateFile.read(file.all, file: path, format: format, expecting: expected)
        case .pth:
            imported = try TimeStateFile.readPth(path, expecting: expected)
        case .webrwkv:
            let st = try SafeTensorsFile(path: path)
            guard let layers = try TimeStateFile.layerCount(st.entries.keys, file: path) else {
                throw StateFormatError.unrecognized(file: path, reason: "no time_state tensors")
            }
            imported = try TimeStateFile.readWebRWKV(st, layers: layers, expecting: expected)
        case .rwkvcpp:
            guard let expected else { throw StateFormatError.needsModel(file: path, format: .rwkvcpp) }
            imported = try RWKVCppStateFile.read(file.all, file: path, shape: expected)
        case .native:
            imported = try readNative(try SafeTensorsFile(path: path), expecting: expected)
        }
        if let expected, let d = expected.difference(file: StateShape(imported.state)) {
            throw StateFormatError.otherShape(file: path, format: format, dimension: d)
        }
        return imported
    }

    /// A native file read by shape, with its token count and edit log; `SavedState.read` is the reader
    /// that also checks the model identity and checksum, for a model at hand.
    static func readNative(_ st: SafeTensorsFile, expecting expected: StateShape?) throws -> ImportedState {
        let path = st.path
        guard let wkv = st.entries["layer0.wkv"], let shift = st.entries["layer0.att_x_prev"] else {
            throw StateFormatError.unrecognized(file: path, reason: "no 'layer0.wkv' and 'layer0.att_x_prev'")
        }
        guard wkv.shape.count == 3, wkv.shape[1] == wkv.shape[2], shift.shape.count == 1 else {
            throw StateFormatError.malformed(file: path, reason: "'layer0.wkv' has shape \(wkv.shape), 'layer0.att_x_prev' \(shift.shape)")
        }
        var layers = 0
        while layers < 4096, st.entries["layer\(layers).wkv"] != nil { layers += 1 }
        let shape = StateShape(nLayer: layers, nEmbd: shift.shape[0], nHead: wkv.shape[0], headSize: wkv.shape[1])
        try shape.checkPlausible(file: path)
        if let expected, let d = expected.difference(file: shape) {
            throw StateFormatError.otherShape(file: path, format: .native, dimension: d)
        }
        let state = try State.load(from: st, shape: shape)
        let tokens = st.metadata[SavedState.Key.tokens].flatMap { Int($0) } ?? 0
        let edits: [EditRecord]
        do { edits = try JSONDecoder().decode([EditRecord].self, from: Data((st.metadata[SavedState.Key.edits] ?? "[]").utf8)) } catch {
            throw StateFileError.invalidField(file: path, field: SavedState.Key.edits, reason: "\(error)")
        }
        return ImportedState(state: state, format: .native, tokenIDs: [], tokenCount: max(tokens, 0), edits: edits)
    }

    /// Writes `saved` in `format`. `tokenIDs` are the prompt tokens llama.cpp files list (may be
    /// empty: llama.cpp then only knows the count, from the sequence position). The native format
    /// keeps provenance (`SavedState.write`); the others carry only the numbers.
    public static func write(_ saved: SavedState, tokenIDs: [Int32] = [], as format: StateFormat, to path: String) throws {
        let s = saved.state
        for (name, values) in [("att_x_prev", s.attXPrev), ("wkv", s.wkv), ("ffn_x_prev", s.ffnXPrev)] {
            try StateValues.checkFinite(values, file: path, tensor: name)
        }
        switch format {
        case .native: try saved.write(to: path)
        case .llamaSession, .llamaSeq:
            try AtomicFile.write(LlamaStateFile.encode(s, format: format, tokenIDs: tokenIDs, tokenCount: saved.tokens), to: path)
        case .pth: try TimeStateFile.writePth(s, to: path)
        case .webrwkv: try TimeStateFile.writeWebRWKV(s, to: path)
        case .rwkvcpp: try AtomicFile.write(RWKVCppStateFile.encode(s), to: path)
        }
    }
}
