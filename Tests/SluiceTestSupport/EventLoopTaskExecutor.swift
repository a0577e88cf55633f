public import NIOCore

/// Runs a task's jobs on one event loop, as NIO does when it is the global executor (what
/// `sluice serve` installs): tests use it to call the broker from a loop thread.
public final class EventLoopTaskExecutor: TaskExecutor {
  let loop: any EventLoop
  public init(_ loop: any EventLoop) { self.loop = loop }

  public func enqueue(_ job: consuming ExecutorJob) {
    let job = UnownedJob(job)
    loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
  }
}
