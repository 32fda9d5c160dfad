import Foundation

/// Why the Vulkan engine could not start or run. Each case says what to do next; callers that can
/// (the CLI's `--backend auto`) fall back to the CPU engine.
public enum VulkanError: Error, CustomStringConvertible, Equatable {
    /// No Vulkan loader library (libvulkan.so.1) on this machine.
    case loaderUnavailable(String)
    /// The loader works but no driver exposes a usable compute device.
    case noDevice(String)
    /// RWKV_VULKAN_DEVICE (or an explicit selector) names no device.
    case deviceNotFound(selector: String, available: [String])
    /// The model does not fit the device's memory.
    case outOfDeviceMemory(neededBytes: Int, availableBytes: Int, device: String)
    /// A Vulkan call failed.
    case call(function: String, result: Int32)
    /// The model has a shape the shaders do not handle.
    case unsupportedModel(String)
    /// An embedded shader could not be loaded.
    case shader(String)

    public var description: String {
        switch self {
        case .loaderUnavailable(let why):
            return "no Vulkan loader: \(why). Install the loader and a driver (Debian: libvulkan1 mesa-vulkan-drivers) or use --backend cpu."
        case .noDevice(let why):
            return "no Vulkan device: \(why). Install a Vulkan driver (Debian: mesa-vulkan-drivers), check VK_ICD_FILENAMES, or use --backend cpu."
        case .deviceNotFound(let s, let avail):
            return "no Vulkan device matches '\(s)' (RWKV_VULKAN_DEVICE takes an index or part of a name); available: "
                + (avail.isEmpty ? "none" : avail.enumerated().map { "\($0.offset): \($0.element)" }.joined(separator: ", "))
        case .outOfDeviceMemory(let need, let have, let dev):
            return "the model needs \(need >> 20) MiB of device memory but \(dev) has \(have >> 20) MiB; use a smaller model, another device (RWKV_VULKAN_DEVICE) or --backend cpu."
        case .call(let f, let r):
            return "Vulkan call \(f) failed with VkResult \(r)" + (r == -2 || r == -1 ? " (out of memory); try fewer sequences per batch or --backend cpu." : ".")
        case .unsupportedModel(let why):
            return "the Vulkan engine cannot run this model: \(why); use --backend cpu."
        case .shader(let why):
            return "Vulkan shader error: \(why); rebuild with scripts/build-shaders.sh."
        }
    }
}
