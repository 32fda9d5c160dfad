import ArgumentParser
import Foundation
import RWKVEdit

struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Chat with a model and edit what it remembers (type /help). Works in a terminal and in a pipe.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var stateFiles: StateFileOptions

    @Option(name: .long, help: "Edit pack to use in `/edit NAME Entity: A -> B` (repeatable; packs/NAME.rwkvpack is also found by name).")
    var pack: [String] = []

    @Option(name: .long, help: "Most tokens per reply.")
    var maxTokens = 48

    @Option(name: .long, help: "Sampling temperature for replies; 0 is greedy.")
    var temperature: Float = 0

    @Option(name: .long, help: "Random seed for sampling.")
    var seed: UInt64 = 42

    func run() throws {
        try reportingErrors {
            let m = try modelOptions.loadModel()
            let session = EditSession(engine: modelOptions.engine(m), tokenizer: try modelOptions.tokenizer(for: m))
            try stateFiles.resume(session)
            var chat = ChatLoop(session: session, maxTokens: maxTokens, sampler: Sampler(temperature: temperature, seed: seed),
                                ratios: try modelOptions.card().ratios)
            for path in pack {
                // Known both by its file path and by the name stored in it.
                let p = try EditPack.open(path, shippedIn: ModelCard.beside(modelPath: m.path).packsFolder)
                chat.packs[path] = p
                chat.packs[p.name] = p
            }
            let interactive = isatty(0) == 1
            if interactive { print("rwkv-edit chat — \(m.config.nLayer) layers, \(m.config.nHead) heads per layer. Type /help for commands.") }
            while true {
                if interactive { print("> ", terminator: ""); fflush(stdout) }
                // readLine strips "\n" and "\r\n" alike, so a CRLF script reads as an LF one.
                guard let line = readLine(strippingNewline: true) else { break }
                if !chat.handle(line) { break }
            }
            try stateFiles.save(session)
            // A script must not pass for a clean run: in a pipe, any failed line fails the process (1),
            // and an edit that did not verify does too (2), as it would in `edit` or `apply`.
            if !interactive && chat.failures > 0 {
                let n = chat.failures
                FileHandle.standardError.write(Data("error: \(n) command\(n == 1 ? "" : "s") failed (first on line \(chat.firstFailureLine ?? 0)); exit status 1\n".utf8))
                throw ExitCode.failure
            }
            if !interactive && chat.unverifiedEdits > 0 {
                FileHandle.standardError.write(Data("error: \(chat.unverifiedEdits) edit(s) did not verify; exit status 2\n".utf8))
                throw ExitCode(2)
            }
        }
    }
}

/// The REPL: conversation lines and slash commands acting on one `EditSession`.
struct ChatLoop {
    let session: EditSession
    let maxTokens: Int
    let sampler: Sampler
    /// Default ratios of `/edit`, `/forget` and `/erase` (the model card's, else the seed's).
    let ratios: DefaultRatios
    /// Packs opened so far, by the name used in `/edit NAME …`.
    var packs: [String: EditPack] = [:]
    /// Lines whose command or turn failed, and the first of them (1-based), for the exit status of a piped session.
    private(set) var failures = 0
    private(set) var firstFailureLine: Int?
    private var lineNumber = 0
    private var turns = 0
    /// Edits that did not verify: a piped session then ends with status 2.
    var unverifiedEdits = 0

    init(session: EditSession, maxTokens: Int, sampler: Sampler, ratios: DefaultRatios = .seed) {
        self.session = session; self.maxTokens = maxTokens; self.sampler = sampler; self.ratios = ratios
        // A resumed conversation already has turns: the next one is separated from it.
        turns = session.tokensFed > 0 ? 1 : 0
    }

