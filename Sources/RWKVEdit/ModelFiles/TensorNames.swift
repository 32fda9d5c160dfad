import Foundation

/// One tensor of an RWKV-7 (x070) checkpoint: its name in each file format, its role and its shape.
/// `TensorSpec.global` and `TensorSpec.layer` list every tensor once; the loaders (fla keys, GGUF), the
/// synthetic model, the model's matrix lists and the pack identity's signature are derived from them.
///
/// BlinkDL's state dict is the reference: its names and shapes are what `RWKVModel(blinkDLTensors:)`
/// reads, and every other format is mapped onto them (fla: its `utils/convert_from_rwkv7.py`; GGUF:
/// llama.cpp `src/llama-arch.cpp`, `LLM_ARCH_RWKV7`).
public struct TensorSpec: Sendable {
    public enum Role: Sendable, Hashable {
        /// A big matrix [out][in] (embedding, head, projections, FFN): stored in the same orientation in
        /// every format, and kept in its file type.
        case matrix
        /// LoRA factor 1, BlinkDL [C][r] applied as x·W; fla and GGUF store it transposed ([r][C]).
        case loraIn
        /// LoRA factor 2, BlinkDL [r][C] applied as h·W; fla and GGUF store it transposed ([C][r]).
        case loraOut
        /// A layer-norm weight or bias [C].
        case norm
        /// A per-channel vector, BlinkDL [1][1][C] (fla and GGUF may store it as [C]).
        case mix
        /// `r_k`, BlinkDL [H][N] (GGUF stores it flat).
        case heads
    }

    /// A dimension of a tensor, in terms of the model's config.
    public enum Dim: Sendable, Equatable {
        case one, vocab, embd, ffn, heads, headSize
        case loraW, loraA, loraV, loraG

        public func size(_ c: ModelConfig) -> Int {
            switch self {
            case .one: 1
            case .vocab: c.vocabSize
            case .embd: c.nEmbd
            case .ffn: c.ffnSize
            case .heads: c.nHead
            case .headSize: c.headSize
            case .loraW: c.loraW
            case .loraA: c.loraA
            case .loraV: c.loraV
            case .loraG: c.loraG
            }
        }
    }

    /// Where GGUF keeps a tensor: a tensor of its own, or slice `index` of `blk.N.time_mix_lerp_fused.weight`
    /// (the six token-shift mixes stacked [6][1][1][C] in the order r, w, k, v, a, g).
    public enum GGUFName: Sendable, Equatable {
        case tensor(String)
        case lerpSlice(Int)

        public static let lerpFused = "time_mix_lerp_fused.weight"
    }

    /// Which Swift field holds a matrix once loaded (`.none` for vectors, which are widened to fp32).
    public enum Field: Sendable {
        case none
        case model(@Sendable (RWKVModel) -> Matrix)
        case layer(@Sendable (LayerWeights) -> Matrix?)
    }

    /// Whether BlinkDL names the tensor per block ("blocks.N." + `blinkDL`) or once.
    public enum Scope: Sendable { case global, layer }

    public let scope: Scope
    /// BlinkDL's name; for a layer tensor, the part after "blocks.N.".
    public let blinkDL: String
    /// fla's name; for a layer tensor, the part after "model.layers.N.".
    public let fla: String
    /// GGUF's name; for a layer tensor, the part after "blk.N.".
    public let gguf: GGUFName
    public let role: Role
    /// BlinkDL's shape.
    public let shape: [Dim]
    /// The first layer holding the tensor: the value-residual mix is absent in layer 0 (files that carry
    /// it there carry unused copies).
    public let firstLayer: Int
    public let field: Field

    /// Whether `format` stores the tensor transposed relative to BlinkDL (the LoRA factors in fla and GGUF).
    public func isTransposed(in format: ModelFileFormat) -> Bool {
        (role == .loraIn || role == .loraOut) && (format == .safetensorsFLA || format == .gguf)
    }

    /// BlinkDL's shape for a config.
    public func dims(_ c: ModelConfig) -> [Int] { shape.map { $0.size(c) } }

    /// BlinkDL's full name in layer `layer` (ignored for a global tensor).
    public func blinkDLName(layer: Int) -> String { scope == .layer ? "blocks.\(layer)." + blinkDL : blinkDL }

    /// GGUF's full name in layer `layer`, when the tensor has one of its own.
    public func ggufName(layer: Int) -> String? {
        guard case .tensor(let n) = gguf else { return nil }
        return scope == .layer ? "blk.\(layer)." + n : n
    }

    // MARK: The table

