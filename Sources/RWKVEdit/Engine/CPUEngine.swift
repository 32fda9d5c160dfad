import CKernels
import Foundation

/// The CPU engine: prompts as matrix–matrix products (the C kernels' tiled GEMM, which widens f16/bf16
/// weights or dequantises quantised ones while packing a tile), decoding as multi-threaded
/// matrix–vector products, fp32 accumulation.
public final class CPUEngine: Engine, @unchecked Sendable {
    public let model: RWKVModel
    public var threads: Int { pool.size }
    public var backendName: String { "cpu" }
    private let pool: ThreadPool
    /// One forward pass at a time: the pool and its workers serve a single caller.
    private let lock = NSLock()
    /// The activation buffers of the last pass, reused while large enough (guarded by `lock`): fresh
    /// buffers for every pass cost page faults on each call.
    private var workspace: Workspace?
    /// Below this many rows a product streams the weights (matvec); from it the tiled GEMM wins. With
    /// AVX-512 a few passes over the weights cost less than the GEMM's packing: f16/bf16/f32 rows
    /// stream five per pass up to 15 rows; Q8_0/Q4_0/Q4_1 up to 10 and Q5_0/Q5_1 up to 7 (each pass
    /// unpacks their 5-bit weights again). The K-quants' int8 GEMM wins from 6 rows. With AVX2 the
    /// float types win from 6 rows; the quantised ones go through the int8 one-vector kernels one
    /// token at a time (their row blocks stay in L2) up to 15 rows for Q8_0, Q4_K and Q5_K, 11 for
    /// Q6_K, 9 for Q4_0/Q4_1, 5 for Q5_0/Q5_1 (`bench speed --model F --prompt-lengths
    /// 6,8,10,12,14,16` per type and kernel path).
    static func gemmMinRows(_ dtype: DType) -> Int {
        switch rk_simd_level() {
        case 2...: break
        case 1:
            switch dtype {
            case .f32, .f16, .bf16, .q5_0, .q5_1: return 6
            case .q4_0, .q4_1: return 10
            case .q6_K: return 12
            case .q8_0, .q4_K, .q5_K: return 16
            }
        default: return 6
        }
        switch dtype {
        case .f32, .f16, .bf16: return 16
        case .q8_0, .q4_0, .q4_1: return 11
        case .q5_0, .q5_1: return 8
        case .q4_K, .q5_K, .q6_K: return 6
        }
    }

