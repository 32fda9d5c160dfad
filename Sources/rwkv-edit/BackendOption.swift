import ArgumentParser
import Foundation
import RWKVEdit
import RWKVVulkan

/// `--backend cpu|vulkan|auto`. `auto` uses Vulkan on a hardware GPU and the CPU engine when the only
/// Vulkan device is a software driver (lavapipe/llvmpipe: correct but slower than the CPU engine) or
/// when Vulkan is unavailable. `vulkan` forces Vulkan, software drivers included, and fails with a
/// typed error when it cannot start. RWKV_VULKAN_DEVICE=<index|name> picks the device.
enum Backend: String, ExpressibleByArgument, CaseIterable {
    case cpu, vulkan, auto
}

func makeEngine(model: RWKVModel, backend: Backend, threads: Int?) throws -> any Engine {
    switch backend {
    case .cpu:
        return CPUEngine(model: model, threads: threads)
    case .vulkan:
        return try VulkanEngine(model: model)
    case .auto:
        let dev: VulkanDeviceInfo
        do { dev = try VulkanEngine.selectDevice() } catch {
            // No loader, no driver or no device: expected on most machines, but said, so that a GPU
            // machine that silently runs on the CPU can be told apart.
            FileHandle.standardError.write(Data("note: no Vulkan device (\(error)); using the CPU engine\n".utf8))
            return CPUEngine(model: model, threads: threads)
        }
        guard !dev.isSoftware else { return CPUEngine(model: model, threads: threads) }
        do {
            return try VulkanEngine(model: model)
        } catch {
            FileHandle.standardError.write(Data("note: Vulkan on \(dev.name) failed (\(error)); using the CPU engine\n".utf8))
            return CPUEngine(model: model, threads: threads)
        }
    }
}

/// `makeEngine` for commands whose engine accessor does not throw: a failure prints the typed error
/// the way `reportingErrors` does and exits with status 1.
func makeEngineOrExit(model: RWKVModel, backend: Backend, threads: Int?) -> any Engine {
    do {
        return try makeEngine(model: model, backend: backend, threads: threads)
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        exit(1)
    }
}
