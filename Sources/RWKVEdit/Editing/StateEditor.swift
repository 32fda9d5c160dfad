import Foundation

/// Value directions of an offline calibration, per head: the leading triplet of
/// Δ_cal = S(new sentence) − S(old sentence) run from empty states (or loaded from a pack).
public struct Calibration: Sendable {
    public var heads: [HeadIndex: RankOne]
    /// Full calibration deltas (for `isolate`); nil when the source keeps only rank-1 parts.
    public var deltas: [HeadIndex: [Float]]?
    /// S_cal(new)·v per head (for `projection`).
    public var newReadout: [HeadIndex: [Float]]?

    public init(heads: [HeadIndex: RankOne], deltas: [HeadIndex: [Float]]? = nil, newReadout: [HeadIndex: [Float]]? = nil) {
        self.heads = heads; self.deltas = deltas; self.newReadout = newReadout
    }
}

/// What an edit did: enough to report it and to reason about its strength.
public struct AppliedEdit: Sendable {
    public let method: EditMethod
    public let alpha: Float
    public let ratio: Float?
    public let heads: [HeadIndex]
    /// ‖Δ‖ over the edited heads (Frobenius of the per-head edit matrices before α).
    public let deltaNorm: Float
    /// ‖S_live‖ over all layers before the edit.
    public let stateNorm: Float
    /// Statements whose key directions the edit left alone (`KeyProtection`); 0 for none.
    public let protectedStatements: Int

    /// The method, and the protection when there is one: "hyb-u protecting 2 statements' keys".
    public var methodDescription: String {
        method.rawValue + (protectedStatements > 0 ? " protecting \(protectedStatements) statements' keys" : "")
    }
}

/// Computes and applies state edits (DESIGN.md §4). Probes branch from the live state and run as
/// one batch of two sequences; calibrations run from empty states.
public struct StateEditor: Sendable {
    public let engine: any Engine

    public init(engine: any Engine) { self.engine = engine }

    /// The live state continued with each text (two branches decoded as one batch).
    public func probe(_ live: State, old: [Int], new: [Int]) throws -> (old: State, new: State) {
        var states = [live, live]
        _ = try engine.forward([old, new], states: &states, allLogits: false)
        return (states[0], states[1])
    }

    /// Zero-state calibration of an old/new sentence pair over the given heads.
    public func calibrate(old: [Int], new: [Int], heads: [HeadIndex]) throws -> Calibration {
        let empty = engine.newState()
        let (a, b) = try probe(empty, old: old, new: new)
        var triplets: [HeadIndex: RankOne] = [:]
        var deltas: [HeadIndex: [Float]] = [:]
        var readout: [HeadIndex: [Float]] = [:]
        let n = engine.config.headSize
        for h in heads {
            let d = try StateDelta.head(a, b, h)
            let top = try HeadSVD.leading(matrix: d, n: n)
            triplets[h] = top
            deltas[h] = d
            let sNew = Array(b.wkvHead(layer: h.layer, head: h.head))
            readout[h] = (0..<n).map { i in (0..<n).reduce(Float(0)) { $0 + sNew[i * n + $1] * top.v[$1] } }
        }
        return Calibration(heads: triplets, deltas: deltas, newReadout: readout)
    }

    /// Edits `live` in place so that what `old` states becomes what `new` states.
    /// `calibration` (e.g. from a pack) replaces the zero-state calibration of the two texts.
    @discardableResult
    public func edit(_ live: inout State, old: [Int], new: [Int], options: EditOptions,
                     calibration given: Calibration? = nil) throws -> AppliedEdit {
        try plan(live, old: old, new: new, options: options, calibration: given).apply(to: &live, options: options)
    }

