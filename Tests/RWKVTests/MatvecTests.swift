import CKernels
import Foundation
import XCTest

/// The float matrix–vector kernels (decoding) against a double-precision product of the same weights,
/// on the path this machine dispatches to, with row counts and widths that leave remainders for
/// every unrolling (4 rows; 8 or 16 lanes).
final class MatvecTests: XCTestCase {
    func testFloatMatvecMatchesADoubleReference() {
        var rng = SystemRandomNumberGenerator()
        for (dtype, name) in [(RK_F32, "f32"), (RK_F16, "f16"), (RK_BF16, "bf16")] {
            for (rows, cols) in [(13, 200), (8, 768), (3, 37)] {
                let values = (0..<(rows * cols)).map { _ in Float.random(in: -1...1, using: &rng) }
                let x = (0..<cols).map { _ in Float.random(in: -2...2, using: &rng) }
                // The weights as stored, and what they are exactly (widened back).
                var stored = [UInt8](repeating: 0, count: rows * cols * (dtype == RK_F32 ? 4 : 2))
                stored.withUnsafeMutableBytes { b in
                    switch dtype {
                    case RK_F16: rk_f32_to_f16(values, b.baseAddress!.assumingMemoryBound(to: UInt16.self), Int64(values.count))
                    case RK_BF16: rk_f32_to_bf16(values, b.baseAddress!.assumingMemoryBound(to: UInt16.self), Int64(values.count))
                    default: values.withUnsafeBytes { b.copyMemory(from: $0) }
                    }
                }
                var exact = [Float](repeating: 0, count: values.count)
                rk_to_f32(Int32(dtype.rawValue), stored, &exact, Int64(values.count))
                var y = [Float](repeating: .nan, count: rows)
                rk_matvec(Int32(dtype.rawValue), stored, x, &y, Int64(cols), 0, Int64(rows))
                for r in 0..<rows {
                    let expected = (0..<cols).reduce(0.0) { $0 + Double(exact[r * cols + $1]) * Double(x[$1]) }
                    XCTAssertEqual(Double(y[r]), expected, accuracy: 1e-5 * max(1, abs(expected)), "\(name) \(rows)×\(cols) row \(r)")
                }
            }
        }
    }
}
