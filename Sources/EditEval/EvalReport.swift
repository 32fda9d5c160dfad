import Foundation
import RWKVEdit

/// Renders eval results: plain-text tables for the terminal, Markdown for a report, a JSON object
/// for scripts, and an SVG plot of P(old) against edit strength.
public enum EvalReport {
    static func f(_ x: Double?, _ digits: Int = 3) -> String {
        guard let x, x.isFinite else { return "–" }
        return String(format: "%.\(digits)f", x)
    }

    static func pct(_ p: Proportion, interval: Bool = true) -> String {
        guard let v = p.value else { return "–" }
        var s = String(format: "%.2f", v) + " (\(p.successes)/\(p.total))"
        if interval, let w = p.wilson { s += String(format: " [%.2f, %.2f]", w.low, w.high) }
        return s
    }

    static func methodName(_ m: EditMethod) -> String { m.rawValue.uppercased() }

    static func pad(_ s: String, _ n: Int) -> String {
        let c = s.count
        return c >= n ? s : s + String(repeating: " ", count: n - c)
    }

    /// The seed's mark of a point: "*" clean flip, "!" flipped but leaked, "E" error.
    public static func mark(_ p: EvalPoint) -> String {
        if p.error != nil { return "E" }
        if p.cleanFlip { return "*" }
        if p.flipped { return "!" }
        return ""
    }

    static func editLabel(_ c: EvalCase) -> String {
        if let q = c.targets.first, let n = q.new { return "\(q.old)->\(n)" }
        return c.edit.summary
    }

    /// Strength labels shared by every method of the suite, or nil when they differ (mixed ratio/α sweeps).
    static func sharedStrengths(_ r: EvalSuiteResult) -> [Strength]? {
        let per = r.sweepSummaries().map(\.strengths)
        let nSteps = (r.points.map(\.strengthIndex).max() ?? 0) + 1
        // Shared only when every method sweeps the same values and every case the same steps.
        guard let first = per.first, first.count == nSteps, per.allSatisfy({ $0 == first }) else { return nil }
        return first
    }

    // MARK: Seed-style sweep tables

