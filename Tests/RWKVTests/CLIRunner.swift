import Foundation
import XCTest

/// Runs the `rwkv-edit` executable built beside the test runner as a subprocess, the way users and
/// scripts run it.
enum CLI {
    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// The test runner (…/release/rwkv-editPackageTests.xctest) sits beside the executable.
    static var binary: URL {
        URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("rwkv-edit")
    }

    /// The message of an error on stderr, whether printed as "error: …" or, under --json, as
    /// {"error": …, "kind": …}.
    static func errorMessage(_ stderr: String) -> String {
        if let obj = try? JSONSerialization.jsonObject(with: Data(stderr.utf8)) as? [String: Any], let e = obj["error"] as? String { return e }
        return stderr.hasPrefix("error: ") ? String(stderr.dropFirst("error: ".count).dropLast(stderr.hasSuffix("\n") ? 1 : 0)) : stderr
    }

    static func requireBinary() throws {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw XCTSkip("rwkv-edit binary not built next to the tests (\(binary.path)); run `swift build` first")
        }
    }

    /// `environment` entries are added to the test's own environment.
    static func run(_ args: [String], stdin: String? = nil, environment: [String: String] = [:]) throws -> Result {
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        if !environment.isEmpty {
            p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        try p.run()
        if let stdin { inp.fileHandleForWriting.write(Data(stdin.utf8)) }
        try inp.fileHandleForWriting.close()
        // Read both pipes at once so a full stderr pipe cannot block the child.
        final class Box: @unchecked Sendable { var data = Data() }
        let errData = Box()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { errData.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                      stderr: String(decoding: errData.data, as: UTF8.self))
    }

    static func json(_ s: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any], "not a JSON object: \(s.prefix(300))")
    }
}
