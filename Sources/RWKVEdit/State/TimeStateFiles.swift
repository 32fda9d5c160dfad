import Foundation

/// The two shift-less formats, which hold only the WKV matrices under `blocks.{i}.att.time_state`
/// (H, N, N): RWKV-PEFT's state-tuning `.pth` (value-major [head][value][key], as RWKV-Runner and the
/// official package put it into `state[3i+1]` for x070 without transposing) and web-rwkv/ai00's
/// `.state` safetensors (F16 only, key-major [head][key][value]). Importers start the shifts at zero.
enum TimeStateFile {
    static func key(_ layer: Int) -> String { "blocks.\(layer).att.time_state" }

    /// The number of layers the keys name (0..<L, none missing), or nil when there are none.
    static func layerCount(_ names: some Sequence<String>, file: String) throws -> Int? {
        var layers = Set<Int>()
        for n in names where n.hasPrefix("blocks.") && n.hasSuffix(".att.time_state") {
            guard let l = Int(n.dropFirst("blocks.".count).dropLast(".att.time_state".count)), l >= 0, l < 4096 else {
                throw StateFormatError.malformed(file: file, reason: "tensor '\(n)' does not name a layer")
            }
            layers.insert(l)
        }
        guard let top = layers.max() else { return nil }
        for l in 0...top where !layers.contains(l) {
            throw StateFormatError.malformed(file: file, reason: "'\(key(l))' is missing although layer \(top) is present")
        }
        return top + 1
    }

    /// Builds the state from per-layer (H, N, N) tensors; `keyMajor` transposes each head back.
    static func state(_ tensors: [String: RawTensor], layers: Int, file: String, format: StateFormat,
                      keyMajor: Bool, expecting expected: StateShape?) throws -> State {
        guard let first = tensors[key(0)] else { throw StateFormatError.malformed(file: file, reason: "no '\(key(0))'") }
        guard first.shape.count == 3, first.shape[1] == first.shape[2] else {
            throw StateFormatError.malformed(file: file, reason: "'\(key(0))' has shape \(first.shape), expected (heads, head size, head size)")
        }
        let shape = StateShape(nLayer: layers, nEmbd: first.shape[0] * first.shape[1], nHead: first.shape[0], headSize: first.shape[1])
        try shape.checkPlausible(file: file)
        if let expected, let d = expected.difference(file: shape) {
            throw StateFormatError.otherShape(file: file, format: format, dimension: d)
        }
        var s = State(nLayer: shape.nLayer, nEmbd: shape.nEmbd, nHead: shape.nHead, headSize: shape.headSize)
        let hn = shape.wkvPerLayer
        for l in 0..<layers {
            let name = key(l)
            guard let t = tensors[name] else { throw StateFormatError.malformed(file: file, reason: "no '\(name)'") }
            guard t.shape == first.shape else {
                throw StateFormatError.malformed(file: file, reason: "'\(name)' has shape \(t.shape), layer 0 \(first.shape)")
            }
            var values = t.floats()
            try StateValues.checkFinite(values, file: file, tensor: name)
            if keyMajor { values = StateValues.transposeHeads(values, nHead: shape.nHead, headSize: shape.headSize) }
            s.wkv.replaceSubrange((l * hn)..<((l + 1) * hn), with: values)
        }
        return s
    }

    static func readPth(_ path: String, expecting expected: StateShape?) throws -> ImportedState {
        let tensors = try PthReader.tensors(path: path)
        guard let layers = try layerCount(tensors.keys, file: path) else {
            let what = tensors["emb.weight"] != nil ? "a model's weights" : "no 'blocks.{i}.att.time_state' tensors"
            throw StateFormatError.unrecognized(file: path, reason: "a torch file holding \(what)")
        }
        let s = try state(tensors, layers: layers, file: path, format: .pth, keyMajor: false, expecting: expected)
        return ImportedState(state: s, format: .pth, tokenIDs: [], tokenCount: 0, edits: [])
    }

