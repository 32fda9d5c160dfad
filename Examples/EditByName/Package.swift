// swift-tools-version:6.0
import PackageDescription

// An app that ships rwkv-edit's runtime: it depends on the `RWKVEdit` library by version, as any
// package would. RWKV_EDIT_PACKAGE_URL points it at a clone (scripts/test-example.sh uses a tagged
// temporary clone); the default is the repository this example sits in.
let defaultURL = "file://" + Context.packageDirectory + "/../.."
let rwkvEditURL = Context.environment["RWKV_EDIT_PACKAGE_URL"] ?? defaultURL

let package = Package(
    name: "EditByName",
    dependencies: [
        .package(url: rwkvEditURL, from: "0.4.0"),
    ],
    targets: [
        .executableTarget(
            name: "EditByName",
            dependencies: [.product(name: "RWKVEdit", package: "rwkv-edit")]
        ),
    ]
)
