import KafkaProtocol
import NIOCore
import SluiceKafka

/// Serves Produce and Fetch on the connection's event loop, without the connection's Swift
/// task: the front door answers them through ``KafkaFrontDoor/replyWithoutTask(to:context:completion:)``,
/// at once or — a Fetch parked until an append, a Produce waiting for its fsync — through a
/// completion on this loop. Every other request goes on to the connection's task
/// (`KafkaServer.serve`), which tells this handler when it has answered it.
///
/// Profiled at 10,000 single-record requests/s (scripts/bench-latency.py): the task's
/// per-request cost — the inbound stream's yield and resumption, a task switch, a promise
/// awaited per response — was about a fifth of the broker's CPU.
///
/// As Kafka does, a connection has one request in progress at a time: responses go out in
/// request order, and frames that arrive meanwhile wait here, reading from the socket
/// paused while any wait. Responses written while handling one read are flushed together when the
/// read completes. Installed on listeners without SASL or client certificates (the task
/// authenticates those connections first).
final class KafkaFastPath: ChannelDuplexHandler {
  typealias InboundIn = ByteBuffer
  typealias InboundOut = ByteBuffer
  typealias OutboundIn = ByteBuffer
  typealias OutboundOut = IOData

  let server: KafkaServer
  /// Set by the connection's task once it runs (its request context and idle-sweeper
  /// entry); until then every frame goes to the task.
  private var connection: (context: RequestContext, idle: IdleSweeper, entry: IdleSweeper.Entry)?
  private var queue = CircularBuffer<ByteBuffer>()
  /// A request is in progress (here or in the task), or the client is muted for its quota,
  /// or the socket's send buffer is full.
  private var busy = false
  private var waitingForWritable = false
  /// A read the pipeline asked for while a frame waited here, issued once none waits.
  private var readHeld = false
  private var needsFlush = false
  private var idleWaiters: [EventLoopPromise<Void>] = []
  private var handlerContext: ChannelHandlerContext?

  init(server: KafkaServer) {
    self.server = server
  }

  func handlerAdded(context: ChannelHandlerContext) {
    handlerContext = context
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    handlerContext = nil
    for waiter in idleWaiters { waiter.succeed() }
    idleWaiters.removeAll()
  }

  /// Called (on the loop) by the connection's task when it starts serving.
  func taskStarted(context: RequestContext, idle: IdleSweeper, entry: IdleSweeper.Entry) {
    connection = (context, idle, entry)
  }

  /// Called (on the loop) by the connection's task once it has answered a request it was
  /// handed (or decided to close the connection).
  func taskAnswered() {
    guard busy else { return }
    busy = false
    resume()
  }

  /// Succeeds once no request is in progress here and every response written so far has
  /// been sent (the task waits for it before closing the channel, which would fail writes
  /// still pending).
  func whenIdle(on loop: any EventLoop) -> EventLoopFuture<Void> {
    guard handlerContext != nil else { return loop.makeSucceededVoidFuture() }
    var idle = loop.makeSucceededVoidFuture()
    if busy {
      let promise = loop.makePromise(of: Void.self)
      idleWaiters.append(promise)
      idle = promise.futureResult
    }
    let bound = NIOLoopBound(self, eventLoop: loop)
    return idle.flatMap { bound.value.sent(on: loop) }
  }

  /// Succeeds once what was written before has been sent: an empty write, completed in
  /// order after them.
  private func sent(on loop: any EventLoop) -> EventLoopFuture<Void> {
    guard let context = handlerContext else { return loop.makeSucceededVoidFuture() }
    let promise = loop.makePromise(of: Void.self)
    context.writeAndFlush(wrapOutboundOut(.byteBuffer(ByteBuffer())), promise: promise)
    return promise.futureResult
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    queue.append(unwrapInboundIn(data))
    if !busy { drain(context: context) }
  }

  func channelReadComplete(context: ChannelHandlerContext) {
    flushIfNeeded(context: context)
    context.fireChannelReadComplete()
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if let event = event as? ChannelEvent, event == .inputClosed {
      // Graceful shutdown closes the input: the request in progress finishes; the ones not
      // started are dropped, as Kafka does (the client sends them again elsewhere).
      queue.removeAll()
    }
    context.fireUserInboundEventTriggered(event)
  }

