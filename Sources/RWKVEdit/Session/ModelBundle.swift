import Foundation

/// A model with what ships beside it: the weights (any supported file), the tokenizer, the model card
/// and the edit packs. The files it looks for, next to `demo.safetensors`:
/// - the vocabulary: the model's own (GGUF), else `demo-vocab.txt`, else `vocab.txt`;
/// - the card: `demo.json` (ratios, and `"packs"`: the packs folder relative to the card);
/// - the packs: every `*.rwkvpack` in the card's packs folder, default `packs/` beside the model.
public final class ModelBundle: @unchecked Sendable {
    public let model: RWKVModel
    public let tokenizer: WorldTokenizer
    public let card: ModelCard

    /// Opens a model file; `vocabulary` overrides the tokenizer search (released World models need
    /// `rwkv_vocab_v20230424.txt`).
    public init(modelPath: String, vocabulary: String? = nil) throws {
        model = try ModelLoader.load(path: modelPath)
        tokenizer = try Self.tokenizer(for: model, vocabulary: vocabulary)
        card = try ModelCard.beside(modelPath: modelPath)
    }

    /// The tokenizer of `model`: the given vocabulary file, the model's own, `<stem>-vocab.txt` or
    /// `vocab.txt` beside it, or bytes for a 256-token model.
    public static func tokenizer(for model: RWKVModel, vocabulary: String? = nil) throws -> WorldTokenizer {
        if let vocabulary { return try WorldTokenizer(vocabularyFile: vocabulary) }
        if let embedded = model.embeddedVocabulary { return WorldTokenizer(tokens: embedded.map { [UInt8]($0) }) }
        let url = URL(fileURLWithPath: model.path)
        let stem = url.deletingPathExtension().lastPathComponent
        let candidates = ["\(stem)-vocab.txt", "vocab.txt"].map { url.deletingLastPathComponent().appendingPathComponent($0).path }
        if let p = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) { return try WorldTokenizer(vocabularyFile: p) }
        if model.config.vocabSize == 256 { return WorldTokenizer(tokens: (0..<256).map { [UInt8($0)] }) }
        throw RWKVError.unreadable(file: model.path, reason: "no vocabulary found (looked for \(candidates.joined(separator: ", "))); pass one (released World models use rwkv_vocab_v20230424.txt)")
    }

    /// The packs shipped for this model (the card's packs folder), sorted by file name.
    public func shippedPackPaths() -> [String] { EditPack.paths(in: card.packsFolder) }

    /// A pack by file path, or by name among the shipped packs (`NAME.rwkvpack`), checked against this model.
    public func pack(_ nameOrPath: String) throws -> EditPack {
        let p = try EditPack.open(nameOrPath, shippedIn: card.packsFolder)
        try p.requireModel(model, tokenizer: tokenizer)
        return p
    }

    /// A new conversation on the CPU engine with this model's default ratios.
    public func session(threads: Int? = nil) -> EditSession {
        EditSession(engine: CPUEngine(model: model, threads: threads), tokenizer: tokenizer, ratios: card.ratios)
    }
}

extension EditPack {
    /// The `*.rwkvpack` files in `folder`, sorted by name; empty when the folder does not exist.
    public static func paths(in folder: String) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return [] }
        return names.filter { $0.hasSuffix(".rwkvpack") }.sorted().map { URL(fileURLWithPath: folder).appendingPathComponent($0).path }
    }

    /// A pack by file path, or by name: `NAME.rwkvpack` in `folder` (a model's shipped packs).
    public static func open(_ nameOrPath: String, shippedIn folder: String) throws -> EditPack {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: nameOrPath, isDirectory: &isDirectory), !isDirectory.boolValue {
            return try EditPack(path: nameOrPath)
        }
        let shipped = URL(fileURLWithPath: folder).appendingPathComponent("\(nameOrPath).rwkvpack").path
        guard FileManager.default.fileExists(atPath: shipped) else {
            let known = paths(in: folder).map { URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent }
            throw PackError.unreadable(file: nameOrPath, reason: "no such file, and no \(nameOrPath).rwkvpack in \(folder)"
                + (known.isEmpty ? "" : " (packs there: \(known.joined(separator: ", ")))"))
        }
        return try EditPack(path: shipped)
    }
}