    /// Lines of the seed's per-entity tables (P(old) at each strength, * clean flip, ! leaked, best) and
    /// the aggregate (flip n/N, best strength, selectivity, P(tgt)) with flip rate by strength.
    public static func sweepLines(_ r: EvalSuiteResult) -> [String] {
        var lines: [String] = []
        let shared = sharedStrengths(r)
        let nSteps = (r.points.map(\.strengthIndex).max() ?? 0) + 1
        let stepHeads = (0..<nSteps).map { i -> String in
            if let shared, i < shared.count { return shared[i].description }
            return "step \(i + 1)"
        }
        for c in r.cases {
            let ec = c.evalCase
            var title = "\(ec.group) (\(editLabel(ec)))"
            if !c.baseCorrect { title += "  [unedited model does not answer the old value top-1]" }
            if c.fillerTokens > 0 { title += "  [filler \(c.fillerTokens) tokens]" }
            lines.append(title + ":")
            lines.append("  " + pad("method", 14) + stepHeads.map { pad($0, 10) }.joined() + "best" + (shared == nil ? "   strengths" : ""))
            for m in r.methods {
                let ps = c.points.filter { $0.method == m }.sorted { $0.strengthIndex < $1.strengthIndex }
                guard !ps.isEmpty else { continue }
                var row = "  " + pad(methodName(m), 14)
                for i in 0..<nSteps {
                    if let p = ps.first(where: { $0.strengthIndex == i }) {
                        row += pad(p.error != nil ? "E" : f(p.meanPOld) + mark(p), 10)
                    } else { row += pad("", 10) }
                }
                let best = ps.first(where: \.cleanFlip)
                row += pad(best.map { formatStrength($0.strength.value) } ?? "-", 7)
                if shared == nil { row += "   " + ps.map(\.strength.description).joined(separator: ", ") }
                lines.append(row)
            }
            if let ref = r.suite.reference, let rows = ref.groups[ec.group] {
                for m in EditMethod.allCases {
                    guard let cells = rows[m.rawValue] else { continue }
                    let label = "seed " + (ref.methods[m.rawValue]?.label ?? methodName(m))
                    var row = "  " + pad(label, 14)
                    for i in 0..<nSteps { row += pad(i < cells.count ? cells[i] : "", 10) }
                    let best = cells.firstIndex { $0.hasSuffix("*") }
                    row += best.map { i in shared.map { i < $0.count ? formatStrength($0[i].value) : "step \(i + 1)" } ?? "step \(i + 1)" } ?? "-"
                    lines.append(row)
                }
            }
            lines.append("")
        }
        lines.append("  " + pad("method", 14) + pad("flip", 8) + pad("best", 8) + pad("P(ctrl)", 10) + pad("selectivity", 16) + "P(tgt)")
        lines.append("  " + String(repeating: "-", count: 60))
        for s in r.sweepSummaries() {
            lines.append("  " + pad(methodName(s.method), 14) + pad("\(s.flips.successes)/\(s.flips.total)", 8) + pad(f(s.bestStrength, 2), 8)
                         + pad(f(s.pControl, 4), 10) + pad(f(s.selectivity, 4), 16) + f(s.pTarget, 4))
        }
        if let ref = r.suite.reference, !ref.methods.isEmpty {
            for m in EditMethod.allCases {
                guard let x = ref.methods[m.rawValue] else { continue }
                let flips = x.flips.map { "\($0)/\(x.of.map(String.init) ?? "?")" } ?? "–"
                lines.append("  " + pad("seed " + x.label, 14) + pad(flips, 8) + pad(f(x.best, 2), 8) + pad("–", 10)
                             + pad(f(x.selectivity, 4), 16) + f(x.pTarget, 4))
            }
            lines.append("  (seed rows: \(ref.source))")
        }
        lines.append("")
        lines.append("  Flip rate by strength (flipped && !leaked):")
        lines.append("  " + pad("method", 14) + stepHeads.map { pad($0, 10) }.joined())
        for s in r.sweepSummaries() {
            lines.append("  " + pad(methodName(s.method), 14) + s.flipsByStep.map { pad("\($0.successes)/\($0.total)", 10) }.joined()
                         + (shared == nil ? "   " + s.strengths.map(\.description).joined(separator: ", ") : ""))
        }
        if let ref = r.suite.reference {
            for m in EditMethod.allCases {
                guard let x = ref.methods[m.rawValue], let steps = x.flipsByStep else { continue }
                lines.append("  " + pad("seed " + x.label, 14) + steps.map { pad("\($0)/\(x.of.map(String.init) ?? "?")", 10) }.joined())
            }
        }
        lines.append("  (* = clean flip, ! = flipped but leaked to another entity, E = edit failed; best = lowest strength with a clean flip;")
        lines.append("   flip, best, P(ctrl), selectivity = P(ctrl) − P(tgt) and P(tgt) = P(old) are means over the flipped cases at their best strength)")
        return lines
    }

    // MARK: Text

