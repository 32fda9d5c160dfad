import CVulkan
import Foundation

/// A Vulkan physical device as the engine sees it.
public struct VulkanDeviceInfo: Sendable, CustomStringConvertible {
    public let index: Int
    public let name: String
    /// "discrete GPU", "integrated GPU", "virtual GPU", "CPU" or "other".
    public let kind: String
    /// A software rasterizer (lavapipe/llvmpipe, SwiftShader): correct but slow at matrix products.
    public let isSoftware: Bool
    public let maxStorageBufferRange: Int
    public let deviceLocalBytes: Int
    public let driverVersion: UInt32
    public let apiVersion: UInt32

    public var description: String {
        "\(name) (\(kind), Vulkan \(apiVersion >> 22).\((apiVersion >> 12) & 0x3ff), \(deviceLocalBytes >> 20) MiB)"
    }

    /// The order `auto` prefers: discrete, integrated, virtual, other, software.
    var preference: Int {
        if isSoftware { return 4 }
        switch kind {
        case "discrete GPU": return 0
        case "integrated GPU": return 1
        case "virtual GPU": return 2
        default: return 3
        }
    }
}

func check(_ r: VkResult?, _ function: String) throws {
    guard let r, r == VK_SUCCESS else { throw VulkanError.call(function: function, result: r?.rawValue ?? -13) }
}

/// A buffer with its own memory; mapped when host-visible.
final class VKBuffer {
    let buffer: VkBuffer
    let memory: VkDeviceMemory
    let size: Int
    let mapped: UnsafeMutableRawPointer?
    /// Strong: the device outlives every buffer made on it.
    private let ctx: VulkanContext

    /// Texel views (uvec4 elements) of windows of this buffer, made on first use.
    private struct Window: Hashable { let offset, range: Int }
    private var views: [Window: VkBufferView] = [:]

    init(ctx: VulkanContext, buffer: VkBuffer, memory: VkDeviceMemory, size: Int, mapped: UnsafeMutableRawPointer?) {
        self.ctx = ctx; self.buffer = buffer; self.memory = memory; self.size = size; self.mapped = mapped
    }

    /// A R32G32B32A32_UINT view of bytes offset..<offset+range (shaders read it with texelFetch).
    func texelView(offset: Int, range: Int) throws -> VkBufferView {
        let key = Window(offset: offset, range: range)
        if let v = views[key] { return v }
        let v = try ctx.makeTexelView(buffer, offset: offset, range: range)
        views[key] = v
        return v
    }

    var handleBits: UInt64 { UInt64(UInt(bitPattern: UnsafeRawPointer(buffer))) }

    func floats(_ count: Int, at offset: Int = 0) -> UnsafeMutablePointer<Float> {
        // Only called on host-visible buffers, whose creation guarantees `mapped`.
        mapped.unsafelyUnwrapped.assumingMemoryBound(to: Float.self) + offset
    }

    deinit {
        guard ctx.device != nil else { return }
        for (_, v) in views { ctx.fns.vkDestroyBufferView?(ctx.device, v, nil) }
        if mapped != nil { ctx.fns.vkUnmapMemory?(ctx.device, memory) }
        ctx.fns.vkDestroyBuffer?(ctx.device, buffer, nil)
        ctx.fns.vkFreeMemory?(ctx.device, memory, nil)
    }
}

/// One binding: a window of a buffer, bound as a storage buffer (a dispatch's `bindings`) or as a
/// uniform texel buffer of uvec4 (its `texels`, which need a VKBuffer to hold the view).
struct Binding {
    let buffer: VKBuffer?
    let handle: VkBuffer
    let offset: Int
    let range: Int
    init(_ b: VKBuffer, offset: Int = 0, range: Int? = nil) {
        buffer = b; handle = b.buffer; self.offset = offset; self.range = range ?? (b.size - offset)
    }
    init(raw: VkBuffer, range: Int) { buffer = nil; handle = raw; offset = 0; self.range = range }
    var handleBits: UInt64 { UInt64(UInt(bitPattern: UnsafeRawPointer(handle))) }
}

/// Instance, device, queue, memory, the shared pipeline layout, pipelines and descriptor sets.
/// Used under the engine's lock only.
final class VulkanContext {
    static let bindingCount = 11
    /// Uniform texel buffers (uvec4) follow the storage buffers: bindings 11…17. On llvmpipe a
    /// texel fetch is one vector gather, while a storage-buffer load runs lane by lane.
    static let texelBindingCount = 7
    static let pushBytes = 128

