import NIOCore
import SluiceHTTP
import Testing

@Suite struct WebhookTests {
  /// The example of the Standard Webhooks specification (standard-webhooks/standard-webhooks,
  /// spec/standard-webhooks.md), also checked with Python's hmac.
  @Test func signsAsStandardWebhooksSpecifies() {
    let signature = WebhookSignature.sign(
      secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
      timestamp: 1_614_265_330,
      body: ByteBuffer(string: #"{"test": 2432232314}"#))
    #expect(signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    #expect(WebhookSignature.sign(secret: "whsec_!!", id: "x", timestamp: 1, body: ByteBuffer()) == nil)
  }

  /// Found by FuzzHTTP: a first backoff above the default maximum (60 s) raises that default
  /// instead of making a spec whose backoff passes its maximum.
  @Test func aLongFirstBackoffRaisesTheDefaultMaximum() throws {
    let body = #"{"name":"w1","topic":"t","url":"http://127.0.0.1:9/h","retry_backoff_ms":108888}"#
    guard case .success(let spec) = WebhookSpec.parse(ByteBuffer(string: body)) else {
      Issue.record("refused")
      return
    }
    #expect(spec.retryBackoffMs == 108_888 && spec.maxBackoffMs == 108_888)
    let explicit =
      #"{"name":"w1","topic":"t","url":"http://127.0.0.1:9/h","retry_backoff_ms":5000,"max_backoff_ms":4000}"#
    guard case .failure = WebhookSpec.parse(ByteBuffer(string: explicit)) else {
      Issue.record("a maximum below the first backoff was accepted")
      return
    }
  }

  @Test func parsesHTTPURLs() throws {
    let url = try #require(HTTPURL("http://example.com:8080/hooks/a?x=1"))
    #expect(url.host == "example.com" && url.port == 8080 && url.target == "/hooks/a?x=1")
    let bare = try #require(HTTPURL("HTTP://10.0.0.1"))
    #expect(bare.port == 80 && bare.target == "/")
    let v6 = try #require(HTTPURL("http://[::1]:9000/h"))
    #expect(v6.host == "::1" && v6.port == 9000 && v6.description == "http://[::1]:9000/h")
    #expect(HTTPURL(url.description) == url)
    for bad in [
      "https://example.com/", "ftp://x", "http://", "http://:80/", "http://host:0/", "http://host:70000/",
      "http://user@host/", "http://host/a b", "http://host/#frag", "http://host:port/", "http://c::1]:9/x",
      "http://[abc]/",
    ] {
      #expect(HTTPURL(bad) == nil, "\(bad)")
    }
  }
}
