import Foundation

/// llama.cpp's session (`llama_state_save_file`) and sequence (`llama_state_seq_save_file`) files for
/// an RWKV-7 model, as its `llama-context.cpp` and `llama-memory-recurrent.cpp` write them (llama.h:
/// LLAMA_SESSION_VERSION 10, LLAMA_STATE_SEQ_VERSION 3, as vendored by llama-cpp-python 0.3.36):
///
///     u32 magic ('ggsn' session, 'ggsq' sequence), u32 version, u32 n_tokens, i32 tokens[n_tokens]
///     session only: u32 length + the architecture name ("rwkv7")
///     u32 cell_count; per cell: i32 pos, u32 n_seq_id, i32 seq_id[n_seq_id] (a sequence file: n_seq_id 0)
///     u32 s_trans (0), u32 n_layer
///     per layer: i32 r type (0 = F32), u64 r row bytes (2·C·4), one row per cell: [att shift C | ffn shift C]
///     per layer: i32 s type (0 = F32), u64 s row bytes (C·N·4), one row per cell: WKV [head][value][key]
///
/// One cell is one sequence's state; a file of several sequences is refused (save one sequence).
enum LlamaStateFile {
    static let sessionMagic: UInt32 = 0x6767_736E   // 'ggsn'
    static let sequenceMagic: UInt32 = 0x6767_7371  // 'ggsq'
    static let sessionVersion: UInt32 = 10
    static let sequenceVersion: UInt32 = 3
    static let architecture = "rwkv7"
    static let ggmlTypeF32: Int32 = 0
    /// Bounds on counts read from a file, so a lying header cannot make the reader allocate much.
    static let maxTokens = 1 << 26

