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

    /// Piece size of the tree hash: big matrices are hashed in pieces of this many bytes, in parallel.
    static let pieceBytes = 8 << 20

    /// SHA-256 of the config, the shapes and small vectors, and the SHA-256 of every ≤ 8 MiB piece of
    /// every weight matrix (hashed in parallel straight from the memory map), in a fixed order.
    /// `accelerated` hashes the pieces with the system libcrypto's SHA-256 when it can be loaded
    /// (SHA extensions: ~10× this file's portable code); the digest is the same either way.
    public static func weightsDigest(_ m: RWKVModel, accelerated: Bool = true) -> String {
        var h = SHA256()
        var pieces: [UnsafeRawBufferPointer] = []
        func text(_ s: String) { h.update(Array(s.utf8)) }
        func ints(_ xs: [Int]) { let v = xs.map { Int64($0).littleEndian }; v.withUnsafeBytes { h.update($0) } }
        func vec(_ x: [Float]) { ints([x.count]); x.withUnsafeBytes { h.update($0) } }
        func mat(_ x: Matrix) {
            ints([x.rows, x.cols, x.data.count]); text(x.dtype.rawValue)
            var o = 0
            while o < x.data.count {
                let n = min(pieceBytes, x.data.count - o)
                pieces.append(UnsafeRawBufferPointer(start: x.data.base + o, count: n))
                o += n
            }
        }
        let c = m.config
        text("rwkv-edit weights v2 (tree)\n")
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
        // The pieces point into the model's weights, which `m` keeps alive until this returns.
        var digests = [UInt8](repeating: 0, count: pieces.count * 32)
        digests.withUnsafeMutableBufferPointer { out in
            let base = out.baseAddress
            DispatchQueue.concurrentPerform(iterations: pieces.count) { i in
                if accelerated, let fast = SystemSHA256.oneShot, let b = base, let src = pieces[i].baseAddress {
                    _ = fast(src.assumingMemoryBound(to: UInt8.self), pieces[i].count, b + i * 32)
                } else {
                    var p = SHA256()
                    p.update(pieces[i])
                    let d = p.finalize()
                    for k in 0..<32 { base?[i * 32 + k] = d[k] }
                }
            }
        }
        withExtendedLifetime(m) {}
        ints([pieces.count])
        h.update(digests)
        return SHA256.hex(h.finalize())
    }
}

/// OpenSSL's one-shot `SHA256(data, length, out)`, loaded at run time when the system has libcrypto,
/// so the build needs no OpenSSL headers and machines without it fall back to the portable code.
enum SystemSHA256 {
    typealias OneShot = @convention(c) (UnsafePointer<UInt8>?, Int, UnsafeMutablePointer<UInt8>?) -> UnsafeMutablePointer<UInt8>?
    static let oneShot: OneShot? = {
        for name in ["libcrypto.so.3", "libcrypto.so", "libcrypto.dylib"] {
            if let h = dlopen(name, RTLD_NOW | RTLD_LOCAL), let sym = dlsym(h, "SHA256") {
                return unsafeBitCast(sym, to: OneShot.self)
            }
        }
        return nil
    }()
}
