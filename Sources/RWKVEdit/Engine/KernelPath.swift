import CKernels

/// The instruction-set path the CPU kernels take on this machine, chosen at run time (CKernels):
/// AVX-512 with VNNI (the AVX-512 path, with the quantised types' matrix–vector products on int8
/// activations), AVX-512 (F, BW; the GEMM and the quantised kernels, fp32 arithmetic), AVX2 with FMA
/// and F16C (the quantised matrix–vector products on int8 activations too), or portable C.
/// `RWKV_EDIT_KERNELS=portable` (or `avx2`, `avx512`) in the environment caps it at that path (read
/// once; used to test each path on any machine that has it).
public enum KernelPath: String, Sendable, CaseIterable {
    case portable, avx2, avx512, avx512vnni

    /// Whether this path's matrix–vector products over quantised weights quantise the input vector to
    /// int8 (as llama.cpp does); the others compute them in fp32.
    public var quantisesActivations: Bool { self == .avx2 || self == .avx512vnni }

    public static var current: KernelPath {
        switch rk_simd_level() {
        case 3...: return .avx512vnni
        case 2: return .avx512
        case 1: return .avx2
        default: return .portable
        }
    }
}
