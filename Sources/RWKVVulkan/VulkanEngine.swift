import CKernels
import CVulkan
import Foundation
import RWKVEdit

/// The RWKV-7 ("x070") forward pass in Vulkan compute shaders, behind the same `Engine` protocol as
/// the CPU engine. A forward call records every layer of every sequence into one command buffer and
/// submits it once (a "pass"); only calls too large for the device's buffer limits use several passes.
/// States are uploaded before and downloaded after each pass, so host `State` values stay the truth
/// and edits made on the host apply to Vulkan sessions and back.
public final class VulkanEngine: Engine, @unchecked Sendable {
    /// How matrix products map onto invocations.
    public enum MatmulKernel: String, Sendable {
        /// `alongK` on hardware GPUs with subgroup arithmetic, `rows` otherwise (and on software drivers).
        case auto
        /// Each invocation owns 8–32 rows and up to 32 tokens, reading both operands through texel
        /// buffers (matmul.comp): fastest on lavapipe, where storage-buffer loads run lane by lane.
        case rows
        /// Subgroup lanes along k with subgroupAdd (matmul_k.comp): coalesced loads for GPUs.
        case alongK = "k"
    }

    public let model: RWKVModel
    public let device: VulkanDeviceInfo
    public var backendName: String { "vulkan" }

    private let ctx: VulkanContext
    private let lock = NSLock()
    private let params: VKBuffer
    private let off: ParamOffsets
    private let layers: [GPULayer]
    private let head: GPUMatrix
    private var acts: Activations?
    /// Largest number of token rows and of sequences one pass may hold (buffer-range and dispatch limits).
    let maxRowsPerPass: Int
    let maxSeqsPerPass: Int
    /// Rows of W one workgroup of the along-k kernel computes (matmul_k.comp's RG).
    private static let alongKRowsPerGroup = 16
    /// The rows kernel's variants (matmul.comp): SPIR-V name, token rows per invocation (TB), rows
    /// of W per workgroup (LX × RPI); widest first.
    /// Wider tiles serve more tokens per weight fetch but take longer to compile (llvmpipe compiles
    /// each variant once per machine and caches it): tokens × rows per invocation 16 × 32 take ~5 s,
    /// 32 × 24 ~10 s; 32 × 32 took ~55 s for no gain.
    private static let rowsTiles: [(variant: String, tokens: Int, rows: Int)] =
        [("t32", 32, 192), ("t16", 16, 256), ("t8", 8, 128), ("t4", 4, 128), ("t2", 2, 128), ("t1", 1, 128)]
    /// The product kernel in use (`.rows` or `.alongK`).
    public let matmulKernel: MatmulKernel

    /// Wall time per kernel over the passes `body` runs, slowest first: each dispatch is submitted on
    /// its own while profiling, so the figures include its submission and waiting (tens of µs).
    public func kernelProfile(_ body: () throws -> Void) throws -> [(kernel: String, seconds: Double, dispatches: Int)] {
        lock.withLock { ctx.kernelProfile = [:] }
        defer { lock.withLock { ctx.kernelProfile = nil } }
        try body()
        return lock.withLock { (ctx.kernelProfile ?? [:]).map { ($0.key, $0.value.seconds, $0.value.dispatches) } }
            .sorted { $0.seconds > $1.seconds }
    }

    /// Every Vulkan device with a compute queue (throws when there is no loader or driver).
    public static func devices() throws -> [VulkanDeviceInfo] { try VulkanContext.listDevices() }

    /// The device `init` would pick for `selector` (an index or part of a name; default RWKV_VULKAN_DEVICE).
    public static func selectDevice(_ selector: String? = nil) throws -> VulkanDeviceInfo {
        let all = try devices()
        return all[try VulkanContext.choose(all, selector: selector)]
    }