    static let help = """
    Lines without a slash are your turn in the conversation ("User: …"); the model replies.
      /feed TEXT                         add TEXT to the conversation as is (no reply)
      /ask TEXT                          continue TEXT to the end of its sentence without changing the conversation
      /edit "old fact" "new fact" [--method m] [--ratio r] [--alpha a] [--layers a-b]
                                         change a fact (default hyb-u, the model's edit ratio; verified
                                         and its strength searched when a loaded pack describes the fact)
      /edit PACK Entity: A -> B [--method m] change a fact by name with an edit pack (e.g. /edit cities Bob: Austin -> Chicago)
      /forget "fact" "entity" [--ratio r] remove a property, keep the entity (the model's forget ratio)
      /erase "fact" [--ratio r]          erase a fact towards a neutral sentence (the model's erase ratio)
      /undo                              undo the latest edit exactly
      /state                             WKV norm per layer
      /save FILE, /load FILE             save or load the state (format from the extension, any format loads;
                                         the native file carries the model's identity, edit log and checksum)
      /help, /quit
    A failed line prints "error: …" and the session goes on; when input is piped (not a terminal),
    the process then exits with status 1 if any line failed, else 2 if an edit did not verify.
    """

    /// Handles one input line; false ends the loop.
    mutating func handle(_ raw: String) -> Bool {
        lineNumber += 1
        let line = raw.trimmingCharacters(in: .whitespaces)
        if line.isEmpty { return true }
        do {
            if line.hasPrefix("/") { return try command(line) }
            let prompt = (turns == 0 ? "" : "\n\n") + "User: " + line + "\n\nAssistant:"
            let reply = try session.generate(after: prompt, maxTokens: maxTokens, stop: "\n\n", commit: true, sampler: sampler)
            turns += 1
            print("Assistant:" + reply)
        } catch {
            print("error: \(error)")
            failures += 1
            if firstFailureLine == nil { firstFailureLine = lineNumber }
        }
        return true
    }

    private mutating func command(_ line: String) throws -> Bool {
        let session = self.session  // captured by the edit closures below while self is mutated
        // /feed and /ask take the rest of the line as it is ("Bob's cat…" has no quote to close).
        let name = String(line.prefix { !$0.isWhitespace })
        let text = String(line.dropFirst(name.count).trimmingCharacters(in: .whitespaces))
        let rest = ["/feed", "/ask"].contains(name) ? [] : Array(try ShellWords.split(line).dropFirst())
        switch name {
        case "/quit", "/exit":
            return false
        case "/help":
            print(Self.help)
        case "/feed":
            try session.feed(text)
            print("ok")
        case "/ask":
            let reply = try session.generate(after: text, maxTokens: maxTokens, stop: "\n", endAtSentence: true, commit: false, sampler: sampler)
            print(text + reply)
        case "/edit":
            if let done = try packEdit(line) { print(done); break }   // /edit PACK Entity: A -> B (ApplyCommand.swift)
            let (pos, opts) = try SlashOptions.parse(rest, defaultRatio: ratios.edit)
            guard pos.count == 2 else { throw EditError.invalid("usage: /edit \"old fact\" \"new fact\" [--method m] [--ratio r]") }
            print(try sentenceEdit("edit \"\(pos[0])\" → \"\(pos[1])\"", fact: pos[0], change: .edit(to: pos[1]), options: opts,
                                   fixed: SlashOptions.fixesStrength(rest), recover: !rest.contains("--method"),
                                   unverified: { try session.edit(from: pos[0], to: pos[1], options: opts) }))
        case "/forget":
            let (pos, opts) = try SlashOptions.parse(rest, defaultRatio: ratios.forget)
            guard pos.count == 2 else { throw EditError.invalid("usage: /forget \"fact\" \"entity\" [--ratio r]") }
            print(try sentenceEdit("forget \"\(pos[0])\"", fact: pos[0], change: .forget(entity: pos[1]), options: opts,
                                   fixed: SlashOptions.fixesStrength(rest), recover: !rest.contains("--method"),
                                   unverified: { try session.forget(fact: pos[0], entity: pos[1], options: opts) }))
        case "/erase":
            let (pos, opts) = try SlashOptions.parse(rest, defaultRatio: ratios.erase)
            guard pos.count == 1 else { throw EditError.invalid("usage: /erase \"fact\" [--ratio r]") }
            print(try sentenceEdit("erase \"\(pos[0])\"", fact: pos[0], change: .erase, options: opts,
                                   fixed: SlashOptions.fixesStrength(rest), recover: !rest.contains("--method"),
                                   unverified: { try session.erase(fact: pos[0], options: opts) }))
        case "/undo":
            print("undone: \(try session.undo())")
        case "/state":
            let s = session.state
            for l in 0..<s.nLayer { print(String(format: "layer %2d  ‖S‖ = %.4f", l, s.wkvNorm(layers: l..<(l + 1)))) }
            print(String(format: "all       ‖S‖ = %.4f   (%d edits on the undo stack)", s.wkvNorm(), session.undoStack.count))
        case "/save":
            guard rest.count == 1 else { throw EditError.invalid("usage: /save FILE") }
            let format = try saveSession(session, to: rest[0], format: nil)
            print("saved \(rest[0]) (\(session.tokensFed) tokens, \(session.editLog.count) edits\(format == .native ? "" : ", \(format.rawValue)"))")
        case "/load":
            guard rest.count == 1 else { throw EditError.invalid("usage: /load FILE") }
            let (saved, _) = try resumeSession(session, from: rest[0])
            turns = max(turns, 1)
            print("loaded \(rest[0])" + (saved.identity == nil ? " (no model identity or checksum to check: not saved by rwkv-edit)"
                                                             : " (\(saved.tokens) tokens, \(saved.edits.count) edits)"))
        default:
            throw EditError.invalid("unknown command \(name); type /help")
        }
        return true
    }
}

