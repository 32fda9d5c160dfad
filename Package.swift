// swift-tools-version:6.0
import PackageDescription

// Hot CPU kernels live in CKernels, compiled -O3 even in debug builds: Swift's default
// x86-64 target has no F16C/FMA/AVX2, so the C code picks them at run time.
let package = Package(
    name: "rwkv-edit",
    products: [
        .library(name: "RWKV", targets: ["RWKV"]),
        .library(name: "RWKVVulkan", targets: ["RWKVVulkan"]),
        .library(name: "StateEdit", targets: ["StateEdit"]),
        .library(name: "EditPacks", targets: ["EditPacks"]),
        .executable(name: "rwkv-edit", targets: ["rwkv-edit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(name: "CLapacke", path: "Sources/CLapacke"),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite"),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd"),
        .systemLibrary(name: "CVulkan", path: "Sources/CVulkan"),
        .target(
            name: "CKernels",
            path: "Sources/CKernels",
            cSettings: [.unsafeFlags(["-O3", "-fno-math-errno"])]
        ),
        .target(
            name: "RWKV",
            dependencies: ["CKernels", "CLapacke"],
            path: "Sources/RWKV"
        ),
        .target(
            name: "RWKVVulkan",
            dependencies: ["RWKV", "CVulkan", "CKernels"],
            path: "Sources/RWKVVulkan"
        ),
        .target(
            name: "StateEdit",
            dependencies: ["RWKV", "CLapacke"],
            path: "Sources/StateEdit"
        ),
        .target(
            name: "EditPacks",
            dependencies: ["RWKV", "StateEdit", "CSQLite", "CZstd", "CLapacke"],
            path: "Sources/EditPacks"
        ),
        .executableTarget(
            name: "rwkv-edit",
            dependencies: [
                "RWKV",
                "RWKVVulkan",
                "StateEdit",
                "EditPacks",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/rwkv-edit"
        ),
        .testTarget(
            name: "RWKVTests",
            dependencies: ["RWKV", "RWKVVulkan", "StateEdit", "EditPacks", "CSQLite"],
            path: "Tests/RWKVTests"
        ),
    ],
    // Swift 5 mode: the engine hands raw buffers to worker threads, which Swift 6's checker rejects wholesale.
    swiftLanguageModes: [.v5]
)
