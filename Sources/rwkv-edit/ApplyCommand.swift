import ArgumentParser
import EditPacks
import Foundation
import RWKV
import StateEdit

/// Runs a pack command body, turning library errors into "error: …" and exit code 1.
func reportingPackErrors<T>(_ body: () throws -> T) throws -> T {
    do { return try reportingErrors(body) } catch let e as PackError {
        FileHandle.standardError.write(Data("error: \(e.description)\n".utf8))
        throw ExitCode.failure
    } catch let e as EditError {
        FileHandle.standardError.write(Data("error: \(e.description)\n".utf8))
        throw ExitCode.failure
    } catch let e as EditCommandError {
        FileHandle.standardError.write(Data("error: \(e.description)\n".utf8))
        throw ExitCode.failure
    }
}

struct ApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Feed a context, edit a fact by name with a pack (HYB-U: pack u₁, online v₁ and σ), and show the query's answers before and after.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var methodOptions: EditMethodOptions

    @Option(name: .long, help: "The edit pack (.rwkvpack) compiled for this model.")
    var pack: String

    @Option(name: .long, help: "The context fed to the model first.")
    var context: String

    @Option(name: .long, help: "The edit: 'Entity: A -> B' with A and B entries of the pack (e.g. 'Bob: Austin -> Chicago').")
    var edit: String

    @Option(name: .long, help: "Probe sentence form with {entity} and {value} (default: the pack's).")
    var probe: String?

    @Flag(name: .long, help: "Compose u₁ from vocabulary entries even when the pack has the direct pair entry.")
    var composed = false

    @Option(name: .long, help: "Query whose answer should change (e.g. \"Where does Bob live? Bob lives in\").")
    var query: String

    @Option(name: .long, help: "The answer before the edit (default: A).")
    var old: String?

    @Option(name: .long, help: "The answer after the edit (default: B).")
    var new: String?

    @Option(name: .long, help: "A query whose answer must not change (repeatable).")
    var controlQuery: [String] = []

    @Option(name: .long, help: "The expected answer of each --control-query, in order.")
    var controlAnswer: [String] = []

    @Flag(name: .long, help: "Print one JSON object (the shape of `rwkv-edit edit --json`, plus a \"pack\" member).")
    var json = false

    func run() throws {
        try reportingPackErrors {
            let controls = try controlQueries(controlQuery, controlAnswer)
            let options = try methodOptions.editOptions()
            let (entity, a, b) = try EditPack.parseEdit(edit)
            let p = try EditPack(path: pack)
            let m = try modelOptions.loadModel()
            let tok = try modelOptions.tokenizer(for: m)
            try p.requireModel(m, tokenizer: tok)
            let session = EditSession(engine: modelOptions.engine(m), tokenizer: tok)
            try session.feed(context)
            var info: PackEdit?
            var report = try editReport(session: session, query: query, old: old ?? a, new: new ?? b, controls: controls) {
                let r = try session.edit(pack: p, entity: entity, from: a, to: b, options: options,
                                         probeTemplate: probe, preferComposed: composed)
                info = r
                return r.applied
            }
            if let info {
                report["pack"] = ["file": pack, "name": p.name, "source": info.source.rawValue, "entity": entity,
                                  "from": info.from, "to": info.to, "old_probe": info.oldProbe, "new_probe": info.newProbe] as [String: Any]
            }
            if json { try printJSON(report) } else {
                if let info { print("pack \(p.name): \(entity): \(info.from) → \(info.to) (u₁ from \(info.source.rawValue) entry; probes \"\(info.oldProbe)\" / \"\(info.newProbe)\")") }
                printEditReport(report)
            }
        }
    }
}