    static func readWebRWKV(_ file: SafeTensorsFile, layers: Int, expecting expected: StateShape?) throws -> ImportedState {
        for l in 0..<layers {
            guard let e = file.entries[key(l)] else { throw StateFormatError.malformed(file: file.path, reason: "no '\(key(l))'") }
            guard e.dtypeName == "F16" else {
                throw StateFormatError.wrongDType(file: file.path, tensor: key(l), found: e.dtypeName, expected: "F16 (web-rwkv states are F16)")
            }
        }
        let tensors = try Dictionary(uniqueKeysWithValues: (0..<layers).map { (key($0), try file.tensor(key($0))) })
        let s = try state(tensors, layers: layers, file: file.path, format: .webrwkv, keyMajor: true, expecting: expected)
        return ImportedState(state: s, format: .webrwkv, tokenIDs: [], tokenCount: 0, edits: [])
    }

    static func writePth(_ s: State, to path: String) throws {
        let hn = s.nHead * s.headElementCount
        try PthWriter.write((0..<s.nLayer).map { l in
            PthWriter.Tensor(name: key(l), shape: [s.nHead, s.headSize, s.headSize], dtype: .f32,
                             bytes: Array(StateValues.layer(s.wkv, l, size: hn)).withUnsafeBytes { Data($0) })
        }, to: path)
    }

    static func writeWebRWKV(_ s: State, to path: String) throws {
        let hn = s.nHead * s.headElementCount
        var tensors: [(name: String, shape: [Int], dtype: DType, bytes: Data)] = []
        for l in 0..<s.nLayer {
            let keyMajor = StateValues.transposeHeads(Array(StateValues.layer(s.wkv, l, size: hn)), nHead: s.nHead, headSize: s.headSize)
            if let i = keyMajor.firstIndex(where: { abs($0) > 65504 }) {
                throw StateFormatError.malformed(file: path, reason: "layer \(l) holds \(keyMajor[i]), beyond f16's range, which web-rwkv states are stored in")
            }
            tensors.append((key(l), [s.nHead, s.headSize, s.headSize], .f16, Half.f16Bits(keyMajor).withUnsafeBytes { Data($0) }))
        }
        try SafeTensorsFile.write(encoded: tensors, to: path)
    }
}

/// rwkv.cpp's state buffer (`rwkv_eval`'s state_in/state_out) as a raw little-endian f32 file:
/// per layer [ffn shift (C), att shift (C), WKV heads (H·N·N, value-major)]. It has no header, so
/// reading needs the model's shape and the size must match exactly.
enum RWKVCppStateFile {
    static func byteCount(_ s: StateShape) -> Int { s.nLayer * (2 * s.nEmbd + s.wkvPerLayer) * 4 }

    static func read(_ region: ByteRegion, file: String, shape: StateShape) throws -> ImportedState {
        guard region.count == byteCount(shape) else {
            throw StateFormatError.malformed(file: file, reason: "\(region.count) bytes; an rwkv.cpp state of \(shape) has \(byteCount(shape))")
        }
        var r = StateByteReader(region, file: file)
        var s = State(nLayer: shape.nLayer, nEmbd: shape.nEmbd, nHead: shape.nHead, headSize: shape.headSize)
        let c = shape.nEmbd, hn = shape.wkvPerLayer
        for l in 0..<shape.nLayer {
            s.ffnXPrev.replaceSubrange((l * c)..<((l + 1) * c), with: try r.floats(c, "layer \(l) ffn shift"))
            s.attXPrev.replaceSubrange((l * c)..<((l + 1) * c), with: try r.floats(c, "layer \(l) att shift"))
            s.wkv.replaceSubrange((l * hn)..<((l + 1) * hn), with: try r.floats(hn, "layer \(l) WKV state"))
        }
        return ImportedState(state: s, format: .rwkvcpp, tokenIDs: [], tokenCount: 0, edits: [])
    }

    static func encode(_ s: State) -> Data {
        var w = StateByteWriter()
        let c = s.nEmbd, hn = s.nHead * s.headElementCount
        for l in 0..<s.nLayer {
            w.floats(StateValues.layer(s.ffnXPrev, l, size: c))
            w.floats(StateValues.layer(s.attXPrev, l, size: c))
            w.floats(StateValues.layer(s.wkv, l, size: hn))
        }
        return w.data
    }
}
