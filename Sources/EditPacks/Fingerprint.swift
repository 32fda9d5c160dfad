import Foundation
import RWKV

/// The identity of a model for packs: SHA-256 over the config, every weight's bytes (in the engine's
/// layout, read straight from the memory map where the loader kept them) and the vocabulary bytes.
/// Two loads of the same file with the same vocabulary give the same fingerprint; a changed weight,
/// another size or another vocabulary give a different one.
public enum ModelFingerprint {
    /// The fingerprint of a model with its vocabulary (the weight digest is cached per model object).
    public static func compute(model m: RWKVModel, tokenizer: WorldTokenizer) -> String {
        FingerprintCache.fingerprint(m, tokenizer)
    }

    static func combine(weights: String, vocab: String) -> String {
        SHA256.hexDigest(Array("rwkv-edit model fingerprint v1\n\(weights)\n\(vocab)\n".utf8))
    }

    /// SHA-256 of the vocabulary: token count, then each token's length and bytes.
    static func vocabDigest(_ tokenizer: WorldTokenizer) -> String {
        var h = SHA256()
        var n = Int64(tokenizer.tokens.count).littleEndian
        withUnsafeBytes(of: &n) { h.update($0) }
        for t in tokenizer.tokens {
            var c = Int64(t.count).littleEndian
            withUnsafeBytes(of: &c) { h.update($0) }
            h.update(t)
        }
        return SHA256.hex(h.finalize())
    }

    /// SHA-256 of the config and every weight, in a fixed order.
    static func weightsDigest(_ m: RWKVModel) -> String {
        var h = SHA256()
        func text(_ s: String) { h.update(Array(s.utf8)) }
        func ints(_ xs: [Int]) { let v = xs.map { Int64($0).littleEndian }; v.withUnsafeBytes { h.update($0) } }
        func vec(_ x: [Float]) { ints([x.count]); x.withUnsafeBytes { h.update($0) } }
        func mat(_ x: Matrix) {
            ints([x.rows, x.cols]); text(x.dtype.rawValue)
            h.update(UnsafeRawBufferPointer(start: x.data.base, count: x.data.count))
        }
        let c = m.config
        text("rwkv-edit weights v1\n")
        ints([c.nLayer, c.nEmbd, c.nHead, c.headSize, c.vocabSize, c.ffnSize, c.loraW, c.loraA, c.loraV, c.loraG])
        mat(m.embedding); vec(m.ln0Weight); vec(m.ln0Bias)
        for l in m.layers {
            for v in [l.ln1Weight, l.ln1Bias, l.ln2Weight, l.ln2Bias, l.xR, l.xW, l.xK, l.xV, l.xA, l.xG, l.w0, l.a0,
                      l.kK, l.kA, l.rK, l.lnXWeight, l.lnXBias, l.ffnXK] { vec(v) }
            vec(l.v0 ?? [])
            for x in [l.w1, l.w2, l.a1, l.a2, l.g1, l.g2, l.receptance, l.key, l.value, l.output, l.ffnKey, l.ffnValue] { mat(x) }
            if let v1 = l.v1 { mat(v1) }
            if let v2 = l.v2 { mat(v2) }
        }
        vec(m.lnOutWeight); vec(m.lnOutBias); mat(m.head)
        return SHA256.hex(h.finalize())
    }
}
