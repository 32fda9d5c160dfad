import ArgumentParser
import CLapacke

struct RWKVEditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rwkv-edit",
        abstract: "Run RWKV-7 models and edit the facts held in their recurrent state.",
        version: "0.4.0",
        subcommands: [InfoCommand.self, LogitsCommand.self, StateCommand.self, GenerateCommand.self, BenchCommand.self,
                      EditCommand.self, ChatCommand.self, SVDCommand.self, PatchCommand.self, CompileCommand.self, PacksCommand.self, ApplyCommand.self, EvalCommand.self, BenchVulkanCommand.self]
    )
}

// The tool's own choice, not the library's: the engines and the pack compiler split work over their
// own threads, so OpenBLAS (used by the compiler's Gram matrices) runs single-threaded inside them.
openblas_set_num_threads(1)
Misspellings.exitIfMisspelt(Array(CommandLine.arguments.dropFirst()), root: RWKVEditCommand.self)
RWKVEditCommand.main()
