// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "fleet-images",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "fleet-images", targets: ["fleet-images"]),
        .library(name: "FleetImagesCore", targets: ["FleetImagesCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        // FilePath, to hand swift-subprocess a resolved executable (ToolAvailability.executable).
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "CCompression",
            providers: [.apt(["liblzma-dev", "libzstd-dev"])]
        ),
        // OpenSSL's typed key decoders, which Swift cannot call without deprecation warnings
        // everywhere: the fast path of the claim-key check (Sources/CKeyCheck/key_check.c).
        .target(name: "CKeyCheck", dependencies: ["COpenSSL"]),
        .target(
            name: "FleetImagesCore",
            dependencies: [
                "COpenSSL",
                "CKeyCheck",
                "CCompression",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .executableTarget(
            name: "fleet-images",
            dependencies: [
                "FleetImagesCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "FleetImagesCoreTests",
            dependencies: ["FleetImagesCore", .product(name: "GRDB", package: "GRDB.swift")],
            exclude: ["Golden", "Fixtures"]
        ),
        // Benchmarks: separate programs that print ratios against an anchor measured in the same run.
        .executableTarget(
            name: "fleet-images-bench",
            dependencies: ["FleetImagesCore", "COpenSSL", .product(name: "GRDB", package: "GRDB.swift")],
            path: "Sources/fleet-images-bench"
        ),
        .executableTarget(
            name: "provenance-bench",
            dependencies: ["FleetImagesCore", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(
            name: "FleetImagesCLITests",
            dependencies: ["FleetImagesCore"]
        ),
    ]
)
