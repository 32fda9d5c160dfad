import Foundation
import RWKV
import StateEdit

/// A control query whose answer an edit must leave alone.
struct ControlQuery {
    let query: String
    let answer: String
}

struct EditCommandError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Measures the query and the controls, runs `apply` (which edits the session), measures again, and
/// returns the report in the JSON shape scripts depend on:
/// {"method","alpha","target":{"query","old","new","before":{"p_old","p_new","top"},"after":{…}},
///  "controls":[{"query","answer","before":{"p","top1"},"after":{…}}]}.
func editReport(session: EditSession, query: String, old: String, new: String, controls: [ControlQuery],
                apply: () throws -> AppliedEdit) throws -> [String: Any] {
    func target() throws -> [String: Any] {
        let pOld = try session.score(query: query, answer: old)
        let pNew = try session.score(query: query, answer: new)
        return ["p_old": pOld.probability, "p_new": pNew.probability,
                "top": pOld.top.map { ["id": $0.id, "text": $0.text, "prob": $0.probability] as [String: Any] }]
    }
    func control(_ c: ControlQuery) throws -> [String: Any] {
        let s = try session.score(query: c.query, answer: c.answer)
        return ["p": s.probability, "top1": s.isTop1]
    }
    let targetBefore = try target()
    let controlsBefore = try controls.map(control)
    let applied = try apply()
    let targetAfter = try target()
    let controlsAfter = try controls.map(control)
    var report: [String: Any] = [
        "method": applied.method.rawValue,
        "alpha": Double(applied.alpha),
        "target": ["query": query, "old": old, "new": new, "before": targetBefore, "after": targetAfter],
        "controls": controls.indices.map { i in
            ["query": controls[i].query, "answer": controls[i].answer, "before": controlsBefore[i], "after": controlsAfter[i]] as [String: Any]
        },
    ]
    if let r = applied.ratio { report["ratio"] = Double(r) }
    report["layers"] = [applied.heads.map(\.layer).min() ?? 0, applied.heads.map(\.layer).max() ?? 0]
    report["heads_edited"] = applied.heads.count
    return report
}

/// The report as a human-readable table.
func printEditReport(_ r: [String: Any]) {
    guard let t = r["target"] as? [String: Any], let b = t["before"] as? [String: Any], let a = t["after"] as? [String: Any] else { return }
    func p(_ d: [String: Any], _ k: String) -> String { String(format: "%.4f", (d[k] as? Double) ?? .nan) }
    func top(_ d: [String: Any]) -> String {
        ((d["top"] as? [[String: Any]]) ?? []).prefix(3).map { "\(($0["text"] as? String ?? "").debugDescription) \(String(format: "%.3f", $0["prob"] as? Double ?? 0))" }.joined(separator: ", ")
    }
    print("method \(r["method"] ?? "?")  α = \(String(format: "%.4f", r["alpha"] as? Double ?? 0))")
    print("query: \(t["query"] ?? "")")
    print("          P(\(t["old"] ?? ""))   P(\(t["new"] ?? ""))   top")
    print("before    \(p(b, "p_old"))   \(p(b, "p_new"))   \(top(b))")
    print("after     \(p(a, "p_old"))   \(p(a, "p_new"))   \(top(a))")
    for c in (r["controls"] as? [[String: Any]]) ?? [] {
        let cb = c["before"] as? [String: Any] ?? [:], ca = c["after"] as? [String: Any] ?? [:]
        print("control: \(c["query"] ?? "") → \(c["answer"] ?? "")   P before \(p(cb, "p")) (top-1: \(cb["top1"] ?? "")), after \(p(ca, "p")) (top-1: \(ca["top1"] ?? ""))")
    }
}

func controlQueries(_ queries: [String], _ answers: [String]) throws -> [ControlQuery] {
    guard queries.count == answers.count else {
        throw EditCommandError("give one --control-answer per --control-query (got \(queries.count) queries, \(answers.count) answers)")
    }
    return zip(queries, answers).map { ControlQuery(query: $0, answer: $1) }
}