  func channelWritabilityChanged(context: ChannelHandlerContext) {
    if context.channel.isWritable && waitingForWritable {
      waitingForWritable = false
      busy = false
      resume()
    }
    context.fireChannelWritabilityChanged()
  }

  func read(context: ChannelHandlerContext) {
    // Reading goes on while a request is in progress (a consumer's next Fetch, a
    // producer's next Produce arrive meanwhile), and pauses once a frame waits behind it:
    // at most about one read of frames is held here. (Pausing for every parked Fetch would
    // cost two epoll_ctl calls per Fetch: NIO unregisters and registers for reading.)
    if queue.isEmpty {
      context.read()
    } else {
      readHeld = true
    }
  }

  /// Goes on after a request ended: the queued frames, then the held read.
  private func resume() {
    guard let context = handlerContext else { return }
    drain(context: context)
    flushIfNeeded(context: context)
  }

  private func drain(context: ChannelHandlerContext) {
    while !busy, let frame = queue.popFirst() {
      serve(frame, context: context)
    }
    if !busy {
      for waiter in idleWaiters { waiter.succeed() }
      idleWaiters.removeAll()
    }
    if queue.isEmpty && readHeld {
      readHeld = false
      context.read()
    }
  }

  private func flushIfNeeded(context: ChannelHandlerContext) {
    if needsFlush {
      needsFlush = false
      context.flush()
    }
  }

  private func serve(_ frame: ByteBuffer, context: ChannelHandlerContext) {
    guard let connection, server.shuttingDown.withLock({ $0 }) == nil,
      let prefix = RequestHeaderPrefix.peek(frame), prefix.apiKey == .produce || prefix.apiKey == .fetch,
      case .success(let request) = KafkaServer.decode(frame, prefix)
    else {
      handToTask(frame, context: context)
      return
    }
    var requestContext = connection.context
    requestContext.requestBytes = frame.readableBytes
    connection.idle.requestStarted(connection.entry)
    let loop = context.eventLoop
    let bound = NIOLoopBound(self, eventLoop: loop)
    let outcome = server.frontDoor.replyWithoutTask(to: request, context: requestContext) { reply in
      // Queued even when already on the loop: the reply follows this call's `.later`.
      loop.execute { bound.value.finish(reply, prefix, later: true) }
    }
    switch outcome {
    case .reply(let reply):
      finish(reply, prefix, later: false)
    case .later:
      busy = true
    case .notHandled:
      connection.idle.requestEnded(connection.entry)
      handToTask(frame, context: context)
    }
  }

  private func handToTask(_ frame: ByteBuffer, context: ChannelHandlerContext) {
    busy = true
    context.fireChannelRead(wrapInboundOut(frame))
    // NIOAsyncChannel passes frames to the task when a read completes, and this one may be
    // handed on after its read (once the request before it was answered).
    context.fireChannelReadComplete()
  }

  /// Writes a request's reply; `later`: it came through the completion (the request had
  /// made this handler busy).
  private func finish(_ reply: KafkaReply?, _ prefix: RequestHeaderPrefix, later: Bool) {
    if let connection { connection.idle.requestEnded(connection.entry) }
    guard let context = handlerContext else { return }
    if later { busy = false }
    if let reply, reply.body != nil {
      switch server.encode(
        reply, correlationId: prefix.correlationId, apiKey: prefix.apiKey, version: prefix.apiVersion)
      {
      case .send(let bytes):
        context.write(wrapOutboundOut(.byteBuffer(bytes)), promise: nil)
      case .sendPieces(let pieces, let handles):
        // The file handles are closed once NIO has sent their regions.
        let sent = context.eventLoop.makePromise(of: Void.self)
        for (index, piece) in pieces.enumerated() {
          context.write(wrapOutboundOut(piece), promise: index == pieces.count - 1 ? sent : nil)
        }
        sent.futureResult.whenComplete { _ in
          for handle in handles { try? handle.close() }
        }
      case .close:
        context.close(promise: nil)
        return
      case .nothing:
        break
      }
      needsFlush = true
    }
    if let muteMs = reply?.muteMs, muteMs > 0 {
      // A client over its quota: read nothing more from it for this long.
      busy = true
      let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
      context.eventLoop.scheduleTask(in: .milliseconds(muteMs)) {
        bound.value.busy = false
        bound.value.resume()
      }
    } else if !context.channel.isWritable {
      // The client is not reading its responses: wait before serving more.
      busy = true
      waitingForWritable = true
    }
    if later { resume() }
  }
}
