// Fuzz target: state files of every format (`--state-in`, `/load`, `state convert`) — detected by
// magic or keys, then read against a model's shape: native, llama.cpp session and seq files, PEFT
// .pth time_state, web-rwkv safetensors, rwkv.cpp buffers.
import RWKVEdit

/// The tiny fixture model's shape, the one the seeds (its reference state in each format) were written for.
let formatsShape = StateShape(ModelConfig(nLayer: 12, nEmbd: 64, nHead: 1, headSize: 64, vocabSize: 256, ffnSize: 256,
                                          loraW: 8, loraA: 8, loraV: 8, loraG: 8))

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzStateFormats(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard let path = writeInputFile(data, size, ext: "state") else { return 0 }
    do { _ = try StateFile.read(path, expecting: formatsShape) } catch is StateFormatError {} catch is RWKVError {} catch {
        fatalError("untyped error \(type(of: error)): \(error)")
    }
    return 0
}