    public static func text(_ results: [EvalSuiteResult]) -> String {
        var out: [String] = []
        for r in results {
            out.append("== suite \(r.suite.name) (\(r.cases.count) cases, \(r.points.count) edits, \(String(format: "%.1f", r.seconds)) s)")
            if !r.suite.description.isEmpty { out.append(r.suite.description) }
            out.append("")
            out.append("per case (P before → after; flip = new answer top-1; leak = a neighbour lost top-1):")
            for c in r.cases {
                out.append("  \(c.evalCase.id): \(c.evalCase.edit.summary)  ctx \(c.contextTokens) tok" + (c.fillerTokens > 0 ? " + filler \(c.fillerTokens)" : "")
                           + "  base: old top-1 \(c.baseCorrect ? "yes" : "NO"), neighbours top-1 \(c.baseNeighboursCorrect)/\(c.neighbours.count)")
                for p in c.points {
                    if let e = p.error { out.append("    \(pad(p.method.rawValue, 10)) \(pad(p.strength.description, 8)) error: \(e)"); continue }
                    out.append("    \(pad(p.method.rawValue, 10)) \(pad(p.strength.description, 8)) α=\(f(p.alpha.map(Double.init), 3))"
                               + "  P(old) \(f(c.meanPOld))→\(f(p.meanPOld))  P(new) \(f(c.meanPNew))→\(f(p.meanPNew))"
                               + "  P(ctrl) \(f(c.meanPControl))→\(f(p.meanPControl))  flip \(p.flipped ? "yes" : "no ")  leak \(p.leaked ? "yes" : "no ")"
                               + "  ES \(f(p.es.value, 2)) PS \(f(p.ps.value, 2)) NS \(f(p.ns.value, 2))")
                }
            }
            out.append("")
            out.append("aggregate per method (ES/PS/NS with Wilson 95% intervals):")
            for a in r.aggregates() {
                out.append("  \(pad(a.method.rawValue, 10)) \(pad(a.strength.description, 8))"
                           + " ES \(pct(a.es))  top-1 \(pct(a.esTop1, interval: false))  PS \(pct(a.ps))  NS \(pct(a.ns))  S \(f(a.score, 2))")
                out.append("  \(pad("", 10)) \(pad("", 8)) P(old) \(f(a.pOldBefore))→\(f(a.pOldAfter))  P(new) \(f(a.pNewBefore))→\(f(a.pNewAfter))"
                           + "  P(ctrl) \(f(a.pControlAfter))  sel \(f(a.selectivity))  fluency \(f(a.fluencyBefore, 2))→\(f(a.fluencyAfter, 2))"
                           + "  clean flips \(a.cleanFlips.successes)/\(a.cleanFlips.total)" + (a.errors > 0 ? "  errors \(a.errors)" : ""))
            }
            if r.isSweep {
                out.append("")
                out.append("seed-style sweep tables:")
                out += sweepLines(r)
            }
            out.append("")
        }
        return out.joined(separator: "\n")
    }

    // MARK: Markdown

    static func mdEscape(_ s: String) -> String {
        s.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
    }

    /// A Markdown report: per suite the aggregate table, the seed-style sweep tables, per-case rows,
    /// and an SVG plot reference when `plots` maps the suite name to a file name.
    public static func markdown(_ results: [EvalSuiteResult], title: String = "rwkv-edit evaluation", preamble: String = "",
                                plots: [String: String] = [:]) -> String {
        var md: [String] = ["# \(title)", ""]
        if !preamble.isEmpty { md += [preamble, ""] }
        md.append("Metrics: ES = share of target queries with P(new) > P(old) (top-1 = share with the new value top-1); PS = the same on paraphrases;")
        md.append("NS = share of neighbour queries whose true answer stays top-1 and beats P(new); S = harmonic mean of ES, PS, NS;")
        md.append("fluency = mean of 2/3·H₂ and 4/3·H₃ (bi/tri-gram entropy, bits) of a greedy continuation of the first target query;")
        md.append("selectivity = P(ctrl) − P(old). Counts are per query; brackets are Wilson 95% intervals. P of a multi-token answer is the product over its tokens;")
        md.append("an answer is top-1 when greedy decoding after the query produces all of its tokens.")
        md.append("")
        for r in results {
            md.append("## Suite `\(r.suite.name)`")
            md.append("")
            if !r.suite.description.isEmpty { md += [r.suite.description, ""] }
            md.append("\(r.cases.count) cases, \(r.points.count) edits, \(String(format: "%.1f", r.seconds)) s." + (r.file.map { " File: `\($0)`." } ?? ""))
            let baseWrong = r.cases.filter { !$0.baseCorrect }.map(\.evalCase.id)
            if !baseWrong.isEmpty { md.append("Unedited model does not answer the old value top-1 in: \(baseWrong.joined(separator: ", ")).") }
            md.append("")
            md.append("| method | strength | mean α | ES | ES top-1 | PS | NS | S | P(old) before→after | P(new) before→after | P(ctrl) after | selectivity | fluency before→after |")
            md.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
            for a in r.aggregates() {
                md.append("| \(a.method.rawValue) | \(a.strength) | \(f(a.meanAlpha, 3)) | \(pct(a.es)) | \(pct(a.esTop1, interval: false)) | \(pct(a.ps)) | \(pct(a.ns)) | \(f(a.score, 2)) | \(f(a.pOldBefore))→\(f(a.pOldAfter)) | \(f(a.pNewBefore))→\(f(a.pNewAfter)) | \(f(a.pControlAfter)) | \(f(a.selectivity)) | \(f(a.fluencyBefore, 2))→\(f(a.fluencyAfter, 2)) |"
                          + (a.errors > 0 ? " (\(a.errors) errors)" : ""))
            }
            md.append("")
            if r.isSweep {
                md.append("Seed-style tables (P(old) after the edit at each strength):")
                md.append("")
                md.append("```")
                md += sweepLines(r)
                md.append("```")
                md.append("")
                if let plot = plots[r.suite.name] { md += ["![P(old) vs strength per method](\(plot))", ""] }
            }
            if let heat = plots[r.suite.name + "#sigma"] { md += ["![σ₁ of the probe delta per layer and head](\(heat))", ""] }
            md.append("<details><summary>Per case</summary>")
            md.append("")
            md.append("| case | edit | method | strength | α | P(old) before→after | P(new) before→after | P(ctrl) before→after | flip | leak | ES | PS | NS | continuation after |")
            md.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
            for c in r.cases {
                for p in c.points {
                    if let e = p.error {
                        md.append("| \(c.evalCase.id) | \(mdEscape(c.evalCase.edit.summary)) | \(p.method.rawValue) | \(p.strength) | – | error: \(mdEscape(e)) | | | | | | | | |")
                        continue
                    }
                    md.append("| \(c.evalCase.id) | \(mdEscape(c.evalCase.edit.summary)) | \(p.method.rawValue) | \(p.strength) | \(f(p.alpha.map(Double.init))) | \(f(c.meanPOld))→\(f(p.meanPOld)) | \(f(c.meanPNew))→\(f(p.meanPNew)) | \(f(c.meanPControl))→\(f(p.meanPControl)) | \(p.flipped ? "yes" : "no") | \(p.leaked ? "yes" : "no") | \(f(p.es.value, 2)) | \(f(p.ps.value, 2)) | \(f(p.ns.value, 2)) | \(mdEscape((p.continuation ?? "").debugDescription)) |")
                }
            }
            md.append("")
            md.append("</details>")
            md.append("")
        }
        return md.joined(separator: "\n")
    }

