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

    @Option(name: .long, help: "Query whose answer should change (default: the pack's @query for the entity, e.g. \"Where does Bob live? Bob lives in\").")
    var query: String?

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
            let options = try methodOptions.editOptions(defaultRatio: modelOptions.card().ratios.edit)
            let (entity, a, b) = try EditPack.parseEdit(edit)
            let p = try EditPack(path: pack)
            let m = try modelOptions.loadModel()
            let tok = try modelOptions.tokenizer(for: m)
            try p.requireModel(m, tokenizer: tok)
            let session = EditSession(engine: modelOptions.engine(m), tokenizer: tok)
            try session.feed(context)
            var info: PackEdit?
            guard let q = query ?? p.manifest.queryTemplate.map({ fillTemplate($0, value: "", entity: entity) }) else {
                throw PackError.invalidInput("give --query (pack \(pack) has no @query template)")
            }
            // Answers default to the values' surface texts (an alias "NYC = New York" is answered "New York").
            let values = try p.values()
            func surface(_ w: String) throws -> String { let n = try p.resolve(w); return values.first { $0.name == n }?.surface ?? n }
            var report = try editReport(session: session, query: q, old: try old ?? surface(a), new: try new ?? surface(b), controls: controls) {
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

/// The chat's `/edit PACK Entity: A -> B` form (ChatCommand's /edit calls `packEdit` first).
/// PACK is a pack file, or a name looked up as packs/NAME.rwkvpack (from the working directory, then
/// beside the model's folder); options after the edit (`--method`, `--ratio`, …) as in the other form.
enum ChatPacks {
    /// Opens a pack given as a file or as a name looked up as packs/NAME.rwkvpack (from the working
    /// directory, then beside the model's folder).
    static func open(_ name: String, modelPath: String) throws -> EditPack {
        let modelDir = URL(fileURLWithPath: modelPath).deletingLastPathComponent()
        let candidates = [name, "packs/\(name).rwkvpack", modelDir.appendingPathComponent("../packs/\(name).rwkvpack").path,
                          modelDir.appendingPathComponent("\(name).rwkvpack").path]
        guard let path = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw PackError.unreadable(file: name, reason: "no such pack (looked for \(candidates.dropFirst().joined(separator: ", ")))")
        }
        return try EditPack(path: path)
    }
}

extension ChatLoop {
    /// Handles `/edit PACK Entity: A -> B [--method m] [--ratio r] …`; returns nil when the line is
    /// the two-sentence form, else a one-line description of the applied edit.
    mutating func packEdit(_ line: String) throws -> String? {
        let body = line.dropFirst("/edit".count).trimmingCharacters(in: .whitespaces)
        guard !body.hasPrefix("\""), !body.hasPrefix("'"), body.contains(":"), body.contains("->") || body.contains("→") else { return nil }
        let args = try ShellWords.split(body)
        let optStart = args.firstIndex { $0.hasPrefix("--") } ?? args.count
        let (_, opts) = try SlashOptions.parse(Array(args[optStart...]), defaultRatio: ratios.edit)
        guard optStart >= 2 else { throw EditError.invalid("usage: /edit PACK Entity: A -> B [--method m] [--ratio r]") }
        let pack = try packs[args[0]] ?? ChatPacks.open(args[0], modelPath: session.engine.model.path)
        packs[args[0]] = pack
        let (entity, a, b) = try EditPack.parseEdit(args[1..<optStart].joined(separator: " "))
        let r = try session.edit(pack: pack, entity: entity, from: a, to: b, options: opts)
        let e = r.applied
        return "applied \(e.method.rawValue) with pack \(pack.name) (\(r.source.rawValue) u₁): \(entity): \(r.from) → \(r.to), "
            + String(format: "α = %.4f over %d heads", e.alpha, e.heads.count) + " (probes \"\(r.oldProbe)\" / \"\(r.newProbe)\")"
    }
}