    /// - Parameters:
    ///   - selector: a device index or part of its name (default: RWKV_VULKAN_DEVICE, else the best device).
    ///   - rowCap: most token rows per submission (bounds activation memory).
    ///   - maxBindingBytes: a smaller per-binding limit than the device's, so tests can exercise the
    ///     splitting of weights, activations and states that big models need on every device.
    ///   - matmulKernel: the product kernel (RWKV_VULKAN_MATMUL=rows|k overrides `.auto`).
    ///   - memoryBudget: device memory the engine may use (default: 90% of the largest device-local heap);
    ///     a model that needs more is refused with `VulkanError.outOfDeviceMemory` before any upload.
    public init(model: RWKVModel, device selector: String? = nil, maxRowsPerPass rowCap: Int = 4096,
                maxBindingBytes: Int? = nil, memoryBudget: Int? = nil, matmulKernel: MatmulKernel = .auto) throws {
        self.model = model
        let c = model.config
        guard c.headSize == 64, c.nEmbd % 8 == 0, c.ffnSize % 8 == 0,
              [c.loraW, c.loraA, c.loraG].allSatisfy({ $0 % 8 == 0 && $0 > 0 }), c.nLayer < 2 || c.loraV % 8 == 0 else {
            throw VulkanError.unsupportedModel("dimensions must be multiples of 8 (n_embd \(c.nEmbd), ffn \(c.ffnSize), LoRA \(c.loraW)/\(c.loraA)/\(c.loraV)/\(c.loraG)) and heads of 64 (this model: \(c.headSize))")
        }
        // The shaders read f32/f16/bf16 weights only; below, element sizes are those types'.
        let matrices = model.matrices()
        if let q = matrices.map(\.matrix).first(where: { $0.dtype.isQuantized }) {
            throw VulkanError.unsupportedModel("\(q.dtype.rawValue) weights: the Vulkan engine reads f32, f16 and bf16 only; use --backend cpu")
        }
        let context = try VulkanContext(selector: selector)
        ctx = context
        device = context.info
        var limit = min(device.maxStorageBufferRange, maxBindingBytes ?? Int.max)
        var kernel = matmulKernel
        if kernel == .auto, let env = ProcessInfo.processInfo.environment["RWKV_VULKAN_MATMUL"], let k = MatmulKernel(rawValue: env) { kernel = k }
        if kernel == .auto { kernel = context.subgroupArithmetic && !context.info.isSoftware ? .alongK : .rows }
        if kernel == .alongK && !context.subgroupArithmetic {
            throw VulkanError.unsupportedModel("the along-k matmul needs subgroup arithmetic, which \(context.info.name) lacks")
        }
        self.matmulKernel = kernel
        // Kernels read weights (rows kernel), activations and states through texel views, which have
        // their own limit.
        limit = min(limit, context.maxTexelBufferElements * 16)

        // Memory check before any upload: every matrix plus the small vectors.
        var weightBytes = model.head.rows * model.head.cols * model.head.dtype.blockBytes
        for (spec, _, m) in matrices where spec.scope == .layer { weightBytes += m.rows * m.cols * m.dtype.blockBytes }
        weightBytes += (c.nLayer * 20 + 4) * c.nEmbd * 4
        let budget = memoryBudget ?? (device.deviceLocalBytes > 0 ? device.deviceLocalBytes * 9 / 10 : Int.max)
        if weightBytes > budget {
            throw VulkanError.outOfDeviceMemory(neededBytes: weightBytes, availableBytes: budget, device: device.name)
        }

        do {
            let ctx = context
            var p: [Float] = []
            func add(_ v: [Float]) -> UInt32 { let o = UInt32(p.count); p += v; while p.count % 4 != 0 { p.append(0) }; return o }
            off = ParamOffsets(ln0w: add(model.ln0Weight), ln0b: add(model.ln0Bias), lnOutw: add(model.lnOutWeight), lnOutb: add(model.lnOutBias),
                               layers: model.layers.map { w in
                LayerOffsets(ln1w: add(w.ln1Weight), ln1b: add(w.ln1Bias), ln2w: add(w.ln2Weight), ln2b: add(w.ln2Bias),
                             xr: add(w.xR), xw: add(w.xW), xk: add(w.xK), xv: add(w.xV), xa: add(w.xA), xg: add(w.xG),
                             w0: add(w.w0), a0: add(w.a0), v0: w.v0.map(add) ?? 0, kK: add(w.kK), kA: add(w.kA), rK: add(w.rK),
                             lnXw: add(w.lnXWeight), lnXb: add(w.lnXBias), ffnXK: add(w.ffnXK))
            })
            guard p.count * 4 <= limit else { throw VulkanError.unsupportedModel("the model's vectors exceed one storage-buffer binding") }
            params = try p.withUnsafeBytes { try ctx.upload($0.baseAddress.unsafelyUnwrapped, bytes: $0.count) }
            let layout: GPUMatrix.Layout = kernel == .alongK ? .rowMajor : .rowBlocks
            func up(_ m: Matrix) throws -> GPUMatrix { try GPUMatrix(m, ctx: ctx, limit: limit, layout: layout) }
            layers = try model.layers.map { w in
                GPULayer(r: try up(w.receptance), k: try up(w.key), v: try up(w.value), o: try up(w.output),
                         w1: try up(w.w1), w2: try up(w.w2), a1: try up(w.a1), a2: try up(w.a2), g1: try up(w.g1), g2: try up(w.g2),
                         v1: try w.v1.map(up), v2: try w.v2.map(up), fk: try up(w.ffnKey), fv: try up(w.ffnValue))
            }
            head = try up(model.head)
        }
        // Per-pass limits: the widest activation (ffn hidden) and one layer's WKV window must fit one
        // binding; one invocation per (row, channel) must fit the dispatch limit.
        let widest = max(c.ffnSize, c.nEmbd, c.loraW, c.loraA, c.loraV, c.loraG) * 4
        let groupsX = context.maxWorkGroupCountX
        maxRowsPerPass = max(8, min(rowCap, limit / widest, groupsX * 64 / c.nEmbd - 8, limit / (4 * head.rows)) & ~7)
        maxSeqsPerPass = max(1, min(limit / (4 * c.nHead * c.headSize * c.headSize), groupsX, limit / (4 * c.nEmbd) - 64,
                                    limit / (4 * head.rows), maxRowsPerPass))
    }