    var fns = RKVKFunctions()
    private(set) var instance: VkInstance?
    private(set) var device: VkDevice?
    let physical: VkPhysicalDevice
    let info: VulkanDeviceInfo
    let queueFamily: UInt32
    private(set) var queue: VkQueue?
    let memoryProperties: VkPhysicalDeviceMemoryProperties
    let minStorageOffsetAlignment: Int
    let maxWorkGroupCountX: Int
    /// Largest texel view, in uvec4 elements.
    let maxTexelBufferElements: Int
    let minTexelOffsetAlignment: Int
    /// Subgroup arithmetic in compute shaders with subgroups of ≤ 32 lanes (Vulkan 1.1).
    let subgroupArithmetic: Bool
    /// 64-bit integers in shaders (enabled when the device has them): wkv7.comp stores its state
    /// 32 bytes at a time with them, which halves llvmpipe's lane-by-lane store loops.
    let shaderInt64: Bool
    private var setLayout: VkDescriptorSetLayout?
    private(set) var pipelineLayout: VkPipelineLayout?
    private var descriptorPool: VkDescriptorPool?
    private let maxSets = 8192
    private var sets: [[UInt64]: VkDescriptorSet] = [:]
    private var shaderModules: [String: VkShaderModule] = [:]
    private var pipelines: [String: VkPipeline] = [:]
    private var pipelineNames: [VkPipeline: String] = [:]
    /// While set, every dispatch is submitted and waited for on its own and its wall time added here
    /// under its shader's name; each figure then includes one submission (tens of µs).
    var kernelProfile: [String: (seconds: Double, dispatches: Int)]?
    private var commandPool: VkCommandPool?
    private(set) var commandBuffer: VkCommandBuffer?
    private var fence: VkFence?
    /// Bound to the bindings a shader does not use.
    private var dummy: (buffer: VkBuffer, memory: VkDeviceMemory)?
    private var dummyView: VkBufferView?

    // MARK: - Loader, instance, device selection

    /// Opens the loader and an instance; the caller owns both (see `destroyInstance`).
    private static func openInstance(_ f: inout RKVKFunctions) throws -> VkInstance {
        let loaderPath = ProcessInfo.processInfo.environment["RWKV_VULKAN_LOADER"]
        switch rkvk_open_loader(&f, loaderPath) {
        case 0: break
        case 1: throw VulkanError.loaderUnavailable("\(loaderPath ?? "libvulkan.so.1") cannot be opened (\(String(cString: dlerror())))")
        default: throw VulkanError.loaderUnavailable("the loader library lacks vkGetInstanceProcAddr/vkCreateInstance")
        }
        let appName = strdup("rwkv-edit")
        defer { free(appName) }
        var app = VkApplicationInfo()
        app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO
        app.pApplicationName = UnsafePointer(appName)
        app.pEngineName = UnsafePointer(appName)
        app.apiVersion = (1 << 22) | (1 << 12) // 1.1
        var ci = VkInstanceCreateInfo()
        ci.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO
        var instance: VkInstance?
        let r = withUnsafePointer(to: &app) { ap -> VkResult? in
            ci.pApplicationInfo = ap
            return f.vkCreateInstance?(&ci, nil, &instance)
        }
        // No driver, or driver manifests the loader cannot use (VK_ICD_FILENAMES at a bad file gives
        // VK_ERROR_INCOMPATIBLE_DRIVER or, with some loaders, VK_ERROR_OUT_OF_HOST_MEMORY).
        guard r == VK_SUCCESS, let inst = instance else {
            rkvk_close_loader(&f)
            throw VulkanError.noDevice("the loader found no usable driver (vkCreateInstance returned \(r?.rawValue ?? -13))")
        }
        if let missing = rkvk_load_instance(&f, inst) {
            throw VulkanError.loaderUnavailable("the loader lacks \(String(cString: missing))")
        }
        return inst
    }

