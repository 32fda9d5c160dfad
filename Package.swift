// swift-tools-version:6.0
import PackageDescription

// Two halves (DESIGN.md §2). The runtime an app ships is the one library `RWKVEdit`: model files,
// tokenizer, state, the CPU engine over the C kernels, the editing methods, the pack reader and the
// session. It links only Foundation, libsqlite3, libzstd and CKernels. The tools build on it, one
// job per target: the pack compiler, eval suites, state analysis, the Vulkan engine, benchmarks, and
// the `rwkv-edit` CLI over all of them.
let package = Package(
    name: "rwkv-edit",
    products: [
        .library(name: "RWKVEdit", targets: ["RWKVEdit"]),
        .library(name: "RWKVPackCompiler", targets: ["PackCompiler"]),
        .library(name: "RWKVEditEval", targets: ["EditEval"]),
        .library(name: "RWKVStateAnalysis", targets: ["StateAnalysis"]),
        .library(name: "RWKVVulkan", targets: ["RWKVVulkan"]),
        .executable(name: "rwkv-edit", targets: ["rwkv-edit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // System libraries.
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite"),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd"),
        .systemLibrary(name: "CLapacke", path: "Sources/CLapacke"),
        .systemLibrary(name: "CVulkan", path: "Sources/CVulkan"),
        // The runtime.
        .target(name: "CKernels", path: "Sources/CKernels"),
        .target(
            name: "RWKVEdit",
            dependencies: ["CKernels", "CSQLite", "CZstd"],
            path: "Sources/RWKVEdit"
        ),
        // The tools.
        .target(
            name: "PackCompiler",
            dependencies: ["RWKVEdit", "CLapacke"],
            path: "Sources/PackCompiler"
        ),
        .target(name: "EditEval", dependencies: ["RWKVEdit"], path: "Sources/EditEval"),
        .target(name: "StateAnalysis", dependencies: ["RWKVEdit"], path: "Sources/StateAnalysis"),
        .target(
            name: "RWKVVulkan",
            dependencies: ["RWKVEdit", "CVulkan", "CKernels"],
            path: "Sources/RWKVVulkan"
        ),
        .executableTarget(
            name: "rwkv-edit",
            dependencies: [
                "RWKVEdit", "PackCompiler", "EditEval", "StateAnalysis", "RWKVVulkan", "CKernels", "CLapacke",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/rwkv-edit"
        ),
        .testTarget(
            name: "RWKVTests",
            dependencies: ["RWKVEdit", "PackCompiler", "EditEval", "StateAnalysis", "RWKVVulkan", "CSQLite", "CZstd"],
            path: "Tests/RWKVTests"
        ),
    ],
    // Swift 5 mode: the engine hands raw buffers to worker threads, which Swift 6's checker rejects wholesale.
    swiftLanguageModes: [.v5]
)
