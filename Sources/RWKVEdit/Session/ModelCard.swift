import Foundation

/// What a model ships beside its weights in `<model>.json` (models/demo.json for the demo model):
/// `edit_ratio`, `forget_ratio`, `erase_ratio` — the ratios measured on that model, the defaults of
/// every edit (missing keys keep the seed's) — and `packs`, the folder of its edit packs relative to the
/// card (default: `packs` beside the model). Other keys (training notes) are ignored.
public struct ModelCard: Sendable, Equatable {
    public var ratios: DefaultRatios
    /// The folder whose `*.rwkvpack` files are the packs shipped for this model.
    public var packsFolder: String

    public init(ratios: DefaultRatios = .seed, packsFolder: String) {
        self.ratios = ratios
        self.packsFolder = packsFolder
    }

    /// The card beside `modelPath` (same name, `.json`), or the defaults when there is none.
    public static func beside(modelPath: String) throws -> ModelCard {
        let model = URL(fileURLWithPath: modelPath)
        let folder = model.deletingLastPathComponent()
        let url = model.deletingPathExtension().appendingPathExtension("json")
        var card = ModelCard(packsFolder: folder.appendingPathComponent("packs").path)
        guard let data = FileManager.default.contents(atPath: url.path) else { return card }
        guard data.count < 1 << 20 else {
            throw RWKVError.malformed(file: url.path, reason: "a model card is at most 1 MiB, this one is \(data.count) bytes")
        }
        let file: CardFile
        do { file = try JSONDecoder().decode(CardFile.self, from: data) } catch {
            throw RWKVError.malformed(file: url.path, reason: "not a model card (\(Self.describe(error))); fix it or move it away from the model")
        }
        func ratio(_ value: Double?, _ key: String) throws -> Float? {
            guard let value else { return nil }
            guard value.isFinite, value > 0, value <= 10 else {
                throw RWKVError.malformed(file: url.path, reason: "\(key) must be a number in (0, 10], got \(value)")
            }
            return Float(value)
        }
        if let r = try ratio(file.editRatio, "edit_ratio") { card.ratios.edit = r }
        if let r = try ratio(file.forgetRatio, "forget_ratio") { card.ratios.forget = r }
        if let r = try ratio(file.eraseRatio, "erase_ratio") { card.ratios.erase = r }
        if let p = file.packs {
            card.packsFolder = p.hasPrefix("/") ? p : folder.appendingPathComponent(p).standardizedFileURL.path
        }
        return card
    }

    private struct CardFile: Decodable {
        let editRatio: Double?
        let forgetRatio: Double?
        let eraseRatio: Double?
        let packs: String?

        enum CodingKeys: String, CodingKey {
            case editRatio = "edit_ratio", forgetRatio = "forget_ratio", eraseRatio = "erase_ratio", packs
        }
    }

    private static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c), DecodingError.dataCorrupted(let c):
            let key = c.codingPath.map(\.stringValue).joined(separator: ".")
            return key.isEmpty ? c.debugDescription : "\(key): \(c.debugDescription)"
        default:
            return "\(error)"
        }
    }
}