    // MARK: - Forward

    public func forward(_ batch: [[Int]], states: inout [State], allLogits: Bool = false) throws -> [[Float]] {
        try validate(batch, states: states)
        lock.lock()
        defer { lock.unlock() }
        let V = model.config.vocabSize
        var out = batch.map { seq in [Float](repeating: 0, count: allLogits ? seq.count * V : V) }

        // Each pass holds whole sequences, or a slice of a long one (its state flows through the host
        // between passes).
        for pass in PassPlan(lengths: batch.map(\.count), maxRows: maxRowsPerPass, maxSequences: maxSeqsPerPass).passes {
            try run(pass, batch: batch, states: &states, allLogits: allLogits, out: &out)
        }
        return out
    }

    private func run(_ pieces: [PassPlan.Piece], batch: [[Int]], states: inout [State], allLogits: Bool, out: inout [[Float]]) throws {
        let c = model.config
        let (C, V) = (c.nEmbd, c.vocabSize)
        let B = pieces.count
        let T = pieces.reduce(0) { $0 + $1.tokens.count }
        let Tpad = (T + 7) & ~7
        // Output rows: every row (allLogits) or each finished sequence's last row.
        var outRows: [(piece: Int, row: Int, dst: Int)] = []
        var row = 0
        for (b, p) in pieces.enumerated() {
            for t in p.tokens {
                if allLogits { outRows.append((b, row, t)) } else if p.isLast && t == p.tokens.upperBound - 1 { outRows.append((b, row, 0)) }
                row += 1
            }
        }
        let nOut = outRows.count
        let a = try activations(rows: Tpad, seqs: B, outRows: max(nOut, 1))

        // Inputs: embedding rows (fp32), row and sequence tables, states in the device layout [L][B]….
        let emb = model.embedding
        let code: Int32 = emb.dtype == .f32 ? Int32(RK_F32.rawValue) : emb.dtype == .f16 ? Int32(RK_F16.rawValue) : Int32(RK_BF16.rawValue)
        let xin = a.xin.floats(Tpad * C)
        let rowInfo = a.rowInfo.mapped.unsafelyUnwrapped.assumingMemoryBound(to: UInt32.self)
        let seqInfo = a.seqInfo.mapped.unsafelyUnwrapped.assumingMemoryBound(to: UInt32.self)
        row = 0
        for (b, p) in pieces.enumerated() {
            seqInfo[2 * b] = UInt32(row)
            seqInfo[2 * b + 1] = UInt32(p.tokens.count)
            for t in p.tokens {
                rk_to_f32(code, emb.data.base + batch[p.sequence][t] * C * emb.dtype.blockBytes, xin + row * C, Int64(C))
                rowInfo[row] = UInt32(b) | (t == p.tokens.lowerBound ? 0x4000_0000 : 0) | (t == p.tokens.upperBound - 1 ? 0x8000_0000 : 0)
                row += 1
            }
        }
        (xin + T * C).update(repeating: 0, count: (Tpad - T) * C)
        let rowMap = a.rowMap.mapped.unsafelyUnwrapped.assumingMemoryBound(to: UInt32.self)
        for (j, o) in outRows.enumerated() { rowMap[j] = UInt32(o.row) }
        transferStates(&states, pieces, a, toDevice: true)
        try record(a, T: T, B: B, nOut: nOut)
        transferStates(&states, pieces, a, toDevice: false)
        let Vp = head.rows // the logits' row stride: the vocabulary padded to a multiple of 4
        let logits = a.logits.floats(nOut * Vp)
        for (j, o) in outRows.enumerated() {
            out[pieces[o.piece].sequence].withUnsafeMutableBufferPointer { d in
                (d.baseAddress.unsafelyUnwrapped + o.dst * V).update(from: logits + j * Vp, count: V)
            }
        }
    }

