import ArgumentParser
import Foundation
import RWKVEdit

extension EditMethod: ExpressibleByArgument {}

/// Method, strength and placement of an edit, shared by `edit`, `apply` and `chat`.
struct EditMethodOptions: ParsableArguments {
    @Option(name: .long, help: "Edit method: hyb-u (default), hyb-uv, uniform, adaptive, rank1, projection, isolate. Without it, an edit by name whose every searched strength costs a control is tried again with hyb-uv, then with hyb-u protecting the keys of the property's other statements.")
    var method: EditMethod?

    @Option(name: .long, parsing: .unconditional, help: "α = ratio·‖S‖/‖Δ‖ for adaptive methods, used as given (default: searched from the model's edit_ratio in <model>.json, else 0.20, until the edit verifies).")
    var ratio: Float?

    @Option(name: .long, parsing: .unconditional, help: "Fixed strength α (uniform and projection use 1 unless given).")
    var alpha: Float?

    @Option(name: .long, help: "Layers to edit, 'a-b' inclusive (default: the upper half).")
    var layers: String?

    @Option(name: .long, help: "Heads to edit in each layer, comma-separated (default: all).")
    var heads: String?

    @Flag(name: .long, help: "Keep an edit whose verdict is weak or collateral and exit 0 (default: such an edit is undone, exit status 2 or 3).")
    var allowWeak = false

    func validate() throws {
        if let ratio { guard ratio.isFinite, ratio > 0, ratio <= 100 else { throw ValidationError("--ratio must be a number in (0, 100], got \(ratio)") } }
        if let alpha { guard alpha.isFinite, abs(alpha) <= 1e4 else { throw ValidationError("--alpha must be a finite number of at most 1e4 in size, got \(alpha)") } }
    }

    /// A given ratio or α is used as it is; otherwise the strength is searched per context.
    var strength: StrengthPolicy { ratio == nil && alpha == nil ? .search : .fixed }

    /// A method given is the only one tried; otherwise the library's recovery follows a collateral search.
    var recovery: CollateralRecovery { method == nil ? .standard : .none }

    func editOptions(defaultRatio: Float) throws -> EditOptions {
        var o = EditOptions(method: method ?? .hybU, ratio: ratio ?? defaultRatio, alpha: alpha)
        if let layers { o.layers = try EditOptions.parseLayers(layers) }
        if let heads { o.heads = try EditOptions.parseHeads(heads) }
        return o
    }
}

struct EditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edit",
        abstract: "Feed a context, edit one fact in the state, and show the query's answers before and after.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var methodOptions: EditMethodOptions
    @OptionGroup var stateFiles: StateFileOptions

    @Option(name: .long, help: "The context fed to the model first (after --state-in, if given).")
    var context: String?

    @Option(name: .long, help: "Sentence stating the fact as it is (e.g. \"Bob lives in Austin.\").")
    var from: String

    @Option(name: .long, help: "Sentence stating the fact as it should be (e.g. \"Bob lives in Chicago.\").")
    var to: String

    @Option(name: .long, help: "Query whose answer should change (e.g. \"Where does Bob live? Bob lives in\").")
    var query: String

    @Option(name: .long, help: "The answer before the edit.")
    var old: String

    @Option(name: .long, help: "The answer after the edit.")
    var new: String

    @Option(name: .long, help: "A query whose answer must not change (repeatable).")
    var controlQuery: [String] = []

    @Option(name: .long, help: "The expected answer of each --control-query, in order.")
    var controlAnswer: [String] = []

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    func run() throws {
        try reportingErrors {
            let controls = try controlQueries(controlQuery, controlAnswer)
            let options = try methodOptions.editOptions(defaultRatio: modelOptions.card().ratios.edit)
            let m = try modelOptions.loadModel()
            let session = EditSession(engine: modelOptions.engine(m), tokenizer: try modelOptions.tokenizer(for: m))
            try stateFiles.resume(session)
            if let context { try session.feed(context) }
            guard session.tokensFed > 0 || stateFiles.stateIn != nil else { throw ValidationError("give --context, --state-in or both") }
            let outcome = try session.verifiedEdit(from: from, to: to, check: EditCheck(query: query, old: old, new: new, controls: controls),
                                                   options: options, strength: methodOptions.strength,
                                                   keepUnverified: methodOptions.allowWeak)
            try stateFiles.save(session)
            try EditReport(outcome).emit(json: json, allowWeak: methodOptions.allowWeak)
        }
    }
}
