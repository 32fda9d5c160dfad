import CKernels
import Foundation
import XCTest

/// The float matrix–vector kernels (decoding) against a double-precision product of the same weights,
/// on the path this machine dispatches to, with row counts and widths that leave remainders for
/// every unrolling (4 rows; 8 or 16 lanes).
final class MatvecTests: XCTestCase {
    /// Weights as a kernel reads them in `dtype` (f32, f16 or bf16), and what they are exactly (widened back).
    static func stored(_ values: [Float], as dtype: rk_dtype) -> (stored: [UInt8], exact: [Float]) {
        var stored = [UInt8](repeating: 0, count: values.count * (dtype == RK_F32 ? 4 : 2))
        stored.withUnsafeMutableBytes { b in
            switch dtype {
            case RK_F16: rk_f32_to_f16(values, b.baseAddress!.assumingMemoryBound(to: UInt16.self), Int64(values.count))
            case RK_BF16: rk_f32_to_bf16(values, b.baseAddress!.assumingMemoryBound(to: UInt16.self), Int64(values.count))
            default: values.withUnsafeBytes { b.copyMemory(from: $0) }
            }
        }
        var exact = [Float](repeating: 0, count: values.count)
        rk_to_f32(Int32(dtype.rawValue), stored, &exact, Int64(values.count))
        return (stored, exact)
    }

    func testFloatMatvecMatchesADoubleReference() {
        var rng = SystemRandomNumberGenerator()
        for (dtype, name) in [(RK_F32, "f32"), (RK_F16, "f16"), (RK_BF16, "bf16")] {
            for (rows, cols) in [(13, 200), (8, 768), (3, 37)] {
                let values = (0..<(rows * cols)).map { _ in Float.random(in: -1...1, using: &rng) }
                let x = (0..<cols).map { _ in Float.random(in: -2...2, using: &rng) }
                let (stored, exact) = Self.stored(values, as: dtype)
                var y = [Float](repeating: .nan, count: rows)
                rk_matvec(Int32(dtype.rawValue), stored, x, &y, Int64(cols), 0, Int64(rows))
                for r in 0..<rows {
                    let terms = (0..<cols).map { Double(exact[r * cols + $0]) * Double(x[$0]) }
                    let expected = terms.reduce(0, +), magnitude = terms.reduce(0) { $0 + abs($1) }
                    // fp32 sums: a serial one (the portable path's) is within n·2⁻²⁴·Σ|terms| (twice that here).
                    XCTAssertEqual(Double(y[r]), expected, accuracy: max(1e-5 * max(1, abs(expected)), Double(cols) * 1.2e-7 * magnitude),
                                   "\(name) \(rows)×\(cols) row \(r)")
                }
                // Several vectors at once (groups of up to five share each pass over the weights), on a
                // row range that leaves a partial block of four at both ends.
                for nvec in 1...7 {
                    let xs = (0..<(nvec * cols)).map { _ in Float.random(in: -2...2, using: &rng) }
                    var ys = [Float](repeating: .nan, count: nvec * rows)
                    let (rb, re) = (min(1, rows - 1), rows)
                    rk_matvec_multi(Int32(dtype.rawValue), stored, xs, &ys, Int32(nvec), Int64(cols), Int64(rows), Int64(rb), Int64(re))
                    for v in 0..<nvec {
                        for r in rb..<re {
                            let terms = (0..<cols).map { Double(exact[r * cols + $0]) * Double(xs[v * cols + $0]) }
                            let expected = terms.reduce(0, +), magnitude = terms.reduce(0) { $0 + abs($1) }
                            XCTAssertEqual(Double(ys[v * rows + r]), expected, accuracy: max(1e-5 * max(1, abs(expected)), Double(cols) * 1.2e-7 * magnitude),
                                           "\(name) \(rows)×\(cols), \(nvec) vectors, vector \(v) row \(r)")
                        }
                        if rb > 0 { XCTAssertTrue(ys[v * rows].isNaN, "rows outside the range stay untouched") }
                    }
                }
            }
        }
    }