    /// Copies each piece's state between its host `State` and the pass's device layout ([L][B] windows;
    /// x_prev read from attIn/ffnIn, written to attOut/ffnOut). The copies are most of the host's share
    /// of a wide batch (2.4 MB per 0.1B sequence each way), so sequences are copied in parallel; a pass
    /// holds each sequence at most once.
    private func transferStates(_ states: inout [State], _ pieces: [PassPlan.Piece], _ a: Activations, toDevice: Bool) {
        let c = model.config
        let (C, L, hnn) = (c.nEmbd, c.nLayer, c.nHead * c.headSize * c.headSize)
        let wkv = a.wkv.floats(L * a.wkvLayerStride)
        let att = (toDevice ? a.attIn : a.attOut).floats(L * a.vecLayerStride)
        let ffn = (toDevice ? a.ffnIn : a.ffnOut).floats(L * a.vecLayerStride)
        states.withUnsafeMutableBufferPointer { sp in
            let seqs = sp.baseAddress.unsafelyUnwrapped
            DispatchQueue.concurrentPerform(iterations: pieces.count) { b in
                // Layer l of this sequence: host [l * n ..< (l + 1) * n], device window l, slot b.
                func move(_ host: inout [Float], _ dev: UnsafeMutablePointer<Float>, layerStride: Int, n: Int) {
                    host.withUnsafeMutableBufferPointer { h in
                        for l in 0..<L {
                            let hp = h.baseAddress.unsafelyUnwrapped + l * n, dp = dev + l * layerStride + b * n
                            if toDevice { dp.update(from: hp, count: n) } else { hp.update(from: dp, count: n) }
                        }
                    }
                }
                let st = seqs + pieces[b].sequence
                move(&st.pointee.wkv, wkv, layerStride: a.wkvLayerStride, n: hnn)
                move(&st.pointee.attXPrev, att, layerStride: a.vecLayerStride, n: C)
                move(&st.pointee.ffnXPrev, ffn, layerStride: a.vecLayerStride, n: C)
            }
        }
    }

