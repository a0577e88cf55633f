import KafkaProtocol
import Testing

@Suite struct ErrorCodeTests {
  /// Codes whose numbers and names must match Kafka's `Errors` exactly.
  static let pinned: [(code: ErrorCode, rawValue: Int16, name: String)] = [
    (.unknownServerError, -1, "UNKNOWN_SERVER_ERROR"),
    (.none, 0, "NONE"),
    (.offsetOutOfRange, 1, "OFFSET_OUT_OF_RANGE"),
    (.corruptMessage, 2, "CORRUPT_MESSAGE"),
    (.unknownTopicOrPartition, 3, "UNKNOWN_TOPIC_OR_PARTITION"),
    (.leaderNotAvailable, 5, "LEADER_NOT_AVAILABLE"),
    (.notLeaderOrFollower, 6, "NOT_LEADER_OR_FOLLOWER"),
    (.messageTooLarge, 10, "MESSAGE_TOO_LARGE"),
    (.offsetMetadataTooLarge, 12, "OFFSET_METADATA_TOO_LARGE"),
    (.coordinatorNotAvailable, 15, "COORDINATOR_NOT_AVAILABLE"),
    (.notCoordinator, 16, "NOT_COORDINATOR"),
    (.invalidTopicException, 17, "INVALID_TOPIC_EXCEPTION"),
    (.invalidRequiredAcks, 21, "INVALID_REQUIRED_ACKS"),
    (.illegalGeneration, 22, "ILLEGAL_GENERATION"),
    (.inconsistentGroupProtocol, 23, "INCONSISTENT_GROUP_PROTOCOL"),
    (.unknownMemberId, 25, "UNKNOWN_MEMBER_ID"),
    (.invalidSessionTimeout, 26, "INVALID_SESSION_TIMEOUT"),
    (.rebalanceInProgress, 27, "REBALANCE_IN_PROGRESS"),
    (.unsupportedVersion, 35, "UNSUPPORTED_VERSION"),
    (.topicAlreadyExists, 36, "TOPIC_ALREADY_EXISTS"),
    (.invalidRequest, 42, "INVALID_REQUEST"),
    (.outOfOrderSequenceNumber, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER"),
    (.duplicateSequenceNumber, 46, "DUPLICATE_SEQUENCE_NUMBER"),
    (.invalidProducerEpoch, 47, "INVALID_PRODUCER_EPOCH"),
    (.kafkaStorageError, 56, "KAFKA_STORAGE_ERROR"),
    (.saslAuthenticationFailed, 58, "SASL_AUTHENTICATION_FAILED"),
    (.fetchSessionIdNotFound, 70, "FETCH_SESSION_ID_NOT_FOUND"),
    (.invalidFetchSessionEpoch, 71, "INVALID_FETCH_SESSION_EPOCH"),
    (.unsupportedCompressionType, 76, "UNSUPPORTED_COMPRESSION_TYPE"),
    (.memberIdRequired, 79, "MEMBER_ID_REQUIRED"),
    (.fencedInstanceId, 82, "FENCED_INSTANCE_ID"),
    (.invalidRecord, 87, "INVALID_RECORD"),
    (.producerFenced, 90, "PRODUCER_FENCED"),
    (.unknownTopicId, 100, "UNKNOWN_TOPIC_ID"),
    (.rebootstrapRequired, 129, "REBOOTSTRAP_REQUIRED"),
    (.shareSessionLimitReached, 133, "SHARE_SESSION_LIMIT_REACHED"),
  ]

  @Test func pinnedCodesMatchKafka() {
    for entry in Self.pinned {
      #expect(entry.code.rawValue == entry.rawValue, "\(entry.name)")
      #expect(entry.code.name == entry.name)
      #expect(ErrorCode(rawValue: entry.rawValue) == entry.code)
      #expect(entry.code.isKnown)
      #expect(ErrorCode.allKnown.contains(entry.code), "\(entry.name)")
    }
  }

  @Test func retriableCodes() {
    let retriable: [ErrorCode] = [
      .corruptMessage, .unknownTopicOrPartition, .leaderNotAvailable, .notLeaderOrFollower,
      .requestTimedOut, .replicaNotAvailable, .networkException, .coordinatorLoadInProgress,
      .coordinatorNotAvailable, .notCoordinator, .notEnoughReplicas, .notEnoughReplicasAfterAppend,
      .notController, .concurrentTransactions, .kafkaStorageError, .fetchSessionIdNotFound,
      .invalidFetchSessionEpoch, .listenerNotFound, .fencedLeaderEpoch, .unknownLeaderEpoch,
      .offsetNotAvailable, .preferredLeaderNotAvailable, .eligibleLeadersNotAvailable,
      .electionNotNeeded, .unstableOffsetCommit, .throttlingQuotaExceeded, .unknownTopicId,
      .inconsistentTopicId, .fetchSessionTopicIdError, .shareSessionNotFound,
      .invalidShareSessionEpoch, .shareSessionLimitReached,
    ]
    for code in retriable {
      #expect(code.isRetriable, "\(code)")
    }
    // Kafka 4.1 marks exactly these 32 codes retriable.
    #expect(ErrorCode.allKnown.filter(\.isRetriable) == retriable.sorted { $0.rawValue < $1.rawValue })
  }

  @Test func nonRetriableCodes() {
    let fatal: [ErrorCode] = [
      .unknownServerError, .none, .offsetOutOfRange, .invalidFetchSize, .messageTooLarge,
      .offsetMetadataTooLarge, .invalidTopicException, .invalidRequiredAcks, .illegalGeneration,
      .unknownMemberId, .rebalanceInProgress, .topicAuthorizationFailed, .unsupportedVersion,
      .topicAlreadyExists, .invalidRequest, .outOfOrderSequenceNumber, .duplicateSequenceNumber,
      .invalidProducerEpoch, .saslAuthenticationFailed, .unsupportedCompressionType,
      .memberIdRequired, .fencedInstanceId, .invalidRecord, .producerFenced, .transactionAbortable,
    ]
    for code in fatal {
      #expect(!code.isRetriable, "\(code)")
    }
  }

  @Test func knownNamesAreUniqueUpperSnake() {
    let names = ErrorCode.allKnown.map(\.name)
    #expect(Set(names).count == names.count)
    for name in names {
      let bytes = Array(name.utf8)
      let allowed = bytes.allSatisfy {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) || $0 == UInt8(ascii: "_")
      }
      #expect(allowed, "\(name)")
      #expect(bytes.first != UInt8(ascii: "_") && bytes.last != UInt8(ascii: "_"), "\(name)")
      #expect(!name.contains("__"), "\(name)")
      #expect(!name.hasPrefix("UNKNOWN_ERROR_CODE_"), "\(name)")
    }
  }

