import ArgumentParser
import EditPacks
import Foundation
import RWKV
import StateEdit

struct PacksCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "packs",
        abstract: "List, inspect, verify and merge edit packs.",
        subcommands: [List.self, Inspect.self, Verify.self, Merge.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a pack's entries (or, for several packs, one line each).")
        @Argument(help: "Pack files.") var packs: [String]
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() throws {
            try reportingPackErrors {
                var out: [[String: Any]] = []
                for path in packs {
                    let p = try EditPack(path: path)
                    let vs = try p.values()
                    let c = try p.counts()
                    let m = p.manifest
                    let names: [String] = vs.map { $0.name }
                    let row: [String: Any] = ["file": path, "name": p.name, "status": p.status.rawValue, "values": names,
                                              "pairs": c["pair_entries"] ?? 0, "template": m.template, "layers": m.layers, "dtype": m.dtype.rawValue]
                    out.append(row)
                    if !json {
                        print("\(path): \(p.name) [\(p.status.rawValue)] \(vs.count) values, \(c["pair_entries"] ?? 0) pairs, template \"\(m.template)\", layers \(m.layers[0])-\(m.layers[1]), \(m.dtype.rawValue)")
                        if packs.count == 1 {
                            let shown: [String] = vs.map { v in v.name == v.surface ? v.name : "\(v.name) = \(v.surface)" }
                            print(shown.joined(separator: ", "))
                        }
                    }
                }
                if json {
                    let obj: [String: Any] = packs.count == 1 ? out[0] : ["packs": out]
                    try printJSON(obj)
                }
            }
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a pack's manifest, sizes, per-layer σ heat and composed-vs-pair cosines.")
        @Argument(help: "Pack file.") var pack: String
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() throws {
            try reportingPackErrors {
                let p = try EditPack(path: pack)
                let m = p.manifest
                let c = try p.counts()
                var obj: [String: Any] = ["file": pack, "status": p.status.rawValue, "counts": c]
                if let mj = try JSONSerialization.jsonObject(with: Data(m.json().utf8)) as? [String: Any] { obj["manifest"] = mj }
                let size = (try? FileManager.default.attributesOfItem(atPath: pack)[.size] as? Int) ?? 0
                obj["file_bytes"] = size
                if !json {
                    print("\(pack): pack '\(m.name)'\(m.property.map { " (\($0))" } ?? ""), schema \(m.schemaVersion), \(p.status.rawValue), \(size) bytes")
                    print("model \(m.model.file) fingerprint \(m.model.fingerprint.prefix(16))…  \(m.model.nLayer) layers × \(m.nHead) heads of \(m.headSize)")
                    print("template \"\(m.template)\"  probe \(m.probeTemplate.map { "\"\($0)\"" } ?? "none")  layers \(m.layers[0])-\(m.layers[1])  dtype \(m.dtype.rawValue)  created \(m.createdAt)")
                    print("rows: \(c.keys.sorted().map { "\($0) \(c[$0] ?? 0)" }.joined(separator: ", "))")
                }
                guard p.status == .complete else {
                    if json { try printJSON(obj) } else { print("(unfinished compile: no entries to inspect yet)") }
                    return
                }
                let bytes = try p.storedBytes()
                let nv = max(c["vocab"] ?? 1, 1)
                obj["bytes_per_value"] = Double(bytes.vocab) / Double(nv)
                obj["bytes_per_pair"] = (c["pair_entries"] ?? 0) > 0 ? Double(bytes.pairs) / Double(c["pair_entries"] ?? 1) : 0
                let heat = try p.sigmaHeat()
                obj["sigma_heat"] = heat
                let cos = try p.composedVsPairCosine()
                if cos.pairs > 0 {
                    obj["composed_vs_pair_cosine"] = ["pairs": cos.pairs, "mean": cos.perHead.values.reduce(0, +) / Double(max(cos.perHead.count, 1)),
                                                      "per_layer": heat.indices.map { l in (0..<m.nHead).map { h in cos.perHead[HeadIndex(layer: m.layers[0] + l, head: h)] ?? 0 } }] as [String: Any]
                }
                if json { try printJSON(obj); return }
                print(String(format: "storage: %.0f bytes per value, %.0f bytes per pair (compressed)", obj["bytes_per_value"] as? Double ?? 0, obj["bytes_per_pair"] as? Double ?? 0))
                let mx = heat.flatMap { $0 }.max() ?? 1
                let shades = Array(" ░▒▓█")
                print("mean σ per head (‖σ_X u_X‖ over values; shade relative to max \(String(format: "%.3g", mx))):")
                print("layer  " + (0..<m.nHead).map { h -> String in let t = "h\(h)"; return String(repeating: " ", count: max(0, 8 - t.count)) + t }.joined())
                for (l, row) in heat.enumerated() {
                    let cells = row.map { v -> String in
                        let s = shades[min(shades.count - 1, Int((v / max(mx, 1e-30)) * Double(shades.count - 1) + 0.5))]
                        return String(format: "%7.3g", v) + String(s)
                    }
                    print(String(format: "%5d  ", m.layers[0] + l) + cells.joined())
                }
                if cos.pairs > 0 {
                    print("composed vs pair u₁, mean |cos| over \(cos.pairs) pairs:")
                    for l in heat.indices {
                        let row = (0..<m.nHead).map { String(format: "%8.3f", cos.perHead[HeadIndex(layer: m.layers[0] + l, head: $0)] ?? 0) }
                        print(String(format: "%5d  ", m.layers[0] + l) + row.joined())
                    }
                }
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check every blob decompresses and matches its checksum (and, with --model, the fingerprint).")
        @Argument(help: "Pack files.") var packs: [String]
        @Option(name: .long, help: "Also check the packs were compiled for this model.") var model: String?
        @Option(name: .long, help: "World vocabulary (tokenizer) file for --model.") var tokenizer: String?
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() throws {
            try reportingPackErrors {
                var loaded: (RWKVModel, WorldTokenizer)?
                if let model {
                    let mo = try ModelOptions.parse(["--model", model] + (tokenizer.map { ["--vocab", $0] } ?? []))
                    let m = try mo.loadModel()
                    loaded = (m, try mo.tokenizer(for: m))
                }
                var out: [[String: Any]] = []
                for path in packs {
                    let p = try EditPack(path: path)
                    let n = try p.verify()
                    if let (m, t) = loaded { try p.requireModel(m, tokenizer: t) }
                    out.append(["file": path, "blobs": n, "ok": true, "fingerprint_checked": loaded != nil])
                    if !json { print("\(path): ok, \(n) blobs verified\(loaded != nil ? ", fingerprint matches" : "")") }
                }
                if json { try printJSON(["packs": out]) }
            }
        }
    }

    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Merge the shards of one compile (--shard i/n) into a finished pack.")
        @Argument(help: "Shard files.") var shards: [String]
        @Option(name: .shortAndLong, help: "Output pack file.") var output: String
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() throws {
            try reportingPackErrors {
                let r = try PackCompiler.merge(shards: shards, output: output)
                if json {
                    try printJSON(["output": r.path, "status": r.status.rawValue, "pairs": r.pairCount, "bytes_per_value": r.bytesPerValue ?? 0,
                                   "seconds_svd": r.svdSeconds, "seconds_storage": r.storageSeconds])
                } else {
                    print("\(r.path): \(r.status.rawValue) (\(shards.count) shards merged, \(r.pairCount) pairs)")
                }
            }
        }
    }
}
