// Fuzz target: `.safetensors` model files — header JSON, offsets, dtypes, fla key mapping, model checks.
import RWKVEdit

/// Input: see writeInputFile (whole file, or a header padded with zero tensor data).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard let path = writeInputFile(data, size, ext: "safetensors") else { return 0 }
    expectTyped(RWKVError.self) { _ = try ModelLoader.load(path: path) }
    return 0
}