    public init(model: RWKVModel, threads: Int? = nil) {
        self.model = model
        pool = ThreadPool(threads: max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount))
    }

    /// Rows of one pass at most when sequences are fed (`PassPlan`): the activations take memory in
    /// proportion to a pass's rows (~190 KB a row for the 1.5B shape: 6 GB for a 32,768-token prompt in
    /// one pass), and tok/s is flat from a few hundred rows on. Every slice of a longer sequence is a
    /// GEMM's worth of rows (≥ 256).
    public static let maxPassRows = 512

    public func forward(_ batch: [[Int]], states: inout [State], allLogits: Bool = false) throws -> [[Float]] {
        guard batch.reduce(0, { $0 + $1.count }) > Self.maxPassRows else {
            return try run(BranchingBatch(batch), states: &states, from: nil, allLogits: allLogits, resuming: nil, keeping: nil).logits
        }
        // Checked whole before any pass writes, and written to the caller's states only at the end, so
        // that a throw leaves them untouched as a single pass would.
        try validate(batch, states: states)
        var work = states
        var logits = [[Float]](repeating: [], count: batch.count)
        for pass in PassPlan(lengths: batch.map(\.count), maxRows: Self.maxPassRows).passes {
            let pieces = try BranchingBatch(tokens: pass.map { Array(batch[$0.sequence][$0.tokens]) }, parents: pass.map { _ in nil },
                                            readsLogits: pass.map { allLogits || $0.isLast })
            var passStates = pass.map { work[$0.sequence] }
            let r = try run(pieces, states: &passStates, from: nil, allLogits: allLogits, resuming: nil, keeping: nil)
            for (j, piece) in pass.enumerated() {
                work[piece.sequence] = passStates[j]
                logits[piece.sequence] += r.logits[j]
            }
        }
        states = work
        return logits
    }

    /// The state is moved into a batch of one, not copied: a second reference to its buffers would make
    /// the pass copy them before writing (copy-on-write), every token while decoding (a 0.4B model's
    /// WKV matrices are 6.3 MB). A pass checks its inputs before it writes, so a throw leaves it untouched.
    public func forward(_ tokens: [Int], state: inout State) throws -> [Float] {
        var states = [State(nLayer: 0, nEmbd: 0, nHead: 0, headSize: 0)]
        swap(&states[0], &state)
        defer { swap(&states[0], &state) }
        return try forward([tokens], states: &states, allLogits: false)[0]
    }

    public func forward(_ batch: [[Int]], states: inout [State], allLogits: Bool,
                        keepingInputsOf layer: Int) throws -> (logits: [[Float]], inputs: LayerInputs) {
        try checkLayer(layer)
        let r = try run(BranchingBatch(batch), states: &states, from: nil, allLogits: allLogits, resuming: nil, keeping: layer)
        return (r.logits, r.inputs ?? LayerInputs(batch: BranchingBatch(batch), layer: nil))
    }

    public func forward(resuming inputs: LayerInputs, states: inout [State], allLogits: Bool) throws -> [[Float]] {
        guard inputs.batch.parents.allSatisfy({ $0 == nil }) else {
            throw RWKVError.invalidArgument("forward: these inputs were kept by a read from one state; resume them with read(resuming:from:)")
        }
        return try run(inputs.batch, states: &states, from: nil, allLogits: allLogits, resuming: inputs.layer == nil ? nil : inputs,
                       keeping: nil).logits
    }

    /// Each sequence's WKV matrices live in a one-layer scratch of the workspace, so that only the
    /// states asked for are built.
    public func read(_ batch: BranchingBatch, from base: State, keepingStatesOf kept: [Int], allLogits: Bool,
                     keepingInputsOf layer: Int?) throws -> BranchReading {
        if let layer { try checkLayer(layer) }
        return try read(batch, from: base, keepingStatesOf: kept, allLogits: allLogits, resuming: nil, keeping: layer)
    }

    public func read(resuming inputs: LayerInputs, from base: State, keepingStatesOf kept: [Int], allLogits: Bool) throws -> BranchReading {
        try read(inputs.batch, from: base, keepingStatesOf: kept, allLogits: allLogits, resuming: inputs.layer == nil ? nil : inputs,
                 keeping: nil)
    }

    private func read(_ batch: BranchingBatch, from base: State, keepingStatesOf kept: [Int], allLogits: Bool,
                      resuming: LayerInputs?, keeping layer: Int?) throws -> BranchReading {
        var states = kept.map { _ in base }
        let r = try run(batch, states: &states, from: SharedBase(base: base, kept: kept, count: batch.tokens.count),
                        allLogits: allLogits, resuming: resuming, keeping: layer)
        return BranchReading(logits: r.logits, states: states, inputs: resuming ?? r.inputs ?? LayerInputs(batch: batch, layer: nil))
    }

    private func checkLayer(_ layer: Int) throws {
        guard (0..<model.config.nLayer).contains(layer) else {
            throw RWKVError.invalidArgument("forward: layer \(layer) is outside the model's layers 0..<\(model.config.nLayer)")
        }
    }

    /// Where a read's states come from and go: every sequence that continues no other starts from
    /// `base`; `slot[i]` is where sequence i's state is kept in the pass's states, if it is.
    private struct SharedBase {
        let base: State
        let slot: [Int?]

        init(base: State, kept: [Int], count: Int) {
            self.base = base
            var slot = [Int?](repeating: nil, count: count)
            for (j, i) in kept.enumerated() where slot.indices.contains(i) { slot[i] = j }
            self.slot = slot
        }
    }

    /// A forward pass from the embeddings, or from the inputs of `resuming`'s layer; `keeping` copies
    /// what enters that layer. Without `reading`, `states` holds each sequence's state (read and
    /// written, no sequence continues another); with it, the states of the sequences it keeps.
    private func run(_ batch: BranchingBatch, states: inout [State], from reading: SharedBase?, allLogits: Bool,
                     resuming: LayerInputs?, keeping: Int?) throws -> (logits: [[Float]], inputs: LayerInputs?) {
        if let reading {
            try validate(batch.tokens, states: [State](repeating: reading.base, count: batch.tokens.count))
            guard reading.slot.compactMap({ $0 }).count == states.count else {
                throw RWKVError.invalidArgument("read: the states to keep must be distinct sequences of the batch")
            }
        } else {
            try validate(batch.tokens, states: states)
        }
        let c = model.config
        let C = c.nEmbd
        let rows = BatchRows(batch)
        let T = rows.count
        let first = resuming?.layer ?? 0
        if let resuming {
            guard first < c.nLayer, resuming.x.count == T * C, resuming.vFirst.count == (first > 0 ? T * C : 0) else {
                throw RWKVError.invalidArgument("forward: the kept layer inputs do not match the model or the batch")
            }
        }
        lock.lock()
        defer { lock.unlock() }
        let ws = workspace.flatMap { $0.capacity >= T ? $0 : nil } ?? Workspace(rows: T, config: c)
        ws.rows = T
        // Kept for the next pass up to a fed slice's size, so that a long prompt's slices share one; a
        // larger read's is not kept (it would hold memory in proportion to that read).
        if T <= Self.maxPassRows { workspace = ws }

        if let resuming {
            ws.x.update(from: resuming.x, count: T * C)
            if first > 0 { ws.vFirst.update(from: resuming.vFirst, count: T * C) }
        } else {
            // Embedding lookup + ln0.
            var row = 0
            for seq in batch.tokens {
                for tok in seq {
                    let x = ws.x + row * C
                    rk_to_f32(model.embedding.dtype.kernelCode, model.embedding.data.base + tok * model.embedding.rowBytes, x, Int64(C))
                    layerNorm(x, x, model.ln0Weight, model.ln0Bias, C)
                    row += 1
                }
            }
        }

        // Output rows: the last token of each sequence whose logits are read, or all its tokens.
        let read = batch.tokens.indices.filter { batch.readsLogits[$0] }
        let outRows = read.flatMap { allLogits ? Array(rows.starts[$0]...rows.last($0)) : [rows.last($0)] }
        // The top layer's output is read only at the output rows: there every other row needs only what
        // the state keeps (the WKV update, the token shifts' rows).
        let topRows = outRows.count < T ? TopLayerRows(outputs: outRows, rows: rows) : nil

        var kept: LayerInputs?
        for l in first..<c.nLayer {
            if l == keeping {
                kept = LayerInputs(batch: batch, layer: l, x: Array(UnsafeBufferPointer(start: ws.x, count: T * C)),
                                   vFirst: l > 0 ? Array(UnsafeBufferPointer(start: ws.vFirst, count: T * C)) : [])
            }
            let w = model.layers[l], top = l == c.nLayer - 1 ? topRows : nil
            timeMix(layer: l, weights: w, ws: ws, rows: rows, states: &states, reading: reading, only: top?.timeMix)
            channelMix(layer: l, weights: w, ws: ws, rows: rows, states: &states, reading: reading, only: top)
        }
        let xo = UnsafeMutablePointer<Float>.allocate(capacity: outRows.count * C)
        defer { xo.deallocate() }
        for (j, r) in outRows.enumerated() { layerNorm(ws.x + r * C, xo + j * C, model.lnOutWeight, model.lnOutBias, C) }
        let V = c.vocabSize
        var logits = [Float](repeating: 0, count: outRows.count * V)
        logits.withUnsafeMutableBufferPointer { lp in
            linear(model.head, xo, lp.baseAddress!, outRows.count)
        }
        var perSequence = [[Float]](repeating: [], count: batch.tokens.count), offset = 0
        for i in read {
            let n = allLogits ? rows.counts[i] : 1
            perSequence[i] = Array(logits[(offset * V)..<((offset + n) * V)])
            offset += n
        }
        return (perSequence, kept)
    }

    // MARK: - Blocks

    /// The time mix of every row; with `only`, its output (the receptance, gate and output projection)
    /// just at those rows, the state's update at all.
    private func timeMix(layer l: Int, weights w: LayerWeights, ws: Workspace, rows batchRows: BatchRows, states: inout [State],
                         reading: SharedBase?, only: [Int]?) {
        let c = model.config
        let (C, H, N, T) = (c.nEmbd, c.nHead, c.headSize, ws.rows)
        let xln = ws.xln
        forRows(T) { rows in for t in rows { layerNorm(ws.x + t * C, xln + t * C, w.ln1Weight, w.ln1Bias, C) } }
        tokenShift(layer: l, ws: ws, rows: batchRows, states: &states, reading: reading, \.attXPrev)
        let mixes: [([Float], UnsafeMutablePointer<Float>)] = [(w.xR, ws.xr), (w.xW, ws.xw), (w.xK, ws.xk), (w.xV, ws.xv), (w.xA, ws.xa), (w.xG, ws.xg)]
        forRows(T) { rows in
            for (mix, out) in mixes {
                mix.withUnsafeBufferPointer { m in
                    for t in rows { rk_lerp(xln + t * C, ws.prev + t * C, m.baseAddress, out + t * C, Int64(C)) }
                }
            }
        }
        // The projections and the first LoRA factors, as one parallel task.
        var first: [Product] = [Product(W: w.key, x: ws.xk, y: ws.k), Product(W: w.value, x: ws.xv, y: ws.v),
                                Product(W: w.w1, x: ws.xw, y: ws.loraW), Product(W: w.a1, x: ws.xa, y: ws.loraA)]
        if let v1 = w.v1 { first.append(Product(W: v1, x: ws.xv, y: ws.loraV)) }
        let output = [Product(W: w.receptance, x: ws.xr, y: ws.r), Product(W: w.g1, x: ws.xg, y: ws.loraG)]
        linear(first, output, T, only: only)
        if let only {
            // The WKV kernel reads r at every row; the rows left out get zeros (their output is never read).
            var r = 0
            for t in only + [T] { (ws.r + r * C).update(repeating: 0, count: (t - r) * C); r = t + 1 }
        }
        let (nW, nG) = (w.w1.rows, w.g1.rows)
        forRows(T) { rows in
            rk_tanh(ws.loraW + rows.lowerBound * nW, ws.loraW + rows.lowerBound * nW, Int64(rows.count * nW))
            rk_sigmoid(ws.loraG + rows.lowerBound * nG, nil, ws.loraG + rows.lowerBound * nG, Int64(rows.count * nG))
        }
        var second: [Product] = [Product(W: w.w2, x: ws.loraW, y: ws.w), Product(W: w.a2, x: ws.loraA, y: ws.a)]
        if let v2 = w.v2 { second.append(Product(W: v2, x: ws.loraV, y: ws.tmp)) }
        linear(second, [Product(W: w.g2, x: ws.loraG, y: ws.g)], T, only: only)
        // Decay w = exp(-e^{-1/2} · sigmoid(w0 + tanh(xw·W1)·W2)); in-context rate a = sigmoid(a0 + xa·A1·A2);
        // the gate g = sigmoid(xg·G1)·G2 is complete. Removal key kk = normalize(k ⊙ k_k) per head; then
        // k ← k ⊙ (1 + (a − 1) ⊙ k_a). Value residual: layer 0 keeps its v as v_first; later layers mix
        // towards it.
        forRows(T) { rows in
            w.w0.withUnsafeBufferPointer { w0 in
                w.a0.withUnsafeBufferPointer { a0 in
                    for t in rows {
                        rk_decay(ws.w + t * C, w0.baseAddress, ws.w + t * C, Int64(C))
                        rk_sigmoid(ws.a + t * C, a0.baseAddress, ws.a + t * C, Int64(C))
                    }
                }
            }
            w.kK.withUnsafeBufferPointer { kK in
                w.kA.withUnsafeBufferPointer { kA in
                    for t in rows {
                        rk_key_prep(ws.k + t * C, ws.a + t * C, kK.baseAddress, kA.baseAddress, ws.kk + t * C, Int32(H), Int32(N))
                    }
                }
            }
            let span = (rows.lowerBound * C)..<(rows.upperBound * C)
            if l == 0 {
                (ws.vFirst + span.lowerBound).update(from: ws.v + span.lowerBound, count: span.count)
            } else if let v0 = w.v0 {
                v0.withUnsafeBufferPointer { v0 in
                    for t in rows {
                        rk_sigmoid(ws.tmp + t * C, v0.baseAddress, ws.tmp + t * C, Int64(C))
                        rk_lerp(ws.v + t * C, ws.vFirst + t * C, ws.tmp + t * C, ws.v + t * C, Int64(C))
                    }
                }
            }
        }
        // The WKV recurrence, token by token within each sequence, each (sequence, head) on its own, as
        // one parallel task per generation (a continuing sequence starts from its parent's matrices
        // after the parent's tokens); then per head the group norm, the r·k bonus and the gate.
        w.lnXWeight.withUnsafeBufferPointer { lw in
            w.lnXBias.withUnsafeBufferPointer { lb in
                w.rK.withUnsafeBufferPointer { rk in
                    withLayerWKV(l, &states, reading: reading, ws: ws, rows: batchRows) { wkv, start in
                        for members in batchRows.generations {
                            pool.run(chunks: members.count * H) { chunk in
                                let (m, h) = chunk.quotientAndRemainder(dividingBy: H)
                                let i = members[m]
                                let S = wkv[i] + h * N * N
                                // Each head's matrix is copied where it is used, by the thread that runs it.
                                if let from = batchRows.parents[i].map({ UnsafePointer(wkv[$0]) }) ?? start {
                                    S.update(from: from + h * N * N, count: N * N)
                                }
                                for t in batchRows.starts[i]...batchRows.last(i) {
                                    let o = t * C + h * N
                                    rk_wkv7_step(S, 1, Int32(N), ws.r + o, ws.w + o, ws.k + o, ws.v + o, ws.kk + o, ws.a + o, ws.y + o)
                                    rk_wkv_output(ws.y + o, ws.r + o, ws.k + o, ws.v + o, ws.g + o, rk.baseAddress! + h * N,
                                                  lw.baseAddress! + h * N, lb.baseAddress! + h * N, 64e-5, Int64(N))
                                }
                            }
                        }
                    }
                }
            }
        }
        addResidual(Product(W: w.output, x: ws.y, y: ws.tmp), ws, only: only)
    }

    /// The channel mix of every row, or with `only` of its output rows (and the layer norm of the rows
    /// their token shift reads).
    private func channelMix(layer l: Int, weights w: LayerWeights, ws: Workspace, rows batchRows: BatchRows, states: inout [State],
                            reading: SharedBase?, only: TopLayerRows?) {
        let C = model.config.nEmbd, F = w.ffnKey.rows, T = ws.rows
        let xln = ws.xln
        forEachRow(T, only: only?.timeMix) { t in layerNorm(ws.x + t * C, xln + t * C, w.ln2Weight, w.ln2Bias, C) }
        tokenShift(layer: l, ws: ws, rows: batchRows, states: &states, reading: reading, \.ffnXPrev)
        forRows(T) { rows in
            w.ffnXK.withUnsafeBufferPointer { m in
                for t in rows { rk_lerp(xln + t * C, ws.prev + t * C, m.baseAddress, ws.xk + t * C, Int64(C)) }
            }
        }
        linear([], [Product(W: w.ffnKey, x: ws.xk, y: ws.hidden)], T, only: only?.outputs)
        forRows(T) { rows in
            for i in (rows.lowerBound * F)..<(rows.upperBound * F) { let v = max(ws.hidden[i], 0); ws.hidden[i] = v * v }
        }
        addResidual(Product(W: w.ffnValue, x: ws.hidden, y: ws.tmp), ws, only: only?.outputs)
    }

    /// ws.x += p's product (into ws.tmp), at every row or at `only`'s.
    private func addResidual(_ p: Product, _ ws: Workspace, only: [Int]?) {
        let C = model.config.nEmbd
        linear([], [p], ws.rows, only: only)
        forEachRow(ws.rows, only: only) { t in for i in (t * C)..<((t + 1) * C) { ws.x[i] += ws.tmp[i] } }
    }

    /// `body` for each of `only`'s rows (a few: on this thread), or for every row of 0..<T spread over
    /// the threads.
    private func forEachRow(_ T: Int, only: [Int]?, _ body: (Int) -> Void) {
        if let only { only.forEach(body) } else { forRows(T) { rows in rows.forEach(body) } }
    }

    /// Runs `body` on contiguous ranges of the rows 0..<T, spread over the threads (the per-token
    /// work between products; each row's arithmetic is the same whichever thread does it).
    private func forRows(_ T: Int, _ body: (Range<Int>) -> Void) {
        let parts = min(T, 2 * pool.size)
        guard parts > 1 else { if T > 0 { body(0..<T) }; return }
        pool.run(chunks: parts) { c in body((c * T / parts)..<((c + 1) * T / parts)) }
    }

    /// `body` with a pointer to each sequence's WKV matrices of layer `l`, all valid at once, and where
    /// those of a sequence that continues no other start (nil: they are already there). They are in
    /// its state (each state's buffer made its own first, as a mutation does), or, in a read, in the
    /// workspace's scratch, starting from the base's, and from where the kept states get theirs after.
    /// (A sequence that continues another starts from its parent's.)
    private func withLayerWKV(_ l: Int, _ states: inout [State], reading: SharedBase?, ws: Workspace, rows: BatchRows,
                              _ body: ([UnsafeMutablePointer<Float>], UnsafePointer<Float>?) -> Void) {
        let c = model.config, layerSize = c.nHead * c.headSize * c.headSize, offset = l * layerSize
        if let reading {
            let count = reading.slot.count
            let scratch = ws.wkvScratch(count * layerSize)
            let wkv = (0..<count).map { scratch + $0 * layerSize }
            reading.base.wkv.withUnsafeBufferPointer { base in body(wkv, base.baseAddress.map { $0 + offset }) }
            for (i, j) in reading.slot.enumerated() {
                guard let j else { continue }
                states[j].wkv.withUnsafeMutableBufferPointer { ($0.baseAddress! + offset).update(from: wkv[i], count: layerSize) }
            }
            return
        }
        states.withUnsafeMutableBufferPointer { all in
            var pointers: [UnsafeMutablePointer<Float>] = []
            pointers.reserveCapacity(all.count)
            func nest(_ i: Int) {
                guard i < all.count else { return body(pointers, nil) }
                all[i].wkv.withUnsafeMutableBufferPointer { p in
                    pointers.append(p.baseAddress! + offset)
                    nest(i + 1)
                }
            }
            nest(0)
        }
    }

    /// Token shift: fills `ws.prev` with each row's predecessor in `ws.xln` (for a sequence's first
    /// token its parent's last row, or the row its state saved: a read's base's) and saves each
    /// sequence's last row in its state (in a read, the kept ones').
    private func tokenShift(layer l: Int, ws: Workspace, rows: BatchRows, states: inout [State], reading: SharedBase?,
                            _ saved: WritableKeyPath<State, [Float]>) {
        let C = model.config.nEmbd
        for i in rows.starts.indices {
            let (s0, last) = (rows.starts[i], rows.last(i))
            if last > s0 { (ws.prev + (s0 + 1) * C).update(from: ws.xln + s0 * C, count: (last - s0) * C) }
            if let before = rows.before[i] { (ws.prev + s0 * C).update(from: ws.xln + before * C, count: C) }
            guard let reading else {
                states[i][keyPath: saved].withUnsafeMutableBufferPointer { prev in
                    let p = prev.baseAddress! + l * C
                    if rows.before[i] == nil { (ws.prev + s0 * C).update(from: p, count: C) }
                    p.update(from: ws.xln + last * C, count: C)
                }
                continue
            }
            if rows.before[i] == nil {
                reading.base[keyPath: saved].withUnsafeBufferPointer { (ws.prev + s0 * C).update(from: $0.baseAddress! + l * C, count: C) }
            }
            if let j = reading.slot[i] {
                states[j][keyPath: saved].withUnsafeMutableBufferPointer { ($0.baseAddress! + l * C).update(from: ws.xln + last * C, count: C) }
            }
        }
    }

    // MARK: - Products

    /// One product y[T][W.rows] = x[T][W.cols] · Wᵀ.
    struct Product {
        let W: Matrix
        let x: UnsafePointer<Float>
        let y: UnsafeMutablePointer<Float>
    }

    func linear(_ W: Matrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ T: Int) {
        linear([Product(W: W, x: x, y: y)], T)
    }

    /// Row blocks of a GEMM: two per thread of at least 128 rows, and a multiple of the threads when
    /// there are fewer (a 384-row matrix in three blocks kept one thread of two waiting for a third of it).
    static func gemmBlocks(rows: Int, threads: Int) -> Int {
        let blocks = max(1, min(2 * threads, rows / 128))
        return blocks < threads || blocks % threads == 0 ? blocks : (blocks + threads - 1) / threads * threads
    }

    /// Several independent products as one parallel task: row blocks of every matrix are claimed
    /// by the threads from one list, so a layer waits for its threads a few times, not once per matrix.
    func linear(_ products: [Product], _ T: Int) {
        var chunks: [(product: Int, begin: Int, end: Int)] = []
        for (i, p) in products.enumerated() {
            // One vector: each thread one contiguous share of the rows, so that it streams a single range of
            // the weights (blocks of ~64 KiB, up to 4 per thread, decoded 0.4B f16/bf16/Q4_K_M files up to 5%
            // slower: a stream to restart per block, and a thread left waiting for the other's last block).
            // A few vectors: blocks of ~64 KiB of weights, at most 4 per thread. GEMM: tall blocks reuse each
            // packed activation tile, so two per thread of at least 128 rows. Whole 4-row tiles in every case.
            let bytes = p.W.byteCount
            let blocks = pool.size == 1 ? 1
                : T == 1 ? pool.size
                : T < Self.gemmMinRows(p.W.dtype) ? max(1, min(4 * pool.size, bytes / 65536))
                : Self.gemmBlocks(rows: p.W.rows, threads: pool.size)
            let block = ((p.W.rows + blocks - 1) / blocks + 3) & ~3
            var r = 0
            while r < p.W.rows { chunks.append((i, r, min(p.W.rows, r + block))); r += block }
        }
        pool.run(chunks: chunks.count) { c in
            let chunk = chunks[c]
            multiply(products[chunk.product], rows: chunk.begin..<chunk.end, T)
        }
    }

    /// `every` at all T rows and `outputs` at `only`'s rows; one parallel task when `only` is nil.
    private func linear(_ every: [Product], _ outputs: [Product], _ T: Int, only: [Int]?) {
        guard let only else { return linear(every + outputs, T) }
        if !every.isEmpty { linear(every, T) }
        linear(outputs, rows: only)
    }

    /// Products at some rows of their inputs only (sorted row indices): gathered into compact
    /// buffers, multiplied, the results scattered back to the same rows.
    private func linear(_ products: [Product], rows: [Int]) {
        guard !rows.isEmpty else { return }
        let n = rows.count
        var buffers: [UnsafeMutablePointer<Float>] = []
        defer { for b in buffers { b.deallocate() } }
        let compact = products.map { p -> Product in
            let (cols, outs) = (p.W.cols, p.W.rows)
            let x = UnsafeMutablePointer<Float>.allocate(capacity: n * cols), y = UnsafeMutablePointer<Float>.allocate(capacity: n * outs)
            buffers += [x, y]
            for (j, t) in rows.enumerated() { (x + j * cols).update(from: p.x + t * cols, count: cols) }
            return Product(W: p.W, x: x, y: y)
        }
        linear(compact, n)
        for (p, c) in zip(products, compact) {
            let outs = p.W.rows
            for (j, t) in rows.enumerated() { (p.y + t * outs).update(from: c.y + j * outs, count: outs) }
        }
    }

    private func multiply(_ p: Product, rows: Range<Int>, _ T: Int) {
        let W = p.W
        let (rb, re) = (rows.lowerBound, rows.upperBound)
        if T == 1 {
            rk_matvec(W.dtype.kernelCode, W.data.base, p.x, p.y, Int64(W.cols), Int64(rb), Int64(re))
        } else if T < Self.gemmMinRows(W.dtype) {
            rk_matvec_multi(W.dtype.kernelCode, W.data.base, p.x, p.y, Int32(T), Int64(W.cols), Int64(W.rows), Int64(rb), Int64(re))
        } else {
            // Matrix–matrix: the C GEMM widens f16/bf16 weights (or dequantises quantised ones) while
            // packing them, fp32 accumulation; on AVX512-VNNI, Q4_K/Q5_K/Q6_K take int8 products instead.
            rk_gemm(W.dtype.kernelCode, W.data.base, p.x, p.y, Int32(T), Int64(W.cols), Int64(W.rows), Int64(rb), Int64(re))
        }
    }
}

