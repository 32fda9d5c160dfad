// Fuzz target: saved states (`/load`, `--state`) — safetensors read against a model's shape.
import RWKVEdit

/// The tiny fixture model's shape, so the seed (its reference state) loads.
let stateConfig = ModelConfig(nLayer: 12, nEmbd: 64, nHead: 1, headSize: 64, vocabSize: 256, ffnSize: 256,
                              loraW: 8, loraA: 8, loraV: 8, loraG: 8)

/// Input: see writeInputFile (whole file, or a header padded with zero tensor data).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzState(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard let path = writeInputFile(data, size, ext: "safetensors") else { return 0 }
    expectTyped(RWKVError.self) { _ = try State.load(from: path, config: stateConfig) }
    return 0
}
