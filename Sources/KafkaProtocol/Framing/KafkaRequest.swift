public import NIOCore

/// The fixed start of every request header (v0-v2): enough to answer even a request whose
/// API, version or body cannot be decoded.
public struct RequestHeaderPrefix: Hashable, Sendable {
  public var apiKey: ApiKey
  public var apiVersion: Int16
  public var correlationId: Int32

  /// Reads the first eight bytes of a frame without consuming them.
  public static func peek(_ frame: ByteBuffer) -> RequestHeaderPrefix? {
    guard
      let (key, version, correlation) = frame.getMultipleIntegers(
        at: frame.readerIndex, as: (Int16, Int16, Int32).self)
    else { return nil }
    return RequestHeaderPrefix(apiKey: ApiKey(rawValue: key), apiVersion: version, correlationId: correlation)
  }
}

/// A whole decoded request: header and body.
public struct KafkaRequest: Hashable, Sendable {
  public var header: RequestHeader
  public var body: KafkaRequestBody
  /// Bytes after the body. Kafka's broker ignores them, and a real client sends some
  /// (librdkafka 2.16 ends an all-topics Metadata v12 request with `01 00 00`), so they are
  /// tolerated and kept, to be written back verbatim.
  public var trailingBytes: ByteBuffer

  public init(header: RequestHeader, body: KafkaRequestBody, trailingBytes: ByteBuffer = ByteBuffer()) {
    self.header = header
    self.body = body
    self.trailingBytes = trailingBytes
  }

  /// Convenience for building a request to send.
  public init(correlationId: Int32, clientId: String?, apiVersion: Int16, body: KafkaRequestBody) {
    self.header = RequestHeader(
      requestApiKey: body.apiKey.rawValue, requestApiVersion: apiVersion, correlationId: correlationId,
      clientId: clientId)
    self.body = body
    self.trailingBytes = ByteBuffer()
  }

  public var apiKey: ApiKey { body.apiKey }
  public var apiVersion: Int16 { header.requestApiVersion }

  /// Decodes a frame (without its size prefix). Bytes after the body are kept in
  /// ``trailingBytes`` unless `strict`, in which case they are an error.
  public static func decode(frame: ByteBuffer, strict: Bool = false) throws(KafkaProtocolError)
    -> KafkaRequest
  {
    guard let prefix = RequestHeaderPrefix.peek(frame) else {
      throw KafkaProtocolError(.truncated, "request header needs 8 bytes, frame has \(frame.readableBytes)")
    }
    guard let versions = prefix.apiKey.definedVersions else {
      throw KafkaProtocolError(.unknownApiKey, "API key \(prefix.apiKey.rawValue)")
    }
    guard versions.contains(prefix.apiVersion) else {
      throw KafkaProtocolError(.unsupportedVersion, "\(prefix.apiKey.name) v\(prefix.apiVersion)")
    }
    var buffer = frame
    let headerVersion = prefix.apiKey.requestHeaderVersion(apiVersion: prefix.apiVersion)
    let header = try RequestHeader(from: &buffer, version: headerVersion)
    let body = try KafkaRequestBody.decode(apiKey: prefix.apiKey, version: prefix.apiVersion, from: &buffer)
    guard !strict || buffer.readableBytes == 0 else {
      throw KafkaProtocolError(
        .trailingBytes, "\(buffer.readableBytes) bytes after \(prefix.apiKey.name) v\(prefix.apiVersion)")
    }
    return KafkaRequest(header: header, body: body, trailingBytes: buffer)
  }

  /// Writes the frame: size prefix, header, body.
  public func encodeFrame(into buffer: inout ByteBuffer) throws(KafkaProtocolError) {
    guard header.requestApiKey == body.apiKey.rawValue else {
      throw KafkaProtocolError(
        .unknownApiKey, "header says API \(header.requestApiKey), body is \(body.apiKey)")
    }
    let sizeIndex = buffer.writerIndex
    buffer.writeInteger(Int32(0))
    let headerVersion = body.apiKey.requestHeaderVersion(apiVersion: apiVersion)
    try header.encode(to: &buffer, version: headerVersion)
    try body.encode(to: &buffer, version: apiVersion)
    var trailing = trailingBytes
    buffer.writeBuffer(&trailing)
    buffer.setInteger(Int32(buffer.writerIndex - sizeIndex - 4), at: sizeIndex)
  }
}

/// A whole response: correlation id, header tagged fields and body. The API key and version
/// are not on the wire; the requester knows them from its request.
public struct KafkaResponse: Hashable, Sendable {
  public var header: ResponseHeader
  public var body: KafkaResponseBody

  public init(correlationId: Int32, body: KafkaResponseBody) {
    self.header = ResponseHeader(correlationId: correlationId)
    self.body = body
  }

  public init(header: ResponseHeader, body: KafkaResponseBody) {
    self.header = header
    self.body = body
  }

  public var correlationId: Int32 { header.correlationId }

  /// Decodes a response frame (without its size prefix) to a request of `apiKey` at `apiVersion`.
  public static func decode(
    frame: ByteBuffer, apiKey: ApiKey, apiVersion: Int16
  ) throws(KafkaProtocolError) -> KafkaResponse {
    var buffer = frame
    let header = try ResponseHeader(
      from: &buffer, version: apiKey.responseHeaderVersion(apiVersion: apiVersion))
    let body = try KafkaResponseBody.decode(apiKey: apiKey, version: apiVersion, from: &buffer)
    guard buffer.readableBytes == 0 else {
      throw KafkaProtocolError(
        .trailingBytes, "\(buffer.readableBytes) bytes after \(apiKey.name) v\(apiVersion) response")
    }
    return KafkaResponse(header: header, body: body)
  }

  /// Writes the frame: size prefix, header, body.
  public func encodeFrame(into buffer: inout ByteBuffer, apiVersion: Int16) throws(KafkaProtocolError) {
    let sizeIndex = buffer.writerIndex
    buffer.writeInteger(Int32(0))
    try header.encode(to: &buffer, version: body.apiKey.responseHeaderVersion(apiVersion: apiVersion))
    try body.encode(to: &buffer, version: apiVersion)
    buffer.setInteger(Int32(buffer.writerIndex - sizeIndex - 4), at: sizeIndex)
  }
}
