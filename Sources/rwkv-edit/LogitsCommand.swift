import ArgumentParser
import Foundation
import RWKVEdit

struct LogitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logits", abstract: "Feed a prompt (from the zero state, or --state-in) and print the next-token logits.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var prompt: PromptOptions
    @OptionGroup var stateFiles: StateFileOptions

    @Option(name: .long, help: "How many top tokens to show.")
    var top = 10

    @Flag(name: .long, help: "Print {\"tokens\",\"logits\",\"top\"} as JSON.")
    var json = false

    /// `--json`: the prompt's tokens, every next-token logit and the top tokens.
    struct Report: Encodable {
        struct Top: Encodable { let id: Int; let text: String; let logit, prob: Double }
        let tokens: [Int]
        let logits: [Double]
        let top: [Top]
    }

    func run() throws {
        try reportingErrors {
            let m = try modelOptions.loadModel()
            var tokenizer: WorldTokenizer?
            func tok() throws -> WorldTokenizer {
                if let tokenizer { return tokenizer }
                let t = try modelOptions.tokenizer(for: m)
                tokenizer = t
                return t
            }
            let ids = try prompt.tokenIDs(tok)
            let engine = modelOptions.engine(m)
            let logits: [Float]
            if stateFiles.stateIn == nil && stateFiles.stateOut == nil {
                // Token ids alone need no tokenizer: a model without one can still be run.
                var state = engine.newState()
                logits = try engine.forward(ids, state: &state)
            } else {
                let session = EditSession(engine: engine, tokenizer: try tok())
                try stateFiles.resume(session)
                logits = try session.feed(tokens: ids)
                try stateFiles.save(session)
            }
            let probs = softmax(logits)
            let textOf: (Int) -> String = { id in (try? tok()).map { displayToken($0, id) } ?? "" }
            let best = topK(logits, max(0, top))
            if json {
                try printJSON(Report(tokens: ids, logits: logits.map(Double.init),
                                     top: best.map { Report.Top(id: $0, text: textOf($0), logit: Double(logits[$0]), prob: Double(probs[$0])) }))
            } else {
                print("tokens: \(ids.map(String.init).joined(separator: ","))")
                print("rank  id      logit      prob  text")
                for (i, id) in best.enumerated() {
                    print(String(format: "%4d  %-6d %9.4f  %8.5f  ", i + 1, id, logits[id], probs[id]) + textOf(id))
                }
            }
        }
    }
}
