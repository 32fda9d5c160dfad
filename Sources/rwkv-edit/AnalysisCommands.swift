import ArgumentParser
import Foundation
import RWKVEdit
import StateAnalysis

struct SVDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "svd",
        abstract: "Per-head SVD of the state delta between two prompts: σ₁, σ₂ and r1 = σ₁²/Σσ².")

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, help: "Prompt A (e.g. \"Alice lives in Paris.\").")
    var a: String

    @Option(name: .long, help: "Prompt B (e.g. \"Alice lives in London.\"); Δ = S(B) − S(A).")
    var b: String

    @Option(name: .long, help: "Layers, 'a-b' (default: all).")
    var layers: String?

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    /// `--json`: the prompts and σ₁, σ₂, r1 of each head's delta.
    struct Report: Encodable {
        struct Head: Encodable { let layer, head: Int; let sigma1, sigma2, r1: Double }
        let a, b: String
        let heads: [Head]
    }

    func run() throws {
        try reportingErrors {
            let m = try modelOptions.loadModel()
            let tok = try modelOptions.tokenizer(for: m)
            let engine = modelOptions.engine(m)
            let (ta, tb) = (tok.encode(a), tok.encode(b))
            guard !ta.isEmpty, !tb.isEmpty else { throw EditError.emptyText(ta.isEmpty ? "--a" : "--b") }
            var opts = EditOptions()
            opts.layers = try layers.map(EditOptions.parseLayers) ?? 0...(m.config.nLayer - 1)
            let heads = try opts.targetHeads(m.config)
            let (sa, sb) = try StateEditor(engine: engine).probe(engine.newState(), old: ta, new: tb)
            var rows: [Report.Head] = []
            for h in heads {
                let svd = try HeadSVD(matrix: try StateDelta.head(sa, sb, h), n: m.config.headSize)
                rows.append(Report.Head(layer: h.layer, head: h.head, sigma1: Double(svd.sigma[0]),
                                        sigma2: Double(svd.sigma.count > 1 ? svd.sigma[1] : 0), r1: Double(svd.r1)))
            }
            if json {
                try printJSON(Report(a: a, b: b, heads: rows))
                return
            }
            print("layer head      σ₁        σ₂       r1")
            for r in rows {
                print(String(format: "%5d %4d %9.4f %9.4f %8.4f", r.layer, r.head, r.sigma1, r.sigma2, r.r1))
            }
        }
    }
}

struct PatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "patch",
        abstract: "Patch a donor prompt's WKV states into a base prompt's (per layer, block or head) and report P(answer).")

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, help: "Base prompt (e.g. \"Alice lives in Paris. Bob lives in Tokyo.\").")
    var base: String

    @Option(name: .long, help: "Donor prompt (e.g. the same with London for Alice).")
    var donor: String

    @Option(name: .long, help: "Query appended after the patched state (e.g. \"Where does Alice live? Alice lives in\").")
    var query: String

    @Option(name: .long, help: "The answer whose probability is reported (e.g. London).")
    var answer: String

    @Option(name: .long, help: "Patch sites: layer, block or head.")
    var mode = "layer"

    @Option(name: .long, help: "Layers per block in block mode (default: a quarter of the layers).")
    var blockSize: Int?

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    /// `--json`: P(answer) from the base and donor states, and after patching each site.
    struct Report: Encodable {
        struct Site: Encodable { let site: String; let p: Double; let top1: Bool }
        let baseP, donorP: Double
        let answer: String
        let sites: [Site]
    }

    func run() throws {
        try reportingErrors {
            guard let g = StatePatch.Granularity(rawValue: mode) else { throw ValidationError("--mode must be layer, block or head") }
            let m = try modelOptions.loadModel()
            let session = EditSession(engine: modelOptions.engine(m), tokenizer: try modelOptions.tokenizer(for: m))
            let (tb, td) = (session.tokenizer.encode(base), session.tokenizer.encode(donor))
            guard !tb.isEmpty, !td.isEmpty else { throw EditError.emptyText(tb.isEmpty ? "--base" : "--donor") }
            let (sb, sd) = try StateEditor(engine: session.engine).probe(session.engine.newState(), old: tb, new: td)
            // Both prompts keep their own token-shift states; only WKV matrices move.
            try session.replaceState(sb)
            let pBase = try session.score(query: query, answer: answer)
            let pDonor = try session.score(query: query, answer: answer, from: sd)
            var rows: [Report.Site] = []
            for site in StatePatch.sites(g, config: m.config, blockSize: blockSize ?? max(1, m.config.nLayer / 4)) {
                let s = try session.score(query: query, answer: answer, from: try StatePatch.patched(sb, from: sd, heads: site.heads))
                rows.append(Report.Site(site: site.name, p: s.probability, top1: s.isTop1))
            }
            if json {
                try printJSON(Report(baseP: pBase.probability, donorP: pDonor.probability, answer: answer, sites: rows))
                return
            }
            print(String(format: "P(%@): base %.4f, donor %.4f", answer, pBase.probability, pDonor.probability))
            for r in rows {
                print(String(format: "%-28@ P = %.4f %@", r.site as NSString, r.p, r.top1 ? "top-1" : ""))
            }
        }
    }
}