    // Global tensors. ln0 is named in block 0 by BlinkDL and fla but belongs to the embedding.
    public static let embedding = TensorSpec(global: "emb.weight", fla: "model.embeddings.weight", gguf: "token_embd.weight", .matrix, [.vocab, .embd],
                                             field: .model { $0.embedding })
    public static let head = TensorSpec(global: "head.weight", fla: "lm_head.weight", gguf: "output.weight", .matrix, [.vocab, .embd],
                                        field: .model { $0.head })
    public static let ln0Weight = TensorSpec(global: "blocks.0.ln0.weight", fla: "model.layers.0.pre_norm.weight", gguf: "token_embd_norm.weight", .norm, [.embd])
    public static let ln0Bias = TensorSpec(global: "blocks.0.ln0.bias", fla: "model.layers.0.pre_norm.bias", gguf: "token_embd_norm.bias", .norm, [.embd])
    public static let lnOutWeight = TensorSpec(global: "ln_out.weight", fla: "model.norm.weight", gguf: "output_norm.weight", .norm, [.embd])
    public static let lnOutBias = TensorSpec(global: "ln_out.bias", fla: "model.norm.bias", gguf: "output_norm.bias", .norm, [.embd])

    // Layer tensors.
    public static let ln1Weight = TensorSpec("ln1.weight", fla: "attn_norm.weight", gguf: .tensor("attn_norm.weight"), .norm, [.embd])
    public static let ln1Bias = TensorSpec("ln1.bias", fla: "attn_norm.bias", gguf: .tensor("attn_norm.bias"), .norm, [.embd])
    public static let ln2Weight = TensorSpec("ln2.weight", fla: "ffn_norm.weight", gguf: .tensor("attn_norm_2.weight"), .norm, [.embd])
    public static let ln2Bias = TensorSpec("ln2.bias", fla: "ffn_norm.bias", gguf: .tensor("attn_norm_2.bias"), .norm, [.embd])
    public static let xR = TensorSpec("att.x_r", fla: "attn.x_r", gguf: .lerpSlice(0), .mix, [.one, .one, .embd])
    public static let xW = TensorSpec("att.x_w", fla: "attn.x_w", gguf: .lerpSlice(1), .mix, [.one, .one, .embd])
    public static let xK = TensorSpec("att.x_k", fla: "attn.x_k", gguf: .lerpSlice(2), .mix, [.one, .one, .embd])
    public static let xV = TensorSpec("att.x_v", fla: "attn.x_v", gguf: .lerpSlice(3), .mix, [.one, .one, .embd])
    public static let xA = TensorSpec("att.x_a", fla: "attn.x_a", gguf: .lerpSlice(4), .mix, [.one, .one, .embd])
    public static let xG = TensorSpec("att.x_g", fla: "attn.x_g", gguf: .lerpSlice(5), .mix, [.one, .one, .embd])
    public static let w0 = TensorSpec("att.w0", fla: "attn.w_lora.lora.2.bias", gguf: .tensor("time_mix_w0.weight"), .mix, [.one, .one, .embd])
    public static let a0 = TensorSpec("att.a0", fla: "attn.a_lora.lora.2.bias", gguf: .tensor("time_mix_a0.weight"), .mix, [.one, .one, .embd])
    public static let w1 = TensorSpec("att.w1", fla: "attn.w_lora.lora.0.weight", gguf: .tensor("time_mix_w1.weight"), .loraIn, [.embd, .loraW],
                                      field: .layer { $0.w1 })
    public static let w2 = TensorSpec("att.w2", fla: "attn.w_lora.lora.2.weight", gguf: .tensor("time_mix_w2.weight"), .loraOut, [.loraW, .embd],
                                      field: .layer { $0.w2 })
    public static let a1 = TensorSpec("att.a1", fla: "attn.a_lora.lora.0.weight", gguf: .tensor("time_mix_a1.weight"), .loraIn, [.embd, .loraA],
                                      field: .layer { $0.a1 })
    public static let a2 = TensorSpec("att.a2", fla: "attn.a_lora.lora.2.weight", gguf: .tensor("time_mix_a2.weight"), .loraOut, [.loraA, .embd],
                                      field: .layer { $0.a2 })
    public static let g1 = TensorSpec("att.g1", fla: "attn.g_lora.lora.0.weight", gguf: .tensor("time_mix_g1.weight"), .loraIn, [.embd, .loraG],
                                      field: .layer { $0.g1 })
    public static let g2 = TensorSpec("att.g2", fla: "attn.g_lora.lora.2.weight", gguf: .tensor("time_mix_g2.weight"), .loraOut, [.loraG, .embd],
                                      field: .layer { $0.g2 })
    public static let v0 = TensorSpec("att.v0", fla: "attn.v_lora.lora.2.bias", gguf: .tensor("time_mix_v0.weight"), .mix, [.one, .one, .embd],
                                      firstLayer: 1)
    public static let v1 = TensorSpec("att.v1", fla: "attn.v_lora.lora.0.weight", gguf: .tensor("time_mix_v1.weight"), .loraIn, [.embd, .loraV],
                                      firstLayer: 1, field: .layer { $0.v1 })
    public static let v2 = TensorSpec("att.v2", fla: "attn.v_lora.lora.2.weight", gguf: .tensor("time_mix_v2.weight"), .loraOut, [.loraV, .embd],
                                      firstLayer: 1, field: .layer { $0.v2 })
    public static let kK = TensorSpec("att.k_k", fla: "attn.k_k", gguf: .tensor("time_mix_k_k.weight"), .mix, [.one, .one, .embd])
    public static let kA = TensorSpec("att.k_a", fla: "attn.k_a", gguf: .tensor("time_mix_k_a.weight"), .mix, [.one, .one, .embd])
    public static let rK = TensorSpec("att.r_k", fla: "attn.r_k", gguf: .tensor("time_mix_r_k.weight"), .heads, [.heads, .headSize])
    public static let receptance = TensorSpec("att.receptance.weight", fla: "attn.r_proj.weight", gguf: .tensor("time_mix_receptance.weight"),
                                              .matrix, [.embd, .embd], field: .layer { $0.receptance })
    public static let key = TensorSpec("att.key.weight", fla: "attn.k_proj.weight", gguf: .tensor("time_mix_key.weight"),
                                       .matrix, [.embd, .embd], field: .layer { $0.key })
    public static let value = TensorSpec("att.value.weight", fla: "attn.v_proj.weight", gguf: .tensor("time_mix_value.weight"),
                                         .matrix, [.embd, .embd], field: .layer { $0.value })
    public static let output = TensorSpec("att.output.weight", fla: "attn.o_proj.weight", gguf: .tensor("time_mix_output.weight"),
                                          .matrix, [.embd, .embd], field: .layer { $0.output })
    public static let lnXWeight = TensorSpec("att.ln_x.weight", fla: "attn.g_norm.weight", gguf: .tensor("time_mix_ln.weight"), .norm, [.embd])
    public static let lnXBias = TensorSpec("att.ln_x.bias", fla: "attn.g_norm.bias", gguf: .tensor("time_mix_ln.bias"), .norm, [.embd])
    public static let ffnXK = TensorSpec("ffn.x_k", fla: "ffn.x_k", gguf: .tensor("channel_mix_lerp_k.weight"), .mix, [.one, .one, .embd])
    public static let ffnKey = TensorSpec("ffn.key.weight", fla: "ffn.key.weight", gguf: .tensor("channel_mix_key.weight"),
                                          .matrix, [.ffn, .embd], field: .layer { $0.ffnKey })
    public static let ffnValue = TensorSpec("ffn.value.weight", fla: "ffn.value.weight", gguf: .tensor("channel_mix_value.weight"),
                                            .matrix, [.embd, .ffn], field: .layer { $0.ffnValue })

