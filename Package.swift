// swift-tools-version:6.1
import PackageDescription

// Imports follow the data and point only down the stack (DESIGN.md §1):
// lsmfs -> LSMFSFuse -> LSMFS -> LSMStore -> KVIMR -> IMRDisk.
// LSMCommon is a leaf of small shared utilities (CRC32C, big-endian coding)
// that every layer may use without reaching past the layer below it.
let package = Package(
    name: "lsmfs",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "lsmfs", targets: ["lsmfs"]),
        .library(name: "LSMStore", targets: ["LSMStore"]),
        .library(name: "KVIMR", targets: ["KVIMR"]),
        .library(name: "IMRDisk", targets: ["IMRDisk"]),
        .library(name: "LSMFS", targets: ["LSMFS"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        .target(name: "CLSMChecksum"),   // hardware CRC32C (SSE4.2) behind LSMCommon.CRC32C
        .target(name: "LSMCommon", dependencies: ["CLSMChecksum"]),
        .target(name: "CHostIO"),        // sync_file_range (needs _GNU_SOURCE) behind IMRDisk
        .target(name: "IMRDisk", dependencies: ["LSMCommon", "CHostIO"]),
        .target(name: "KVIMR", dependencies: ["IMRDisk", "LSMCommon"]),
        .target(name: "LSMStore", dependencies: ["KVIMR", "LSMCommon"]),
        .target(name: "LSMFS", dependencies: [
            "LSMStore", "LSMCommon",
            .product(name: "SystemPackage", package: "swift-system"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .systemLibrary(name: "CFuse", pkgConfig: "fuse3",
                       providers: [.apt(["libfuse3-dev", "pkg-config"])]),
        .target(name: "CFuseRing"),      // FUSE over io_uring (raw io_uring syscalls) behind LSMFSFuse
        .target(name: "LSMFSFuse", dependencies: [
            "LSMFS", "CFuse", "CFuseRing",
            .product(name: "SystemPackage", package: "swift-system"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "lsmfs", dependencies: [
            "LSMFSFuse", "LSMFS", "LSMStore", "KVIMR", "IMRDisk", "LSMCommon",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "IMRDiskTests", dependencies: ["IMRDisk", "LSMCommon"]),
        .testTarget(name: "KVIMRTests", dependencies: ["KVIMR", "IMRDisk", "LSMCommon"]),
        .testTarget(name: "LSMStoreTests", dependencies: ["LSMStore", "KVIMR", "IMRDisk", "LSMCommon"]),
        .testTarget(name: "LSMFSTests", dependencies: ["LSMFS", "LSMStore", "KVIMR", "IMRDisk",
            .product(name: "SystemPackage", package: "swift-system")]),
        .testTarget(name: "IntegrationTests", dependencies: []),
    ]
)