    private static func physicalDevices(_ f: inout RKVKFunctions, _ inst: VkInstance) throws -> [(VkPhysicalDevice, VulkanDeviceInfo, UInt32)] {
        var count: UInt32 = 0
        try check(f.vkEnumeratePhysicalDevices?(inst, &count, nil), "vkEnumeratePhysicalDevices")
        var devs = [VkPhysicalDevice?](repeating: nil, count: Int(count))
        if count > 0 { try check(f.vkEnumeratePhysicalDevices?(inst, &count, &devs), "vkEnumeratePhysicalDevices") }
        var out: [(VkPhysicalDevice, VulkanDeviceInfo, UInt32)] = []
        for (i, d) in devs.prefix(Int(count)).enumerated() {
            guard let d else { continue }
            var p = VkPhysicalDeviceProperties()
            f.vkGetPhysicalDeviceProperties?(d, &p)
            let name = withUnsafeBytes(of: p.deviceName) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            let kind: String
            switch p.deviceType {
            case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: kind = "discrete GPU"
            case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: kind = "integrated GPU"
            case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: kind = "virtual GPU"
            case VK_PHYSICAL_DEVICE_TYPE_CPU: kind = "CPU"
            default: kind = "other"
            }
            let lower = name.lowercased()
            let software = p.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU || lower.contains("llvmpipe")
                || lower.contains("lavapipe") || lower.contains("swiftshader")
            var mem = VkPhysicalDeviceMemoryProperties()
            f.vkGetPhysicalDeviceMemoryProperties?(d, &mem)
            var local = 0
            withUnsafeBytes(of: mem.memoryHeaps) { raw in
                let heaps = raw.bindMemory(to: VkMemoryHeap.self)
                for h in 0..<Int(mem.memoryHeapCount) where heaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT.rawValue != 0 {
                    local = max(local, Int(heaps[h].size))
                }
            }
            var qn: UInt32 = 0
            f.vkGetPhysicalDeviceQueueFamilyProperties?(d, &qn, nil)
            var qs = [VkQueueFamilyProperties](repeating: VkQueueFamilyProperties(), count: Int(qn))
            f.vkGetPhysicalDeviceQueueFamilyProperties?(d, &qn, &qs)
            guard let family = qs.firstIndex(where: { $0.queueFlags & VK_QUEUE_COMPUTE_BIT.rawValue != 0 && $0.queueCount > 0 }) else { continue }
            let info = VulkanDeviceInfo(index: i, name: name, kind: kind, isSoftware: software,
                                        maxStorageBufferRange: Int(p.limits.maxStorageBufferRange), deviceLocalBytes: local,
                                        driverVersion: p.driverVersion, apiVersion: p.apiVersion)
            out.append((d, info, UInt32(family)))
        }
        return out
    }

    /// Every Vulkan device with a compute queue.
    static func listDevices() throws -> [VulkanDeviceInfo] {
        var f = RKVKFunctions()
        let inst = try openInstance(&f)
        defer { f.vkDestroyInstance?(inst, nil); rkvk_close_loader(&f) }
        return try physicalDevices(&f, inst).map { $0.1 }
    }

    /// Picks a device: `selector` (an index or part of a name), else RWKV_VULKAN_DEVICE, else the most
    /// capable by type (discrete, integrated, virtual, software).
    static func choose(_ devices: [VulkanDeviceInfo], selector: String?) throws -> Int {
        guard !devices.isEmpty else { throw VulkanError.noDevice("the driver(s) expose no device with a compute queue") }
        let sel = selector ?? ProcessInfo.processInfo.environment["RWKV_VULKAN_DEVICE"]
        if let sel, !sel.trimmingCharacters(in: .whitespaces).isEmpty {
            let s = sel.trimmingCharacters(in: .whitespaces)
            if let i = Int(s), let k = devices.firstIndex(where: { $0.index == i }) { return k }
            if let k = devices.firstIndex(where: { $0.name.lowercased().contains(s.lowercased()) }) { return k }
            throw VulkanError.deviceNotFound(selector: s, available: devices.map(\.name))
        }
        return devices.indices.min { (devices[$0].preference, $0) < (devices[$1].preference, $1) } ?? 0
    }

    init(selector: String?) throws {
        var f = RKVKFunctions()
        let inst = try Self.openInstance(&f)
        let all: [(VkPhysicalDevice, VulkanDeviceInfo, UInt32)]
        let k: Int
        do {
            all = try Self.physicalDevices(&f, inst)
            k = try Self.choose(all.map { $0.1 }, selector: selector)
        } catch {
            f.vkDestroyInstance?(inst, nil)
            rkvk_close_loader(&f)
            throw error
        }
        fns = f
        instance = inst
        (physical, info, queueFamily) = all[k]
        var mem = VkPhysicalDeviceMemoryProperties()
        f.vkGetPhysicalDeviceMemoryProperties?(physical, &mem)
        memoryProperties = mem
        var props = VkPhysicalDeviceProperties()
        f.vkGetPhysicalDeviceProperties?(physical, &props)
        minStorageOffsetAlignment = max(4, Int(props.limits.minStorageBufferOffsetAlignment))
        maxWorkGroupCountX = Int(props.limits.maxComputeWorkGroupCount.0)
        maxTexelBufferElements = Int(props.limits.maxTexelBufferElements)
        minTexelOffsetAlignment = max(16, Int(props.limits.minTexelBufferOffsetAlignment))
        var ops: UInt32 = 0, stages: UInt32 = 0
        let sgSize = props.apiVersion >= (1 << 22) | (1 << 12) ? rkvk_subgroup_info(&f, inst, physical, &ops, &stages) : 0
        subgroupArithmetic = sgSize >= 1 && sgSize <= 32 && ops & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT.rawValue != 0
            && stages & VK_SHADER_STAGE_COMPUTE_BIT.rawValue != 0
        var features = VkPhysicalDeviceFeatures()
        f.vkGetPhysicalDeviceFeatures?(physical, &features)
        shaderInt64 = features.shaderInt64 == VK_TRUE
        do { try createDevice() } catch { destroy(); throw error }
    }

