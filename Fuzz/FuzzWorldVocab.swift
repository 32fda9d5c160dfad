// Fuzz target: RWKV World tokenizer vocabularies (`<id> <python literal> <length>` lines), then
// encoding and decoding with what was read.
import RWKVEdit

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWorldVocab(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let path = scratchPath("txt")
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    writeFile(path, bytes)
    expectTyped(RWKVError.self) {
        let t = try WorldTokenizer(vocabularyFile: path)
        // Round trip: any bytes the vocabulary can encode decode back to themselves.
        let sample = Array(bytes.prefix(256))
        let ids = t.encode(bytes: sample)
        let back = t.decodeBytes(ids)
        precondition(back.count <= sample.count, "decoding produced more bytes than were encoded")
    }
    return 0
}
