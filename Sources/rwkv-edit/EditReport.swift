import ArgumentParser
import Foundation
import RWKVEdit

struct EditCommandError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// The report `edit`, `apply` and chat print for a verified edit; `--json` prints it as
/// {"verdict","kept","warnings","method","protected_statements","alpha","ratio","layers","heads_edited",
///  "target":{"query","old","new","before":{"p_old","p_new","top":[{id,text,prob}]},"after":{…}},
///  "controls":[{"query","answer","before":{"p","top1"},"after":{…}}],
///  "trials":[{"method","protected_statements","ratio","alpha","verdict","p_old","p_new"}], "pack":{…}}.
struct EditReport: Encodable {
    struct Target: Encodable { let query, old: String; let new: String?; let before, after: Reading }
    struct Reading: Encodable {
        let pOld: Double
        let pNew: Double?
        let top: [Token]
        init(_ r: TargetReading) { pOld = r.old.probability; pNew = r.new?.probability; top = r.top.map(Token.init) }
    }
    struct Token: Encodable {
        let id: Int; let text: String; let prob: Double
        init(_ t: TokenProbability) { id = t.id; text = t.text; prob = t.probability }
    }
    struct Control: Encodable { let query, answer: String; let before, after: Answer }
    struct Answer: Encodable {
        let p: Double; let top1: Bool
        init(_ a: AnswerReading) { p = a.probability; top1 = a.isTop1 }
    }
    struct Trial: Encodable {
        let method: String
        /// Statements whose keys the trial's edit left alone (`KeyProtection`), 0 for none.
        let protectedStatements: Int
        let ratio: Float?; let alpha: Float; let verdict: EditVerdict; let pOld: Double; let pNew: Double?
        /// `AppliedEdit.methodDescription`, for the text report only.
        let label: String

        init(_ t: EditTrial) {
            method = t.applied.method.rawValue; protectedStatements = t.applied.protectedStatements
            ratio = t.applied.ratio; alpha = t.applied.alpha; verdict = t.verdict
            pOld = t.target.old.probability; pNew = t.target.new?.probability
            label = t.applied.methodDescription
        }

        private enum CodingKeys: String, CodingKey { case method, protectedStatements, ratio, alpha, verdict, pOld, pNew }
    }
    struct Pack: Encodable { let file, name, source, entity, from, to, oldProbe, newProbe: String }

    let verdict: EditVerdict
    let kept: Bool
    /// What the checks before an edit by name noticed, and why the verdict is not `applied`, in
    /// words; empty for an applied edit with nothing noticed.
    private(set) var warnings: [String]
    let method: String
    let protectedStatements: Int
    let alpha: Float
    let ratio: Float?
    let layers: [Int]
    let headsEdited: Int
    let target: Target
    let controls: [Control]
    let trials: [Trial]
    var pack: Pack?

    init(_ o: EditOutcome) {
        let a = o.applied
        verdict = o.verdict; kept = o.kept
        switch o.verdict {
        case .applied: warnings = []
        case .weak:
            warnings = ["the edit was not applied: " + weakReason(o) + (o.kept ? "" : "; the state was left unchanged")]
        case .collateral:
            let lost = o.controls.filter { $0.before.isTop1 && !$0.after.isTop1 }.map { "\"\($0.control.query)\" no longer answers \($0.control.answer)" }
            warnings = ["the edit was not applied: a control lost its top-1 answer (\(lost.joined(separator: "; ")))" + (o.kept ? "" : "; the state was left unchanged")]
        }
        method = a.method.rawValue; protectedStatements = a.protectedStatements; alpha = a.alpha; ratio = a.ratio
        layers = [a.heads.map(\.layer).min() ?? 0, a.heads.map(\.layer).max() ?? 0]
        headsEdited = a.heads.count
        target = Target(query: o.check.query, old: o.check.old, new: o.check.new, before: Reading(o.before), after: Reading(o.after))
        controls = o.controls.map { Control(query: $0.control.query, answer: $0.control.answer, before: Answer($0.before), after: Answer($0.after)) }
        trials = o.trials.map(Trial.init)
    }

    init(_ r: PackEditOutcome, file: String, name: String) {
        self.init(r.outcome)
        warnings = r.prechecks.map(\.message) + warnings
        pack = Pack(file: file, name: name, source: r.source.rawValue, entity: r.entity, from: r.from, to: r.to,
                    oldProbe: r.oldProbe, newProbe: r.newProbe)
    }