    private func createDevice() throws {
        var priority: Float = 1
        var qci = VkDeviceQueueCreateInfo()
        qci.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO
        qci.queueFamilyIndex = queueFamily
        qci.queueCount = 1
        var dci = VkDeviceCreateInfo()
        dci.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO
        dci.queueCreateInfoCount = 1
        var enabled = VkPhysicalDeviceFeatures()
        enabled.shaderInt64 = shaderInt64 ? VkBool32(VK_TRUE) : VkBool32(VK_FALSE)
        var dev: VkDevice?
        let r = withUnsafePointer(to: &priority) { pp -> VkResult? in
            qci.pQueuePriorities = pp
            return withUnsafePointer(to: &qci) { qp in
                dci.pQueueCreateInfos = qp
                return withUnsafePointer(to: &enabled) { ep in
                    dci.pEnabledFeatures = ep
                    return fns.vkCreateDevice?(physical, &dci, nil, &dev)
                }
            }
        }
        try check(r, "vkCreateDevice")
        device = dev
        if let missing = rkvk_load_device(&fns, dev) {
            throw VulkanError.loaderUnavailable("the driver lacks \(String(cString: missing))")
        }
        var q: VkQueue?
        fns.vkGetDeviceQueue?(dev, queueFamily, 0, &q)
        queue = q

        // One descriptor-set layout (storage buffers, then texel buffers) and push constants for every shader.
        var lb = (0..<Self.bindingCount + Self.texelBindingCount).map { i -> VkDescriptorSetLayoutBinding in
            var b = VkDescriptorSetLayoutBinding()
            b.binding = UInt32(i)
            b.descriptorType = i < Self.bindingCount ? VK_DESCRIPTOR_TYPE_STORAGE_BUFFER : VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
            b.descriptorCount = 1
            b.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT.rawValue
            return b
        }
        var slci = VkDescriptorSetLayoutCreateInfo()
        slci.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO
        slci.bindingCount = UInt32(lb.count)
        var sl: VkDescriptorSetLayout?
        try lb.withUnsafeMutableBufferPointer { p in
            slci.pBindings = UnsafePointer(p.baseAddress)
            try check(fns.vkCreateDescriptorSetLayout?(dev, &slci, nil, &sl), "vkCreateDescriptorSetLayout")
        }
        setLayout = sl
        var range = VkPushConstantRange(stageFlags: VK_SHADER_STAGE_COMPUTE_BIT.rawValue, offset: 0, size: UInt32(Self.pushBytes))
        var plci = VkPipelineLayoutCreateInfo()
        plci.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO
        plci.setLayoutCount = 1
        plci.pushConstantRangeCount = 1
        var pl: VkPipelineLayout?
        try withUnsafePointer(to: &sl) { slp in
            try withUnsafePointer(to: &range) { rp in
                plci.pSetLayouts = slp
                plci.pPushConstantRanges = rp
                try check(fns.vkCreatePipelineLayout?(dev, &plci, nil, &pl), "vkCreatePipelineLayout")
            }
        }
        pipelineLayout = pl

        var sizes = [VkDescriptorPoolSize(type: VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, descriptorCount: UInt32(maxSets * Self.bindingCount)),
                     VkDescriptorPoolSize(type: VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, descriptorCount: UInt32(maxSets * Self.texelBindingCount))]
        var dpci = VkDescriptorPoolCreateInfo()
        dpci.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO
        dpci.maxSets = UInt32(maxSets)
        dpci.poolSizeCount = UInt32(sizes.count)
        var pool: VkDescriptorPool?
        try sizes.withUnsafeMutableBufferPointer { sp in
            dpci.pPoolSizes = UnsafePointer(sp.baseAddress)
            try check(fns.vkCreateDescriptorPool?(dev, &dpci, nil, &pool), "vkCreateDescriptorPool")
        }
        descriptorPool = pool

        var cpci = VkCommandPoolCreateInfo()
        cpci.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO
        cpci.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT.rawValue
        cpci.queueFamilyIndex = queueFamily
        var cp: VkCommandPool?
        try check(fns.vkCreateCommandPool?(dev, &cpci, nil, &cp), "vkCreateCommandPool")
        commandPool = cp
        var cbai = VkCommandBufferAllocateInfo()
        cbai.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO
        cbai.commandPool = cp
        cbai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY
        cbai.commandBufferCount = 1
        var cb: VkCommandBuffer?
        try check(fns.vkAllocateCommandBuffers?(dev, &cbai, &cb), "vkAllocateCommandBuffers")
        commandBuffer = cb
        var fci = VkFenceCreateInfo()
        fci.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO
        var fe: VkFence?
        try check(fns.vkCreateFence?(dev, &fci, nil, &fe), "vkCreateFence")
        fence = fe
        let d = try allocate(bytes: 256, hostVisible: false)
        dummy = (d.buffer, d.memory)
        dummyView = try makeTexelView(d.buffer, offset: 0, range: 256)
    }

