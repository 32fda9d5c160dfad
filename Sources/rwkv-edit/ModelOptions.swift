import ArgumentParser
import Foundation
import RWKV
import StateEdit

/// Options every command that runs a model shares.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Model file (.pth, .safetensors or .gguf).")
    var model: String

    @Option(name: .long, help: "World vocabulary file (default: the model's own, or <model>-vocab.txt / vocab.txt beside it).")
    var vocab: String?

    @Option(name: .long, help: "CPU threads (default: all cores).")
    var threads: Int?

    @Option(name: .long, help: "Engine: cpu, vulkan or auto (Vulkan on a hardware GPU, else CPU). RWKV_VULKAN_DEVICE=<index|name> picks the device.")
    var backend = "auto"

    func loadModel() throws -> RWKVModel { try ModelLoader.load(path: model) }

    /// `<model>.json`'s settings (its edit ratio), or the defaults.
    func card() throws -> ModelCard { try ModelCard.beside(modelPath: model) }

    func engine(_ m: RWKVModel) -> any Engine { makeEngineOrExit(model: m, backend: backend, threads: threads) }

    func tokenizer(for m: RWKVModel) throws -> WorldTokenizer {
        if let vocab { return try WorldTokenizer(vocabularyFile: vocab) }
        if let embedded = m.embeddedVocabulary { return WorldTokenizer(tokens: embedded.map { [UInt8]($0) }) }
        let url = URL(fileURLWithPath: model)
        let stem = url.deletingPathExtension().lastPathComponent
        for name in ["\(stem)-vocab.txt", "vocab.txt"] {
            let p = url.deletingLastPathComponent().appendingPathComponent(name).path
            if FileManager.default.fileExists(atPath: p) { return try WorldTokenizer(vocabularyFile: p) }
        }
        if m.config.vocabSize == 256 { return WorldTokenizer(tokens: (0..<256).map { [UInt8($0)] }) }
        throw ValidationError("no vocabulary for \(model): pass --vocab FILE (released World models use rwkv_vocab_v20230424.txt)")
    }
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

/// Runs a command body, turning library errors into a clean message and exit code 1.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as any Error & CustomStringConvertible where !(e is ValidationError) {
        FileHandle.standardError.write(Data("error: \(e.description)\n".utf8))
        throw ExitCode.failure
    }
}

func printJSON(_ object: Any) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    FileHandle.standardOutput.write(data)
    FileHandle.standardOutput.write(Data("\n".utf8))
}

/// Indices of the k largest values, largest first.
func topK(_ values: [Float], _ k: Int) -> [Int] {
    Array(values.indices.sorted { values[$0] > values[$1] }.prefix(k))
}

func softmax(_ logits: [Float]) -> [Float] {
    let m = logits.max() ?? 0
    let e = logits.map { exp(Double($0 - m)) }
    let s = e.reduce(0, +)
    return e.map { Float($0 / s) }
}

/// A printable form of a token's text: escapes control characters and shows invalid UTF-8 as bytes.
func displayToken(_ tok: WorldTokenizer, _ id: Int) -> String {
    let bytes = tok.decodeBytes([id])
    if let s = String(validating: bytes, as: UTF8.self) {
        return s.unicodeScalars.map { $0.value < 0x20 || $0 == "\u{7f}" ? "\\u{\(String($0.value, radix: 16))}" : String($0) }.joined()
    }
    return bytes.map { String(format: "\\x%02x", $0) }.joined()
}

/// Settings a model ships beside its weights in `<model>.json` (models/demo.json for the demo model):
/// "edit_ratio", "forget_ratio" and "erase_ratio", the ratios measured on that model, which every
/// editing command then uses as its defaults (`--ratio` still wins). Missing keys keep the seed's.
struct ModelCard {
    var ratios = DefaultRatios.seed

    /// The card beside `modelPath` (same name, .json), if there is one.
    static func beside(modelPath: String) throws -> ModelCard {
        let url = URL(fileURLWithPath: modelPath).deletingPathExtension().appendingPathExtension("json")
        guard let data = FileManager.default.contents(atPath: url.path) else { return ModelCard() }
        guard data.count < 1 << 20, let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ValidationError("\(url.path) is not a JSON object; fix it or move it away from the model")
        }
        func ratio(_ key: String) throws -> Float? {
            guard let v = obj[key] else { return nil }
            guard let r = (v as? NSNumber)?.floatValue, r > 0, r <= 10, !(v is Bool) else {
                throw ValidationError("\(url.path): \(key) must be a number in (0, 10], got \(v)")
            }
            return r
        }
        var card = ModelCard()
        if let r = try ratio("edit_ratio") { card.ratios.edit = r }
        if let r = try ratio("forget_ratio") { card.ratios.forget = r }
        if let r = try ratio("erase_ratio") { card.ratios.erase = r }
        return card
    }
}
