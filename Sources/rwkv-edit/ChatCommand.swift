import ArgumentParser
import Foundation
import RWKVEdit

struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Chat with a model and edit what it remembers (type /help). Works in a terminal and in a pipe.")

    @OptionGroup var modelOptions: ModelOptions

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
            // A script must not pass for a clean run: in a pipe, any failed line fails the process.
            if !interactive && chat.failures > 0 {
                let n = chat.failures
                FileHandle.standardError.write(Data("error: \(n) command\(n == 1 ? "" : "s") failed (first on line \(chat.firstFailureLine ?? 0)); exit status 1\n".utf8))
                throw ExitCode.failure
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

    init(session: EditSession, maxTokens: Int, sampler: Sampler, ratios: DefaultRatios = .seed) {
        self.session = session; self.maxTokens = maxTokens; self.sampler = sampler; self.ratios = ratios
    }

    static let help = """
    Lines without a slash are your turn in the conversation ("User: …"); the model replies.
      /feed TEXT                         add TEXT to the conversation as is (no reply)
      /ask TEXT                          continue TEXT without changing the conversation
      /edit "old fact" "new fact" [--method m] [--ratio r] [--alpha a] [--layers a-b]
                                         change a fact (default hyb-u, the model's edit ratio)
      /edit PACK Entity: A -> B [--method m] change a fact by name with an edit pack (e.g. /edit cities Bob: Austin -> Chicago)
      /forget "fact" "entity" [--ratio r] remove a property, keep the entity (the model's forget ratio)
      /erase "fact" [--ratio r]          erase a fact towards a neutral sentence (the model's erase ratio)
      /undo                              undo the latest edit exactly
      /state                             WKV norm per layer
      /save FILE, /load FILE             save or load the state (safetensors)
      /help, /quit
    A failed line prints "error: …" and the session goes on; when input is piped (not a terminal),
    the process then exits with status 1 if any line failed, so scripts can tell.
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
        let args = try ShellWords.split(line)
        guard let name = args.first else { return true }
        let rest = Array(args.dropFirst())
        switch name {
        case "/quit", "/exit":
            return false
        case "/help":
            print(Self.help)
        case "/feed":
            try session.feed(line.dropFirst("/feed".count).trimmingCharacters(in: .whitespaces))
            print("ok")
        case "/ask":
            let text = String(line.dropFirst("/ask".count).trimmingCharacters(in: .whitespaces))
            let reply = try session.generate(after: text, maxTokens: maxTokens, stop: "\n", commit: false, sampler: sampler)
            print(text + reply)
        case "/edit":
            if let done = try packEdit(line) { print(done); break }   // /edit PACK Entity: A -> B (ApplyCommand.swift)
            let (pos, opts) = try SlashOptions.parse(rest, defaultRatio: ratios.edit)
            guard pos.count == 2 else { throw EditError.invalid("usage: /edit \"old fact\" \"new fact\" [--method m] [--ratio r]") }
            describe(try session.edit(from: pos[0], to: pos[1], options: opts))
        case "/forget":
            let (pos, opts) = try SlashOptions.parse(rest, defaultRatio: ratios.forget)
            guard pos.count == 2 else { throw EditError.invalid("usage: /forget \"fact\" \"entity\" [--ratio r]") }
            describe(try session.forget(fact: pos[0], entity: pos[1], options: opts))
        case "/erase":
            let (pos, opts) = try SlashOptions.parse(rest, defaultRatio: ratios.erase)
            guard pos.count == 1 else { throw EditError.invalid("usage: /erase \"fact\" [--ratio r]") }
            describe(try session.erase(fact: pos[0], options: opts))
        case "/undo":
            print("undone: \(try session.undo())")
        case "/state":
            let s = session.state
            for l in 0..<s.nLayer { print(String(format: "layer %2d  ‖S‖ = %.4f", l, s.wkvNorm(layers: l..<(l + 1)))) }
            print(String(format: "all       ‖S‖ = %.4f   (%d edits on the undo stack)", s.wkvNorm(), session.undoStack.count))
        case "/save":
            guard rest.count == 1 else { throw EditError.invalid("usage: /save FILE") }
            try session.state.save(to: rest[0])
            print("saved \(rest[0])")
        case "/load":
            guard rest.count == 1 else { throw EditError.invalid("usage: /load FILE") }
            try session.replaceState(try State.load(from: rest[0], config: session.engine.config))
            turns = max(turns, 1)
            print("loaded \(rest[0])")
        default:
            throw EditError.invalid("unknown command \(name); type /help")
        }
        return true
    }

    private func describe(_ e: AppliedEdit) {
        let layers = Set(e.heads.map(\.layer)).sorted()
        print(String(format: "applied %@: α = %.4f over %d heads in layers %d-%d (‖Δ‖ %.3f, ‖S‖ %.3f)",
                     e.method.rawValue, e.alpha, e.heads.count, layers.first ?? 0, layers.last ?? 0, e.deltaNorm, e.stateNorm))
    }
}

/// `--method m --ratio r --alpha a --layers a-b --heads 0,1` after the positional arguments of a slash command.
enum SlashOptions {
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
            case "--heads":
                let v = try value("--heads")
                let hs = v.split(separator: ",").compactMap { Int($0) }
                guard !hs.isEmpty else { throw EditError.invalid("--heads needs comma-separated integers, got '\(v)'") }
                o.heads = hs
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