    func makeTexelView(_ buffer: VkBuffer, offset: Int, range: Int) throws -> VkBufferView {
        var ci = VkBufferViewCreateInfo()
        ci.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO
        ci.buffer = buffer
        ci.format = VK_FORMAT_R32G32B32A32_UINT
        ci.offset = VkDeviceSize(offset)
        ci.range = VkDeviceSize(range)
        var view: VkBufferView?
        try check(fns.vkCreateBufferView?(device, &ci, nil, &view), "vkCreateBufferView")
        guard let v = view else { throw VulkanError.call(function: "vkCreateBufferView", result: 0) }
        return v
    }

    func destroy() {
        guard let dev = device else {
            if let inst = instance { fns.vkDestroyInstance?(inst, nil); instance = nil }
            rkvk_close_loader(&fns)
            return
        }
        _ = fns.vkDeviceWaitIdle?(dev)
        sets.removeAll()
        if let v = dummyView { fns.vkDestroyBufferView?(dev, v, nil); dummyView = nil }
        if let d = dummy {
            fns.vkDestroyBuffer?(dev, d.buffer, nil)
            fns.vkFreeMemory?(dev, d.memory, nil)
            dummy = nil
        }
        for (_, p) in pipelines { fns.vkDestroyPipeline?(dev, p, nil) }
        pipelines.removeAll()
        pipelineNames.removeAll()
        for (_, m) in shaderModules { fns.vkDestroyShaderModule?(dev, m, nil) }
        shaderModules.removeAll()
        if let fence { fns.vkDestroyFence?(dev, fence, nil) }
        if let commandPool { fns.vkDestroyCommandPool?(dev, commandPool, nil) }
        if let descriptorPool { fns.vkDestroyDescriptorPool?(dev, descriptorPool, nil) }
        if let pipelineLayout { fns.vkDestroyPipelineLayout?(dev, pipelineLayout, nil) }
        if let setLayout { fns.vkDestroyDescriptorSetLayout?(dev, setLayout, nil) }
        fns.vkDestroyDevice?(dev, nil)
        device = nil
        if let inst = instance { fns.vkDestroyInstance?(inst, nil); instance = nil }
        rkvk_close_loader(&fns)
    }

    // MARK: - Memory

    private func memoryType(_ bits: UInt32, required: UInt32, preferred: UInt32) -> UInt32? {
        let n = Int(memoryProperties.memoryTypeCount)
        return withUnsafeBytes(of: memoryProperties.memoryTypes) { raw -> UInt32? in
            let types = raw.bindMemory(to: VkMemoryType.self)
            var fallback: UInt32?
            for i in 0..<n where bits & (1 << UInt32(i)) != 0 && types[i].propertyFlags & required == required {
                if types[i].propertyFlags & preferred == preferred { return UInt32(i) }
                if fallback == nil { fallback = UInt32(i) }
            }
            return fallback
        }
    }

    /// A storage buffer. Host-visible ones are mapped (and device-local too where the device allows,
    /// as on lavapipe and integrated GPUs).
    func makeBuffer(bytes: Int, hostVisible: Bool) throws -> VKBuffer {
        let a = try allocate(bytes: bytes, hostVisible: hostVisible)
        return VKBuffer(ctx: self, buffer: a.buffer, memory: a.memory, size: a.size, mapped: a.mapped)
    }

