import ArgumentParser
import Foundation
import RWKVEdit

/// `state` saves a prompt's state (its old usage, now the default subcommand `save`) and converts
/// state files between the runtimes' formats (`convert`).
struct StateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "state", abstract: "Save a prompt's recurrent state, or convert a state file between runtimes' formats.",
        subcommands: [Save.self, Convert.self], defaultSubcommand: Save.self)
}

extension StateFormat: ExpressibleByArgument {}

extension StateCommand {
    struct Save: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "save", abstract: "Feed a prompt from the zero state and save the recurrent state (safetensors).")

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

    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "convert", abstract: "Convert a state file to another runtime's format (the input's format is detected).")

        @Argument(help: "State file to read (native, llama-session, llama-seq, pth, webrwkv; rwkvcpp needs --model).")
        var input: String

        @Argument(help: "File to write.")
        var output: String

        @Option(name: .long, help: "Output format (default: from the output's extension).", completion: .list(StateFormat.allCases.map(\.rawValue)))
        var to: StateFormat?

        @Option(name: .long, help: "Model file: checks the state's shape, reads rwkv.cpp buffers, measures the effect of dropped shifts, and gives a native output its identity.")
        var model: String?

        @Option(name: .long, help: "World vocabulary file (default: the model's own, or beside it).")
        var vocab: String?

        func run() throws {
            try reportingErrors {
                let format = try to ?? StateFormat.forExtension(of: output) ?? { throw StateFormatError.unknownOutputFormat(file: output) }()
                let loaded = try model.map { path -> (RWKVModel, WorldTokenizer) in
                    let m = try ModelLoader.load(path: path, placement: .mapped)
                    return (m, try ModelBundle.tokenizer(for: m, vocabulary: vocab))
                }
                let imported = try StateFile.read(input, expecting: loaded.map { StateShape($0.0.config) })
                if imported.format == .native, let (m, tokenizer) = loaded {
                    // A native file carries provenance: with the model at hand, check it (identity, checksum).
                    _ = try SavedState.read(from: input, model: m, tokenizer: tokenizer)
                }
                let identity = loaded.map { ModelIdentity(model: $0.0, tokenizer: $0.1) }
                let saved = SavedState(state: imported.state, tokens: imported.tokenCount, edits: imported.edits, identity: identity)
                if !imported.format.carriesShifts {
                    FileHandle.standardError.write(Data("warning: \(input) (\(imported.format.rawValue)) has no token shifts; they start at zero\n".utf8))
                }
                if !format.carriesShifts {
                    let message = try StateFormatMessages.shiftDrop(format: format, state: imported.state, model: loaded)
                    FileHandle.standardError.write(Data((message + "\n").utf8))
                }
                try StateFile.write(saved, tokenIDs: imported.tokenIDs, as: format, to: output)
                print("converted \(input) (\(imported.format.rawValue)) to \(output) (\(format.rawValue)): \(StateShape(imported.state))")
            }
        }
    }
}

/// The warning a shift-less export prints, with the measured effect when a model is at hand.
enum StateFormatMessages {
    /// Fed after the state to compare next-token distributions: the paragraph break a chat turn starts with.
    static let probeText = "\n\n"

    static func shiftDrop(format: StateFormat, state: State, model: (RWKVModel, WorldTokenizer)?) throws -> String {
        let head = "warning: \(format.rawValue) files carry no token shifts (att_x_prev, ffn_x_prev): they are dropped, and a loader starts them at zero"
        guard let (m, tokenizer) = model else { return head + " (pass --model to measure the effect)" }
        let engine = makeEngineOrExit(model: m, backend: .cpu, threads: nil)
        let effect = try ShiftDropEffect.measure(engine: engine, state: state, probe: tokenizer.encode(probeText))
        return head + String(format: "; next-token distribution after \"\\n\\n\": KL %.3g nats, max |Δp| %.3g, top-1 %@",
                             effect.klDivergence, effect.maxAbsProbabilityChange, effect.top1Kept ? "kept" : "changed")
    }
}
