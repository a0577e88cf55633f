public import KafkaProtocol
import Synchronization

#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif

/// What the broker knows of one topic, persisted across restarts.
public struct TopicRecord: Hashable, Sendable, Codable {
  public var name: String
  /// The topic id: a random UUID, stable for the topic's life (Metadata v10+, Fetch v13+).
  public var id: String
  public var partitions: Int32
  /// Topic-level configs as Kafka names them (`retention.ms`, `sluice.storage`, …); only
  /// those set explicitly, the broker supplies defaults.
  public var configs: [String: String]

  public init(name: String, id: KafkaUUID, partitions: Int32, configs: [String: String]) {
    self.name = name
    self.id = id.description
    self.partitions = partitions
    self.configs = configs
  }

  public var topicId: KafkaUUID { KafkaUUID(parsing: id) ?? .zero }
}

/// The broker's durable metadata: one JSON document, replaced atomically (temporary
/// file, fsync, rename, directory fsync), so a crash at any instant leaves the old or the
/// new state, never a mix. `sections` is room for later subsystems (committed offsets,
/// producer state) that want the same guarantee for small state.
public final class MetadataStore: Sendable {
  public struct Document: Hashable, Sendable, Codable {
    public var version = 1
    public var clusterId: String
    public var topics: [String: TopicRecord] = [:]
    public var sections: [String: [String: String]] = [:]
  }

  public let path: String
  let document: Mutex<Document>

  /// Opens `<directory>/meta.json`, creating it (with a new cluster id) if absent.
  public init(directory: String) throws(StorageError) {
    try FileSystem.makeDirectory(directory)
    path = directory + "/meta.json"
    if let bytes = try FileSystem.readAll(path) {
      do {
        document = Mutex(try JSONDecoder().decode(Document.self, from: Data(bytes)))
      } catch {
        throw StorageError(.corruptMetadata, "\(path): \(error)")
      }
    } else {
      let fresh = Document(clusterId: KafkaUUID.random().description)
      try Self.write(fresh, to: path)
      document = Mutex(fresh)
    }
  }

  /// Reads `<directory>/meta.json` without creating or changing anything (`sluice storage
  /// verify`); nil if there is none.
  public static func read(directory: String) throws(StorageError) -> Document? {
    let path = directory + "/meta.json"
    guard let bytes = try FileSystem.readAll(path) else { return nil }
    do {
      return try JSONDecoder().decode(Document.self, from: Data(bytes))
    } catch {
      throw StorageError(.corruptMetadata, "\(path): \(error)")
    }
  }

  static func write(_ document: Document, to path: String) throws(StorageError) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
    let data: Data
    do {
      data = try encoder.encode(document)
    } catch {
      throw StorageError(.corruptMetadata, "cannot encode metadata: \(error)")
    }
    try FileSystem.writeAtomically(path, Array(data))
  }

  public var snapshot: Document { document.withLock { $0 } }

  /// Applies `change` and persists the result before returning; if persisting fails the
  /// in-memory state is left as it was.
  @discardableResult
  public func update<R>(_ change: (inout Document) throws(StorageError) -> R) throws(StorageError) -> R {
    try document.withLock { (current: inout Document) throws(StorageError) -> R in
      var next = current
      let result = try change(&next)
      if next != current {
        try Self.write(next, to: path)
        current = next
      }
      return result
    }
  }
}

extension KafkaUUID {
  /// Parses the canonical 8-4-4-4-12 hex form.
  public init?(parsing text: String) {
    let hex = text.filter { $0 != "-" }
    guard hex.count == 32, let high = UInt64(hex.prefix(16), radix: 16),
      let low = UInt64(hex.suffix(16), radix: 16)
    else { return nil }
    self.init(high: high, low: low)
  }
}
