// Vulkan for the RWKVVulkan target (Debian: libvulkan-dev). The loader is opened at run time
// (dlopen "libvulkan.so.1"), not linked: a machine without it still runs the CPU engine, and the
// Vulkan engine reports "no Vulkan loader" as a typed error instead of the binary failing to start.
#ifndef RWKV_CVULKAN_SHIM_H
#define RWKV_CVULKAN_SHIM_H
#define VK_NO_PROTOTYPES 1
#include <vulkan/vulkan.h>
#include <dlfcn.h>
#include <stddef.h>

#define RKVK_INSTANCE_FNS(X) \
    X(vkDestroyInstance) X(vkEnumeratePhysicalDevices) X(vkGetPhysicalDeviceProperties) \
    X(vkGetPhysicalDeviceQueueFamilyProperties) X(vkGetPhysicalDeviceMemoryProperties) \
    X(vkCreateDevice) X(vkGetDeviceProcAddr) X(vkGetPhysicalDeviceFeatures)

#define RKVK_DEVICE_FNS(X) \
    X(vkDestroyDevice) X(vkGetDeviceQueue) X(vkCreateBuffer) X(vkDestroyBuffer) \
    X(vkGetBufferMemoryRequirements) X(vkAllocateMemory) X(vkFreeMemory) X(vkBindBufferMemory) \
    X(vkMapMemory) X(vkUnmapMemory) X(vkCreateShaderModule) X(vkDestroyShaderModule) \
    X(vkCreateDescriptorSetLayout) X(vkDestroyDescriptorSetLayout) X(vkCreatePipelineLayout) \
    X(vkDestroyPipelineLayout) X(vkCreateComputePipelines) X(vkDestroyPipeline) \
    X(vkCreateDescriptorPool) X(vkDestroyDescriptorPool) X(vkResetDescriptorPool) \
    X(vkAllocateDescriptorSets) X(vkUpdateDescriptorSets) X(vkCreateCommandPool) \
    X(vkDestroyCommandPool) X(vkAllocateCommandBuffers) X(vkBeginCommandBuffer) \
    X(vkEndCommandBuffer) X(vkResetCommandBuffer) X(vkCmdBindPipeline) X(vkCmdBindDescriptorSets) \
    X(vkCmdPushConstants) X(vkCmdDispatch) X(vkCmdPipelineBarrier) X(vkCmdCopyBuffer) \
    X(vkCmdFillBuffer) X(vkCreateFence) X(vkDestroyFence) X(vkResetFences) X(vkWaitForFences) \
    X(vkQueueSubmit) X(vkDeviceWaitIdle) X(vkCreateBufferView) X(vkDestroyBufferView)

#define RKVK_FIELD(name) PFN_##name name;
typedef struct RKVKFunctions {
    void *library;
    PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr;
    PFN_vkCreateInstance vkCreateInstance;
    RKVK_INSTANCE_FNS(RKVK_FIELD)
    RKVK_DEVICE_FNS(RKVK_FIELD)
} RKVKFunctions;
#undef RKVK_FIELD

/// Opens the loader; 0 on success, 1 when no loader library exists, 2 when it lacks entry points.
static inline int rkvk_open_loader(RKVKFunctions *f, const char *path) {
    void *lib = dlopen(path ? path : "libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib && !path) lib = dlopen("libvulkan.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return 1;
    f->library = lib;
    f->vkGetInstanceProcAddr = (PFN_vkGetInstanceProcAddr)dlsym(lib, "vkGetInstanceProcAddr");
    if (!f->vkGetInstanceProcAddr) return 2;
    f->vkCreateInstance = (PFN_vkCreateInstance)f->vkGetInstanceProcAddr(NULL, "vkCreateInstance");
    return f->vkCreateInstance ? 0 : 2;
}

/// Resolves instance-level entry points; returns the name of the first one missing, or NULL.
static inline const char *rkvk_load_instance(RKVKFunctions *f, VkInstance instance) {
#define RKVK_LOAD(name) f->name = (PFN_##name)f->vkGetInstanceProcAddr(instance, #name); if (!f->name) return #name;
    RKVK_INSTANCE_FNS(RKVK_LOAD)
#undef RKVK_LOAD
    return NULL;
}

/// Resolves device-level entry points; returns the name of the first one missing, or NULL.
static inline const char *rkvk_load_device(RKVKFunctions *f, VkDevice device) {
#define RKVK_LOAD(name) f->name = (PFN_##name)f->vkGetDeviceProcAddr(device, #name); if (!f->name) return #name;
    RKVK_DEVICE_FNS(RKVK_LOAD)
#undef RKVK_LOAD
    return NULL;
}

/// Subgroup size and the supported operations/stages (VkPhysicalDeviceSubgroupProperties) of a
/// Vulkan 1.1 device; 0 when the query is unavailable. Call only for devices reporting 1.1 or later.
static inline uint32_t rkvk_subgroup_info(RKVKFunctions *f, VkInstance instance, VkPhysicalDevice device,
                                          uint32_t *operations, uint32_t *stages) {
    PFN_vkGetPhysicalDeviceProperties2 get =
        (PFN_vkGetPhysicalDeviceProperties2)f->vkGetInstanceProcAddr(instance, "vkGetPhysicalDeviceProperties2");
    *operations = 0; *stages = 0;
    if (!get) return 0;
    VkPhysicalDeviceSubgroupProperties sg = { VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES, NULL, 0, 0, 0, VK_FALSE };
    VkPhysicalDeviceProperties2 props = { VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, &sg, {0} };
    get(device, &props);
    *operations = sg.supportedOperations;
    *stages = sg.supportedStages;
    return sg.subgroupSize;
}

static inline void rkvk_close_loader(RKVKFunctions *f) {
    if (f->library) dlclose(f->library);
    f->library = NULL;
}
#endif
