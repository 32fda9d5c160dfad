import ArgumentParser
import Foundation
import RWKVEdit

/// Misspelt subcommands and options, named with the nearest correct one. ArgumentParser reports a
/// misspelt subcommand as an unknown option further on, and a misspelt required option as a missing
/// one, neither of which points at the typo.
enum Misspellings {
    /// The message for the first misspelt subcommand or option in `args` (the arguments after the
    /// program name), or nil when every name is known or none is close to a known one.
    static func hint(_ args: [String], root: ParsableCommand.Type) -> String? {
        var command = root
        var path = ["rwkv-edit"]
        var index = 0
        // Subcommands first: words before the first option that name a subcommand.
        while index < args.count, !args[index].hasPrefix("-") {
            let subcommands = command.configuration.subcommands
            let names = subcommands.map(commandName)
            guard !names.isEmpty else { break }
            let word = args[index]
            guard let found = names.firstIndex(of: word) else {
                guard word != "help", let near = nearest(word, in: names + ["help"]) else { return nil }
                return "'\(word)' is not a subcommand of \(path.joined(separator: " ")); did you mean '\(near)'?"
            }
            command = subcommands[found]
            path.append(word)
            index += 1
        }
        // Options after a command with a default subcommand (`bench --model …`) are the default's.
        if let d = command.configuration.defaultSubcommand {
            command = d
            path.append(commandName(d))
        }
        let known = optionNames(of: command, root: root)
        for arg in args[index...] {
            if arg == "--" { break }
            guard arg.hasPrefix("--"), arg.count > 2 else { continue }
            let name = String(arg.prefix { $0 != "=" })
            guard !known.contains(name), let near = nearest(name, in: Array(known)) else { continue }
            return "unknown option '\(name)' for \(path.joined(separator: " ")); did you mean '\(near)'?"
        }
        return nil
    }

    static func commandName(_ command: ParsableCommand.Type) -> String {
        command.configuration.commandName ?? command._commandName
    }

    /// The long option names `command --help` lists (option groups included).
    static func optionNames(of command: ParsableCommand.Type, root: ParsableCommand.Type) -> Set<String> {
        let help = root.helpMessage(for: command, includeHidden: true, columns: 400)
        var names: Set<String> = ["--help", "--version"]
        var word = ""
        for c in help + " " {
            if c.isLetter || c.isNumber || c == "-" { word.append(c); continue }
            if word.hasPrefix("--"), word.count > 2 { names.insert(word) }
            word = ""
        }
        return names
    }

    /// The closest name within a third of the word's length (at least 1, at most 3 edits).
    static func nearest(_ word: String, in names: [String]) -> String? {
        let limit = min(3, max(1, word.count / 3))
        let scored = names.map { ($0, editDistance($0, word)) }.filter { $0.1 <= limit }
        return scored.min { $0.1 < $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }?.0
    }

    /// Prints the hint as errors are printed (JSON on stderr in a `--json` run) and exits with
    /// ArgumentParser's usage status.
    static func exitIfMisspelt(_ args: [String], root: ParsableCommand.Type) {
        guard let message = hint(args, root: root) else { return }
        printError(message, kind: "UsageError")
        exit(ExitCode.validationFailure.rawValue)
    }
}