    /// The prompt GEMM on this machine's path against double precision, for row strides that read the
    /// token tile in place (200, 384 columns) and that copy it first (512, 1024: multiples of 2 KiB),
    /// token counts past one register tile and past one block of tokens (530: three blocks of 256 or
    /// fewer), a row range starting inside a panel, and accumulation over several column blocks (1024 > 384).
    func testFloatGemmMatchesADoubleReference() {
        var rng = SystemRandomNumberGenerator()
        for (dtype, name) in [(RK_F32, "f32"), (RK_F16, "f16"), (RK_BF16, "bf16")] {
            for cols in [200, 384, 512, 1024] {
                let rows = 40, (rb, re) = (3, 40)
                let values = (0..<(rows * cols)).map { _ in Float.random(in: -1...1, using: &rng) }
                let (stored, exact) = Self.stored(values, as: dtype)
                for T in [16, 29] + (cols == 384 ? [530] : []) {
                    let x = (0..<(T * cols)).map { _ in Float.random(in: -2...2, using: &rng) }
                    var y = [Float](repeating: .nan, count: T * rows)
                    rk_gemm(Int32(dtype.rawValue), stored, x, &y, Int32(T), Int64(cols), Int64(rows), Int64(rb), Int64(re))
                    for t in 0..<T {
                        for r in rb..<re {
                            let terms = (0..<cols).map { Double(exact[r * cols + $0]) * Double(x[t * cols + $0]) }
                            let expected = terms.reduce(0, +), magnitude = terms.reduce(0) { $0 + abs($1) }
                            XCTAssertEqual(Double(y[t * rows + r]), expected, accuracy: max(1e-5 * max(1, abs(expected)), Double(cols) * 1.2e-7 * magnitude),
                                           "\(name) \(T)×\(cols) → \(rows), token \(t) row \(r)")
                        }
                        XCTAssertTrue(y[t * rows].isNaN, "rows outside the range stay untouched")
                    }
                }
            }
        }
    }

