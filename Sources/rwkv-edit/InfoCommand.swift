import ArgumentParser
import Foundation
import RWKVEdit

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Describe a model file: architecture, size, dtype, format.")

    @Option(name: .long, help: "Model file (.pth, .safetensors or .gguf).")
    var model: String

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    /// What `info` prints, in this order as text ("n_layer  6") or as one JSON object.
    struct Report: Encodable {
        let file, format, architecture: String
        let nLayer, nEmbd, nHead, headSize, vocabSize, ffnSize: Int
        let loraW, loraA, loraV, loraG: Int
        let parameters: Int
        let dtype, weightTypes, kernels: String

        init(_ m: RWKVModel) {
            let c = m.config
            file = m.path; format = m.format.rawValue; architecture = "rwkv7 (x070)"
            nLayer = c.nLayer; nEmbd = c.nEmbd; nHead = c.nHead; headSize = c.headSize; vocabSize = c.vocabSize; ffnSize = c.ffnSize
            loraW = c.loraW; loraA = c.loraA; loraV = c.loraV; loraG = c.loraG
            parameters = m.parameterCount; dtype = m.weightDType.rawValue; weightTypes = m.weightTypes; kernels = KernelPath.current.rawValue
        }
    }

    func run() throws {
        try reportingErrors {
            let report = Report(try ModelLoader.load(path: model, placement: .mapped))
            if json {
                try printJSON(report)
            } else {
                // The fields in declaration order, named as in the JSON.
                for field in Mirror(reflecting: report).children {
                    print(snakeCase(field.label ?? "").padding(toLength: 14, withPad: " ", startingAt: 0), field.value)
                }
            }
        }
    }
}
