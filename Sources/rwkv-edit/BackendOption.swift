import ArgumentParser
import Foundation
import RWKVEdit
import RWKVVulkan

/// `--backend cpu|vulkan|auto`. `auto` uses Vulkan on a hardware GPU and the CPU engine when the only
/// Vulkan device is a software driver (lavapipe/llvmpipe: correct but slower than the CPU engine) or
/// when Vulkan is unavailable. `vulkan` forces Vulkan, software drivers included, and fails with a
/// typed error when it cannot start. RWKV_VULKAN_DEVICE=<index|name> picks the device.
func makeEngine(model: RWKVModel, backend: String, threads: Int?) throws -> any Engine {
    switch backend.lowercased() {
    case "cpu":
        return CPUEngine(model: model, threads: threads)
    case "vulkan", "gpu":
        return try VulkanEngine(model: model)
    case "auto":
        guard let dev = try? VulkanEngine.selectDevice(), !dev.isSoftware else {
            return CPUEngine(model: model, threads: threads)
        }
        do {
            return try VulkanEngine(model: model)
        } catch {
            FileHandle.standardError.write(Data("note: Vulkan on \(dev.name) failed (\(error)); using the CPU engine\n".utf8))
            return CPUEngine(model: model, threads: threads)
        }
    default:
        throw ValidationError("unknown --backend \(backend); use cpu, vulkan or auto")
    }
}

/// `makeEngine` for commands whose engine accessor does not throw: a failure prints the typed error
/// the way `reportingErrors` does and exits with status 1.
func makeEngineOrExit(model: RWKVModel, backend: String, threads: Int?) -> any Engine {
    do {
        return try makeEngine(model: model, backend: backend, threads: threads)
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        exit(1)
    }
}
