import CKernels

/// Element type of a tensor in a model file.
public enum DType: String, Sendable, CaseIterable {
    case f32, f16, bf16

    public var byteSize: Int { self == .f32 ? 4 : 2 }
    var kernelCode: Int32 {
        switch self {
        case .f32: return Int32(RK_F32.rawValue)
        case .f16: return Int32(RK_F16.rawValue)
        case .bf16: return Int32(RK_BF16.rawValue)
        }
    }
}

/// A tensor as a loader found it: shape, element type and its bytes (usually inside a memory map).
public struct RawTensor: Sendable {
    public let shape: [Int]
    public let dtype: DType
    public let data: ByteRegion

    public init(shape: [Int], dtype: DType, data: ByteRegion) {
        self.shape = shape
        self.dtype = dtype
        self.data = data
    }

    public init(shape: [Int], floats: [Float]) {
        self.init(shape: shape, dtype: .f32, data: .owning(floats))
    }

    public var elementCount: Int { shape.reduce(1, *) }

    /// All elements widened to fp32.
    public func floats() -> [Float] {
        let n = elementCount
        return [Float](unsafeUninitializedCapacity: n) { buf, count in
            rk_to_f32(dtype.kernelCode, data.base, buf.baseAddress, Int64(n))
            count = n
        }
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
