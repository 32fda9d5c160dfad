import ArgumentParser
import Foundation
import RWKVEdit

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Describe a model file: architecture, size, dtype, format.")

    @Option(name: .long, help: "Model file (.pth, .safetensors or .gguf).")
    var model: String

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    func run() throws {
        try reportingErrors {
            let m = try ModelLoader.load(path: model)
            let c = m.config
            let fields: [(String, Any)] = [
                ("file", m.path), ("format", m.format.rawValue), ("architecture", "rwkv7 (x070)"),
                ("n_layer", c.nLayer), ("n_embd", c.nEmbd), ("n_head", c.nHead), ("head_size", c.headSize),
                ("vocab_size", c.vocabSize), ("ffn_size", c.ffnSize),
                ("lora_w", c.loraW), ("lora_a", c.loraA), ("lora_v", c.loraV), ("lora_g", c.loraG),
                ("parameters", m.parameterCount), ("dtype", m.weightDType.rawValue),
                ("weight_types", m.weightTypes), ("kernels", KernelPath.current.rawValue),
            ]
            if json {
                try printJSON(Dictionary(uniqueKeysWithValues: fields))
            } else {
                for (k, v) in fields { print(k.padding(toLength: 14, withPad: " ", startingAt: 0), v) }
            }
        }
    }
}
