import Foundation

/// Hugging Face "fla" (flash-linear-attention `RWKV7ForCausalLM`) tensor names → BlinkDL's.
/// The mapping mirrors fla's `utils/convert_from_rwkv7.py`:
///   model.embeddings.weight → emb.weight, model.norm.* → ln_out.*, lm_head.weight → head.weight,
///   model.layers.N.{pre_norm, attn_norm, ffn_norm}.* → blocks.N.{ln0, ln1, ln2}.*,
///   attn.{r,k,v,o}_proj.weight → att.{receptance,key,value,output}.weight, attn.g_norm.* → att.ln_x.*,
///   attn.X_lora.lora.0.weight [r,C] → att.X1 [C,r] (transposed), attn.X_lora.lora.2.weight [C,r] → att.X2 [r,C]
///   (transposed), attn.X_lora.lora.2.bias [C] → att.X0, for X in w, a, v, g;
///   attn.{x_r..x_g, k_k, k_a, r_k} and ffn.{x_k, key.weight, value.weight} keep their names.
/// Vectors take BlinkDL's shapes: k_k, k_a, ffn.x_k and the X0 biases [C] → [1, 1, C]; r_k stays [H, N].
public enum FLAKeys {
    /// Whether a safetensors file's names are fla's rather than BlinkDL's.
    public static func looksLikeFLA(_ names: some Sequence<String>) -> Bool {
        names.contains { $0 == "model.embeddings.weight" || $0.hasPrefix("model.layers.") }
    }

    /// The BlinkDL name for an fla name, and whether the matrix must be transposed; nil when the
    /// name has no BlinkDL counterpart.
    public static func blinkDLName(_ fla: String) -> (name: String, transpose: Bool)? {
        switch fla {
        case "model.embeddings.weight": return ("emb.weight", false)
        case "model.norm.weight": return ("ln_out.weight", false)
        case "model.norm.bias": return ("ln_out.bias", false)
        case "lm_head.weight": return ("head.weight", false)
        default: break
        }
        let p = fla.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard p.count >= 5, p[0] == "model", p[1] == "layers", let layer = Int(p[2]), layer >= 0 else { return nil }
        let rest = Array(p[4...])
        let b = "blocks.\(layer)."
        switch p[3] {
        case "pre_norm", "attn_norm", "ffn_norm":
            guard rest.count == 1, rest[0] == "weight" || rest[0] == "bias" else { return nil }
            let ln = ["pre_norm": "ln0", "attn_norm": "ln1", "ffn_norm": "ln2"][p[3]] ?? ""
            return (b + ln + "." + rest[0], false)
        case "ffn":
            let r = rest.joined(separator: ".")
            guard ["x_k", "key.weight", "value.weight"].contains(r) else { return nil }
            return (b + "ffn." + r, false)
        case "attn":
            let a = b + "att."
            if rest.count == 1, ["x_r", "x_w", "x_k", "x_v", "x_a", "x_g", "k_k", "k_a", "r_k"].contains(rest[0]) {
                return (a + rest[0], false)
            }
            if rest.count == 2 {
                let proj = ["r_proj": "receptance", "k_proj": "key", "v_proj": "value", "o_proj": "output", "g_norm": "ln_x"]
                if let m = proj[rest[0]], rest[1] == "weight" || (rest[0] == "g_norm" && rest[1] == "bias") {
                    return (a + m + "." + rest[1], false)
                }
                return nil
            }
            if rest.count == 4, rest[0].count == 6, rest[0].hasSuffix("_lora"), rest[1] == "lora",
               let typ = rest[0].first, "wavg".contains(typ) {
                switch (rest[2], rest[3]) {
                case ("0", "weight"): return (a + "\(typ)1", true)
                case ("2", "weight"): return (a + "\(typ)2", true)
                case ("2", "bias"): return (a + "\(typ)0", false)
                default: return nil
                }
            }
            return nil
        default:
            return nil
        }
    }

    /// Renames (and transposes where needed) fla tensors to BlinkDL's names and shapes. Names with no
    /// counterpart are dropped; layer 0's value-residual LoRA (unused by x070) is dropped too.
    public static func blinkDLTensors(_ fla: [String: RawTensor], file: String) throws -> [String: RawTensor] {
        var out: [String: RawTensor] = [:]
        for (name, t) in fla {
            guard let (b, transpose) = blinkDLName(name) else { continue }
            if b.hasPrefix("blocks.0.att.v") && ["blocks.0.att.v0", "blocks.0.att.v1", "blocks.0.att.v2"].contains(b) { continue }
            guard out[b] == nil else {
                throw RWKVError.malformed(file: file, reason: "tensors '\(name)' and another both map to '\(b)'")
            }
            if transpose {
                guard t.shape.count == 2 else {
                    throw RWKVError.shapeMismatch(file: file, name: name, expected: [-1, -1], found: t.shape)
                }
                out[b] = t.transposed()
            } else if t.shape.count == 1, b.hasSuffix("att.k_k") || b.hasSuffix("att.k_a") || b.hasSuffix("ffn.x_k")
                        || b.hasSuffix("att.w0") || b.hasSuffix("att.a0") || b.hasSuffix("att.v0") {
                out[b] = RawTensor(shape: [1, 1, t.shape[0]], dtype: t.dtype, data: t.data)
            } else {
                out[b] = t
            }
        }
        return out
    }
}