/// Where each sequence's tokens lie among a pass's rows, and what precedes its first.
private struct BatchRows {
    let starts: [Int], counts: [Int]
    let parents: [Int?]
    /// The row before each sequence's first: its parent's last row, or nil (the state's saved row).
    let before: [Int?]
    let generations: [[Int]]
    /// All rows.
    let count: Int

    init(_ batch: BranchingBatch) {
        var starts: [Int] = [], acc = 0
        for s in batch.tokens { starts.append(acc); acc += s.count }
        self.starts = starts; counts = batch.tokens.map(\.count); parents = batch.parents
        count = acc
        before = batch.parents.map { $0.map { starts[$0] + batch.tokens[$0].count - 1 } }
        generations = batch.generations
    }

    func last(_ i: Int) -> Int { starts[i] + counts[i] - 1 }
}

/// The rows of the top layer whose output is read when not every row gives logits.
private struct TopLayerRows {
    /// The rows that give logits, ascending: the channel mix runs there.
    let outputs: [Int]
    /// The rows whose time-mix output is read, ascending: the output rows, the row before each (the
    /// channel mix's token shift reads it: the row before in its sequence, or for a first row its
    /// parent's last), and every sequence's last row (the state keeps its channel-mix input).
    let timeMix: [Int]

    init(outputs: [Int], rows: BatchRows) {
        self.outputs = outputs
        let firsts = Set(rows.starts)
        var read = Set(outputs)
        for o in outputs where !firsts.contains(o) { read.insert(o - 1) }
        for i in rows.starts.indices { read.insert(rows.last(i)) }
        timeMix = read.sorted()
    }
}

