import NIOPosix

/// The rule that fsync (and the metadata file's write-fsync-rename) never runs on an event
/// loop thread, where it would hold up every connection on that loop for as long as the
/// disk takes. Callers hand such work to a thread pool; in debug builds a call from an event
/// loop traps here, so every test that drives the broker through a real listener (and the
/// compat suite, which runs the debug binary) checks the rule.
enum BlockingCalls {
  @inline(__always)
  static func check(_ what: StaticString) {
    assert(
      MultiThreadedEventLoopGroup.currentEventLoop == nil,
      "\(what) on an event loop thread: hand it to a thread pool")
  }
}
