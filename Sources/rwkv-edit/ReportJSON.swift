import Foundation

/// The encoder of every report the CLI prints with `--json` (and of its errors): one object per line,
/// keys sorted, non-finite numbers as the strings "inf", "-inf" and "nan" (where a report wants null it
/// says so with `OrNull`). Property names become snake_case (`headsEdited` → "heads_edited", `msSVD` →
/// "ms_svd", as `.convertToSnakeCase` would); a key that already holds an underscore is written as it
/// is, so an explicit coding key such as "profile_B" keeps its capital.
func reportEncoder() -> JSONEncoder {
    let e = JSONEncoder()
    e.keyEncodingStrategy = .custom { path in
        let key = path.last?.stringValue ?? ""
        return ReportKey(key.contains("_") ? key : snakeCase(key))
    }
    e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return e
}

/// Prints a report as one line of JSON (see `reportEncoder`).
func printJSON(_ value: some Encodable) throws {
    FileHandle.standardOutput.write(try reportEncoder().encode(value) + Data("\n".utf8))
}

/// A coding key given by its text: a report key after conversion, or one a report names at run time
/// ("batched_B8_seq_tok_s").
struct ReportKey: CodingKey {
    let stringValue: String
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    var intValue: Int? { nil }
    init?(intValue: Int) { nil }
}

/// camelCase → snake_case, word by word as `.convertToSnakeCase` splits them: a word starts at each
/// capital that follows a lowercase letter or digit, a run of capitals is one word ("msSVD" → "ms_svd"),
/// and digits stay with the word before them ("esTop1" → "es_top1").
func snakeCase(_ key: String) -> String {
    let chars = Array(key)
    guard !chars.isEmpty else { return key }
    var words: [String] = []
    var word = String(chars[0])
    for i in 1..<chars.count {
        let c = chars[i]
        if c.isUppercase {
            let prevUpper = chars[i - 1].isUppercase
            let nextLower = i + 1 < chars.count && chars[i + 1].isLowercase
            // A capital starts a word after a lowercase letter or digit, and ends a run of capitals
            // when a lowercase letter follows it ("URLPath": "URL" | "Path").
            if !prevUpper || nextLower {
                words.append(word)
                word = ""
            }
        }
        word.append(c)
    }
    words.append(word)
    return words.map { $0.lowercased() }.joined(separator: "_")
}