    /// The global tensors. The order is the synthetic model's draw order (and puts the embedding
    /// before the head in the identity signature).
    public static let global: [TensorSpec] = [embedding, head, ln0Weight, ln0Bias, lnOutWeight, lnOutBias]

    /// The tensors of each block. The order is the synthetic model's draw order, and the order of
    /// the projections in the identity signature.
    public static let layer: [TensorSpec] = [
        ln1Weight, ln1Bias, ln2Weight, ln2Bias, xR, xW, xK, xV, xA, xG,
        w0, a0, w1, w2, a1, a2, g1, g2, v0, v1, v2,
        kK, kA, rK, receptance, key, value, output, lnXWeight, lnXBias,
        ffnXK, ffnKey, ffnValue,
    ]

    /// Every tensor of a model with `nLayer` layers, with its layer (0 for a global one): the globals,
    /// then block by block.
    public static func all(nLayer: Int) -> [(spec: TensorSpec, layer: Int)] {
        global.map { ($0, 0) } + (0..<nLayer).flatMap { l in layer.filter { l >= $0.firstLayer }.map { ($0, l) } }
    }
}

extension TensorSpec {
    /// A layer tensor.
    init(_ blinkDL: String, fla: String, gguf: GGUFName, _ role: Role, _ shape: [Dim], firstLayer: Int = 0, field: Field = .none) {
        self.init(scope: .layer, blinkDL: blinkDL, fla: fla, gguf: gguf, role: role, shape: shape, firstLayer: firstLayer, field: field)
    }

    /// A global tensor.
    init(global blinkDL: String, fla: String, gguf: String, _ role: Role, _ shape: [Dim], field: Field = .none) {
        self.init(scope: .global, blinkDL: blinkDL, fla: fla, gguf: .tensor(gguf), role: role, shape: shape, firstLayer: 0, field: field)
    }
}

extension RWKVModel {
    /// The loaded weight matrices with their tensor and layer (0 for a global one), in `TensorSpec.all`
    /// order; `roles` narrows them (the LoRA factors of layer 0's absent value mix are left out).
    public func matrices(_ roles: Set<TensorSpec.Role> = [.matrix, .loraIn, .loraOut]) -> [(spec: TensorSpec, layer: Int, matrix: Matrix)] {
        TensorSpec.all(nLayer: layers.count).compactMap { spec, l in
            guard roles.contains(spec.role) else { return nil }
            switch spec.field {
            case .none: return nil
            case .model(let read): return (spec, l, read(self))
            case .layer(let read): return read(layers[l]).map { (spec, l, $0) }
            }
        }
    }
}