    /// The per-token kernels (token-shift mix, layer norm, WKV output, key preparation) on this
    /// machine's path against double precision, at lengths through the vector body and the tail.
    func testPerTokenKernelsMatchDoublePrecision() {
        var rng = SystemRandomNumberGenerator()
        func values(_ n: Int, _ r: ClosedRange<Float> = -2...2) -> [Float] { (0..<n).map { _ in Float.random(in: r, using: &rng) } }
        func close(_ got: Float, _ expected: Double, _ what: String) {
            XCTAssertEqual(Double(got), expected, accuracy: 2e-5 * max(1, abs(expected)), what)
        }
        for n in [1, 15, 16, 17, 64, 100] {
            let (a, b, m) = (values(n), values(n), values(n, 0...1))
            var out = [Float](repeating: .nan, count: n)
            rk_lerp(a, b, m, &out, Int64(n))
            for i in 0..<n { close(out[i], Double(a[i]) + (Double(b[i]) - Double(a[i])) * Double(m[i]), "lerp \(n) [\(i)]") }

            let (x, w, bias) = (values(n, -3...5), values(n), values(n))
            func normalized(_ x: [Float], eps: Double) -> [Double] {
                let mean = x.reduce(0.0) { $0 + Double($1) } / Double(n)
                let variance = x.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(n)
                return x.indices.map { (Double(x[$0]) - mean) / (variance + eps).squareRoot() * Double(w[$0]) + Double(bias[$0]) }
            }
            rk_layer_norm(x, w, bias, 1e-5, &out, Int64(n))
            for (i, e) in normalized(x, eps: 1e-5).enumerated() { close(out[i], e, "layer norm \(n) [\(i)]") }

            let (r, k, v, g, rk) = (values(n), values(n), values(n), values(n, 0...1), values(n))
            var y = x
            rk_wkv_output(&y, r, k, v, g, rk, w, bias, 64e-5, Int64(n))
            let bonus = (0..<n).reduce(0.0) { $0 + Double(r[$1]) * Double(k[$1]) * Double(rk[$1]) }
            // The bonus is a sum of n products in fp32: within n·2⁻²⁴·Σ|terms| (twice that here).
            let bonusError = Double(n) * 1.2e-7 * (0..<n).reduce(0.0) { $0 + abs(Double(r[$1]) * Double(k[$1]) * Double(rk[$1])) }
            for (i, e) in normalized(x, eps: 64e-5).enumerated() {
                let expected = (e + bonus * Double(v[i])) * Double(g[i])
                XCTAssertEqual(Double(y[i]), expected, accuracy: 2e-5 * max(1, abs(expected)) + bonusError * abs(Double(v[i]) * Double(g[i])),
                               "WKV output \(n) [\(i)]")
            }
        }
        for (H, N) in [(1, 64), (3, 20), (2, 16)] {
            let C = H * N
            var k = values(C)
            let (a, kK, kA) = (values(C, 0...1), values(C), values(C))
            let k0 = k
            var kk = [Float](repeating: .nan, count: C)
            rk_key_prep(&k, a, kK, kA, &kk, Int32(H), Int32(N))
            for h in 0..<H {
                let p = (0..<N).map { Double(k0[h * N + $0]) * Double(kK[h * N + $0]) }
                let norm = max(p.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
                for j in 0..<N { close(kk[h * N + j], p[j] / norm, "kk \(H)×\(N) [\(h), \(j)]") }
            }
            for i in 0..<C { close(k[i], Double(k0[i]) * (1 + (Double(a[i]) - 1) * Double(kA[i])), "k \(H)×\(N) [\(i)]") }
        }
        // A zero key stays finite: the norm's floor.
        var zero = [Float](repeating: 0, count: 16), kk = [Float](repeating: .nan, count: 16)
        rk_key_prep(&zero, [Float](repeating: 0.5, count: 16), [Float](repeating: 1, count: 16), [Float](repeating: 1, count: 16), &kk, 1, 16)
        XCTAssertEqual(kk, [Float](repeating: 0, count: 16))
    }

    /// The WKV recurrence on this machine's path (the 16-lane kernel for head size 64 with AVX-512, the
    /// 8-lane one for 64 and 16, the scalar one for 20) against double precision, over a few steps. (At -O0 the 8-lane
    /// kernel's helpers, called out of line, once read a misaligned spill: they are always inlined now.)
    func testWKVStepMatchesDoublePrecision() {
        var rng = SystemRandomNumberGenerator()
        func values(_ n: Int, _ r: ClosedRange<Float>) -> [Float] { (0..<n).map { _ in Float.random(in: r, using: &rng) } }
        for (H, N) in [(2, 64), (3, 16), (1, 20), (1, 8)] {
            let C = H * N
            var S = values(H * N * N, -1...1)
            var reference = S.map(Double.init)
            for step in 0..<3 {
                let (r, k, v, w, a) = (values(C, -1...1), values(C, -1...1), values(C, -1...1), values(C, 0.5...1), values(C, 0...1))
                var kk = values(C, -1...1)
                for h in 0..<H {
                    let norm = (0..<N).reduce(Float(0)) { $0 + kk[h * N + $1] * kk[h * N + $1] }.squareRoot()
                    for j in 0..<N { kk[h * N + j] /= norm }
                }
                var y = [Float](repeating: .nan, count: C)
                rk_wkv7_step(&S, Int32(H), Int32(N), r, w, k, v, kk, a, &y)
                for h in 0..<H {
                    for i in 0..<N {
                        let row = (h * N + i) * N, o = h * N
                        let sa = -(0..<N).reduce(0.0) { $0 + reference[row + $1] * Double(kk[o + $1]) }
                        var yi = 0.0
                        for j in 0..<N {
                            reference[row + j] = reference[row + j] * Double(w[o + j]) + sa * Double(kk[o + j]) * Double(a[o + j])
                                + Double(v[o + i]) * Double(k[o + j])
                            yi += reference[row + j] * Double(r[o + j])
                        }
                        // fp32 sums of N terms of magnitude ≲ |S| ≲ 2: within N·2⁻²⁴ of their absolute sum, per step.
                        XCTAssertEqual(Double(y[o + i]), yi, accuracy: Double(N) * 1.2e-7 * 4 * Double(N) * Double(step + 1),
                                       "y, \(H)×\(N), step \(step) [\(h), \(i)]")
                    }
                }
                let worst = zip(S, reference).map { abs(Double($0) - $1) }.max() ?? 0
                XCTAssertLessThan(worst, Double(N) * 1.2e-7 * 4 * Double(step + 1), "state, \(H)×\(N), step \(step)")
            }
        }
    }

    /// The time mix's activations on this machine's path against double precision: the exponential
    /// within 2 ulp wherever e^x is a normal float, 0 and infinity past the range, NaN kept; tanh within
    /// 3e-7, ±1 past the range, NaN kept; sigmoid and decay with and without a bias, every length through
    /// the vector body and the tail.
    func testActivationsMatchDoublePrecision() {
        var x: [Float] = stride(from: -103.0, through: 88.5, by: 0.173).map { Float($0) }
        var rng = SystemRandomNumberGenerator()
        x += (0..<4000).map { _ in Float.random(in: -20...20, using: &rng) }
        var e = [Float](repeating: 0, count: x.count)
        rk_exp(x, &e, Int64(x.count))
        for (v, got) in zip(x, e) {
            let want = Foundation.exp(Double(v))
            if want >= Double(Float.leastNormalMagnitude) {
                XCTAssertEqual(Double(got), want, accuracy: 2 * Double(Float.ulpOfOne) * want, "e^\(v)")
            } else {
                XCTAssertLessThanOrEqual(Double(got), Double(Float.leastNormalMagnitude), "e^\(v)")
            }
        }
        let edges: [Float] = [-1e30, -200, 89, 100, 1e30, .infinity, -.infinity, .nan, 0, -0.0]
        var out = [Float](repeating: 1, count: edges.count)
        rk_exp(edges, &out, Int64(edges.count))
        XCTAssertEqual(Array(out[0..<2]), [0, 0])
        XCTAssertEqual(Array(out[2..<6]), [.infinity, .infinity, .infinity, .infinity])
        XCTAssertEqual(out[6], 0)
        XCTAssertTrue(out[7].isNaN)
        XCTAssertEqual(Array(out[8...]), [1, 1])

        var t = [Float](repeating: .nan, count: x.count)
        rk_tanh(x, &t, Int64(x.count))
        for (v, got) in zip(x, t) {
            let want = Foundation.tanh(Double(v))
            XCTAssertEqual(Double(got), want, accuracy: 3e-7, "tanh(\(v))")
        }
        let small: [Float] = [1e-30, -1e-8, 1e-4, -0.01, 0.3]
        var ts = [Float](repeating: .nan, count: small.count)
        rk_tanh(small, &ts, Int64(small.count))
        for (v, got) in zip(small, ts) { XCTAssertEqual(Double(got), Foundation.tanh(Double(v)), accuracy: 3e-7, "tanh(\(v))") }
        var tEdges = [Float](repeating: 0, count: edges.count)
        rk_tanh(edges, &tEdges, Int64(edges.count))
        XCTAssertEqual(Array(tEdges[0..<6]), [-1, -1, 1, 1, 1, 1])
        XCTAssertEqual(tEdges[6], -1)
        XCTAssertTrue(tEdges[7].isNaN)

        for n in [1, 15, 16, 17, 40, 768] {
            let v = (0..<n).map { _ in Float.random(in: -30...30, using: &rng) }
            let bias = (0..<n).map { _ in Float.random(in: -2...2, using: &rng) }
            for withBias in [false, true] {
                var s = [Float](repeating: .nan, count: n), d = [Float](repeating: .nan, count: n)
                rk_sigmoid(v, withBias ? bias : nil, &s, Int64(n))
                rk_decay(v, withBias ? bias : nil, &d, Int64(n))
                for i in 0..<n {
                    let z = Double(withBias ? v[i] + bias[i] : v[i])  // the kernels add in float
                    let sig = 1 / (1 + Foundation.exp(-z)), decay = Foundation.exp(-Double(Float(0.606531)) * sig)
                    XCTAssertEqual(Double(s[i]), sig, accuracy: 4 * Double(Float.ulpOfOne) * sig + 1e-38, "sigmoid(\(z)), n \(n)")
                    XCTAssertEqual(Double(d[i]), decay, accuracy: 4 * Double(Float.ulpOfOne) * decay, "decay(\(z)), n \(n)")
                }
            }
        }
    }
}