  @Test func knownRawValuesAreUniqueAndContiguous() {
    let rawValues = ErrorCode.allKnown.map(\.rawValue)
    #expect(Set(rawValues).count == rawValues.count)
    #expect(Set(ErrorCode.allKnown).count == ErrorCode.allKnown.count)
    #expect(rawValues == Array(-1...133))
    #expect(ErrorCode.allKnown.count == 135)
  }

  @Test func everyKnownCodeHasAMessage() {
    for code in ErrorCode.allKnown {
      #expect(!code.message.isEmpty, "\(code)")
      #expect(code.message.hasSuffix("."), "\(code)")
      #expect(code.description == "\(code.name) (\(code.rawValue))")
    }
    #expect(ErrorCode.unknownTopicOrPartition.message == "This server does not host this topic-partition.")
    #expect(ErrorCode.unsupportedVersion.message == "The version of API is not supported.")
  }

  @Test func unknownCodes() {
    let unknown = ErrorCode(rawValue: 999)
    #expect(unknown.rawValue == 999)
    #expect(unknown.name == "UNKNOWN_ERROR_CODE_999")
    #expect(!unknown.isRetriable)
    #expect(!unknown.isKnown)
    #expect(!unknown.message.isEmpty)
    #expect(unknown.description == "UNKNOWN_ERROR_CODE_999 (999)")
    #expect(!ErrorCode.allKnown.contains(unknown))
    #expect(unknown == ErrorCode(rawValue: 999))
    #expect(unknown != .unknownServerError)

    for rawValue: Int16 in [-2, 134, .min, .max] {
      let code = ErrorCode(rawValue: rawValue)
      #expect(code.name == "UNKNOWN_ERROR_CODE_\(rawValue)")
      #expect(!code.isRetriable)
      #expect(!code.isKnown)
    }
  }
}