    // MARK: JSON

    /// Every suite, case, point, aggregate and sweep summary, for a JSON encoder with snake_case keys.
    /// Rates and means that are missing or not finite (nothing to average) are null.
    public struct JSON: Encodable {
        let suites: [Suite]
        /// The model file and the whole run's seconds, when the caller adds them.
        public var model: String?
        public var seconds: Double?

        struct Suite: Encodable {
            let name: String
            let file: OrNull<String>
            let seconds: Double
            let cases: [Case]
            let aggregates: [Aggregate]
            /// Empty unless the suite sweeps strengths.
            let sweep: [Sweep]
        }

        struct Case: Encodable {
            let id, group, edit: String
            let contextTokens, fillerTokens: Int
            let seconds: Double
            /// σ₁ of the probe delta per layer and head.
            let sigma1: OrNull<[[Double]]>
            let before: Before
            let points: [Point]
        }

        /// The unedited model's answers.
        struct Before: Encodable {
            let targets, paraphrases: [Query]
            let neighbours: [Neighbour]
            let continuation: String
            let fluency: Double
        }

        /// One edit; a point that failed has only its method, strength, step, seconds and error.
        struct Point: Encodable {
            let method: String
            let strength: StrengthValue
            let step: Int
            let seconds: Double
            let error: String?
            let alpha: OrNull<Double>?
            let flipped, leaked: Bool?
            let es, esTop1, ps, psTop1, ns: Rate?
            let score, selectivity: OrNull<Double>?
            let targets, paraphrases: [Query]?
            let neighbours: [Neighbour]?
            let continuation: String?
            let fluency: OrNull<Double>?
        }

        struct Aggregate: Encodable {
            let method: String
            let step: Int
            let strength: StrengthValue
            let points, errors: Int
            let es, esTop1, ps, psTop1, ns: Rate
            let score: OrNull<Double>
            let flips, cleanFlips: Rate
            let pOldBefore, pOldAfter, pNewBefore, pNewAfter, pCtrlAfter, selectivity, fluencyBefore, fluencyAfter, meanAlpha: OrNull<Double>
        }

        struct Sweep: Encodable {
            let method: String
            let flips: Rate
            let bestStrength, pCtrl, selectivity, pTgt: OrNull<Double>
            let flipsByStep: [Rate]
            let strengths: [StrengthValue]
        }