    /// Records the whole pass (embedding ln0 → layers → ln_out → head) and runs it.
    private func record(_ a: Activations, T: Int, B: Int, nOut: Int) throws {
        let c = model.config
        let (C, H, N) = (c.nEmbd, c.nHead, c.headSize)
        let u = { (v: Int) in UInt32(v) }
        if ctx.descriptorSetCount > ctx.descriptorSetLimit - 64 * (c.nLayer + 2) - 2 * head.chunks.count { ctx.resetDescriptorSets() }
        let ln = try ctx.pipeline("layernorm")
        let shift = try ctx.pipeline("shiftmix")
        let post = try ctx.pipeline("tmixpost")
        let wkv = try ctx.pipeline(matmulKernel == .alongK ? "wkv7_gpu" : ctx.shaderInt64 ? "wkv7_rows64" : "wkv7_rows")
        let gn = try ctx.pipeline("groupnorm")
        let headGroups = (T * H + 63) / 64, chanGroups = (T * C / 4 + 63) / 64
        // Storage bindings a shader leaves unused are filled with the (always valid) params buffer.
        let prm = Binding(params)
        func layerNorm(_ x: VKBuffer, _ y: VKBuffer, rows: Int, mapped: Bool, _ w: UInt32, _ b: UInt32) throws {
            try ctx.dispatch(ln, [prm, Binding(y), prm, Binding(a.rowMap)], texels: [Binding(x), prm],
                             push: [u(rows), u(C), mapped ? 1 : 0, w, b], groups: ((rows + 63) / 64, 1, 1))
        }

        try ctx.begin()
        try layerNorm(a.xin, a.x, rows: T, mapped: false, off.ln0w, off.ln0b)
        ctx.barrier()
        for (l, w) in layers.enumerated() {
            let o = off.layers[l]
            let vecWin = { (buf: VKBuffer) in Binding(buf, offset: l * a.vecLayerStride * 4, range: B * C * 4) }
            // Time mix.
            try layerNorm(a.x, a.xln, rows: T, mapped: false, o.ln1w, o.ln1b)
            ctx.barrier()
            try ctx.dispatch(shift, [prm, prm, vecWin(a.attOut), Binding(a.rowInfo), prm,
                                     Binding(a.xr), Binding(a.xw), Binding(a.xk), Binding(a.xv), Binding(a.xa), Binding(a.xg)],
                             texels: [Binding(a.xln), vecWin(a.attIn), prm],
                             push: [u(T), u(C), 6, o.xr, o.xw, o.xk, o.xv, o.xa, o.xg], groups: (chanGroups, 1, 1))
            ctx.barrier()
            try matmul(w.r, a.xr, a.r, T: T)
            try matmul(w.k, a.xk, a.k, T: T)
            try matmul(w.v, a.xv, a.v, T: T)
            try matmul(w.w1, a.xw, a.hw, T: T, mode: 2)
            try matmul(w.a1, a.xa, a.ha, T: T)
            try matmul(w.g1, a.xg, a.hg, T: T, mode: 3)
            if let v1 = w.v1 { try matmul(v1, a.xv, a.hv, T: T) }
            ctx.barrier()
            try matmul(w.w2, a.hw, a.w, T: T)
            try matmul(w.a2, a.ha, a.a, T: T)
            try matmul(w.g2, a.hg, a.g, T: T)
            if let v2 = w.v2 { try matmul(v2, a.hv, a.vl, T: T) }
            ctx.barrier()
            try ctx.dispatch(post, [prm, Binding(a.k), Binding(a.kk), Binding(a.w), Binding(a.a), Binding(a.v), Binding(a.vfirst)],
                             texels: [prm, Binding(a.k), Binding(a.w), Binding(a.a), Binding(a.v), Binding(a.vfirst), Binding(a.vl)],
                             push: [u(T), u(C), u(H), l == 0 ? 1 : 0, o.w0, o.a0, o.kK, o.kA, o.v0], groups: (headGroups, 1, 1))
            ctx.barrier()
            let state = Binding(a.wkv, offset: l * a.wkvLayerStride * 4, range: B * H * N * N * 4)
            try ctx.dispatch(wkv, [state, Binding(a.r), Binding(a.w), Binding(a.k), Binding(a.v), Binding(a.kk), Binding(a.a),
                                   Binding(a.y), Binding(a.seqInfo)],
                             texels: [state, Binding(a.r), Binding(a.w), Binding(a.k), Binding(a.v), Binding(a.kk), Binding(a.a)],
                             push: [u(C), u(H)], groups: (B, H, 1))
            ctx.barrier()
            try ctx.dispatch(gn, [prm, Binding(a.y)], texels: [prm, Binding(a.y), Binding(a.r), Binding(a.k), Binding(a.v), Binding(a.g)],
                             push: [u(T), u(C), u(H), o.lnXw, o.lnXb, o.rK], groups: (headGroups, 1, 1))
            ctx.barrier()
            try matmul(w.o, a.y, a.x, T: T, mode: 1)
            ctx.barrier()
            // Channel mix.
            try layerNorm(a.x, a.xln, rows: T, mapped: false, o.ln2w, o.ln2b)
            ctx.barrier()
            try ctx.dispatch(shift, [prm, prm, vecWin(a.ffnOut), Binding(a.rowInfo), prm, Binding(a.xk)],
                             texels: [Binding(a.xln), vecWin(a.ffnIn), prm],
                             push: [u(T), u(C), 1, o.ffnXK, 0, 0, 0, 0, 0], groups: (chanGroups, 1, 1))
            ctx.barrier()
            try matmul(w.fk, a.xk, a.hidden, T: T, mode: 4)
            ctx.barrier()
            try matmul(w.fv, a.hidden, a.x, T: T, mode: 1)
            ctx.barrier()
        }
        // ln_out on the rows that produce logits, then the head.
        try layerNorm(a.x, a.xo, rows: nOut, mapped: true, off.lnOutw, off.lnOutb)
        ctx.barrier()
        try matmul(head, a.xo, a.logits, T: nOut)
        ctx.barrier(toHost: true)
        try ctx.submitAndWait()
    }

