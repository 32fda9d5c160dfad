// Fuzz target: eval suites (.json and .jsonl), as `rwkv-edit eval` reads them, plus the filler text
// of each case (the part that once looped for ever).
import EditEval
import RWKVEdit

/// Input byte 0 even: the rest is a .json suite; odd: a .jsonl suite (read through the file loader).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEvalSuite(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 1 else { return 0 }
    let jsonl = data[0] & 1 == 1
    let path = scratchPath(jsonl ? "jsonl" : "json")
    writeFile(path, UnsafeRawBufferPointer(start: data + 1, count: size - 1))
    expectTyped(EvalSuiteError.self) {
        let suite = try EvalSuite.load(path: path)
        for c in suite.cases {
            // A word count stands in for the tokenizer: the loop must end within the limit either way.
            if let f = c.filler { _ = EvalFiller.text(f) { $0.split(separator: " ").count } }
        }
    }
    return 0
}
