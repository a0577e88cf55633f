// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [
  .enableUpcomingFeature("ExistentialAny"),
  .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
  name: "sluice",
  platforms: [.macOS(.v15)],
  products: [
    .library(name: "KafkaProtocol", targets: ["KafkaProtocol"]),
    .library(name: "SluiceSASL", targets: ["SluiceSASL"]),
    .library(name: "SluiceStorage", targets: ["SluiceStorage"]),
    .library(name: "SluiceBroker", targets: ["SluiceBroker"]),
    .library(name: "SluiceKafka", targets: ["SluiceKafka"]),
    .library(name: "SluiceServer", targets: ["SluiceServer"]),
    .library(name: "SluiceHTTP", targets: ["SluiceHTTP"]),
    .library(name: "KafkaClient", targets: ["KafkaClient"]),
    .library(name: "SluiceDirect", targets: ["SluiceDirect"]),
    .library(name: "SluiceFeed", targets: ["SluiceFeed"]),
    .library(name: "SluiceEmbedded", targets: ["SluiceEmbedded"]),
    .executable(name: "sluice", targets: ["sluice"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
    .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
    .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
  ],
  targets: [
    // C helpers with no third-party headers: hardware CRC-32C and dlopen-based bindings to
    // the zstd and lz4 runtime libraries (see docs/compression.md).
    .target(
      name: "CSluiceSupport",
      // scripts/release.sh sets SLUICE_BUILD_COMMIT: `sluice --version` names the commit.
      cSettings: Context.environment["SLUICE_BUILD_COMMIT"].map { [.define("SLUICE_BUILD_COMMIT", to: $0)] }
        ?? [],
      linkerSettings: [.linkedLibrary("dl")]
    ),
    .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
    .target(
      name: "KafkaProtocol",
      dependencies: [
        "CSluiceSupport",
        "CZlib",
        .product(name: "NIOCore", package: "swift-nio"),
      ],
      swiftSettings: strict
    ),
    // SASL mechanisms (PLAIN, SCRAM-SHA-256/512) as value-type exchanges, for the broker
    // and the client alike.
    .target(
      name: "SluiceSASL",
      dependencies: [.product(name: "Crypto", package: "swift-crypto")],
      swiftSettings: strict
    ),
    .target(
      name: "SluiceStorage",
      dependencies: [
        .product(name: "CoreMetrics", package: "swift-metrics"),
        "KafkaProtocol",
        "CSluiceSupport",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ],
      swiftSettings: strict
    ),
    .target(
      name: "SluiceBroker",
      dependencies: [
        .product(name: "CoreMetrics", package: "swift-metrics"),
        .product(name: "Prometheus", package: "swift-prometheus"),
        "SluiceSASL",
        "KafkaProtocol",
        "SluiceStorage",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strict
    ),
    // The Kafka front door: routing of decoded Kafka requests onto the broker's domain API
    // and the translation back, and the response encoder that sends records as values.
    .target(
      name: "SluiceKafka",
      dependencies: [
        .product(name: "CoreMetrics", package: "swift-metrics"),
        .product(name: "Logging", package: "swift-log"),
        "KafkaProtocol",
        "SluiceBroker",
        .product(name: "NIOCore", package: "swift-nio"),
      ],
      swiftSettings: strict
    ),
    // The HTTP front door: REST Proxy v2, Server-Sent Events, /metrics and /openapi.json.
    .target(
      name: "SluiceHTTP",
      dependencies: [
        .product(name: "CoreMetrics", package: "swift-metrics"),
        .product(name: "Mustache", package: "swift-mustache"),
        "SluiceSASL",
        .product(name: "Crypto", package: "swift-crypto"),
        "KafkaProtocol",
        "SluiceBroker",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      ],
      swiftSettings: strict
    ),
    .target(
      name: "SluiceServer",
      dependencies: [
        "SluiceSASL", .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "X509", package: "swift-certificates"),
        "KafkaProtocol",
        "SluiceBroker",
        "SluiceDirect",
        "SluiceFeed",
        "SluiceKafka",
        "SluiceStatsD",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      ],
      swiftSettings: strict
    ),
    // Brokerless messaging: ZeroMQ-compatible sockets (ZMTP 3.1) with no broker dependency.
    .target(
      name: "SluiceDirect",
      dependencies: [
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strict
    ),
    // UDP multicast feeds: MoldUDP64 framing and a receiver with gap recovery.
    .target(
      name: "SluiceFeed",
      dependencies: [
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ],
      swiftSettings: strict
    ),
    // StatsD line protocol and per-interval aggregation (no I/O).
    .target(
      name: "SluiceStatsD",
      dependencies: [.product(name: "NIOCore", package: "swift-nio")],
      swiftSettings: strict
    ),
    .target(
      name: "KafkaClient",
      dependencies: [
        "SluiceSASL", .product(name: "NIOSSL", package: "swift-nio-ssl"),
        "KafkaProtocol",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      ],
      swiftSettings: strict
    ),
    // The broker inside a Swift process, with in-process KafkaClient configurations.
    .target(
      name: "SluiceEmbedded",
      dependencies: [
        "KafkaClient",
        "KafkaProtocol",
        "SluiceBroker",
        "SluiceKafka",
        "SluiceServer",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      ],
      swiftSettings: strict
    ),
    .executableTarget(
      name: "_KafkaProtocolCodegen",
      swiftSettings: strict
    ),
    .executableTarget(
      name: "sluice",
      dependencies: [
        "CSluiceSupport",
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        "KafkaClient",
        "KafkaProtocol",
        "SluiceBroker",
        "SluiceDirect",
        "SluiceHTTP",
        "SluiceServer",
        "SluiceStorage",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      swiftSettings: strict
    ),
    // swift-kafka-client's README examples with `import KafkaClient` (compat/test_swift_client.py).
    .executableTarget(
      name: "swift-kafka-client-readme",
      dependencies: [
        "KafkaClient",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      ],
      path: "Examples/SwiftKafkaClientReadme",
      swiftSettings: strict
    ),
    .executableTarget(
      name: "FuzzRequest",
      dependencies: ["KafkaProtocol", .product(name: "NIOCore", package: "swift-nio")],
      path: "Fuzz/FuzzRequest",
      swiftSettings: strict
    ),
    .executableTarget(
      name: "FuzzRecordBatch",
      dependencies: ["KafkaProtocol", .product(name: "NIOCore", package: "swift-nio")],
      path: "Fuzz/FuzzRecordBatch",
      swiftSettings: strict
    ),
    .executableTarget(
      name: "FuzzShare",
      dependencies: ["SluiceBroker", .product(name: "NIOCore", package: "swift-nio")],
      path: "Fuzz/FuzzShare",
      swiftSettings: strict
    ),
    .executableTarget(
      name: "FuzzDecompress",
      dependencies: ["KafkaProtocol", .product(name: "NIOCore", package: "swift-nio")],
      path: "Fuzz/FuzzDecompress",
      swiftSettings: strict
    ),
    .executableTarget(
      name: "FuzzHTTP",
      dependencies: ["SluiceHTTP", .product(name: "NIOCore", package: "swift-nio")],
      path: "Fuzz/FuzzHTTP",
      swiftSettings: strict
    ),
    .executableTarget(
      name: "FuzzZMTP",
      dependencies: ["SluiceDirect", .product(name: "NIOCore", package: "swift-nio")],
      path: "Fuzz/FuzzZMTP",
      swiftSettings: strict
    ),
    .executableTarget(
      name: "FuzzMoldUDP64",
      dependencies: ["SluiceFeed", .product(name: "NIOCore", package: "swift-nio")],
      path: "Fuzz/FuzzMoldUDP64",
      swiftSettings: strict
    ),
    .executableTarget(
      name: "FuzzSASL",
      dependencies: ["SluiceSASL"],
      path: "Fuzz/FuzzSASL",
      swiftSettings: strict
    ),
    .executableTarget(
      name: "FuzzStatsD",
      dependencies: ["SluiceStatsD", .product(name: "NIOCore", package: "swift-nio")],
      path: "Fuzz/FuzzStatsD",
      swiftSettings: strict
    ),
    .executableTarget(
      name: "FuzzProduce",
      dependencies: [
        "KafkaProtocol", "SluiceBroker", "SluiceKafka", "SluiceStorage",
        .product(name: "NIOCore", package: "swift-nio"),
      ],
      path: "Fuzz/FuzzProduce",
      swiftSettings: strict
    ),
    .executableTarget(
      name: "DirectBench",
      dependencies: [
        "SluiceDirect",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ],
      path: "Benchmarks/DirectBench",
      swiftSettings: strict
    ),
    .executableTarget(
      name: "CodecBench",
      dependencies: ["KafkaProtocol", .product(name: "NIOCore", package: "swift-nio")],
      path: "Benchmarks/CodecBench",
      swiftSettings: strict
    ),
    // What the test targets share: an in-process broker on a free port, loopback sockets, the
    // seeded generator, hand-built batches, the broker through the Kafka front door.
    .target(
      name: "SluiceTestSupport",
      dependencies: [
        "KafkaClient", "KafkaProtocol", "SluiceBroker", "SluiceKafka", "SluiceServer",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "Logging", package: "swift-log"),
      ],
      path: "Tests/SluiceTestSupport",
      swiftSettings: strict
    ),
    .testTarget(
      name: "SluiceStorageTests",
      dependencies: [
        "SluiceStorage", "SluiceTestSupport",
        "KafkaProtocol",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ],
      swiftSettings: strict
    ),
    .executableTarget(
      name: "StorageBench",
      dependencies: [
        "SluiceStorage",
        "KafkaProtocol",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ],
      path: "Benchmarks/StorageBench",
      swiftSettings: strict
    ),
    .testTarget(
      name: "SluiceBrokerTests",
      dependencies: [
        "SluiceBroker", "SluiceKafka", "SluiceStorage", "KafkaProtocol", "SluiceTestSupport", "SluiceSASL",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ],
      swiftSettings: strict
    ),
    .testTarget(
      name: "KafkaClientTests",
      dependencies: [
        "KafkaClient", "KafkaProtocol", "SluiceBroker", "SluiceServer", "SluiceEmbedded", "SluiceTestSupport",
        "SluiceSASL",
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strict
    ),
    .testTarget(
      name: "SluiceHTTPTests",
      dependencies: [
        "SluiceHTTP", "SluiceBroker", "SluiceTestSupport",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strict
    ),
    .testTarget(
      name: "SluiceDirectTests",
      dependencies: [
        "SluiceDirect", "SluiceServer", "SluiceBroker", "KafkaProtocol", "SluiceTestSupport",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ],
      swiftSettings: strict
    ),
    .testTarget(
      name: "SluiceUDPTests",
      dependencies: [
        "SluiceFeed", "SluiceStatsD", "SluiceServer", "SluiceBroker", "KafkaProtocol", "SluiceTestSupport",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOEmbedded", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ],
      swiftSettings: strict
    ),
    .testTarget(
      name: "KafkaProtocolTests",
      dependencies: [
        "KafkaProtocol", "SluiceTestSupport",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOEmbedded", package: "swift-nio"),
        .product(name: "NIOTestUtils", package: "swift-nio"),
      ],
      resources: [.copy("Fixtures")],
      swiftSettings: strict
    ),
  ],
  swiftLanguageModes: [.v6]
)
