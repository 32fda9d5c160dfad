
/// The edit methods of the seed, each selectable by name (DESIGN.md §4).
public enum EditMethod: String, CaseIterable, Sendable {
    /// Offline u₁ (calibration), online v and σ (probe on the live state), adaptive α. The default.
    case hybU = "hyb-u"
    /// Offline u₁ and σ, online v, adaptive α.
    case hybUV = "hyb-uv"
    /// The online (donor) delta added with a fixed α.
    case uniform
    /// The online (donor) delta with α = ratio·‖S‖/‖Δ‖.
    case adaptive
    /// The rank-1 part of the online delta per head, adaptive α.
    case rank1
    /// Donor-free: replace what the state holds at the calibration address v with what the
    /// calibration's new-fact state holds there: S += α (S_new·v − S·v) vᵀ.
    case projection
    /// The delta of the isolated fact sentences (zero-state calibration), adaptive α.
    case isolate

    public init(name: String) throws {
        guard let m = EditMethod(rawValue: name.lowercased()) else { throw EditError.unknownMethod(name) }
        self = m
    }

    /// Methods whose strength is a fixed α rather than a ratio of norms.
    public var usesFixedAlpha: Bool { self == .uniform || self == .projection }

    /// Methods that need the offline (zero-state) calibration.
    public var needsCalibration: Bool { [.hybU, .hybUV, .projection, .isolate].contains(self) }

    /// Methods that continue the live state with the old and new facts (the online probes).
    public var probesTheLiveState: Bool { self != .isolate && self != .projection }
}

/// What an edit by name tries when every strength it searched cost a control and nothing was kept,
/// in this order, each a new search from the same reading before the edit.
public struct CollateralRecovery: Sendable, Equatable {
    /// Another method (hyb-uv: σ from the pack's calibration instead of the probes).
    public var fallbackMethod: EditMethod?
    /// The edit's own method with its keys projected off the key directions of the property's other
    /// statements in the conversation (`KeyProtection`; one more pass, probing each statement).
    public var protectsOtherStatements: Bool

    public init(fallbackMethod: EditMethod?, protectsOtherStatements: Bool) {
        self.fallbackMethod = fallbackMethod; self.protectsOtherStatements = protectsOtherStatements
    }

    /// Both (on the demo model over seeds 1–3, the fallback recovered one of three such edits, the
    /// protection the other two: README "Trusting an edit").
    public static let standard = CollateralRecovery(fallbackMethod: .hybUV, protectsOtherStatements: true)
    /// Neither: a collateral search is reported as such.
    public static let none = CollateralRecovery(fallbackMethod: nil, protectsOtherStatements: false)
}

/// The ratios edits, forgets and erasures use when none is given. `.seed` holds the seed's (measured on
/// its 2.9B model); a model can ship its own beside its weights (the CLI reads `<model>.json`; the demo
/// model's are in models/demo.json, README "Choosing the ratio").
public struct DefaultRatios: Sendable, Equatable {
    public var edit: Float
    public var forget: Float
    public var erase: Float

    public init(edit: Float, forget: Float, erase: Float) { self.edit = edit; self.forget = forget; self.erase = erase }

    public static let seed = DefaultRatios(edit: 0.20, forget: 0.55, erase: 0.55)
}

/// How strongly and where an edit is applied.
public struct EditOptions: Sendable {
    public var method: EditMethod = .hybU
    /// α = ratio · ‖S_live‖ / ‖Δ‖ for adaptive methods.
    public var ratio: Float = DefaultRatios.seed.edit
    /// Fixed strength; used by `uniform` and `projection`, and overrides the ratio when set.
    public var alpha: Float?
    /// Layers to edit; nil means the upper half, L/2 … L−1.
    public var layers: ClosedRange<Int>?
    /// Heads to edit in each layer; nil means all.
    public var heads: [Int]?

    public init(method: EditMethod = .hybU, ratio: Float = DefaultRatios.seed.edit, alpha: Float? = nil,
                layers: ClosedRange<Int>? = nil, heads: [Int]? = nil) {
        self.method = method; self.ratio = ratio; self.alpha = alpha; self.layers = layers; self.heads = heads
    }

    /// The strength is the ratio (no α given, and a method that scales by one): what a strength
    /// search can vary.
    public var strengthIsRatio: Bool { alpha == nil && !method.usesFixedAlpha }

    /// Parses "a-b" or "a" (inclusive layer indices).
    public static func parseLayers(_ text: String) throws -> ClosedRange<Int> {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        switch parts.count {
        case 1: if let a = parts[0] { return a...a }
        case 2: if let a = parts[0], let b = parts[1], a <= b { return a...b }
        default: break
        }
        throw EditError.layerRange("'\(text)' is not 'a-b' with a ≤ b")
    }

    /// "0,3,5" → [0, 3, 5]; every entry must be an integer (checked against the model in `targetHeads`).
    public static func parseHeads(_ text: String) throws -> [Int] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else {
            throw EditError.invalid("heads must be comma-separated integers, got '\(text)'")
        }
        return parts.compactMap { $0 }
    }

    /// The (layer, head) pairs to edit in a model of `config`, checked against its size.
    public func targetHeads(_ config: ModelConfig) throws -> [HeadIndex] {
        let range = layers ?? config.upperHalfLayers
        guard range.lowerBound >= 0, range.upperBound < config.nLayer else {
            throw EditError.layerRange("\(range.lowerBound)-\(range.upperBound) lies outside the model's layers 0-\(config.nLayer - 1)")
        }
        let hs = heads ?? Array(0..<config.nHead)
        if let bad = hs.first(where: { $0 < 0 || $0 >= config.nHead }) { throw EditError.headOutOfRange(bad, heads: config.nHead) }
        return range.flatMap { l in hs.map { HeadIndex(layer: l, head: $0) } }
    }
}

public struct HeadIndex: Hashable, Sendable, Comparable {
    public let layer: Int
    public let head: Int
    public init(layer: Int, head: Int) { self.layer = layer; self.head = head }
    public static func < (a: HeadIndex, b: HeadIndex) -> Bool { (a.layer, a.head) < (b.layer, b.head) }
}

extension ModelConfig {
    /// The layers edits and packs use by default: the upper half, L/2 … L−1, where the seed found the
    /// facts bound to their entities.
    public var upperHalfLayers: ClosedRange<Int> { (nLayer / 2)...(nLayer - 1) }
}
