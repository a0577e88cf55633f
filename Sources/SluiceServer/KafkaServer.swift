import KafkaProtocol
public import Logging
import NIOCore
public import NIOPosix
import NIOSSL
public import ServiceLifecycle
public import SluiceBroker
import SluiceKafka
import SluiceSASL
import Synchronization

/// The Kafka listener: thin translation between frames on a connection and broker calls.
///
/// Each connection is a task that reads one request, hands it to the broker, and writes the
/// response before reading the next — so responses leave strictly in request order, as
/// Kafka's own broker does (it mutes a connection while a request is in flight). Many
/// connections are served concurrently. Frames are bounded by `maximumFrameSize`
/// (`socket.request.max.bytes`) before any byte of them is buffered.
///
/// As a swift-service-lifecycle `Service`: on graceful shutdown it stops accepting, lets
/// each connection finish the request it is handling, and returns.
public final class KafkaServer: Service, Sendable {
  public struct Configuration: Sendable {
    /// Where to bind, and how connections are secured (docs/security.md).
    public var listener = ListenerConfiguration()
    public var host: String {
      get { listener.host }
      set { listener.host = newValue }
    }
    public var port: Int {
      get { listener.port }
      set { listener.port = newValue }
    }
    /// `socket.request.max.bytes`.
    public var maximumFrameSize = 104_857_600
    /// Connections beyond this are closed at once.
    public var maximumConnections = 10_000
    /// `max.connections.per.ip`: connections from one client address beyond this are
    /// closed at once (Kafka's default: unlimited).
    public var maximumConnectionsPerHost = Int.max
    /// `connections.max.idle.ms`: a connection that has not completed a request for this
    /// long (and has none in progress) is closed. Only complete requests reset the timer:
    /// partial frames (a sender trickling bytes) do not. Kafka's default, 10 minutes.
    public var maximumIdleMs: Int64 = 600_000
    /// `max.connection.creation.rate`: new connections per second, broker-wide; beyond it
    /// the listener pauses accepting until the rate allows (Int.max: unlimited, Kafka's
    /// default). Per client address, the `ip` quotas' `connection_creation_rate` applies.
    public var maximumConnectionCreationRate = Int.max
    public init() {}
  }

  let broker: Broker
  /// Decoded requests go through the Kafka front door to the broker's domain API.
  let frontDoor: KafkaFrontDoor
  let configuration: Configuration
  let group: MultiThreadedEventLoopGroup
  let logger: Logger
  let boundPort = Mutex<Int?>(nil)
  let bound = Mutex<[CheckedContinuation<Int, any Error>]>([])
  let connections = Mutex<[ObjectIdentifier: any Channel]>([:])
  /// Encoded ApiVersions responses by version (correlation id 0), see `apiVersionsReply`.
  let apiVersionsFrames = Mutex<[Int16: ByteBuffer]>([:])
  /// `connections.max.idle.ms`: one sweeper per event loop, for the connections on it.
  let idleSweepers = Mutex<[ObjectIdentifier: IdleSweeper]>([:])
  /// Admitted connections, counted at accept time (total and per client address).
  let admitted = Mutex<(total: Int, perHost: [String: Int])>((0, [:]))
  /// Connections refused or delayed by the connection creation rates.
  public let connectionRates = ConnectionRateCounters()

  public init(
    broker: Broker, configuration: Configuration, group: MultiThreadedEventLoopGroup, logger: Logger
  ) {
    self.broker = broker
    self.frontDoor = KafkaFrontDoor(broker: broker)
    self.configuration = configuration
    self.group = group
    self.logger = logger
  }

  /// Set when the server stops: how a connection that registers afterwards is closed at once
  /// (`.input` on graceful shutdown, letting it finish a request in hand; `.all` when `run` is
  /// cancelled).
  let shuttingDown = Mutex<CloseMode?>(nil)

  /// Connection tasks still running, and who waits for them all to end.
  let running = Mutex<(count: Int, drained: CheckedContinuation<Void, Never>?)>((0, nil))