/// Layer norm over n values (eps 1e-5, biased variance), in place allowed.
func layerNorm(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ w: [Float], _ b: [Float], _ n: Int) {
    w.withUnsafeBufferPointer { w in
        b.withUnsafeBufferPointer { b in rk_layer_norm(x, w.baseAddress, b.baseAddress, 1e-5, out, Int64(n)) }
    }
}

/// Activation buffers for one forward call of `rows` token rows, carved from one block of zeroed
/// anonymous memory advised for huge pages: a pass's buffers are tens of MB (~36 MB for 512 rows of the
/// 0.1B shape), and the GEMMs read their rows at strides of a few KiB, which with 4 KiB pages missed
/// the TLB on nearly every row.
private final class Workspace {
    /// The rows of the current pass, at most `capacity`.
    var rows: Int
    let capacity: Int
    let x, xln, prev, xr, xw, xk, xv, xa, xg, r, w, k, v, a, g, kk, vFirst, y, tmp, hidden: UnsafeMutablePointer<Float>
    /// Hidden activations of the four LoRA paths.
    let loraW, loraA, loraV, loraG: UnsafeMutablePointer<Float>
    private let block: HugePageArena?
    private let fallback: UnsafeMutablePointer<Float>?

    init(rows T: Int, config c: ModelConfig) {
        let C = T * c.nEmbd
        // In the order of the properties: x … tmp (19 of T × nEmbd), hidden, the four LoRA paths; each
        // buffer starts on a cache line.
        let sizes = Array(repeating: C, count: 19) + [T * c.ffnSize, T * c.loraW, T * c.loraA, T * c.loraV, T * c.loraG]
        let strides = sizes.map { (max($0, 1) + 15) & ~15 }
        let total = strides.reduce(0, +)
        let base: UnsafeMutablePointer<Float>
        if let arena = HugePageArena(count: total * MemoryLayout<Float>.stride) {
            base = arena.base.bindMemory(to: Float.self, capacity: total)
            (block, fallback) = (arena, nil)
        } else {
            // No mapping to be had: the heap's buffers serve the same, with 4 KiB pages.
            base = UnsafeMutablePointer<Float>.allocate(capacity: total)
            base.initialize(repeating: 0, count: total)
            (block, fallback) = (nil, base)
        }
        var offsets: [Int] = [], offset = 0
        for s in strides { offsets.append(offset); offset += s }
        let buffers = offsets.map { base + $0 }
        rows = T
        capacity = T
        (x, xln, prev, xr, xw, xk, xv) = (buffers[0], buffers[1], buffers[2], buffers[3], buffers[4], buffers[5], buffers[6])
        (xa, xg, r, w, k, v, a, g) = (buffers[7], buffers[8], buffers[9], buffers[10], buffers[11], buffers[12], buffers[13], buffers[14])
        (kk, vFirst, y, tmp, hidden) = (buffers[15], buffers[16], buffers[17], buffers[18], buffers[19])
        (loraW, loraA, loraV, loraG) = (buffers[20], buffers[21], buffers[22], buffers[23])
    }

    /// A read's WKV matrices of one layer, at least n values; kept, and grown when a read needs more.
    private var scratch: (pointer: UnsafeMutablePointer<Float>, count: Int)?

    func wkvScratch(_ n: Int) -> UnsafeMutablePointer<Float> {
        if let scratch, scratch.count >= n { return scratch.pointer }
        scratch?.pointer.deallocate()
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
        scratch = (p, max(n, 1))
        return p
    }

    deinit {
        fallback?.deallocate()
        scratch?.pointer.deallocate()
    }
}