    /// Everything of an edit of `live` but its strength: the probes, SVDs and per-head matrices. A
    /// strength search applies one plan at several strengths instead of probing again. `probed`, when
    /// given, is `probe(live, old: old, new: new)` already run (in a batch with other sequences).
    /// Every head's matrix is projected off `protecting`'s key directions.
    public func plan(_ live: State, old: [Int], new: [Int], options: EditOptions,
                     calibration given: Calibration? = nil, probed: (old: State, new: State)? = nil,
                     protecting: KeyProtection = KeyProtection()) throws -> EditPlan {
        guard !old.isEmpty else { throw EditError.emptyText("the old fact") }
        guard !new.isEmpty else { throw EditError.emptyText("the new fact") }
        guard live.isCompatible(with: engine.newState()) else { throw EditError.incompatibleState("layer or head counts differ") }
        let heads = try options.targetHeads(engine.config)
        let n = engine.config.headSize
        let method = options.method
        let start = DispatchTime.now().uptimeNanoseconds
        let calibration: Calibration? = method.needsCalibration ? try (given ?? calibrate(old: old, new: new, heads: heads)) : nil
        let online: (old: State, new: State)? = method.probesTheLiveState ? try probed ?? probe(live, old: old, new: new) : nil
        let probed = DispatchTime.now().uptimeNanoseconds

        var edits: [(HeadIndex, [Float])] = []
        for h in heads {
            var m: [Float]
            switch method {
            case .uniform, .adaptive:
                guard let online else { continue }
                m = try StateDelta.head(online.old, online.new, h)
            case .rank1:
                guard let online else { continue }
                m = try StateDelta.outer(HeadSVD.leading(matrix: StateDelta.head(online.old, online.new, h), n: n))
            case .hybU, .hybUV:
                guard let online, let cal = calibration?.heads[h] else { continue }
                let on = try HeadSVD.leading(matrix: try StateDelta.head(online.old, online.new, h), n: n)
                // SVD signs are arbitrary: orient the offline u₁ like the online value direction.
                let sign: Float = dot(on.u, cal.u) < 0 ? -1 : 1
                let sigma = method == .hybU ? on.sigma : cal.sigma
                m = try StateDelta.outer(RankOne(sigma: sigma * sign, u: cal.u, v: on.v))
            case .isolate:
                guard let d = calibration?.deltas?[h] else { throw EditError.invalid("the isolate method needs full calibration deltas, which this calibration source does not keep") }
                m = d
            case .projection:
                guard let cal = calibration?.heads[h], let target = calibration?.newReadout?[h] else {
                    throw EditError.invalid("the projection method needs the calibration's new-fact readout, which this calibration source does not keep")
                }
                let s = Array(live.wkvHead(layer: h.layer, head: h.head))
                var mm = [Float](repeating: 0, count: n * n)
                for i in 0..<n {
                    var sv: Float = 0
                    for j in 0..<n { sv += s[i * n + j] * cal.v[j] }
                    let a = target[i] - sv
                    for j in 0..<n { mm[i * n + j] = a * cal.v[j] }
                }
                m = mm
            }
            try protecting.project(&m, at: h, headSize: n)
            edits.append((h, m))
        }
        let deltaNorm = Float(edits.reduce(0.0) { $0 + $1.1.withUnsafeBufferPointer(sumOfSquares) }.squareRoot())
        let done = DispatchTime.now().uptimeNanoseconds
        return EditPlan(method: method, heads: heads, matrices: edits, deltaNorm: deltaNorm, stateNorm: live.wkvNorm(),
                        protectedStatements: protecting.statements, probeSeconds: Double(probed - start) / 1e9, svdSeconds: Double(done - probed) / 1e9)
    }
}

/// An edit computed up to its strength (`StateEditor.plan`).
public struct EditPlan: Sendable {
    public let method: EditMethod
    public let heads: [HeadIndex]
    /// The per-head edit matrices before α, value-major [N][N].
    public let matrices: [(HeadIndex, [Float])]
    /// ‖Δ‖ over the edited heads, and ‖S_live‖ over all layers before the edit.
    public let deltaNorm: Float
    public let stateNorm: Float
    public let protectedStatements: Int
    /// Time spent on the probes and calibration (engine passes), and on the SVDs and matrices.
    public let probeSeconds: Double
    public let svdSeconds: Double

    /// Adds the edit to `live` at the strength `options` give: α itself, 1 for fixed-α methods, else
    /// α = ratio·‖S‖/‖Δ‖ (DESIGN.md §4).
    @discardableResult
    public func apply(to live: inout State, options: EditOptions) throws -> AppliedEdit {
        let alpha: Float
        if let fixed = options.alpha { alpha = fixed }
        else if method.usesFixedAlpha { alpha = 1 }
        else { alpha = deltaNorm > 0 ? options.ratio * stateNorm / deltaNorm : 0 }
        guard alpha.isFinite else { throw EditError.numerical("edit strength α is not finite") }
        for (h, m) in matrices { StateDelta.add(m, scaled: alpha, to: &live, at: h) }
        return AppliedEdit(method: method, alpha: alpha, ratio: options.alpha == nil && !method.usesFixedAlpha ? options.ratio : nil,
                           heads: heads, deltaNorm: deltaNorm, stateNorm: stateNorm, protectedStatements: protectedStatements)
    }
}
