import Foundation

/// Hugging Face "fla" (flash-linear-attention `RWKV7ForCausalLM`) tensor names → BlinkDL's, from the
/// `fla` column of `TensorSpec` (fla's own mapping: its `utils/convert_from_rwkv7.py`). The LoRA factors
/// are transposed back to BlinkDL's [C][r] and [r][C]; vectors take BlinkDL's shapes ([C] → [1, 1, C]).
public enum FLAKeys {
    /// Whether a safetensors file's names are fla's rather than BlinkDL's.
    public static func looksLikeFLA(_ names: some Sequence<String>) -> Bool {
        names.contains { $0 == "model.embeddings.weight" || $0.hasPrefix("model.layers.") }
    }

    private static let globals = Dictionary(uniqueKeysWithValues: TensorSpec.global.map { ($0.fla, $0) })
    private static let perLayer = Dictionary(uniqueKeysWithValues: TensorSpec.layer.map { ($0.fla, $0) })

    /// The tensor an fla name stands for, and its layer; nil when the name has no BlinkDL counterpart.
    static func spec(_ fla: String) -> (spec: TensorSpec, layer: Int)? {
        if let s = globals[fla] { return (s, 0) }
        let p = fla.split(separator: ".", maxSplits: 3, omittingEmptySubsequences: false)
        guard p.count == 4, p[0] == "model", p[1] == "layers", let layer = Int(p[2]), layer >= 0,
              let s = perLayer[String(p[3])] else { return nil }
        return (s, layer)
    }

    /// The BlinkDL name for an fla name, and whether the matrix must be transposed; nil when the
    /// name has no BlinkDL counterpart.
    public static func blinkDLName(_ fla: String) -> (name: String, transpose: Bool)? {
        spec(fla).map { ($0.spec.blinkDLName(layer: $0.layer), $0.spec.isTransposed(in: .safetensorsFLA)) }
    }

    /// Renames (and transposes where needed) fla tensors to BlinkDL's names and shapes. Names with no
    /// counterpart are dropped; layer 0's value-residual LoRA (unused by x070) is dropped too.
    public static func blinkDLTensors(_ fla: [String: RawTensor], file: String) throws -> [String: RawTensor] {
        var out: [String: RawTensor] = [:]
        for (name, t) in fla {
            guard let (s, layer) = spec(name), layer >= s.firstLayer else { continue }
            // The table maps distinct fla names to distinct BlinkDL names: nothing is overwritten.
            let b = s.blinkDLName(layer: layer)
            if s.isTransposed(in: .safetensorsFLA) {
                out[b] = try t.transposed(file: file, name: name)
            } else if t.shape.count == 1, s.role == .mix {
                out[b] = RawTensor(shape: [1, 1, t.shape[0]], dtype: t.dtype, data: t.data)
            } else {
                out[b] = t
            }
        }
        return out
    }
}
