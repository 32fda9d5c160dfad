// Fuzz target: pack values files (`prompts/*.txt`) and pairs files, as `rwkv-edit compile` reads them.
import RWKVEdit

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzValues(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    expectTyped(PackError.self) {
        let v = try Vocabulary.parse(text, name: "fuzz", file: "fuzz.txt")
        precondition(v.values.count >= 2 && v.values.count <= Vocabulary.Limits.values)
        for t in [v.template, v.probeTemplate].compactMap({ $0 }) { _ = fillTemplate(t, value: v.values[0].surface, entity: "E") }
    }
    expectTyped(PackError.self) { _ = try Vocabulary.parsePairs(text, file: "fuzz.txt") }
    return 0
}
