import Foundation
import RWKVEdit

// Usage: EditByName MODEL — e.g. models/demo.safetensors, whose card (demo.json) names its packs folder.
let modelPath = CommandLine.arguments.dropFirst().first ?? "models/demo.safetensors"
do {
    let bundle = try ModelBundle(modelPath: modelPath)        // weights, tokenizer, card, shipped packs
    let session = bundle.session()
    try session.feed("Alice lives in Paris. Bob lives in Austin.")
    let question = "Where does Bob live? Bob lives in"
    print("before:", try session.generate(after: question, maxTokens: 2, commit: false))

    let result = try session.edit("Bob: Austin -> Chicago", pack: bundle.pack("cities"))
    print("after: ", try session.generate(after: question, maxTokens: 2, commit: false))
    print("verdict:", result.verdict.rawValue, String(format: "(P(Austin) %.3f → %.3f, P(Chicago) %.3f → %.3f, %d controls kept)",
          result.outcome.before.old.probability, result.outcome.after.old.probability,
          result.outcome.before.new?.probability ?? 0, result.outcome.after.new?.probability ?? 0,
          result.outcome.controls.filter { $0.after.isTop1 }.count))

    try session.undo()
    print("undone:", try session.generate(after: question, maxTokens: 2, commit: false))

    // Forget a property, save the conversation, and continue it from the file in a fresh session.
    try session.forget(fact: "Alice lives in Paris.", entity: "Alice")
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("edit-by-name-\(getpid()).safetensors").path
    defer { try? FileManager.default.removeItem(atPath: file) }
    try session.state.save(to: file)
    let resumed = bundle.session()
    try resumed.replaceState(try State.load(from: file, config: bundle.model.config))
    print("Alice after forget, resumed from file:",
          try resumed.generate(after: "Where does Alice live? Alice lives in", maxTokens: 2, commit: false))
    exit(result.verdict == .applied ? 0 : 2)
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