    private func allocate(bytes: Int, hostVisible: Bool) throws
        -> (buffer: VkBuffer, memory: VkDeviceMemory, size: Int, mapped: UnsafeMutableRawPointer?) {
        // Whole 16-byte texels, so any buffer can be viewed as a texel buffer of uvec4.
        let size = max(bytes + 15, 16) & ~15
        var bci = VkBufferCreateInfo()
        bci.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO
        bci.size = VkDeviceSize(size)
        bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT.rawValue | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT.rawValue
            | VK_BUFFER_USAGE_TRANSFER_DST_BIT.rawValue
            | VK_BUFFER_USAGE_TRANSFER_SRC_BIT.rawValue
        bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE
        var buf: VkBuffer?
        try check(fns.vkCreateBuffer?(device, &bci, nil, &buf), "vkCreateBuffer")
        guard let buffer = buf else { throw VulkanError.call(function: "vkCreateBuffer", result: 0) }
        var req = VkMemoryRequirements()
        fns.vkGetBufferMemoryRequirements?(device, buffer, &req)
        let hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT.rawValue | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT.rawValue
        let dl = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT.rawValue
        let type = hostVisible ? memoryType(req.memoryTypeBits, required: hv, preferred: hv | dl)
                               : memoryType(req.memoryTypeBits, required: 0, preferred: dl)
        guard let type else {
            fns.vkDestroyBuffer?(device, buffer, nil)
            throw VulkanError.call(function: "vkAllocateMemory (no suitable memory type)", result: VK_ERROR_OUT_OF_DEVICE_MEMORY.rawValue)
        }
        var mai = VkMemoryAllocateInfo()
        mai.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO
        mai.allocationSize = req.size
        mai.memoryTypeIndex = type
        var mem: VkDeviceMemory?
        let r = fns.vkAllocateMemory?(device, &mai, nil, &mem)
        guard r == VK_SUCCESS, let memory = mem else {
            fns.vkDestroyBuffer?(device, buffer, nil)
            throw VulkanError.call(function: "vkAllocateMemory(\(size >> 20) MiB)", result: r?.rawValue ?? -13)
        }
        var mapped: UnsafeMutableRawPointer?
        do {
            try check(fns.vkBindBufferMemory?(device, buffer, memory, 0), "vkBindBufferMemory")
            let flags = withUnsafeBytes(of: memoryProperties.memoryTypes) { $0.bindMemory(to: VkMemoryType.self)[Int(type)].propertyFlags }
            if hostVisible || flags & hv == hv {
                try check(fns.vkMapMemory?(device, memory, 0, VkDeviceSize(size), 0, &mapped), "vkMapMemory")
            }
        } catch {
            fns.vkDestroyBuffer?(device, buffer, nil)
            fns.vkFreeMemory?(device, memory, nil)
            throw error
        }
        return (buffer, memory, size, mapped)
    }

    /// A device buffer holding `bytes` (through a staging buffer when it is not host-visible).
    func upload(_ src: UnsafeRawPointer, bytes: Int) throws -> VKBuffer {
        let b = try makeBuffer(bytes: bytes, hostVisible: false)
        if let m = b.mapped {
            m.copyMemory(from: src, byteCount: bytes)
            return b
        }
        let staging = try makeBuffer(bytes: bytes, hostVisible: true)
        staging.mapped.unsafelyUnwrapped.copyMemory(from: src, byteCount: bytes)
        try begin()
        var region = VkBufferCopy(srcOffset: 0, dstOffset: 0, size: VkDeviceSize(bytes))
        fns.vkCmdCopyBuffer?(commandBuffer, staging.buffer, b.buffer, 1, &region)
        try submitAndWait()
        return b
    }

    // MARK: - Pipelines and descriptor sets

    func pipeline(_ shader: String, _ spec: [UInt32] = []) throws -> VkPipeline {
        let key = shader + "/" + spec.map(String.init).joined(separator: ",")
        if let p = pipelines[key] { return p }
        let module = try shaderModule(shader)
        var entries = spec.indices.map { VkSpecializationMapEntry(constantID: UInt32($0), offset: UInt32($0 * 4), size: 4) }
        var data = spec
        let entryName = strdup("main")
        defer { free(entryName) }
        var pipe: VkPipeline?
        try entries.withUnsafeMutableBufferPointer { ep in
            try data.withUnsafeMutableBytes { dp in
                var si = VkSpecializationInfo(mapEntryCount: UInt32(spec.count), pMapEntries: UnsafePointer(ep.baseAddress),
                                              dataSize: dp.count, pData: UnsafeRawPointer(dp.baseAddress))
                try withUnsafePointer(to: &si) { sip in
                    var stage = VkPipelineShaderStageCreateInfo()
                    stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO
                    stage.stage = VK_SHADER_STAGE_COMPUTE_BIT
                    stage.module = module
                    stage.pName = UnsafePointer(entryName)
                    stage.pSpecializationInfo = spec.isEmpty ? nil : sip
                    var ci = VkComputePipelineCreateInfo()
                    ci.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO
                    ci.stage = stage
                    ci.layout = pipelineLayout
                    ci.basePipelineIndex = -1
                    try check(fns.vkCreateComputePipelines?(device, nil, 1, &ci, nil, &pipe), "vkCreateComputePipelines(\(shader))")
                }
            }
        }
        guard let p = pipe else { throw VulkanError.shader("no pipeline for \(shader)") }
        pipelines[key] = p
        pipelineNames[p] = shader
        return p
    }

