import ArgumentParser
import Foundation
import RWKVEdit

struct StateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "state", abstract: "Feed a prompt from the zero state and save the recurrent state (safetensors).")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var prompt: PromptOptions

    @Option(name: .long, help: "Output file (.safetensors); keys layerN.att_x_prev, layerN.wkv [H,N,N] value-major, layerN.ffn_x_prev.")
    var out: String

    func run() throws {
        try reportingErrors {
            let m = try modelOptions.loadModel()
            let ids = try prompt.tokenIDs { try modelOptions.tokenizer(for: m) }
            let engine = modelOptions.engine(m)
            var state = engine.newState()
            let logits = try engine.forward(ids, state: &state)
            try state.save(to: out, metadata: ["tokens": ids.map(String.init).joined(separator: ","), "model": m.path])
            print("saved the state after \(ids.count) tokens to \(out) (WKV norm \(String(format: "%.4f", state.wkvNorm())), top token \(topK(logits, 1)[0]))")
        }
    }
}