    /// y[t][rows] (op)= W · x[t] for t < T, one dispatch per row chunk of W.
    private func matmul(_ m: GPUMatrix, _ x: VKBuffer, _ y: VKBuffer, T: Int, mode: UInt32 = 0) throws {
        guard T > 0 else { return }
        let code: UInt32 = m.dtype == .f32 ? 0 : m.dtype == .f16 ? 1 : 2
        let pipe: VkPipeline, rowsPerGroup: Int, tb: Int
        if matmulKernel == .alongK {
            tb = T >= 8 ? 8 : T >= 4 ? 4 : T >= 2 ? 2 : 1
            pipe = try ctx.pipeline("matmul_k", [code, UInt32(tb), 4])
            rowsPerGroup = Self.alongKRowsPerGroup
        } else {
            // The widest token tile that still leaves work for several threads (small LoRA matrices
            // have a single row group).
            let fits = Self.rowsTiles.filter { $0.tokens <= T }
            let tile = fits.first { (m.rows + $0.rows - 1) / $0.rows * ((T + $0.tokens - 1) / $0.tokens) >= 4 } ?? fits.last ?? ("t1", 1, 128)
            (tb, rowsPerGroup) = (tile.tokens, tile.rows)
            pipe = try ctx.pipeline("matmul_" + tile.variant, [code])
        }
        let texel = matmulKernel == .rows
        for ch in m.chunks {
            try ctx.dispatch(pipe, [Binding(ch.buffer), Binding(x), Binding(y)], texels: texel ? [Binding(ch.buffer), Binding(x)] : [],
                             push: [UInt32(ch.rows), UInt32(m.cols), UInt32(T), UInt32(m.cols), UInt32(m.rows), UInt32(ch.row0), mode],
                             groups: ((ch.rows + rowsPerGroup - 1) / rowsPerGroup, (T + tb - 1) / tb, 1), label: "\(m.rows)×\(m.cols)")
        }
    }

    // MARK: - Buffers