    static func read(_ region: ByteRegion, file: String, format: StateFormat, expecting expected: StateShape?) throws -> ImportedState {
        var r = StateByteReader(region, file: file)
        let session = format == .llamaSession
        _ = try r.u32("the magic")
        let version = try r.u32("the version")
        let supported = session ? sessionVersion : sequenceVersion
        guard version == supported else {
            throw StateFormatError.unsupportedVersion(file: file, format: format, found: version, supported: supported)
        }
        let nTokens = Int(try r.u32("the token count"))
        guard nTokens <= maxTokens, nTokens * 4 <= r.remaining else {
            throw StateFormatError.truncated(file: file, field: "the token list (\(nTokens) tokens)", needed: nTokens * 4, available: r.remaining)
        }
        let tokenBytes = try r.bytes(nTokens * 4, "the token list")
        let tokens = (0..<nTokens).map { tokenBytes.load(Int32.self, at: $0 * 4) }
        if session {
            let length = Int(try r.u32("the architecture name's length"))
            guard length <= 64 else { throw StateFormatError.malformed(file: file, reason: "an architecture name of \(length) bytes") }
            let name = try r.bytes(length, "the architecture name")
            let arch = String(decoding: UnsafeRawBufferPointer(start: name.base, count: name.count), as: UTF8.self)
            guard arch == architecture else { throw StateFormatError.otherArchitecture(file: file, found: arch) }
        }
        let cells = Int(try r.u32("the cell count"))
        guard cells <= 1 else {
            throw StateFormatError.malformed(file: file, reason: "it holds \(cells) sequences; save one sequence (llama_state_seq_save_file) or a context with one")
        }
        for _ in 0..<cells {
            _ = try r.i32("a cell's position")
            let nSeq = Int(try r.u32("a cell's sequence count"))
            guard nSeq <= (session ? 1 : 0) else {
                throw StateFormatError.malformed(file: file, reason: "a cell belongs to \(nSeq) sequences")
            }
            _ = try r.bytes(nSeq * 4, "a cell's sequence ids")
        }
        guard try r.u32("s_trans") == 0 else {
            throw StateFormatError.malformed(file: file, reason: "a transposed recurrent state (s_trans 1), which llama.cpp's RWKV-7 does not write")
        }
        let nLayer = Int(try r.u32("the layer count"))
        guard nLayer >= 1, nLayer <= 4096 else { throw StateFormatError.malformed(file: file, reason: "\(nLayer) layers") }
        if let expected, nLayer != expected.nLayer {
            throw StateFormatError.otherShape(file: file, format: format, dimension: .init(name: "layers", inFile: nLayer, expected: expected.nLayer))
        }
        // Rows are read into per-layer arrays first; the shape is known once the first s row size is.
        var rRows: [[Float]] = []
        var nEmbd = expected?.nEmbd ?? 0
        for l in 0..<nLayer {
            let type = try r.i32("layer \(l) r type")
            guard type == ggmlTypeF32 else {
                throw StateFormatError.wrongDType(file: file, tensor: "layer \(l) token shifts (r)", found: "ggml type \(type)", expected: "F32 (ggml type 0)")
            }
            let rowBytes = try r.u64("layer \(l) r row size")
            guard rowBytes % 8 == 0, rowBytes > 0, rowBytes <= 1 << 24 else {
                throw StateFormatError.malformed(file: file, reason: "layer \(l) token-shift row of \(rowBytes) bytes is not 2·n_embd f32 values")
            }
            let c = Int(rowBytes / 8)
            if l == 0 && expected == nil { nEmbd = c }
            guard c == nEmbd else {
                throw StateFormatError.otherShape(file: file, format: format, dimension: .init(name: "n_embd", inFile: c, expected: nEmbd))
            }
            rRows.append(cells == 1 ? try r.floats(2 * c, "layer \(l) token shifts") : [Float](repeating: 0, count: 2 * c))
        }
        var shape = expected
        var wkv: [Float] = []
        for l in 0..<nLayer {
            let type = try r.i32("layer \(l) s type")
            guard type == ggmlTypeF32 else {
                throw StateFormatError.wrongDType(file: file, tensor: "layer \(l) WKV state (s)", found: "ggml type \(type)", expected: "F32 (ggml type 0)")
            }
            let rowBytes = try r.u64("layer \(l) s row size")
            let perEmbd = nEmbd * 4
            guard rowBytes % UInt64(perEmbd) == 0, rowBytes > 0, rowBytes <= 1 << 34 else {
                throw StateFormatError.malformed(file: file, reason: "layer \(l) WKV row of \(rowBytes) bytes is not n_embd × head size f32 values")
            }
            let n = Int(rowBytes) / perEmbd
            if shape == nil {
                guard n > 0, nEmbd % n == 0 else { throw StateFormatError.malformed(file: file, reason: "head size \(n) does not divide n_embd \(nEmbd)") }
                let s = StateShape(nLayer: nLayer, nEmbd: nEmbd, nHead: nEmbd / n, headSize: n)
                try s.checkPlausible(file: file)
                shape = s
                wkv.reserveCapacity(nLayer * s.wkvPerLayer)
            }
            guard let s = shape, n == s.headSize else {
                throw StateFormatError.otherShape(file: file, format: format, dimension: .init(name: "head size", inFile: n, expected: shape?.headSize ?? n))
            }
            wkv += cells == 1 ? try r.floats(s.wkvPerLayer, "layer \(l) WKV state") : [Float](repeating: 0, count: s.wkvPerLayer)
        }
        guard r.remaining == 0 else {
            throw StateFormatError.malformed(file: file, reason: "\(r.remaining) bytes follow the state")
        }
        guard let s = shape else { throw StateFormatError.malformed(file: file, reason: "no layers") }
        var state = State(nLayer: s.nLayer, nEmbd: s.nEmbd, nHead: s.nHead, headSize: s.headSize)
        let c = s.nEmbd
        for l in 0..<nLayer {
            state.attXPrev.replaceSubrange((l * c)..<((l + 1) * c), with: rRows[l][0..<c])
            state.ffnXPrev.replaceSubrange((l * c)..<((l + 1) * c), with: rRows[l][c..<(2 * c)])
        }
        state.wkv = wkv
        return ImportedState(state: state, format: format, tokenIDs: tokens, tokenCount: tokens.count, edits: [])
    }

    /// The file's bytes for one sequence holding `state`; the cell's position is the last token's
    /// (`tokenCount` − 1), so llama.cpp continues at the right position.
    static func encode(_ state: State, format: StateFormat, tokenIDs: [Int32], tokenCount: Int) -> Data {
        let session = format == .llamaSession
        var w = StateByteWriter()
        w.u32(session ? sessionMagic : sequenceMagic)
        w.u32(session ? sessionVersion : sequenceVersion)
        w.u32(UInt32(tokenIDs.count))
        for t in tokenIDs { w.i32(t) }
        if session {
            w.u32(UInt32(architecture.utf8.count))
            w.data.append(contentsOf: Array(architecture.utf8))
        }
        w.u32(1)                                        // one cell
        w.i32(Int32(clamping: max(max(tokenCount, tokenIDs.count) - 1, 0)))
        if session { w.u32(1); w.i32(0) } else { w.u32(0) }   // a session lists the cell's sequence (0)
        w.u32(0)                                        // s_trans
        w.u32(UInt32(state.nLayer))
        let c = state.nEmbd
        for l in 0..<state.nLayer {
            w.i32(ggmlTypeF32)
            w.u64(UInt64(2 * c * 4))
            w.floats(StateValues.layer(state.attXPrev, l, size: c))
            w.floats(StateValues.layer(state.ffnXPrev, l, size: c))
        }
        let hn = state.nHead * state.headElementCount
        for l in 0..<state.nLayer {
            w.i32(ggmlTypeF32)
            w.u64(UInt64(hn * 4))
            w.floats(StateValues.layer(state.wkv, l, size: hn))
        }
        return w.data
    }
}