  func connectionTaskEnded() {
    let drained: CheckedContinuation<Void, Never>? = running.withLock { state in
      state.count -= 1
      guard state.count == 0, let waiting = state.drained else { return nil }
      state.drained = nil
      return waiting
    }
    drained?.resume()
  }

  /// Closes every open connection (`.input`: lets each finish the request in hand).
  func closeAllConnections(mode: CloseMode = .all) {
    if mode == .input && configuration.listener.securityProtocol.usesTLS {
      // TLS cannot close only the input: idle connections close now, busy ones after
      // their request (the serve loop checks `shuttingDown`).
      for sweeper in idleSweepers.withLock({ Array($0.values) }) { sweeper.closeIdle() }
      return
    }
    let open = connections.withLock { Array($0.values) }
    for channel in open {
      // On the channel's loop, where `isActive` is current: a channel not active yet has no
      // request in hand, and NIO asserts on half-closing one.
      channel.eventLoop.execute { channel.close(mode: channel.isActive ? mode : .all, promise: nil) }
    }
  }

  /// Connections currently admitted.
  public var connectionCount: Int { admitted.withLock { $0.total } }

  /// The port actually bound (useful with port 0); waits until the listener is up.
  public func waitUntilBound() async throws -> Int {
    if let port = boundPort.withLock({ $0 }) { return port }
    return try await withCheckedThrowingContinuation { continuation in
      let port: Int? = bound.withLock { waiting in
        if let port = boundPort.withLock({ $0 }) { return port }
        waiting.append(continuation)
        return nil
      }
      if let port { continuation.resume(returning: port) }
    }
  }

