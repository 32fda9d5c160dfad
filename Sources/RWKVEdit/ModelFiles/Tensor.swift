import CKernels

/// Element type of a tensor in a model file: floats, or one of ggml's block-quantised formats (GGUF
/// only), kept quantised in memory and dequantised by the kernels as they read it.
public enum DType: String, Sendable, CaseIterable {
    case f32, f16, bf16
    case q8_0, q4_0, q4_1, q5_0, q5_1
    case q4_K, q5_K, q6_K

    public var isQuantized: Bool { blockElements > 1 }
    /// Weights per block: 1 for the float types, 32 or 256 for the quantised ones (the C kernels' table).
    public var blockElements: Int { Int(rk_block_elems(kernelCode)) }
    /// Bytes per block: the element size for the float types.
    public var blockBytes: Int { Int(rk_block_bytes(kernelCode)) }
    /// Bytes of `elements` weights, a multiple of `blockElements` (loaders check that for every row).
    public func byteCount(_ elements: Int) -> Int { elements / blockElements * blockBytes }

    /// The C kernels' rk_dtype code.
    public var kernelCode: Int32 {
        let code: rk_dtype
        switch self {
        case .f32: code = RK_F32
        case .f16: code = RK_F16
        case .bf16: code = RK_BF16
        case .q8_0: code = RK_Q8_0
        case .q4_0: code = RK_Q4_0
        case .q4_1: code = RK_Q4_1
        case .q5_0: code = RK_Q5_0
        case .q5_1: code = RK_Q5_1
        case .q4_K: code = RK_Q4_K
        case .q5_K: code = RK_Q5_K
        case .q6_K: code = RK_Q6_K
        }
        return Int32(code.rawValue)
    }
}

/// A tensor as a loader found it: shape, element type and its bytes (usually inside a memory map).
/// A 2-D tensor may be a transposed view: `data` then holds the matrix of shape [shape[1]][shape[0]]
/// row-major, so that GGUF and fla LoRA factors, stored [out][in] as the engine multiplies them, reach
/// it without being copied (into BlinkDL's [in][out]) and back.
public struct RawTensor: Sendable {
    public let shape: [Int]
    public let dtype: DType
    public let data: ByteRegion
    public let isTransposedView: Bool

    public init(shape: [Int], dtype: DType, data: ByteRegion) {
        self.shape = shape
        self.dtype = dtype
        self.data = data
        isTransposedView = false
    }

    /// A 2-D tensor, plain or a transposed view: the only way to make a view, so a view is 2-D.
    private init(rows: Int, cols: Int, dtype: DType, data: ByteRegion, isTransposedView: Bool) {
        shape = [rows, cols]
        self.dtype = dtype
        self.data = data
        self.isTransposedView = isTransposedView
    }

    public init(shape: [Int], floats: [Float]) {
        self.init(shape: shape, dtype: .f32, data: .owning(floats))
    }

    public var elementCount: Int { shape.reduce(1, *) }

    /// The 2-D transpose, without copying: a view of the same bytes (or the plain tensor behind a view).
    /// A tensor of another rank is a `shapeMismatch` naming `file` and the tensor `name`.
    public func transposed(file: String, name: String) throws -> RawTensor {
        guard shape.count == 2 else { throw RWKVError.shapeMismatch(file: file, name: name, expected: [-1, -1], found: shape) }
        return RawTensor(rows: shape[1], cols: shape[0], dtype: dtype, data: data, isTransposedView: !isTransposedView)
    }

    /// All elements widened (or dequantised) to fp32, in `shape`'s row-major order.
    public func floats() -> [Float] {
        let n = elementCount
        let stored = [Float](unsafeUninitializedCapacity: n) { buf, count in
            rk_to_f32(dtype.kernelCode, data.base, buf.baseAddress, Int64(n))
            count = n
        }
        guard isTransposedView else { return stored }
        let (rows, cols) = (shape[0], shape[1])   // stored is [cols][rows]
        var out = [Float](repeating: 0, count: n)
        for c in 0..<cols { for r in 0..<rows { out[r * cols + c] = stored[c * rows + r] } }
        return out
    }
}

/// Checked element count: every dimension non-negative and the product without overflow.
/// Loaders call it before trusting a shape read from a file.
func checkedElementCount(_ shape: [Int], file: String, name: String) throws -> Int {
    var n = 1
    for d in shape {
        guard d >= 0 else { throw RWKVError.malformed(file: file, reason: "tensor '\(name)' has a negative dimension \(d)") }
        let (p, o) = n.multipliedReportingOverflow(by: d)
        guard !o, p < (1 << 40) else { throw RWKVError.malformed(file: file, reason: "tensor '\(name)' has an absurd shape \(shape)") }
        n = p
    }
    return n
}

public enum Half {
    /// fp32 → IEEE f16 bits (round to nearest even).
    public static func f16Bits(_ values: [Float]) -> [UInt16] {
        var out = [UInt16](repeating: 0, count: values.count)
        rk_f32_to_f16(values, &out, Int64(values.count))
        return out
    }

    /// fp32 → bf16 bits (round to nearest even).
    public static func bf16Bits(_ values: [Float]) -> [UInt16] {
        var out = [UInt16](repeating: 0, count: values.count)
        rk_f32_to_bf16(values, &out, Int64(values.count))
        return out
    }
}