/// `--method m --ratio r --alpha a --layers a-b --heads 0,1` after the positional arguments of a slash command.
enum SlashOptions {
    /// Whether the arguments give a strength (--ratio or --alpha), which then is used as it is.
    static func fixesStrength(_ args: [String]) -> Bool { args.contains { $0 == "--ratio" || $0 == "--alpha" } }

    static func parse(_ args: [String], defaultRatio: Float) throws -> ([String], EditOptions) {
        var positional: [String] = []
        var o = EditOptions(ratio: defaultRatio)
        var i = 0
        func value(_ flag: String) throws -> String {
            i += 1
            guard i < args.count else { throw EditError.invalid("\(flag) needs a value") }
            return args[i]
        }
        func number(_ flag: String) throws -> Float {
            let v = try value(flag)
            guard let f = Float(v), f.isFinite else { throw EditError.invalid("\(flag) needs a number, got '\(v)'") }
            return f
        }
        while i < args.count {
            switch args[i] {
            case "--method": o.method = try EditMethod(name: try value("--method"))
            case "--ratio": o.ratio = try number("--ratio")
            case "--alpha": o.alpha = try number("--alpha")
            case "--layers": o.layers = try EditOptions.parseLayers(try value("--layers"))
            case "--heads": o.heads = try EditOptions.parseHeads(try value("--heads"))
            default: positional.append(args[i])
            }
            i += 1
        }
        return (positional, o)
    }
}

/// Splits a command line into words; double or single quotes group words, backslash escapes.
enum ShellWords {
    static func split(_ line: String) throws -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character?
        var escaped = false
        for c in line {
            if escaped { current.append(c); escaped = false; continue }
            if c == "\\" { escaped = true; inWord = true; continue }
            if let q = quote {
                if c == q { quote = nil } else { current.append(c) }
                continue
            }
            if c == "\"" || c == "'" { quote = c; inWord = true; continue }
            if c == " " || c == "\t" {
                if inWord { words.append(current); current = ""; inWord = false }
                continue
            }
            current.append(c)
            inWord = true
        }
        guard quote == nil else { throw EditError.invalid("unterminated quote in: \(line)") }
        if inWord { words.append(current) }
        return words
    }
}
