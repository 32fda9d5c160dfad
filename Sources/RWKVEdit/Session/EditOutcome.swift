import Foundation

/// How an edit ended, measured on the live state after it (DESIGN.md §4, "Every edit is verified").
public enum EditVerdict: String, Sendable, Codable {
    /// P(old) < 0.2, the new value (if the edit has one) is the query's top-1 answer, and every
    /// control kept its top-1. For a forget or an erasure there is no new value: P(old) decides.
    case applied
    /// The target did not move far enough (P(old) ≥ 0.2, or the new value is not top-1).
    case weak
    /// A control that was top-1 before lost its top-1.
    case collateral

    /// P(old) must fall below this for `applied`.
    public static let oldProbabilityLimit = 0.2
}

/// P(answer) after a query and whether the answer's first token is the most likely next token.
public struct AnswerReading: Sendable, Equatable, Codable {
    public let probability: Double
    public let isTop1: Bool
}

/// The edited query, read before and after.
public struct TargetReading: Sendable, Equatable, Codable {
    public let old: AnswerReading
    /// Nil for a removal (forget, erase), which has no new value.
    public let new: AnswerReading?
    /// The most likely next tokens after the query.
    public let top: [TokenProbability]
}

public struct TokenProbability: Sendable, Equatable, Codable {
    public let id: Int
    public let text: String
    public let probability: Double
}

/// A query whose answer an edit must leave alone, e.g. another person's city.
public struct ControlQuery: Sendable, Equatable, Codable {
    public let query: String
    public let answer: String

    public init(query: String, answer: String) { self.query = query; self.answer = answer }
}

public struct ControlReading: Sendable, Equatable, Codable {
    public let control: ControlQuery
    public let before: AnswerReading
    public let after: AnswerReading
}

/// What to measure around an edit: the query and its answers before and after, and the controls.
/// `new` is nil for a removal (forget, erase): only the old answer must fall.
public struct EditCheck: Sendable, Equatable {
    public var query: String
    public var old: String
    public var new: String?
    public var controls: [ControlQuery]

    public init(query: String, old: String, new: String?, controls: [ControlQuery] = []) {
        self.query = query; self.old = old; self.new = new; self.controls = controls
    }
}

/// How the strength of an edit is chosen.
public enum StrengthPolicy: Sendable, Equatable {
    /// Exactly the given options (one trial), for experiments.
    case fixed
    /// The smallest ratio of a ladder starting at the options' ratio (×1, 1.5, 2, 3, 4; for a removal,
    /// forget or erase, on to ×16) that reaches `applied`, with an exact undo between trials; a rung
    /// that flips the target but costs a control is bisected against the weak strength below it
    /// (`bisections` times); a first rung that does is halved first (`descents` times at most) to find
    /// a strength below it that does not. Falls back to one trial for fixed-α methods or a given α.
    case search

    /// Whether this policy searches the strength of an edit with `options` (a given α or a fixed-α
    /// method leaves nothing to search: one trial).
    public func searches(_ options: EditOptions) -> Bool { self == .search && options.strengthIsRatio }

    public static let ladder: [Float] = [1, 1.5, 2, 3, 4]
    /// A removal's ladder goes further: how strong a forget or erasure must be varies more between
    /// contexts (on the demo model with invented filler, a third stayed weak at ×4; README "Trusting an
    /// edit").
    public static let removalLadder: [Float] = [1, 1.5, 2, 3, 4, 6, 8, 12, 16]

    /// The ladder of a check: a removal's when it has no new value.
    static func ladder(for check: EditCheck) -> [Float] { check.new == nil ? removalLadder : ladder }
    /// Strengths tried between a collateral rung and the weak strength below it.
    public static let bisections = 2
    /// Halvings of a first rung that already costs a control, looking for a strength that does not.
    public static let descents = 3
}

/// One strength tried by an edit.
public struct EditTrial: Sendable {
    public let applied: AppliedEdit
    public let verdict: EditVerdict
    public let target: TargetReading
}

/// Where the time of a verified edit went: the engine pass before the edit (the query and controls
/// read, with the edit's probes of the live state in the same batch), any pass of its own the plan
/// needed (a calibration from empty states when no pack gives it), the SVDs and edit matrices (once per
/// edit, whatever the number of trials), and each trial (applying the edit at one strength and reading
/// the query and controls again, from the lowest edited layer).
public struct EditTiming: Sendable, Equatable {
    public let beforeSeconds: Double
    public let planPassSeconds: Double
    public let svdSeconds: Double
    public let trialSeconds: [Double]

    /// The readings that judge the edit: before, and after the first strength.
    public var verificationSeconds: Double { beforeSeconds + (trialSeconds.first ?? 0) }
    /// The trials beyond the first: the cost of searching the strength.
    public var searchSeconds: Double { trialSeconds.dropFirst().reduce(0, +) }
    public var totalSeconds: Double { planPassSeconds + svdSeconds + verificationSeconds + searchSeconds }
}

/// The measured result of a verified edit.
public struct EditOutcome: Sendable {
    public let verdict: EditVerdict
    /// Whether the live state now holds the edit. An edit whose best trial is not `applied` is
    /// rolled back unless the caller asked to keep it.
    public let kept: Bool
    public let check: EditCheck
    public let before: TargetReading
    /// After the chosen trial (the last one when none reached `applied`).
    public let after: TargetReading
    public let controls: [ControlReading]
    /// Every strength tried, in order (with a fallback method, the first method's trials come first);
    /// the last is the one reported.
    public let trials: [EditTrial]
    public let timing: EditTiming

    public var applied: AppliedEdit { trials[trials.count - 1].applied }

    /// This outcome, tried after `earlier` from the same reading before the edit (whose time is
    /// counted once): its trials and time follow the earlier one's, with `passSeconds` more of engine
    /// passes it needed outside its own search.
    func following(_ earlier: EditOutcome, passSeconds: Double = 0) -> EditOutcome {
        let t = EditTiming(beforeSeconds: earlier.timing.beforeSeconds,
                           planPassSeconds: earlier.timing.planPassSeconds + timing.planPassSeconds + passSeconds,
                           svdSeconds: earlier.timing.svdSeconds + timing.svdSeconds,
                           trialSeconds: earlier.timing.trialSeconds + timing.trialSeconds)
        return EditOutcome(verdict: verdict, kept: kept, check: check, before: before, after: after, controls: controls,
                           trials: earlier.trials + trials, timing: t)
    }
}