    private func shaderModule(_ name: String) throws -> VkShaderModule {
        if let m = shaderModules[name] { return m }
        guard let b64 = SPIRV.base64[name], let code = Data(base64Encoded: b64), code.count % 4 == 0, code.count > 20 else {
            throw VulkanError.shader("the embedded SPIR-V for \(name) is missing or damaged")
        }
        var module: VkShaderModule?
        try code.withUnsafeBytes { raw in
            var ci = VkShaderModuleCreateInfo()
            ci.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO
            ci.codeSize = raw.count
            ci.pCode = raw.baseAddress?.assumingMemoryBound(to: UInt32.self)
            try check(fns.vkCreateShaderModule?(device, &ci, nil, &module), "vkCreateShaderModule(\(name))")
        }
        guard let m = module else { throw VulkanError.shader("no module for \(name)") }
        shaderModules[name] = m
        return m
    }

    /// Forgets every descriptor set (call when buffers they name are freed; no work may be in flight).
    func resetDescriptorSets() {
        sets.removeAll()
        if let descriptorPool { _ = fns.vkResetDescriptorPool?(device, descriptorPool, 0) }
    }

    private func descriptorSet(_ bindings: [Binding], texels: [Binding]) throws -> VkDescriptorSet {
        guard let dummy, let dummyView else { throw VulkanError.shader("no device") }
        // Sets are cached by what they bind, so the views and buffer infos are only made on a miss.
        let storage = (0..<Self.bindingCount).map { i in i < bindings.count ? bindings[i] : Binding(raw: dummy.buffer, range: 256) }
        let texel = (0..<Self.texelBindingCount).map { i in i < texels.count ? texels[i] : nil }
        var key: [UInt64] = []
        key.reserveCapacity(3 * (Self.bindingCount + Self.texelBindingCount))
        for b in storage { key += [b.handleBits, UInt64(b.offset), UInt64(b.range)] }
        for t in texel { key += t.map { [$0.handleBits, UInt64($0.offset), UInt64($0.range)] } ?? [0, 0, 0] }
        if let s = sets[key] { return s }
        let infos = storage.map { VkDescriptorBufferInfo(buffer: $0.handle, offset: VkDeviceSize($0.offset), range: VkDeviceSize($0.range)) }
        let views: [VkBufferView?] = try texel.map { t in
            guard let t else { return dummyView }
            guard let buffer = t.buffer, t.offset % minTexelOffsetAlignment == 0, t.range % 16 == 0,
                  t.range / 16 <= maxTexelBufferElements else {
                throw VulkanError.unsupportedModel("a texel view of \(t.range) bytes at \(t.offset) exceeds the device's texel-buffer limits")
            }
            return try buffer.texelView(offset: t.offset, range: t.range)
        }
        if sets.count >= maxSets { throw VulkanError.call(function: "vkAllocateDescriptorSets (pool of \(maxSets) exhausted)", result: VK_ERROR_OUT_OF_POOL_MEMORY.rawValue) }
        var ai = VkDescriptorSetAllocateInfo()
        ai.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO
        ai.descriptorPool = descriptorPool
        ai.descriptorSetCount = 1
        var set: VkDescriptorSet?
        var sl = setLayout
        try withUnsafePointer(to: &sl) { slp in
            ai.pSetLayouts = slp
            try check(fns.vkAllocateDescriptorSets?(device, &ai, &set), "vkAllocateDescriptorSets")
        }
        infos.withUnsafeBufferPointer { ip in
            views.withUnsafeBufferPointer { vp in
                var writes = (0..<Self.bindingCount + Self.texelBindingCount).map { i -> VkWriteDescriptorSet in
                    var w = VkWriteDescriptorSet()
                    w.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET
                    w.dstSet = set
                    w.dstBinding = UInt32(i)
                    w.descriptorCount = 1
                    if i < Self.bindingCount {
                        w.descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER
                        w.pBufferInfo = ip.baseAddress.map { $0 + i }
                    } else {
                        w.descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
                        w.pTexelBufferView = vp.baseAddress.map { $0 + (i - Self.bindingCount) }
                    }
                    return w
                }
                fns.vkUpdateDescriptorSets?(device, UInt32(writes.count), &writes, 0, nil)
            }
        }
        guard let s = set else { throw VulkanError.call(function: "vkAllocateDescriptorSets", result: 0) }
        sets[key] = s
        return s
    }