    /// The report as a table.
    func printText() {
        func top(_ r: Reading) -> String { r.top.prefix(3).map { "\($0.text.debugDescription) \(String(format: "%.3f", $0.prob))" }.joined(separator: ", ") }
        let strength = String(format: "α = %.4f", alpha) + (ratio.map { String(format: " (ratio %.3g)", $0) } ?? "")
        print("method \(trials.last?.label ?? method)  \(strength)  verdict: \(verdict.rawValue)\(kept ? "" : " (not kept: the state is unchanged)")")
        print("query: \(target.query)")
        func p(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "-" }
        print("          P(\(target.old))   P(\(target.new ?? "new"))   top")
        print("before    \(p(target.before.pOld))   \(p(target.before.pNew))   \(top(target.before))")
        print("after     \(p(target.after.pOld))   \(p(target.after.pNew))   \(top(target.after))")
        for c in controls {
            print("control: \(c.query) → \(c.answer)   P before \(String(format: "%.4f", c.before.p)) (top-1: \(c.before.top1)), after \(String(format: "%.4f", c.after.p)) (top-1: \(c.after.top1))")
        }
        if trials.count > 1 {
            // The method named where it changes (a recovery after a collateral search).
            print("strengths tried: " + trials.indices.map { i in
                let t = trials[i]
                return (i == 0 || trials[i - 1].label != t.label ? "\(t.label) " : "")
                    + (t.ratio.map { String(format: "ratio %.3g", $0) } ?? String(format: "α %.3g", t.alpha)) + " → \(t.verdict.rawValue)"
            }.joined(separator: ", "))
        }
    }

    /// Exit statuses of `edit` and `apply` by verdict (README "Trusting an edit").
    static func exitStatus(_ v: EditVerdict) -> Int32 {
        switch v { case .applied: 0; case .weak: 2; case .collateral: 3 }
    }

    /// Prints the report; a verdict other than `applied` is also said on stderr and ends the process
    /// with status 2 (weak) or 3 (collateral) unless `allowWeak`, so a script can never take a failed
    /// edit for a working one.
    func emit(json: Bool, allowWeak: Bool) throws {
        if !json { printText() }
        try EditBatchReport(edits: [self]).emit(json: json, allowWeak: allowWeak)
    }
}

/// The report of several edits applied in order (`apply` with more than one edit); one edit prints
/// its own report's shape. The batch's verdict is `applied` when every edit's is, else the worst one.
struct EditBatchReport: Encodable {
    let verdict: EditVerdict
    let warnings: [String]
    let edits: [EditReport]

    init(edits: [EditReport]) {
        self.edits = edits
        verdict = edits.contains { $0.verdict == .collateral } ? .collateral : edits.contains { $0.verdict == .weak } ? .weak : .applied
        warnings = edits.enumerated().flatMap { i, e in e.warnings.map { edits.count > 1 ? "edit \(i + 1): \($0)" : $0 } }
    }

    /// Text reports are printed edit by edit as they happen; this prints the JSON and ends with the
    /// batch's exit status.
    func emit(json: Bool, allowWeak: Bool) throws {
        if json {
            if edits.count == 1 { try printJSON(edits[0]) } else { try printJSON(self) }
        } else if edits.count > 1 {
            print("\(edits.filter { $0.verdict == .applied }.count) of \(edits.count) edits applied")
        }
        for w in warnings { FileHandle.standardError.write(Data("warning: \(w)\n".utf8)) }
        let status = EditReport.exitStatus(verdict)
        if status != 0 && !allowWeak { throw ExitCode(status) }
    }
}

/// Why a weak edit is weak, in words.
func weakReason(_ o: EditOutcome) -> String {
    let pOld = String(format: "P(%@) %.3f", o.check.old, o.after.old.probability)
    guard let new = o.check.new, let after = o.after.new else { return "\(pOld) did not fall below \(EditVerdict.oldProbabilityLimit)" }
    return "the query does not answer \(new) (\(pOld), " + String(format: "P(%@) %.3f)", new, after.probability)
}

func controlQueries(_ queries: [String], _ answers: [String]) throws -> [ControlQuery] {
    guard queries.count == answers.count else {
        throw EditCommandError("give one --control-answer per --control-query (got \(queries.count) queries, \(answers.count) answers)")
    }
    return zip(queries, answers).map { ControlQuery(query: $0, answer: $1) }
}
