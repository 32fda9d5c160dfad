// Fuzz target: GGUF model files — header, metadata, tensor infos, quantised types, vocabulary, model checks.
import RWKVEdit

/// Input: see writeInputFile (whole file, or a header padded with zero tensor data).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGGUF(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard let path = writeInputFile(data, size, ext: "gguf") else { return 0 }
    expectTyped(RWKVError.self) { _ = try GGUFReader.loadModel(path: path) }
    return 0
}
