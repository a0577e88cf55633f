import Synchronization

/// What a registry runs: one bridge of a topic, with the task that serves it.
protocol BridgeItem: AnyObject, Sendable {
  var topic: String { get }
  var task: TaskSlot { get }
}

/// The task serving a bridge, set once it starts.
final class TaskSlot: Sendable {
  private let task = Mutex<Task<Void, Never>?>(nil)

  func set(_ value: Task<Void, Never>) { task.withLock { $0 = value } }
  func cancel() { task.withLock { $0?.cancel() } }
  var value: Task<Void, Never>? { task.withLock { $0 } }
}

/// The running bridges of one kind (ZeroMQ sockets, multicast feeds), keyed by what their
/// topic's configs ask for and reconciled against them every second: started when wanted,
/// cancelled when not. A bridge that replaces one of the same topic (a config changed)
/// starts once the old one has ended, so its ports are free.
final class BridgeRegistry<Item: BridgeItem>: Sendable {
  private let running = Mutex<[String: Item]>([:])

  var items: [Item] { running.withLock { Array($0.values) } }

  /// `wanted` maps each key to a maker of its bridge; `run` serves a bridge until it is
  /// cancelled. Returns the bridges started and stopped.
  @discardableResult
  func reconcile(
    _ wanted: [String: () -> Item], run: @escaping @Sendable (Item) async -> Void
  ) -> (started: [Item], stopped: [Item]) {
    let (started, stopped) = running.withLock { running -> ([Item], [Item]) in
      let stopped = running.filter { wanted[$0.key] == nil }
      for key in stopped.keys { running[key] = nil }
      var started: [Item] = []
      for (key, make) in wanted where running[key] == nil {
        let item = make()
        running[key] = item
        started.append(item)
      }
      return (started, Array(stopped.values))
    }
    for item in stopped { item.task.cancel() }
    for item in started {
      let previous = stopped.first { $0.topic == item.topic }?.task.value
      let task = Task {
        await previous?.value
        await run(item)
      }
      item.task.set(task)
    }
    return (started, stopped)
  }

  /// Cancels every bridge and waits for them to end.
  func stopAll() async {
    let items = running.withLock { running in
      defer { running = [:] }
      return Array(running.values)
    }
    for item in items { item.task.cancel() }
    for item in items { await item.task.value?.value }
  }
}