  public func run() async throws {
    let maximumFrameSize = configuration.maximumFrameSize
    let (brokerRate, quotas, counters, logger) = (
      configuration.maximumConnectionCreationRate, broker.quotas, connectionRates, logger
    )
    let listener = try await ServerBootstrap(group: group)
      .serverChannelOption(.backlog, value: 1024)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      // AcceptBackoffHandler: when accept fails (EMFILE, ENFILE), stop accepting for a while
      // rather than retry in a loop that spins the listener's event loop (NIO adds it only
      // on its async bind). Then the connection creation rates, applied to each accepted
      // socket before it is set up.
      .serverChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.addHandler(AcceptBackoffHandler())
          try channel.pipeline.syncOperations.addHandler(
            ConnectionRateHandler(brokerRate: brokerRate, quotas: quotas, counters: counters, logger: logger))
        }
      }
      .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
      .childChannelOption(.maxMessagesPerRead, value: 16)
      // Runs on the accepted channel's own event loop, before it is registered: admission,
      // the frame decoder, and the connection's task, started right here so that it runs
      // on this loop from its first step (no hop from an accepting task on another loop).
      // A thrown error makes NIO close the channel.
      .childChannelInitializer { [self] channel in
        channel.eventLoop.makeCompletedFuture {
          let host = channel.remoteAddress?.ipAddress ?? ""
          if let refusal = admit(host) {
            logger.warning("\(refusal); closing new connection")
            throw ConnectionRefused()
          }
          do {
            let listener = configuration.listener
            if let tls = listener.tls {
              try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.context))
            }
            // Until a SASL connection has authenticated, frames are bounded by 512 KiB.
            var frameLimit: FrameLimit?
            if listener.securityProtocol.usesSASL {
              let limit = FrameLimit(min(maximumFrameSize, 512 * 1024))
              frameLimit = limit
              try channel.pipeline.syncOperations.addHandler(
                ByteToMessageHandler(LimitedFrameDecoder(limit: limit)))
            } else {
              try channel.pipeline.syncOperations.addHandler(
                ByteToMessageHandler(KafkaFrameDecoder(maximumFrameSize: maximumFrameSize)))
            }
            // Produce and Fetch without the task on plaintext listeners (TLS and SASL
            // connections keep the task: it authenticates them, and on graceful shutdown it
            // closes a TLS connection after its response, which cannot be half-closed).
            var fastPath: NIOLoopBound<KafkaFastPath>?
            if listener.securityProtocol == .plaintext {
              let handler = KafkaFastPath(server: self)
              try channel.pipeline.syncOperations.addHandler(handler)
              fastPath = NIOLoopBound(handler, eventLoop: channel.eventLoop)
            }
            let connection = try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
              wrappingChannelSynchronously: channel)
            startConnection(connection, host: host, frameLimit: frameLimit, fastPath: fastPath)
          } catch {
            release(host)
            throw error
          }
        }
      }
      .bind(host: configuration.host, port: configuration.port).get()
    let port = listener.localAddress?.port ?? configuration.port
    let waiting = bound.withLock { waiting in
      boundPort.withLock { $0 = port }
      let all = waiting
      waiting.removeAll()
      return all
    }
    for continuation in waiting { continuation.resume(returning: port) }
    logger.info(
      "Kafka listener \(configuration.listener.securityProtocol.rawValue)://\(configuration.host):\(port)")

    // Connections are unstructured, counted tasks (see `startConnection`). This task waits
    // for the listener to close (graceful shutdown or cancellation closes it), then for every
    // connection to finish its request in hand.
    await withGracefulShutdownHandler {
      await withTaskCancellationHandler {
        try? await listener.closeFuture.get()
        // A socket accepted just before the close has its set-up (and `startConnection`)
        // queued on its own loop: one empty task through every loop runs those first, so
        // that the count below includes them.
        await flushEventLoops()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
          let idle = running.withLock { state -> Bool in
            if state.count == 0 { return true }
            state.drained = continuation
            return false
          }
          if idle { continuation.resume() }
        }
      } onCancel: {
        self.shuttingDown.withLock { $0 = .all }
        listener.close(promise: nil)
        self.closeAllConnections()
      }
    } onGracefulShutdown: {
      // Stop accepting; close every connection's input so each finishes its current request.
      self.shuttingDown.withLock { $0 = $0 ?? .input }
      listener.close(promise: nil)
      self.broker.beginShutdown()  // parked JoinGroup/SyncGroup requests end now
      self.closeAllConnections(mode: .input)
    }
  }

  struct ConnectionRefused: Error {}

  /// Runs an empty task through every event loop of the group, so that what they had queued
  /// has run. A loop that has shut down drops the task; each is waited for at most a second.
  func flushEventLoops() async {
    final class Once: Sendable {
      let continuation: Mutex<CheckedContinuation<Void, Never>?>
      init(_ continuation: CheckedContinuation<Void, Never>) { self.continuation = Mutex(continuation) }
      func resume() { continuation.withLock { $0.take() }?.resume() }
    }
    for loop in group.makeIterator() {
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let once = Once(continuation)
        loop.execute { once.resume() }
        Task {
          try? await Task.sleep(for: .seconds(1))
          once.resume()
        }
      }
    }
  }

  /// The idle sweeper of `loop`'s connections, created on first use.
  func idleSweeper(for loop: any EventLoop) -> IdleSweeper {
    idleSweepers.withLock { sweepers in
      if let sweeper = sweepers[ObjectIdentifier(loop)] { return sweeper }
      let sweeper = IdleSweeper(loop: loop, limitMs: configuration.maximumIdleMs, logger: logger)
      sweepers[ObjectIdentifier(loop)] = sweeper
      return sweeper
    }
  }

  /// Counts a new connection from `host` against the caps; the refusal, if over one.
  func admit(_ host: String) -> String? {
    admitted.withLock { state in
      if state.total >= configuration.maximumConnections {
        return "connection limit \(configuration.maximumConnections) reached"
      }
      if state.perHost[host, default: 0] >= configuration.maximumConnectionsPerHost {
        return "connection limit per address \(configuration.maximumConnectionsPerHost) reached for \(host)"
      }
      state.total += 1
      state.perHost[host, default: 0] += 1
      return nil
    }
  }

  /// Uncounts a connection `admit` counted.
  func release(_ host: String) {
    admitted.withLock { state in
      state.total -= 1
      let left = state.perHost[host, default: 1] - 1
      state.perHost[host] = left > 0 ? left : nil
    }
  }

  /// One unstructured task per connection, counted, rather than a child of one task group:
  /// the runtime removes a finished child from its group by walking the list of children,
  /// which with thousands of idle connections made every connection close cost O(n) (9% of
  /// broker CPU under a reconnect storm, scripts/abuse-latency.py). Called on the
  /// connection's event loop, so the task starts there (NIO is the global executor, and it
  /// enqueues a new task on the loop it is created from).
  /// A socket accepted just before the listener closed gets here before `run` counts the
  /// tasks left (it flushes every loop first); its task then finds `shuttingDown` set and
  /// ends at once, releasing its counts.
  func startConnection(
    _ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, host: String, frameLimit: FrameLimit?,
    fastPath: NIOLoopBound<KafkaFastPath>?
  ) {
    running.withLock { $0.count += 1 }
    Task {
      defer {
        self.release(host)
        self.connectionTaskEnded()
      }
      await self.serve(connection, frameLimit: frameLimit, fastPath: fastPath)
    }
  }

  /// Runs `body` with the connection's fast path on its loop (now, when already there).
  func withFastPath(
    _ fastPath: NIOLoopBound<KafkaFastPath>?, _ body: @escaping @Sendable (KafkaFastPath) -> Void
  ) {
    guard let fastPath else { return }
    if fastPath.eventLoop.inEventLoop {
      body(fastPath.value)
    } else {
      fastPath.eventLoop.execute { body(fastPath.value) }
    }
  }

  func serve(
    _ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, frameLimit: FrameLimit? = nil,
    fastPath: NIOLoopBound<KafkaFastPath>? = nil
  ) async {
    let channel = connection.channel
    // The task should run on the event loop that owns the channel: with NIO as the global
    // executor a task is enqueued on the loop it is resumed from (`any()` is sticky), and a
    // task on another loop would pay a thread hop for every write. `startConnection` creates
    // it on the channel's loop; with the default executor (embedding), hop there once.
    if !channel.eventLoop.inEventLoop { try? await channel.eventLoop.submit {}.get() }
    let id = ObjectIdentifier(channel)
    let late = connections.withLock { open -> CloseMode? in
      open[id] = channel
      return shuttingDown.withLock { $0 }
    }
    // A connection that registers once the server is stopping has no request in hand: it is
    // closed outright. (Half-closing its input, as graceful shutdown does to the others,
    // trips a NIO assertion when the channel is not active yet, which a socket accepted an
    // instant before the stop may not be.)
    if late != nil { channel.close(mode: .all, promise: nil) }
    defer { _ = connections.withLock { $0.removeValue(forKey: id) } }
    let peer = channel.remoteAddress?.ipAddress ?? ""
    let listener = configuration.listener
    // Zero-copy (sendfile) only where bytes go to the socket as they are: not through TLS.
    var context = RequestContext(
      clientHost: peer, zeroCopy: !listener.securityProtocol.usesTLS, connectionOpen: { channel.isActive },
      eventLoop: channel.eventLoop, advertised: listener.advertised)
    var sasl =
      listener.securityProtocol.usesSASL
      ? SaslSession(
        mechanisms: listener.saslMechanisms, security: broker.security,
        reauthenticationMs: listener.reauthenticationMs) : nil
    var certificateChecked =
      listener.tls == nil || listener.tls?.clientAuthentication == ClientAuthentication.none
    let idle = idleSweeper(for: channel.eventLoop)
    let watched = idle.add(channel)
    defer { idle.remove(watched) }
    withFastPath(fastPath) { [context] in $0.taskStarted(context: context, idle: idle, entry: watched) }
    do {
      try await connection.executeThenClose { inbound, _ in
        for try await frame in inbound {
          // The fast path handed this frame on and waits for its answer.
          defer { withFastPath(fastPath) { $0.taskAnswered() } }
          // A TLS connection cannot be half-closed: once the server is stopping, a request
          // that still arrives is not served (the client retries elsewhere).
          if listener.securityProtocol.usesTLS && shuttingDown.withLock({ $0 }) != nil { return }
          idle.requestStarted(watched)
          defer { idle.requestEnded(watched) }
          // A client certificate (SSL listeners that ask for one) names the principal, unless
          // SASL authenticates the connection. The handshake is over once a frame arrived.
          if !certificateChecked {
            certificateChecked = true
            let certificate = try? await channel.pipeline.handler(type: NIOSSLServerHandler.self).map {
              $0.peerCertificate
            }.get()
            if let certificate, let principal = TLSIdentity.principal(of: certificate) {
              context.principal = principal
            }
          }
          if sasl != nil {
            switch await saslStep(frame, session: &sasl!, channel: channel, frameLimit: frameLimit) {
            case .handled: continue
            case .close(let reason):
              logger.debug("closing connection from \(peer): \(reason)")
              return
            case .pass:
              if let principal = sasl?.principal { context.principal = principal }
            }
          }
          var requestContext = context
          requestContext.requestBytes = frame.readableBytes
          guard let (reply, muteMs) = await respond(to: frame, context: requestContext) else { continue }
          switch reply {
          case .send(let bytes):
            // Awaited: the next request is read once this response is on its way, and the
            // channel is never closed with a response still pending.
            try await channel.writeAndFlush(bytes)
          case .sendPieces(let pieces, let handles):
            // Written straight to the channel so the file handles can be closed only
            // once NIO has finished sending their regions.
            defer { for handle in handles { try? handle.close() } }
            var last: EventLoopFuture<Void>?
            for piece in pieces { last = channel.write(piece) }
            channel.flush()
            try await last?.get()
          case .close(let reason):
            logger.debug("closing connection from \(peer): \(reason)")
            return
          case .nothing:
            break
          }
          if listener.securityProtocol.usesTLS && shuttingDown.withLock({ $0 }) != nil { return }
          // A client over its quota: after the response, read nothing from it for this long.
          if muteMs > 0 { try await Task.sleep(for: .milliseconds(muteMs)) }
        }
        // The input has ended: the request the fast path has in progress is answered, and
        // every response written, before the channel closes.
        if let fastPath {
          try? await fastPath.eventLoop.flatSubmit { fastPath.value.whenIdle(on: fastPath.eventLoop) }.get()
        }
      }
    } catch {
      logger.debug("connection from \(peer) ended: \(error)")
    }
  }

  enum Reply {
    case send(ByteBuffer)
    /// A response whose record data goes out as file regions (sendfile).
    case sendPieces([IOData], handles: [NIOFileHandle])
    case close(String)
    /// Nothing to send (Produce with acks=0), but possibly a quota throttle to apply.
    case nothing
  }

  /// Decodes one frame, asks the broker, encodes the answer, with the quota throttle to
  /// apply after sending it. nil: nothing to send.
  func respond(to frame: ByteBuffer, context: RequestContext) async -> (reply: Reply, muteMs: Int64)? {
    var muteMs: Int64 = 0
    if let reply = await reply(to: frame, context: context, muteMs: &muteMs) { return (reply, muteMs) }
    return muteMs > 0 ? (.nothing, muteMs) : nil
  }

  struct Refusal: Error {
    var reason: String
  }

  /// Decodes a request of an API and version this broker serves; why not, otherwise (the
  /// connection is then closed).
  static func decode(_ frame: ByteBuffer, _ prefix: RequestHeaderPrefix) -> Result<KafkaRequest, Refusal> {
    guard let versions = KafkaFrontDoor.supportedVersions(prefix.apiKey), versions.contains(prefix.apiVersion)
    else { return .failure(Refusal(reason: "unsupported request \(prefix.apiKey) v\(prefix.apiVersion)")) }
    do {
      return .success(try KafkaRequest.decode(frame: frame))
    } catch {
      return .failure(Refusal(reason: "malformed \(prefix.apiKey) v\(prefix.apiVersion) request: \(error)"))
    }
  }

  func reply(to frame: ByteBuffer, context: RequestContext, muteMs: inout Int64) async -> Reply? {
    guard let prefix = RequestHeaderPrefix.peek(frame) else {
      return .close("frame of \(frame.readableBytes) bytes is too short for a request header")
    }
    if prefix.apiKey == .apiVersions,
      KafkaFrontDoor.supportedVersions(.apiVersions)?.contains(prefix.apiVersion) != true
    {
      // Answer with a v0 body listing what we support, so the client can retry (KIP-511).
      let body = frontDoor.apiVersions(errorCode: .unsupportedVersion)
      return encode(
        KafkaReply(body: .apiVersions(body)), correlationId: prefix.correlationId, apiKey: .apiVersions,
        version: 0)
    }
    let request: KafkaRequest
    switch Self.decode(frame, prefix) {
    case .success(let decoded): request = decoded
    case .failure(let refusal): return .close(refusal.reason)
    }
    if prefix.apiKey == .apiVersions {
      KafkaFrontDoor.countAnswered(request, nil, since: .now)
      return apiVersionsReply(version: prefix.apiVersion, prefix.correlationId)
    }
    guard let reply = await frontDoor.reply(to: request, context: context) else { return nil }
    muteMs = reply.muteMs
    guard reply.body != nil else { return nil }
    return encode(
      reply, correlationId: prefix.correlationId, apiKey: prefix.apiKey, version: prefix.apiVersion)
  }

  /// Every connection starts with ApiVersions, and its answer never changes while the broker
  /// runs: it is encoded once per version, then copied with the request's correlation id.
  func apiVersionsReply(version: Int16, _ correlationId: Int32) -> Reply {
    var reply: ByteBuffer
    if let cached = apiVersionsFrames.withLock({ $0[version] }) {
      reply = cached
    } else {
      let body = frontDoor.apiVersions(errorCode: .none)
      guard
        case .send(let encoded) = encode(
          KafkaReply(body: .apiVersions(body)), correlationId: 0, apiKey: .apiVersions, version: version)
      else { return .close("response encoding failed") }
      apiVersionsFrames.withLock { $0[version] = encoded }
      reply = encoded
    }
    reply.setInteger(correlationId, at: reply.readerIndex + 4)  // after the frame size
    return .send(reply)
  }

  /// Encodes a reply into what to send: one buffer, or buffers and record pieces (file
  /// regions go out with sendfile through their own descriptors, closed once sent).
  func encode(_ reply: KafkaReply, correlationId: Int32, apiKey: ApiKey, version: Int16) -> Reply {
    let pieces: [FramePiece]
    do {
      pieces = try KafkaResponseEncoder.encode(reply, correlationId: correlationId, apiVersion: version)
    } catch {
      logger.error("cannot encode \(apiKey) v\(version) response: \(error)")
      return .close("response encoding failed")
    }
    if pieces.count == 1, case .bytes(let bytes) = pieces[0] { return .send(bytes) }
    var data: [IOData] = []
    var handles: [NIOFileHandle] = []
    for piece in pieces {
      switch piece {
      case .bytes(let bytes), .records(.bytes(let bytes)):
        data.append(.byteBuffer(bytes))
      case .records(.file(let slice)):
        do {
          let handle = try slice.makeFileHandle()
          handles.append(handle)
          data.append(
            .fileRegion(
              FileRegion(
                fileHandle: handle, readerIndex: slice.position, endIndex: slice.position + slice.length)))
        } catch {
          for handle in handles { try? handle.close() }
          logger.error("cannot send file regions: \(error)")
          return .close("file regions could not be sent")
        }
      }
    }
    return .sendPieces(data, handles: handles)
  }
}

/// Runs the broker's periodic work (retention, time-based flushes).
public struct HousekeepingService: Service {
  let broker: Broker

  public init(broker: Broker) { self.broker = broker }

  public func run() async throws {
    let interval = Duration.milliseconds(broker.config.housekeepingIntervalMs)
    let broker = self.broker
    // Ends normally on graceful shutdown: a CancellationError escaping here would make the
    // ServiceGroup cancel the listener instead of letting it finish in-flight requests.
    await cancelWhenGracefulShutdown {
      while !Task.isCancelled {
        do {
          try await Task.sleep(for: interval)
        } catch {
          return
        }
        await broker.housekeeping()
      }
    }
  }
}