        /// A proportion with its Wilson 95% interval (left out when there are no cases).
        struct Rate: Encodable {
            let successes, total: Int
            let value: OrNull<Double>
            let wilson95: [Double]?

            init(_ p: Proportion) {
                successes = p.successes; total = p.total; value = OrNull(finite: p.value)
                wilson95 = p.wilson.map { [$0.low, $0.high] }
            }
        }

        /// {"ratio": r} or {"alpha": a}, each through its shortest decimal form.
        struct StrengthValue: Encodable {
            let ratio, alpha: Double?

            init(_ s: Strength) {
                switch s {
                case .ratio(let r): ratio = EvalReport.shortest(r); alpha = nil
                case .alpha(let a): ratio = nil; alpha = EvalReport.shortest(a)
                }
            }
        }

        struct Query: Encodable {
            let query, old: String
            let new: OrNull<String>
            let pOld: Double
            let pNew: OrNull<Double>
            let oldTop1: Bool
            let newTop1: OrNull<Bool>
        }

        struct Neighbour: Encodable {
            let query, answer: String
            let p: Double
            let top1: Bool
            let pNew: OrNull<Double>
        }

        static func queries(_ qs: [EvalQuery], _ ps: [QueryProbs]) -> [Query] {
            zip(qs, ps).map { q, p in
                Query(query: q.query, old: q.old, new: OrNull(q.new), pOld: p.pOld, pNew: OrNull(finite: p.pNew), oldTop1: p.oldTop1,
                      newTop1: OrNull(p.newTop1))
            }
        }

        static func neighbours(_ qs: [NeighbourQuery], _ ps: [NeighbourProbs]) -> [Neighbour] {
            zip(qs, ps).map { q, p in Neighbour(query: q.query, answer: q.answer, p: p.pTrue, top1: p.trueTop1, pNew: OrNull(finite: p.pNew)) }
        }

        static func point(_ p: EvalPoint, _ ec: EvalCase) -> Point {
            let strength = StrengthValue(p.strength)
            if let e = p.error {
                return Point(method: p.method.rawValue, strength: strength, step: p.strengthIndex, seconds: p.seconds, error: e,
                             alpha: nil, flipped: nil, leaked: nil, es: nil, esTop1: nil, ps: nil, psTop1: nil, ns: nil, score: nil,
                             selectivity: nil, targets: nil, paraphrases: nil, neighbours: nil, continuation: nil, fluency: nil)
            }
            return Point(method: p.method.rawValue, strength: strength, step: p.strengthIndex, seconds: p.seconds, error: nil,
                         alpha: OrNull(p.alpha.map(EvalReport.shortest)), flipped: p.flipped, leaked: p.leaked,
                         es: Rate(p.es), esTop1: Rate(p.esTop1), ps: Rate(p.ps), psTop1: Rate(p.psTop1), ns: Rate(p.ns),
                         score: OrNull(finite: p.score), selectivity: OrNull(finite: p.selectivity),
                         targets: queries(ec.targets, p.targets), paraphrases: queries(ec.paraphrases, p.paraphrases),
                         neighbours: neighbours(ec.neighbours, p.neighbours), continuation: p.continuation ?? "",
                         fluency: OrNull(finite: p.fluency))
        }