    private func activations(rows: Int, seqs: Int, outRows: Int) throws -> Activations {
        if let a = acts, a.rows >= rows, a.seqs >= seqs, a.outRows >= outRows { return a }
        // Grow geometrically so a decode loop with a growing batch does not reallocate every call.
        let old = acts
        let r = max(rows, min(maxRowsPerPass, (old?.rows ?? 0) * 2), 8)
        let s = max(seqs, min(maxSeqsPerPass, (old?.seqs ?? 0) * 2), 1)
        let o = (max(outRows, min(maxRowsPerPass, (old?.outRows ?? 0) * 2), 1) + 7) & ~7
        acts = nil
        ctx.resetDescriptorSets()
        let a = try Activations(ctx: ctx, config: model.config, headRows: head.rows, rows: (r + 7) & ~7, seqs: s, outRows: o)
        acts = a
        return a
    }
}

/// Offsets (in floats) of the model's vectors inside the params buffer.
struct LayerOffsets {
    let ln1w, ln1b, ln2w, ln2b, xr, xw, xk, xv, xa, xg, w0, a0, v0, kK, kA, rK, lnXw, lnXb, ffnXK: UInt32
}

struct ParamOffsets {
    let ln0w, ln0b, lnOutw, lnOutb: UInt32
    let layers: [LayerOffsets]
}

/// A weight matrix on the device in its stored type (bf16 decoded in the shader), split in row chunks
/// so each chunk fits one storage-buffer binding.
struct GPUMatrix {
    /// How a chunk's rows lie in its buffer.
    enum Layout {
        /// Row after row: the along-k kernel's subgroup reads consecutive k of one row.
        case rowMajor
        /// Blocks of `rowBlock` rows interleaved by 8 columns, [block][k / 8][row in block][8 values]:
        /// the rows kernel's workgroup then reads one sequential stream per block instead of one per row,
        /// which the CPU's prefetchers can follow (lavapipe decodes 1.6× faster at B = 1 than row-major).
        case rowBlocks
    }
    /// Rows per block of `.rowBlocks`; matmul.comp's RB.
    static let rowBlock = 32
    struct Chunk { let buffer: VKBuffer; let row0: Int; let rows: Int }
    /// Rows the products compute: the matrix's, padded with zero rows to a multiple of 4 (only a head
    /// with an odd vocabulary needs it), so products always store whole vec4s.
    let rows, cols: Int
    let dtype: DType
    let chunks: [Chunk]

    init(_ m: Matrix, ctx: VulkanContext, limit: Int, layout: Layout) throws {
        cols = m.cols; dtype = m.dtype
        guard m.cols % 8 == 0 else { throw VulkanError.unsupportedModel("a \(m.rows)×\(m.cols) matrix: columns must be a multiple of 8") }
        // Chunks start at whole blocks; a chunk's buffer holds whole blocks (zero rows at the end).
        let align = layout == .rowMajor ? 4 : Self.rowBlock
        let rowBytes = m.cols * m.dtype.blockBytes
        guard align * rowBytes <= limit else {
            throw VulkanError.unsupportedModel("a \(m.rows)×\(m.cols) matrix: \(align) rows exceed a buffer binding of \(limit) bytes")
        }
        rows = (m.rows + 3) & ~3
        let perChunk = min(limit / rowBytes, ctx.maxWorkGroupCountX * 16) / align * align
        var out: [Chunk] = []
        var r = 0
        while r < rows {
            let n = min(perChunk, rows - r), real = min(n, m.rows - r), stored = (n + align - 1) / align * align
            let src = m.data.base + r * rowBytes
            let buffer: VKBuffer
            if layout == .rowMajor && real == stored {
                buffer = try ctx.upload(src, bytes: stored * rowBytes)
            } else {
                var staged = [UInt8](repeating: 0, count: stored * rowBytes)
                staged.withUnsafeMutableBytes { d in
                    let dst = d.baseAddress.unsafelyUnwrapped
                    if layout == .rowMajor {
                        dst.copyMemory(from: src, byteCount: real * rowBytes)
                    } else {
                        Self.interleave(src, rows: real, rowBytes: rowBytes, unit: 8 * m.dtype.blockBytes, into: dst)
                    }
                }
                buffer = try staged.withUnsafeBytes { try ctx.upload($0.baseAddress.unsafelyUnwrapped, bytes: stored * rowBytes) }
            }
            out.append(Chunk(buffer: buffer, row0: r, rows: n))
            r += n
        }
        chunks = out
    }

