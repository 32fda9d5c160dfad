import Foundation
import RWKV
import StateEdit

/// What a pack-based edit did, beside the edit itself.
public struct PackEdit: Sendable {
    public let applied: AppliedEdit
    /// Where u₁ came from: a direct pair entry or one composed from two vocabulary entries.
    public let source: EditPack.CalibrationSource
    public let from: String
    public let to: String
    /// The sentences probed on the two live-state branches (online v₁ and σ).
    public let oldProbe: String
    public let newProbe: String
}

extension EditPack {
    /// The sentence form the online probes use: the explicit one, else the pack's @probe template,
    /// else its calibration template when that names the entity. A pack compiled with the generic
    /// template and no @probe needs one given: the probes must name the entity to find its address.
    public func probeTemplate(_ explicit: String? = nil) throws -> String {
        if let t = explicit ?? manifest.probeTemplate ?? (manifest.template.contains("{entity}") ? manifest.template : nil) {
            guard t.contains("{value}"), t.contains("{entity}") else {
                throw PackError.invalidInput("probe template '\(t)' needs both {entity} and {value}")
            }
            return t
        }
        throw PackError.incompatible(file: path, reason: "it has no probe template (compile with a vocabulary that has @probe, or pass one, e.g. \"{entity} lives in {value}.\")")
    }

    /// Parses "Entity: A -> B" (also "→").
    public static func parseEdit(_ text: String) throws -> (entity: String, from: String, to: String) {
        guard let colon = text.firstIndex(of: ":") else { throw PackError.invalidInput("expected 'Entity: A -> B', got '\(text)'") }
        let entity = text[..<colon].trimmingCharacters(in: .whitespaces)
        let rest = String(text[text.index(after: colon)...]).replacingOccurrences(of: "→", with: "->")
        let parts = rest.components(separatedBy: "->").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !entity.isEmpty, parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw PackError.invalidInput("expected 'Entity: A -> B', got '\(text)'")
        }
        return (entity, parts[0], parts[1])
    }
}

extension EditSession {
    /// Edits what the conversation says about `entity` from value `old` to value `new`, both entries of
    /// `pack` (HYB-U by default: u₁ per head from the pack, v₁ and σ from probes of
    /// probe(entity, old) / probe(entity, new) on two branches of the live state).
    /// Layers default to the pack's; the pack must have been compiled for this model.
    @discardableResult
    public func edit(pack: EditPack, entity: String, from old: String, to new: String,
                     options: EditOptions = EditOptions(), probeTemplate: String? = nil,
                     preferComposed: Bool = false) throws -> PackEdit {
        try pack.requireModel(engine.model, tokenizer: tokenizer)
        var opts = options
        let packLayers = pack.manifest.layerRange
        if let l = opts.layers {
            guard packLayers.contains(l.lowerBound), packLayers.contains(l.upperBound) else {
                throw PackError.incompatible(file: pack.path, reason: "it covers layers \(packLayers.lowerBound)-\(packLayers.upperBound), not \(l.lowerBound)-\(l.upperBound)")
            }
        } else {
            opts.layers = packLayers
        }
        let template = try pack.probeTemplate(probeTemplate)
        let (cal, source) = try pack.calibration(from: old, to: new, preferComposed: preferComposed)
        let values = try pack.values()
        let a = try pack.resolve(old), b = try pack.resolve(new)
        let sa = values.first { $0.name == a }?.surface ?? a, sb = values.first { $0.name == b }?.surface ?? b
        let oldProbe = fillTemplate(template, value: sa, entity: entity)
        let newProbe = fillTemplate(template, value: sb, entity: entity)
        let applied = try edit(from: oldProbe, to: newProbe, options: opts, calibration: cal)
        return PackEdit(applied: applied, source: source, from: a, to: b, oldProbe: oldProbe, newProbe: newProbe)
    }
}
