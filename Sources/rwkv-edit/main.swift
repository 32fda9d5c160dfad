import ArgumentParser

struct RWKVEdit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rwkv-edit",
        abstract: "Run RWKV-7 models and edit the facts held in their recurrent state.",
        subcommands: [InfoCommand.self, LogitsCommand.self, StateCommand.self, GenerateCommand.self, BenchCommand.self,
                      EditCommand.self, ChatCommand.self, SVDCommand.self, PatchCommand.self, CompileCommand.self, PacksCommand.self, ApplyCommand.self, EvalCommand.self, BenchVulkanCommand.self]
    )
}

RWKVEdit.main()