    /// Writes `rows` row-major rows into the `.rowBlocks` layout (`dst` is zeroed and holds whole blocks).
    private static func interleave(_ src: UnsafeRawPointer, rows: Int, rowBytes: Int, unit: Int, into dst: UnsafeMutableRawPointer) {
        let n8 = rowBytes / unit, RB = rowBlock, words = unit / 16
        DispatchQueue.concurrentPerform(iterations: (rows + RB - 1) / RB) { b in
            let block = dst + b * RB * rowBytes
            for rr in 0..<min(RB, rows - b * RB) {
                let row = src + (b * RB + rr) * rowBytes
                for q in 0..<n8 {
                    let from = row + q * unit, to = block + (q * RB + rr) * unit
                    for w in 0..<words {
                        to.storeBytes(of: from.loadUnaligned(fromByteOffset: 16 * w, as: SIMD4<UInt32>.self), toByteOffset: 16 * w,
                                      as: SIMD4<UInt32>.self)
                    }
                }
            }
        }
    }
}

struct GPULayer {
    let r, k, v, o, w1, w2, a1, a2, g1, g2: GPUMatrix
    let v1, v2: GPUMatrix?
    let fk, fv: GPUMatrix
}

/// Activation, I/O and state buffers for passes of up to `rows` token rows and `seqs` sequences.
final class Activations {
    let rows, seqs, outRows: Int
    let wkvLayerStride, vecLayerStride: Int
    let xin, x, xln, xr, xw, xk, xv, xa, xg, r, k, v, w, a, g, kk, vfirst, vl, y: VKBuffer
    let hw, ha, hg, hv, hidden, xo, logits: VKBuffer
    let rowInfo, seqInfo, rowMap: VKBuffer
    let wkv, attIn, attOut, ffnIn, ffnOut: VKBuffer

    /// `headRows`: the logits' row stride (the head's rows on the device).
    init(ctx: VulkanContext, config c: ModelConfig, headRows: Int, rows R: Int, seqs B: Int, outRows O: Int) throws {
        rows = R; seqs = B; outRows = O
        let C = c.nEmbd
        func dev(_ width: Int) throws -> VKBuffer { try ctx.makeBuffer(bytes: R * width * 4, hostVisible: false) }
        func host(_ n: Int) throws -> VKBuffer { try ctx.makeBuffer(bytes: n * 4, hostVisible: true) }
        xin = try host(R * C)
        x = try dev(C); xln = try dev(C); xr = try dev(C); xw = try dev(C); xk = try dev(C); xv = try dev(C)
        xa = try dev(C); xg = try dev(C); r = try dev(C); k = try dev(C); v = try dev(C); w = try dev(C)
        a = try dev(C); g = try dev(C); kk = try dev(C); vfirst = try dev(C); vl = try dev(C); y = try dev(C)
        hw = try dev(c.loraW); ha = try dev(c.loraA); hg = try dev(c.loraG); hv = try dev(max(c.loraV, 8)); hidden = try dev(c.ffnSize)
        xo = try ctx.makeBuffer(bytes: O * C * 4, hostVisible: false)
        logits = try host(O * headRows)
        rowInfo = try host(R); seqInfo = try host(2 * B); rowMap = try host(max(R, O))
        // Per-layer windows start at multiples of the device's storage- and texel-offset alignments.
        let align = max(ctx.minStorageOffsetAlignment, ctx.minTexelOffsetAlignment) / 4
        wkvLayerStride = (B * c.nHead * c.headSize * c.headSize + align - 1) / align * align
        vecLayerStride = (B * C + align - 1) / align * align
        wkv = try host(c.nLayer * wkvLayerStride)
        attIn = try host(c.nLayer * vecLayerStride); attOut = try host(c.nLayer * vecLayerStride)
        ffnIn = try host(c.nLayer * vecLayerStride); ffnOut = try host(c.nLayer * vecLayerStride)
    }
}