        init(_ results: [EvalSuiteResult]) {
            suites = results.map { r in
                Suite(
                    name: r.suite.name, file: OrNull(r.file), seconds: r.seconds,
                    cases: r.cases.map { c in
                        let ec = c.evalCase
                        return Case(id: ec.id, group: ec.group, edit: ec.edit.summary, contextTokens: c.contextTokens, fillerTokens: c.fillerTokens,
                                    seconds: c.seconds, sigma1: OrNull(c.sigma.map { $0.map { $0.map(Double.init) } }),
                                    before: Before(targets: Self.queries(ec.targets, c.targets), paraphrases: Self.queries(ec.paraphrases, c.paraphrases),
                                                   neighbours: Self.neighbours(ec.neighbours, c.neighbours), continuation: c.continuation,
                                                   fluency: c.fluency),
                                    points: c.points.map { Self.point($0, ec) })
                    },
                    aggregates: r.aggregates().map { a in
                        Aggregate(method: a.method.rawValue, step: a.strengthIndex, strength: StrengthValue(a.strength), points: a.points,
                                  errors: a.errors, es: Rate(a.es), esTop1: Rate(a.esTop1), ps: Rate(a.ps), psTop1: Rate(a.psTop1),
                                  ns: Rate(a.ns), score: OrNull(finite: a.score), flips: Rate(a.flips), cleanFlips: Rate(a.cleanFlips),
                                  pOldBefore: OrNull(finite: a.pOldBefore), pOldAfter: OrNull(finite: a.pOldAfter),
                                  pNewBefore: OrNull(finite: a.pNewBefore), pNewAfter: OrNull(finite: a.pNewAfter),
                                  pCtrlAfter: OrNull(finite: a.pControlAfter), selectivity: OrNull(finite: a.selectivity),
                                  fluencyBefore: OrNull(finite: a.fluencyBefore), fluencyAfter: OrNull(finite: a.fluencyAfter),
                                  meanAlpha: OrNull(finite: a.meanAlpha))
                    },
                    sweep: r.isSweep ? r.sweepSummaries().map { s in
                        Sweep(method: s.method.rawValue, flips: Rate(s.flips), bestStrength: OrNull(finite: s.bestStrength),
                              pCtrl: OrNull(finite: s.pControl), selectivity: OrNull(finite: s.selectivity), pTgt: OrNull(finite: s.pTarget),
                              flipsByStep: s.flipsByStep.map(Rate.init), strengths: s.strengths.map(StrengthValue.init))
                    } : [])
            }
        }
    }

    /// The JSON report of `results` (see `JSON`).
    public static func json(_ results: [EvalSuiteResult]) -> JSON { JSON(results) }

    /// A Float through its shortest decimal form, so 0.2 becomes 0.2 rather than 0.20000000298023224.
    static func shortest(_ x: Float) -> Double { Double(x.description) ?? Double(x) }

    // MARK: SVG

