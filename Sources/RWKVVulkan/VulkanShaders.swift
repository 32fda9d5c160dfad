import Foundation

/// The SPIR-V the engine embeds (generated into SPIRV.swift by scripts/build-shaders.sh from
/// shaders/*.comp), by shader name; tests compare it with the committed .spv files.
public enum VulkanShaders {
    public static var names: [String] { SPIRV.base64.keys.sorted() }
    public static func spirv(_ name: String) -> Data? { SPIRV.base64[name].flatMap { Data(base64Encoded: $0) } }
}