    /// Descriptor sets a pass will need are allocated while recording; a long-lived engine may
    /// accumulate them, so it resets the pool when it nears the limit (between submissions).
    var descriptorSetCount: Int { sets.count }
    var descriptorSetLimit: Int { maxSets }

    // MARK: - Recording

    func begin() throws {
        try check(fns.vkResetCommandBuffer?(commandBuffer, 0), "vkResetCommandBuffer")
        var bi = VkCommandBufferBeginInfo()
        bi.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO
        bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT.rawValue
        try check(fns.vkBeginCommandBuffer?(commandBuffer, &bi), "vkBeginCommandBuffer")
    }

    /// `label` qualifies the shader's name in kernel profiles (a matrix shape, say).
    func dispatch(_ pipeline: VkPipeline, _ bindings: [Binding], texels: [Binding] = [], push: [UInt32], groups: (Int, Int, Int),
                  label: @autoclosure () -> String? = nil) throws {
        guard groups.0 > 0, groups.1 > 0, groups.2 > 0 else { return }
        guard groups.0 <= maxWorkGroupCountX else {
            throw VulkanError.unsupportedModel("a dispatch of \(groups.0) workgroups exceeds the device limit \(maxWorkGroupCountX)")
        }
        var set: VkDescriptorSet? = try descriptorSet(bindings, texels: texels)
        fns.vkCmdBindPipeline?(commandBuffer, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline)
        fns.vkCmdBindDescriptorSets?(commandBuffer, VK_PIPELINE_BIND_POINT_COMPUTE, pipelineLayout, 0, 1, &set, 0, nil)
        if !push.isEmpty {
            push.withUnsafeBytes { fns.vkCmdPushConstants?(commandBuffer, pipelineLayout, VK_SHADER_STAGE_COMPUTE_BIT.rawValue, 0, UInt32($0.count), $0.baseAddress) }
        }
        fns.vkCmdDispatch?(commandBuffer, UInt32(groups.0), UInt32(groups.1), UInt32(groups.2))
        if let profile = kernelProfile {
            let t0 = DispatchTime.now().uptimeNanoseconds
            barrier()
            try submitAndWait()
            let name = (pipelineNames[pipeline] ?? "?") + (label().map { " " + $0 } ?? "")
            let old = profile[name] ?? (0, 0)
            kernelProfile?[name] = (old.seconds + Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9, old.dispatches + 1)
            try begin()
        }
    }

    /// Makes every earlier shader write visible to later shaders (and to the host at the end).
    func barrier(toHost: Bool = false) {
        var mb = VkMemoryBarrier()
        mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER
        mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT.rawValue | VK_ACCESS_TRANSFER_WRITE_BIT.rawValue
        mb.dstAccessMask = toHost ? VK_ACCESS_HOST_READ_BIT.rawValue
            : VK_ACCESS_SHADER_READ_BIT.rawValue | VK_ACCESS_SHADER_WRITE_BIT.rawValue
        let src = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT.rawValue | VK_PIPELINE_STAGE_TRANSFER_BIT.rawValue
        let dst = toHost ? VK_PIPELINE_STAGE_HOST_BIT.rawValue : VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT.rawValue
        fns.vkCmdPipelineBarrier?(commandBuffer, src, dst, 0, 1, &mb, 0, nil, 0, nil)
    }

    func submitAndWait() throws {
        try check(fns.vkEndCommandBuffer?(commandBuffer), "vkEndCommandBuffer")
        var cb = commandBuffer
        var si = VkSubmitInfo()
        si.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO
        si.commandBufferCount = 1
        try withUnsafePointer(to: &cb) { cbp in
            si.pCommandBuffers = cbp
            try check(fns.vkResetFences?(device, 1, &fence), "vkResetFences")
            try check(fns.vkQueueSubmit?(queue, 1, &si, fence), "vkQueueSubmit")
        }
        try check(fns.vkWaitForFences?(device, 1, &fence, VkBool32(VK_TRUE), UInt64.max), "vkWaitForFences")
    }

    deinit { destroy() }
}