    /// A line plot of mean P(old) after the edit against the strength step, one line per method.
    public static func svg(_ r: EvalSuiteResult) -> String {
        let W = 640.0, H = 380.0, left = 60.0, right = 150.0, top = 30.0, bottom = 50.0
        let pw = W - left - right, ph = H - top - bottom
        let colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
        let shared = sharedStrengths(r)
        let nSteps = max((r.points.map(\.strengthIndex).max() ?? 0) + 1, 1)
        // x: the shared strength values when every method uses the same, else the step index.
        let xs: [Double] = shared.map { $0.map { Double($0.value) } } ?? (0..<nSteps).map(Double.init)
        let xmin = xs.min() ?? 0, xmax = max(xs.max() ?? 1, xmin + 1e-6)
        func X(_ v: Double) -> Double { left + (xs.count > 1 ? (v - xmin) / (xmax - xmin) : 0.5) * pw }
        func Y(_ p: Double) -> Double { top + (1 - p) * ph }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(W))\" height=\"\(Int(H))\" viewBox=\"0 0 \(Int(W)) \(Int(H))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(left)\" y=\"18\" font-size=\"14\">\(xmlEscape(r.suite.name)): mean P(old) after the edit</text>\n"
        for t in stride(from: 0.0, through: 1.0, by: 0.25) {
            s += "<line x1=\"\(left)\" y1=\"\(Y(t))\" x2=\"\(left + pw)\" y2=\"\(Y(t))\" stroke=\"#ddd\"/>\n"
            s += "<text x=\"\(left - 8)\" y=\"\(Y(t) + 4)\" text-anchor=\"end\">\(String(format: "%.2f", t))</text>\n"
        }
        for (i, x) in xs.enumerated() {
            let label = shared.map { formatStrength($0[i].value) } ?? "step \(i + 1)"
            s += "<line x1=\"\(X(x))\" y1=\"\(top + ph)\" x2=\"\(X(x))\" y2=\"\(top + ph + 5)\" stroke=\"black\"/>\n"
            s += "<text x=\"\(X(x))\" y=\"\(top + ph + 20)\" text-anchor=\"middle\">\(label)</text>\n"
        }
        let xlabel: String
        if let shared, let first = shared.first { if case .alpha = first { xlabel = "fixed α" } else { xlabel = "ratio (α = ratio·‖S‖/‖Δ‖)" } }
        else { xlabel = "strength step (ratio for adaptive methods, α for fixed ones)" }
        s += "<text x=\"\(left + pw / 2)\" y=\"\(H - 10)\" text-anchor=\"middle\">\(xmlEscape(xlabel))</text>\n"
        s += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(top + ph)\" stroke=\"black\"/>\n"
        s += "<line x1=\"\(left)\" y1=\"\(top + ph)\" x2=\"\(left + pw)\" y2=\"\(top + ph)\" stroke=\"black\"/>\n"
        for (mi, m) in r.methods.enumerated() {
            let colour = colours[mi % colours.count]
            var pts: [(Double, Double)] = []
            for i in 0..<min(nSteps, xs.count) {
                let ps = r.points.filter { $0.method == m && $0.strengthIndex == i && $0.error == nil }
                if let v = EvalMetrics.mean(ps.compactMap(\.meanPOld)) { pts.append((X(xs[i]), Y(v))) }
            }
            if !pts.isEmpty {
                s += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\" points=\"\(pts.map { String(format: "%.1f,%.1f", $0.0, $0.1) }.joined(separator: " "))\"/>\n"
                for p in pts { s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%@\"/>\n", p.0, p.1, colour) }
            }
            let ly = top + 10 + Double(mi) * 18
            s += "<line x1=\"\(left + pw + 15)\" y1=\"\(ly)\" x2=\"\(left + pw + 35)\" y2=\"\(ly)\" stroke=\"\(colour)\" stroke-width=\"2\"/>\n"
            s += "<text x=\"\(left + pw + 40)\" y=\"\(ly + 4)\">\(methodName(m))</text>\n"
        }
        s += "</svg>\n"
        return s
    }

    /// Mean σ₁ of the cases' online probe deltas per layer (rows) and head (columns), as a heat map;
    /// nil when no case has one.
    public static func sigmaHeatmap(_ r: EvalSuiteResult) -> String? {
        let maps = r.cases.compactMap(\.sigma)
        guard let first = maps.first, !first.isEmpty, !first[0].isEmpty else { return nil }
        let L = first.count, H = first[0].count
        var mean = [[Double]](repeating: [Double](repeating: 0, count: H), count: L)
        for m in maps where m.count == L {
            for l in 0..<L where m[l].count == H { for h in 0..<H { mean[l][h] += Double(m[l][h]) / Double(maps.count) } }
        }
        let top = max(mean.flatMap { $0 }.max() ?? 1, 1e-12)
        let cell = max(12.0, min(48.0, 560.0 / Double(H))), left = 70.0, topY = 40.0
        let W = left + cell * Double(H) + 20, Hh = topY + cell * Double(L) + 50
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(W))\" height=\"\(Int(Hh))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(left)\" y=\"18\" font-size=\"13\">\(xmlEscape(r.suite.name)): mean σ₁ of the probe delta per head (max \(String(format: "%.3g", top)))</text>\n"
        for l in 0..<L {
            let y = topY + Double(l) * cell
            s += "<text x=\"\(left - 6)\" y=\"\(y + cell / 2 + 4)\" text-anchor=\"end\">layer \(l)</text>\n"
            for h in 0..<H {
                let v = mean[l][h] / top
                let shade = Int((1 - v) * 255)
                s += "<rect x=\"\(left + Double(h) * cell)\" y=\"\(y)\" width=\"\(cell)\" height=\"\(cell)\" fill=\"rgb(255,\(shade),\(shade))\" stroke=\"#eee\"><title>L\(l) H\(h): \(String(format: "%.4g", mean[l][h]))</title></rect>\n"
            }
        }
        for h in 0..<H where H <= 16 || h % 4 == 0 {
            s += "<text x=\"\(left + (Double(h) + 0.5) * cell)\" y=\"\(topY + Double(L) * cell + 14)\" text-anchor=\"middle\">\(h)</text>\n"
        }
        s += "<text x=\"\(left + cell * Double(H) / 2)\" y=\"\(Hh - 10)\" text-anchor=\"middle\">head</text>\n"
        s += "</svg>\n"
        return s
    }

    static func xmlEscape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
