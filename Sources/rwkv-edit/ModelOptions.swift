import ArgumentParser
import Foundation
import RWKVEdit

/// Options every command that runs a model shares.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Model file (.pth, .safetensors or .gguf).")
    var model: String

    /// `--tokenizer` as in `compile` and the benches, where `--vocab` was the values list.
    @Option(name: [.customLong("vocab"), .customLong("tokenizer")],
            help: "World vocabulary (tokenizer) file (default: the model's own, or <model>-vocab.txt / vocab.txt beside it).")
    var vocab: String?

    @Option(name: .long, help: "CPU threads (default: all cores).")
    var threads: Int?

    @Option(name: .long, help: "Engine: cpu, vulkan or auto (Vulkan on a hardware GPU, else CPU). RWKV_VULKAN_DEVICE=<index|name> picks the device.")
    var backend: Backend = .auto

    func loadModel() throws -> RWKVModel { try ModelLoader.load(path: model) }

    /// `<model>.json`'s settings (its edit ratio), or the defaults.
    func card() throws -> ModelCard { try ModelCard.beside(modelPath: model) }

    func engine(_ m: RWKVModel) -> any Engine { makeEngineOrExit(model: m, backend: backend, threads: threads) }

    func tokenizer(for m: RWKVModel) throws -> WorldTokenizer { try ModelBundle.tokenizer(for: m, vocabulary: vocab) }
}

/// Input given either as text or as explicit token ids.
struct PromptOptions: ParsableArguments {
    @Option(name: .long, help: "Input text.")
    var text: String?

    @Option(name: .long, help: "Input token ids, comma-separated (e.g. 34,105,110).")
    var tokens: String?

    func tokenIDs(_ tok: () throws -> WorldTokenizer) throws -> [Int] {
        switch (text, tokens) {
        case (let t?, nil):
            let ids = try tok().encode(t)
            guard !ids.isEmpty else { throw ValidationError("--text encodes to no tokens") }
            return ids
        case (nil, let s?):
            let parts = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            let ids = parts.compactMap { Int($0) }
            guard !ids.isEmpty, ids.count == parts.count else { throw ValidationError("--tokens must be comma-separated integers, got '\(s)'") }
            return ids
        default:
            throw ValidationError("give exactly one of --text or --tokens")
        }
    }
}

/// An error as `--json` commands print it on stderr.
private struct JSONError: Encodable { let error, kind: String }

/// Runs a command body, turning library errors into a clean message and exit code 1: "error: …" on
/// stderr, or, when the command prints JSON (`--json`), one object {"error": message, "kind": type}
/// so that a script reading JSON gets JSON either way.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as any Error & CustomStringConvertible where !(e is ValidationError) {
        printError(e.description, kind: String(describing: type(of: e)))
        throw ExitCode.failure
    }
}

/// An error on stderr: `{"error", "kind"}` in a `--json` run, else one line.
func printError(_ message: String, kind: String) {
    if CommandLine.arguments.contains("--json") {
        let data = (try? reportEncoder().encode(JSONError(error: message, kind: kind))) ?? Data()
        FileHandle.standardError.write(data + Data("\n".utf8))
    } else {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    }
}

/// A printable form of a token's text: escapes control characters and shows invalid UTF-8 as bytes.
func displayToken(_ tok: WorldTokenizer, _ id: Int) -> String {
    let bytes = tok.decodeBytes([id])
    if let s = String(validating: bytes, as: UTF8.self) {
        return s.unicodeScalars.map { $0.value < 0x20 || $0 == "\u{7f}" ? "\\u{\(String($0.value, radix: 16))}" : String($0) }.joined()
    }
    return bytes.map { String(format: "\\x%02x", $0) }.joined()
}

/// `--state-in` / `--state-out`: start from a saved conversation state and save the one a command ends
/// with. Every `StateFormat` is accepted: the input's is detected, the output's comes from
/// `--state-format` or the extension. A native file carries the model's identity, the tokens fed, the
/// edit log and a checksum, all checked when it is read back; the other formats carry only the numbers.
struct StateFileOptions: ParsableArguments {
    @Option(name: .long, help: "Start from this state file, any format (a native one is checked against the model and its checksum); --context continues it.")
    var stateIn: String?

    @Option(name: .long, help: "Save the final state here (native .safetensors: with the model's identity, tokens fed, edit log and checksum).")
    var stateOut: String?

    @Option(name: .long, help: "Format of --state-out (default: from its extension, else native).")
    var stateFormat: StateFormat?

    /// Resumes `session` from --state-in, if given.
    func resume(_ session: EditSession) throws {
        guard let stateIn else { return }
        _ = try resumeSession(session, from: stateIn)
    }

    /// Saves the session's state to --state-out, if given.
    func save(_ session: EditSession) throws {
        guard let stateOut else { return }
        try saveSession(session, to: stateOut, format: stateFormat)
    }
}

/// Continues `session` from a state file of any format (a native one is checked against the model and
/// its checksum); warns on stderr when the file has no provenance or no token shifts.
func resumeSession(_ session: EditSession, from path: String) throws -> (saved: SavedState, format: StateFormat) {
    let model = session.engine.model
    let format = try StateFile.detect(path, expecting: StateShape(model.config))
    let saved: SavedState
    if format == .native {
        saved = try SavedState.read(from: path, model: model, tokenizer: session.tokenizer)
    } else {
        let imported = try StateFile.read(path, expecting: StateShape(model.config))
        saved = SavedState(state: imported.state, tokens: imported.tokenCount, edits: [], identity: nil)
    }
    if saved.identity == nil {
        FileHandle.standardError.write(Data("warning: \(path) (\(format.rawValue)) has no model identity or checksum (not saved by rwkv-edit); read by shape only\n".utf8))
    }
    if !format.carriesShifts {
        FileHandle.standardError.write(Data("warning: \(path) (\(format.rawValue)) has no token shifts; they start at zero\n".utf8))
    }
    try session.resume(saved)
    return (saved, format)
}

/// Saves the session's state in `format` (default: from the extension, else native), warning with the
/// measured effect when the format drops the token shifts.
@discardableResult
func saveSession(_ session: EditSession, to path: String, format: StateFormat?) throws -> StateFormat {
    let format = format ?? StateFormat.forExtension(of: path) ?? .native
    let saved = session.saved()
    if !format.carriesShifts {
        let message = try StateFormatMessages.shiftDrop(format: format, state: saved.state, model: (session.engine.model, session.tokenizer))
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
    try StateFile.write(saved, as: format, to: path)
    return format
}
