/// A Kafka protocol error code, as carried in the `error_code` (INT16) fields of responses.
///
/// Covers every code in Kafka's `org.apache.kafka.common.protocol.Errors` as of Kafka 4.0
/// (-1 `UNKNOWN_SERVER_ERROR`, 0 `NONE`, 1 through 133). Like ``KafkaProtocolError/Code``, this is
/// a struct of static members rather than an enum, so codes added by newer brokers round-trip
/// unchanged and do not break a caller's `switch`: `ErrorCode(rawValue: 999)` is a valid value
/// whose ``name`` is `"UNKNOWN_ERROR_CODE_999"` and which is not retriable.
///
/// ``name``, ``isRetriable`` and ``message`` come from one static table indexed by raw value,
/// so every lookup is an array index.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
  /// The wire value.
  public let rawValue: Int16

  /// Wraps any wire value; codes this table does not know are kept as-is.
  public init(rawValue: Int16) {
    self.rawValue = rawValue
  }

  /// `UNKNOWN_SERVER_ERROR` (-1).
  public static let unknownServerError = ErrorCode(rawValue: -1)
  /// `NONE` (0).
  public static let none = ErrorCode(rawValue: 0)
  /// `OFFSET_OUT_OF_RANGE` (1).
  public static let offsetOutOfRange = ErrorCode(rawValue: 1)
  /// `CORRUPT_MESSAGE` (2); retriable.
  public static let corruptMessage = ErrorCode(rawValue: 2)
  /// `UNKNOWN_TOPIC_OR_PARTITION` (3); retriable.
  public static let unknownTopicOrPartition = ErrorCode(rawValue: 3)
  /// `INVALID_FETCH_SIZE` (4).
  public static let invalidFetchSize = ErrorCode(rawValue: 4)
  /// `LEADER_NOT_AVAILABLE` (5); retriable.
  public static let leaderNotAvailable = ErrorCode(rawValue: 5)
  /// `NOT_LEADER_OR_FOLLOWER` (6); retriable.
  public static let notLeaderOrFollower = ErrorCode(rawValue: 6)
  /// `REQUEST_TIMED_OUT` (7); retriable.
  public static let requestTimedOut = ErrorCode(rawValue: 7)
  /// `BROKER_NOT_AVAILABLE` (8).
  public static let brokerNotAvailable = ErrorCode(rawValue: 8)
  /// `REPLICA_NOT_AVAILABLE` (9); retriable.
  public static let replicaNotAvailable = ErrorCode(rawValue: 9)
  /// `MESSAGE_TOO_LARGE` (10).
  public static let messageTooLarge = ErrorCode(rawValue: 10)
  /// `STALE_CONTROLLER_EPOCH` (11).
  public static let staleControllerEpoch = ErrorCode(rawValue: 11)
  /// `OFFSET_METADATA_TOO_LARGE` (12).
  public static let offsetMetadataTooLarge = ErrorCode(rawValue: 12)
  /// `NETWORK_EXCEPTION` (13); retriable.
  public static let networkException = ErrorCode(rawValue: 13)
  /// `COORDINATOR_LOAD_IN_PROGRESS` (14); retriable.
  public static let coordinatorLoadInProgress = ErrorCode(rawValue: 14)
  /// `COORDINATOR_NOT_AVAILABLE` (15); retriable.
  public static let coordinatorNotAvailable = ErrorCode(rawValue: 15)
  /// `NOT_COORDINATOR` (16); retriable.
  public static let notCoordinator = ErrorCode(rawValue: 16)
  /// `INVALID_TOPIC_EXCEPTION` (17).
  public static let invalidTopicException = ErrorCode(rawValue: 17)
  /// `RECORD_LIST_TOO_LARGE` (18).
  public static let recordListTooLarge = ErrorCode(rawValue: 18)
  /// `NOT_ENOUGH_REPLICAS` (19); retriable.
  public static let notEnoughReplicas = ErrorCode(rawValue: 19)
  /// `NOT_ENOUGH_REPLICAS_AFTER_APPEND` (20); retriable.
  public static let notEnoughReplicasAfterAppend = ErrorCode(rawValue: 20)
  /// `INVALID_REQUIRED_ACKS` (21).
  public static let invalidRequiredAcks = ErrorCode(rawValue: 21)
  /// `ILLEGAL_GENERATION` (22).
  public static let illegalGeneration = ErrorCode(rawValue: 22)
  /// `INCONSISTENT_GROUP_PROTOCOL` (23).
  public static let inconsistentGroupProtocol = ErrorCode(rawValue: 23)
  /// `INVALID_GROUP_ID` (24).
  public static let invalidGroupId = ErrorCode(rawValue: 24)
  /// `UNKNOWN_MEMBER_ID` (25).
  public static let unknownMemberId = ErrorCode(rawValue: 25)
  /// `INVALID_SESSION_TIMEOUT` (26).
  public static let invalidSessionTimeout = ErrorCode(rawValue: 26)
  /// `REBALANCE_IN_PROGRESS` (27).
  public static let rebalanceInProgress = ErrorCode(rawValue: 27)
  /// `INVALID_COMMIT_OFFSET_SIZE` (28).
  public static let invalidCommitOffsetSize = ErrorCode(rawValue: 28)
  /// `TOPIC_AUTHORIZATION_FAILED` (29).
  public static let topicAuthorizationFailed = ErrorCode(rawValue: 29)
  /// `GROUP_AUTHORIZATION_FAILED` (30).
  public static let groupAuthorizationFailed = ErrorCode(rawValue: 30)
  /// `CLUSTER_AUTHORIZATION_FAILED` (31).
  public static let clusterAuthorizationFailed = ErrorCode(rawValue: 31)
  /// `INVALID_TIMESTAMP` (32).
  public static let invalidTimestamp = ErrorCode(rawValue: 32)
  /// `UNSUPPORTED_SASL_MECHANISM` (33).
  public static let unsupportedSaslMechanism = ErrorCode(rawValue: 33)
  /// `ILLEGAL_SASL_STATE` (34).
  public static let illegalSaslState = ErrorCode(rawValue: 34)
  /// `UNSUPPORTED_VERSION` (35).
  public static let unsupportedVersion = ErrorCode(rawValue: 35)
  /// `TOPIC_ALREADY_EXISTS` (36).
  public static let topicAlreadyExists = ErrorCode(rawValue: 36)
  /// `INVALID_PARTITIONS` (37).
  public static let invalidPartitions = ErrorCode(rawValue: 37)
  /// `INVALID_REPLICATION_FACTOR` (38).
  public static let invalidReplicationFactor = ErrorCode(rawValue: 38)
  /// `INVALID_REPLICA_ASSIGNMENT` (39).
  public static let invalidReplicaAssignment = ErrorCode(rawValue: 39)
  /// `INVALID_CONFIG` (40).
  public static let invalidConfig = ErrorCode(rawValue: 40)
  /// `NOT_CONTROLLER` (41); retriable.
  public static let notController = ErrorCode(rawValue: 41)
  /// `INVALID_REQUEST` (42).
  public static let invalidRequest = ErrorCode(rawValue: 42)
  /// `UNSUPPORTED_FOR_MESSAGE_FORMAT` (43).
  public static let unsupportedForMessageFormat = ErrorCode(rawValue: 43)
  /// `POLICY_VIOLATION` (44).
  public static let policyViolation = ErrorCode(rawValue: 44)
  /// `OUT_OF_ORDER_SEQUENCE_NUMBER` (45).
  public static let outOfOrderSequenceNumber = ErrorCode(rawValue: 45)
  /// `DUPLICATE_SEQUENCE_NUMBER` (46).
  public static let duplicateSequenceNumber = ErrorCode(rawValue: 46)
  /// `INVALID_PRODUCER_EPOCH` (47).
  public static let invalidProducerEpoch = ErrorCode(rawValue: 47)
  /// `INVALID_TXN_STATE` (48).
  public static let invalidTxnState = ErrorCode(rawValue: 48)
  /// `INVALID_PRODUCER_ID_MAPPING` (49).
  public static let invalidProducerIdMapping = ErrorCode(rawValue: 49)
  /// `INVALID_TRANSACTION_TIMEOUT` (50).
  public static let invalidTransactionTimeout = ErrorCode(rawValue: 50)
  /// `CONCURRENT_TRANSACTIONS` (51); retriable.
  public static let concurrentTransactions = ErrorCode(rawValue: 51)
  /// `TRANSACTION_COORDINATOR_FENCED` (52).
  public static let transactionCoordinatorFenced = ErrorCode(rawValue: 52)
  /// `TRANSACTIONAL_ID_AUTHORIZATION_FAILED` (53).
  public static let transactionalIdAuthorizationFailed = ErrorCode(rawValue: 53)
  /// `SECURITY_DISABLED` (54).
  public static let securityDisabled = ErrorCode(rawValue: 54)
  /// `OPERATION_NOT_ATTEMPTED` (55).
  public static let operationNotAttempted = ErrorCode(rawValue: 55)
  /// `KAFKA_STORAGE_ERROR` (56); retriable.
  public static let kafkaStorageError = ErrorCode(rawValue: 56)
  /// `LOG_DIR_NOT_FOUND` (57).
  public static let logDirNotFound = ErrorCode(rawValue: 57)
  /// `SASL_AUTHENTICATION_FAILED` (58).
  public static let saslAuthenticationFailed = ErrorCode(rawValue: 58)
  /// `UNKNOWN_PRODUCER_ID` (59).
  public static let unknownProducerId = ErrorCode(rawValue: 59)
  /// `REASSIGNMENT_IN_PROGRESS` (60).
  public static let reassignmentInProgress = ErrorCode(rawValue: 60)
  /// `DELEGATION_TOKEN_AUTH_DISABLED` (61).
  public static let delegationTokenAuthDisabled = ErrorCode(rawValue: 61)
  /// `DELEGATION_TOKEN_NOT_FOUND` (62).
  public static let delegationTokenNotFound = ErrorCode(rawValue: 62)
  /// `DELEGATION_TOKEN_OWNER_MISMATCH` (63).
  public static let delegationTokenOwnerMismatch = ErrorCode(rawValue: 63)
  /// `DELEGATION_TOKEN_REQUEST_NOT_ALLOWED` (64).
  public static let delegationTokenRequestNotAllowed = ErrorCode(rawValue: 64)
  /// `DELEGATION_TOKEN_AUTHORIZATION_FAILED` (65).
  public static let delegationTokenAuthorizationFailed = ErrorCode(rawValue: 65)
  /// `DELEGATION_TOKEN_EXPIRED` (66).
  public static let delegationTokenExpired = ErrorCode(rawValue: 66)
  /// `INVALID_PRINCIPAL_TYPE` (67).
  public static let invalidPrincipalType = ErrorCode(rawValue: 67)
  /// `NON_EMPTY_GROUP` (68).
  public static let nonEmptyGroup = ErrorCode(rawValue: 68)
  /// `GROUP_ID_NOT_FOUND` (69).
  public static let groupIdNotFound = ErrorCode(rawValue: 69)
  /// `FETCH_SESSION_ID_NOT_FOUND` (70); retriable.
  public static let fetchSessionIdNotFound = ErrorCode(rawValue: 70)
  /// `INVALID_FETCH_SESSION_EPOCH` (71); retriable.
  public static let invalidFetchSessionEpoch = ErrorCode(rawValue: 71)
  /// `LISTENER_NOT_FOUND` (72); retriable.
  public static let listenerNotFound = ErrorCode(rawValue: 72)
  /// `TOPIC_DELETION_DISABLED` (73).
  public static let topicDeletionDisabled = ErrorCode(rawValue: 73)
  /// `FENCED_LEADER_EPOCH` (74); retriable.
  public static let fencedLeaderEpoch = ErrorCode(rawValue: 74)
  /// `UNKNOWN_LEADER_EPOCH` (75); retriable.
  public static let unknownLeaderEpoch = ErrorCode(rawValue: 75)
  /// `UNSUPPORTED_COMPRESSION_TYPE` (76).
  public static let unsupportedCompressionType = ErrorCode(rawValue: 76)
  /// `STALE_BROKER_EPOCH` (77).
  public static let staleBrokerEpoch = ErrorCode(rawValue: 77)
  /// `OFFSET_NOT_AVAILABLE` (78); retriable.
  public static let offsetNotAvailable = ErrorCode(rawValue: 78)
  /// `MEMBER_ID_REQUIRED` (79).
  public static let memberIdRequired = ErrorCode(rawValue: 79)
  /// `PREFERRED_LEADER_NOT_AVAILABLE` (80); retriable.
  public static let preferredLeaderNotAvailable = ErrorCode(rawValue: 80)
  /// `GROUP_MAX_SIZE_REACHED` (81).
  public static let groupMaxSizeReached = ErrorCode(rawValue: 81)
  /// `FENCED_INSTANCE_ID` (82).
  public static let fencedInstanceId = ErrorCode(rawValue: 82)
  /// `ELIGIBLE_LEADERS_NOT_AVAILABLE` (83); retriable.
  public static let eligibleLeadersNotAvailable = ErrorCode(rawValue: 83)
  /// `ELECTION_NOT_NEEDED` (84); retriable.
  public static let electionNotNeeded = ErrorCode(rawValue: 84)
  /// `NO_REASSIGNMENT_IN_PROGRESS` (85).
  public static let noReassignmentInProgress = ErrorCode(rawValue: 85)
  /// `GROUP_SUBSCRIBED_TO_TOPIC` (86).
  public static let groupSubscribedToTopic = ErrorCode(rawValue: 86)
  /// `INVALID_RECORD` (87).
  public static let invalidRecord = ErrorCode(rawValue: 87)
  /// `UNSTABLE_OFFSET_COMMIT` (88); retriable.
  public static let unstableOffsetCommit = ErrorCode(rawValue: 88)
  /// `THROTTLING_QUOTA_EXCEEDED` (89); retriable.
  public static let throttlingQuotaExceeded = ErrorCode(rawValue: 89)
  /// `PRODUCER_FENCED` (90).
  public static let producerFenced = ErrorCode(rawValue: 90)
  /// `RESOURCE_NOT_FOUND` (91).
  public static let resourceNotFound = ErrorCode(rawValue: 91)
  /// `DUPLICATE_RESOURCE` (92).
  public static let duplicateResource = ErrorCode(rawValue: 92)
  /// `UNACCEPTABLE_CREDENTIAL` (93).
  public static let unacceptableCredential = ErrorCode(rawValue: 93)
  /// `INCONSISTENT_VOTER_SET` (94).
  public static let inconsistentVoterSet = ErrorCode(rawValue: 94)
  /// `INVALID_UPDATE_VERSION` (95).
  public static let invalidUpdateVersion = ErrorCode(rawValue: 95)
  /// `FEATURE_UPDATE_FAILED` (96).
  public static let featureUpdateFailed = ErrorCode(rawValue: 96)
  /// `PRINCIPAL_DESERIALIZATION_FAILURE` (97).
  public static let principalDeserializationFailure = ErrorCode(rawValue: 97)
  /// `SNAPSHOT_NOT_FOUND` (98).
  public static let snapshotNotFound = ErrorCode(rawValue: 98)
  /// `POSITION_OUT_OF_RANGE` (99).
  public static let positionOutOfRange = ErrorCode(rawValue: 99)
  /// `UNKNOWN_TOPIC_ID` (100); retriable.
  public static let unknownTopicId = ErrorCode(rawValue: 100)
  /// `DUPLICATE_BROKER_REGISTRATION` (101).
  public static let duplicateBrokerRegistration = ErrorCode(rawValue: 101)
  /// `BROKER_ID_NOT_REGISTERED` (102).
  public static let brokerIdNotRegistered = ErrorCode(rawValue: 102)
  /// `INCONSISTENT_TOPIC_ID` (103); retriable.
  public static let inconsistentTopicId = ErrorCode(rawValue: 103)
  /// `INCONSISTENT_CLUSTER_ID` (104).
  public static let inconsistentClusterId = ErrorCode(rawValue: 104)
  /// `TRANSACTIONAL_ID_NOT_FOUND` (105).
  public static let transactionalIdNotFound = ErrorCode(rawValue: 105)
  /// `FETCH_SESSION_TOPIC_ID_ERROR` (106); retriable.
  public static let fetchSessionTopicIdError = ErrorCode(rawValue: 106)
  /// `INELIGIBLE_REPLICA` (107).
  public static let ineligibleReplica = ErrorCode(rawValue: 107)
  /// `NEW_LEADER_ELECTED` (108).
  public static let newLeaderElected = ErrorCode(rawValue: 108)
  /// `OFFSET_MOVED_TO_TIERED_STORAGE` (109).
  public static let offsetMovedToTieredStorage = ErrorCode(rawValue: 109)
  /// `FENCED_MEMBER_EPOCH` (110).
  public static let fencedMemberEpoch = ErrorCode(rawValue: 110)
  /// `UNRELEASED_INSTANCE_ID` (111).
  public static let unreleasedInstanceId = ErrorCode(rawValue: 111)
  /// `UNSUPPORTED_ASSIGNOR` (112).
  public static let unsupportedAssignor = ErrorCode(rawValue: 112)
  /// `STALE_MEMBER_EPOCH` (113).
  public static let staleMemberEpoch = ErrorCode(rawValue: 113)
  /// `MISMATCHED_ENDPOINT_TYPE` (114).
  public static let mismatchedEndpointType = ErrorCode(rawValue: 114)
  /// `UNSUPPORTED_ENDPOINT_TYPE` (115).
  public static let unsupportedEndpointType = ErrorCode(rawValue: 115)
  /// `UNKNOWN_CONTROLLER_ID` (116).
  public static let unknownControllerId = ErrorCode(rawValue: 116)
  /// `UNKNOWN_SUBSCRIPTION_ID` (117).
  public static let unknownSubscriptionId = ErrorCode(rawValue: 117)
  /// `TELEMETRY_TOO_LARGE` (118).
  public static let telemetryTooLarge = ErrorCode(rawValue: 118)
  /// `INVALID_REGISTRATION` (119).
  public static let invalidRegistration = ErrorCode(rawValue: 119)
  /// `TRANSACTION_ABORTABLE` (120).
  public static let transactionAbortable = ErrorCode(rawValue: 120)
  /// `INVALID_RECORD_STATE` (121).
  public static let invalidRecordState = ErrorCode(rawValue: 121)
  /// `SHARE_SESSION_NOT_FOUND` (122); retriable.
  public static let shareSessionNotFound = ErrorCode(rawValue: 122)
  /// `INVALID_SHARE_SESSION_EPOCH` (123); retriable.
  public static let invalidShareSessionEpoch = ErrorCode(rawValue: 123)
  /// `FENCED_STATE_EPOCH` (124).
  public static let fencedStateEpoch = ErrorCode(rawValue: 124)
  /// `INVALID_VOTER_KEY` (125).
  public static let invalidVoterKey = ErrorCode(rawValue: 125)
  /// `DUPLICATE_VOTER` (126).
  public static let duplicateVoter = ErrorCode(rawValue: 126)
  /// `VOTER_NOT_FOUND` (127).
  public static let voterNotFound = ErrorCode(rawValue: 127)
  /// `INVALID_REGULAR_EXPRESSION` (128).
  public static let invalidRegularExpression = ErrorCode(rawValue: 128)
  /// `REBOOTSTRAP_REQUIRED` (129).
  public static let rebootstrapRequired = ErrorCode(rawValue: 129)
  /// `STREAMS_INVALID_TOPOLOGY` (130).
  public static let streamsInvalidTopology = ErrorCode(rawValue: 130)
  /// `STREAMS_INVALID_TOPOLOGY_EPOCH` (131).
  public static let streamsInvalidTopologyEpoch = ErrorCode(rawValue: 131)
  /// `STREAMS_TOPOLOGY_FENCED` (132).
  public static let streamsTopologyFenced = ErrorCode(rawValue: 132)
  /// `SHARE_SESSION_LIMIT_REACHED` (133); retriable.
  public static let shareSessionLimitReached = ErrorCode(rawValue: 133)

  /// Every code Kafka defines, in ascending raw-value order (from -1 through 133).
  public static let allKnown: [ErrorCode] = table.map { ErrorCode(rawValue: $0.code) }

  /// Whether this code is one of ``allKnown``.
  public var isKnown: Bool { Self.entry(for: rawValue) != nil }

  /// Kafka's UPPER_SNAKE name, e.g. `"UNKNOWN_TOPIC_OR_PARTITION"`;
  /// `"UNKNOWN_ERROR_CODE_<n>"` for a code not in the table.
  public var name: String {
    Self.entry(for: rawValue)?.name ?? "UNKNOWN_ERROR_CODE_\(rawValue)"
  }

  /// Whether Kafka's exception for this code extends `RetriableException`: the same request may
  /// succeed if retried (usually after a metadata refresh or a backoff). False for unknown codes.
  public var isRetriable: Bool {
    Self.entry(for: rawValue)?.isRetriable ?? false
  }

  /// Kafka's default human-readable message for this code.
  public var message: String {
    Self.entry(for: rawValue)?.message ?? "Unknown error code \(rawValue)."
  }

  /// The name and raw value, e.g. `"NOT_COORDINATOR (16)"`.
  public var description: String { "\(name) (\(rawValue))" }

  // MARK: - Table

  private struct Entry: Sendable {
    let code: Int16
    let name: String
    let isRetriable: Bool
    let message: String

    init(_ code: Int16, _ name: String, _ isRetriable: Bool, _ message: String) {
      self.code = code
      self.name = name
      self.isRetriable = isRetriable
      self.message = message
    }
  }

  /// Raw value of `table[0]`; the table is contiguous, so entry `i` has code `lowestKnownRawValue + i`
  /// (the tests check this through ``allKnown``).
  private static let lowestKnownRawValue: Int16 = -1

  private static func entry(for rawValue: Int16) -> Entry? {
    let index = Int(rawValue) - Int(lowestKnownRawValue)
    guard index >= 0, index < table.count else { return nil }
    return table[index]
  }

  // Source: Kafka 4.0 protocol guide error table, generated from
  // org.apache.kafka.common.protocol.Errors (name, code, retriable, default message).
  // Entries are contiguous from -1 with no gaps; keep them in raw-value order.
  private static let table: [Entry] = [
    Entry(
      -1, "UNKNOWN_SERVER_ERROR", false,
      "The server experienced an unexpected error when processing the request."),
    Entry(0, "NONE", false, "No error."),
    Entry(
      1, "OFFSET_OUT_OF_RANGE", false,
      "The requested offset is not within the range of offsets maintained by the server."),
    Entry(
      2, "CORRUPT_MESSAGE", true,
      "This message has failed its CRC checksum, exceeds the valid size, has a null key for a compacted "
        + "topic, or is otherwise corrupt."),
    Entry(3, "UNKNOWN_TOPIC_OR_PARTITION", true, "This server does not host this topic-partition."),
    Entry(4, "INVALID_FETCH_SIZE", false, "The requested fetch size is invalid."),
    Entry(
      5, "LEADER_NOT_AVAILABLE", true,
      "There is no leader for this topic-partition as we are in the middle of a leadership election."),
    Entry(
      6, "NOT_LEADER_OR_FOLLOWER", true,
      "For requests intended only for the leader, this error indicates that the broker is not the "
        + "current leader. For requests intended for any replica, this error indicates that the broker is "
        + "not a replica of the topic partition."),
    Entry(7, "REQUEST_TIMED_OUT", true, "The request timed out."),
    Entry(8, "BROKER_NOT_AVAILABLE", false, "The broker is not available."),
    Entry(
      9, "REPLICA_NOT_AVAILABLE", true,
      "The replica is not available for the requested topic-partition. Produce/Fetch requests and other "
        + "requests intended only for the leader or follower return NOT_LEADER_OR_FOLLOWER if the broker is "
        + "not a replica of the topic-partition."),
    Entry(
      10, "MESSAGE_TOO_LARGE", false,
      "The request included a message larger than the max message size the server will accept."),
    Entry(11, "STALE_CONTROLLER_EPOCH", false, "The controller moved to another broker."),
    Entry(12, "OFFSET_METADATA_TOO_LARGE", false, "The metadata field of the offset request was too large."),
    Entry(13, "NETWORK_EXCEPTION", true, "The server disconnected before a response was received."),
    Entry(
      14, "COORDINATOR_LOAD_IN_PROGRESS", true,
      "The coordinator is loading and hence can't process requests."),
    Entry(15, "COORDINATOR_NOT_AVAILABLE", true, "The coordinator is not available."),
    Entry(16, "NOT_COORDINATOR", true, "This is not the correct coordinator."),
    Entry(
      17, "INVALID_TOPIC_EXCEPTION", false,
      "The request attempted to perform an operation on an invalid topic."),
    Entry(
      18, "RECORD_LIST_TOO_LARGE", false,
      "The request included message batch larger than the configured segment size on the server."),
    Entry(
      19, "NOT_ENOUGH_REPLICAS", true,
      "Messages are rejected since there are fewer in-sync replicas than required."),
    Entry(
      20, "NOT_ENOUGH_REPLICAS_AFTER_APPEND", true,
      "Messages are written to the log, but to fewer in-sync replicas than required."),
    Entry(
      21, "INVALID_REQUIRED_ACKS", false,
      "Produce request specified an invalid value for required acks."),
    Entry(22, "ILLEGAL_GENERATION", false, "Specified group generation id is not valid."),
    Entry(
      23, "INCONSISTENT_GROUP_PROTOCOL", false,
      "The group member's supported protocols are incompatible with those of existing members or first "
        + "group member tried to join with empty protocol type or empty protocol list."),
    Entry(24, "INVALID_GROUP_ID", false, "The configured groupId is invalid."),
    Entry(25, "UNKNOWN_MEMBER_ID", false, "The coordinator is not aware of this member."),
    Entry(
      26, "INVALID_SESSION_TIMEOUT", false,
      "The session timeout is not within the range allowed by the broker (as configured by "
        + "group.min.session.timeout.ms and group.max.session.timeout.ms)."),
    Entry(27, "REBALANCE_IN_PROGRESS", false, "The group is rebalancing, so a rejoin is needed."),
    Entry(28, "INVALID_COMMIT_OFFSET_SIZE", false, "The committing offset data size is not valid."),
    Entry(29, "TOPIC_AUTHORIZATION_FAILED", false, "Topic authorization failed."),
    Entry(30, "GROUP_AUTHORIZATION_FAILED", false, "Group authorization failed."),
    Entry(31, "CLUSTER_AUTHORIZATION_FAILED", false, "Cluster authorization failed."),
    Entry(32, "INVALID_TIMESTAMP", false, "The timestamp of the message is out of acceptable range."),
    Entry(
      33, "UNSUPPORTED_SASL_MECHANISM", false,
      "The broker does not support the requested SASL mechanism."),
    Entry(34, "ILLEGAL_SASL_STATE", false, "Request is not valid given the current SASL state."),
    Entry(35, "UNSUPPORTED_VERSION", false, "The version of API is not supported."),
    Entry(36, "TOPIC_ALREADY_EXISTS", false, "Topic with this name already exists."),
    Entry(37, "INVALID_PARTITIONS", false, "Number of partitions is below 1."),
    Entry(
      38, "INVALID_REPLICATION_FACTOR", false,
      "Replication factor is below 1 or larger than the number of available brokers."),
    Entry(39, "INVALID_REPLICA_ASSIGNMENT", false, "Replica assignment is invalid."),
    Entry(40, "INVALID_CONFIG", false, "Configuration is invalid."),
    Entry(41, "NOT_CONTROLLER", true, "This is not the correct controller for this cluster."),
    Entry(
      42, "INVALID_REQUEST", false,
      "This most likely occurs because of a request being malformed by the client library or the "
        + "message was sent to an incompatible broker. See the broker logs for more details."),
    Entry(
      43, "UNSUPPORTED_FOR_MESSAGE_FORMAT", false,
      "The message format version on the broker does not support the request."),
    Entry(44, "POLICY_VIOLATION", false, "Request parameters do not satisfy the configured policy."),
    Entry(45, "OUT_OF_ORDER_SEQUENCE_NUMBER", false, "The broker received an out of order sequence number."),
    Entry(46, "DUPLICATE_SEQUENCE_NUMBER", false, "The broker received a duplicate sequence number."),
    Entry(47, "INVALID_PRODUCER_EPOCH", false, "Producer attempted to produce with an old epoch."),
    Entry(
      48, "INVALID_TXN_STATE", false,
      "The producer attempted a transactional operation in an invalid state."),
    Entry(
      49, "INVALID_PRODUCER_ID_MAPPING", false,
      "The producer attempted to use a producer id which is not currently assigned to its transactional "
        + "id."),
    Entry(
      50, "INVALID_TRANSACTION_TIMEOUT", false,
      "The transaction timeout is larger than the maximum value allowed by the broker (as configured by "
        + "transaction.max.timeout.ms)."),
    Entry(
      51, "CONCURRENT_TRANSACTIONS", true,
      "The producer attempted to update a transaction while another concurrent operation on the same "
        + "transaction was ongoing."),
    Entry(
      52, "TRANSACTION_COORDINATOR_FENCED", false,
      "Indicates that the transaction coordinator sending a WriteTxnMarker is no longer the current "
        + "coordinator for a given producer."),
    Entry(53, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", false, "Transactional Id authorization failed."),
    Entry(54, "SECURITY_DISABLED", false, "Security features are disabled."),
    Entry(
      55, "OPERATION_NOT_ATTEMPTED", false,
      "The broker did not attempt to execute this operation. This may happen for batched RPCs where "
        + "some operations in the batch failed, causing the broker to respond without trying the rest."),
    Entry(56, "KAFKA_STORAGE_ERROR", true, "Disk error when trying to access log file on the disk."),
    Entry(
      57, "LOG_DIR_NOT_FOUND", false,
      "The user-specified log directory is not found in the broker config."),
    Entry(58, "SASL_AUTHENTICATION_FAILED", false, "SASL Authentication failed."),
    Entry(
      59, "UNKNOWN_PRODUCER_ID", false,
      "This exception is raised by the broker if it could not locate the producer metadata associated "
        + "with the producerId in question. This could happen if, for instance, the producer's records were "
        + "deleted because their retention time had elapsed. Once the last records of the producerId are "
        + "removed, the producer's metadata is removed from the broker, and future appends by the producer "
        + "will return this exception."),
    Entry(60, "REASSIGNMENT_IN_PROGRESS", false, "A partition reassignment is in progress."),
    Entry(61, "DELEGATION_TOKEN_AUTH_DISABLED", false, "Delegation Token feature is not enabled."),
    Entry(62, "DELEGATION_TOKEN_NOT_FOUND", false, "Delegation Token is not found on server."),
    Entry(63, "DELEGATION_TOKEN_OWNER_MISMATCH", false, "Specified Principal is not valid Owner/Renewer."),
    Entry(
      64, "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED", false,
      "Delegation Token requests are not allowed on PLAINTEXT/1-way SSL channels and on delegation "
        + "token authenticated channels."),
    Entry(65, "DELEGATION_TOKEN_AUTHORIZATION_FAILED", false, "Delegation Token authorization failed."),
    Entry(66, "DELEGATION_TOKEN_EXPIRED", false, "Delegation Token is expired."),
    Entry(67, "INVALID_PRINCIPAL_TYPE", false, "Supplied principalType is not supported."),
    Entry(68, "NON_EMPTY_GROUP", false, "The group is not empty."),
    Entry(69, "GROUP_ID_NOT_FOUND", false, "The group id does not exist."),
    Entry(70, "FETCH_SESSION_ID_NOT_FOUND", true, "The fetch session ID was not found."),
    Entry(71, "INVALID_FETCH_SESSION_EPOCH", true, "The fetch session epoch is invalid."),
    Entry(
      72, "LISTENER_NOT_FOUND", true,
      "There is no listener on the leader broker that matches the listener on which metadata request "
        + "was processed."),
    Entry(73, "TOPIC_DELETION_DISABLED", false, "Topic deletion is disabled."),
    Entry(
      74, "FENCED_LEADER_EPOCH", true,
      "The leader epoch in the request is older than the epoch on the broker."),
    Entry(
      75, "UNKNOWN_LEADER_EPOCH", true,
      "The leader epoch in the request is newer than the epoch on the broker."),
    Entry(
      76, "UNSUPPORTED_COMPRESSION_TYPE", false,
      "The requesting client does not support the compression type of given partition."),
    Entry(77, "STALE_BROKER_EPOCH", false, "Broker epoch has changed."),
    Entry(
      78, "OFFSET_NOT_AVAILABLE", true,
      "The leader high watermark has not caught up from a recent leader election so the offsets cannot "
        + "be guaranteed to be monotonically increasing."),
    Entry(
      79, "MEMBER_ID_REQUIRED", false,
      "The group member needs to have a valid member id before actually entering a consumer group."),
    Entry(80, "PREFERRED_LEADER_NOT_AVAILABLE", true, "The preferred leader was not available."),
    Entry(81, "GROUP_MAX_SIZE_REACHED", false, "The consumer group has reached its max size."),
    Entry(
      82, "FENCED_INSTANCE_ID", false,
      "The broker rejected this static consumer since another consumer with the same group.instance.id "
        + "has registered with a different member.id."),
    Entry(83, "ELIGIBLE_LEADERS_NOT_AVAILABLE", true, "Eligible topic partition leaders are not available."),
    Entry(84, "ELECTION_NOT_NEEDED", true, "Leader election not needed for topic partition."),
    Entry(85, "NO_REASSIGNMENT_IN_PROGRESS", false, "No partition reassignment is in progress."),
    Entry(
      86, "GROUP_SUBSCRIBED_TO_TOPIC", false,
      "Deleting offsets of a topic is forbidden while the consumer group is actively subscribed to it."),
    Entry(
      87, "INVALID_RECORD", false,
      "This record has failed the validation on broker and hence will be rejected."),
    Entry(88, "UNSTABLE_OFFSET_COMMIT", true, "There are unstable offsets that need to be cleared."),
    Entry(89, "THROTTLING_QUOTA_EXCEEDED", true, "The throttling quota has been exceeded."),
    Entry(
      90, "PRODUCER_FENCED", false,
      "There is a newer producer with the same transactionalId which fences the current one."),
    Entry(91, "RESOURCE_NOT_FOUND", false, "A request illegally referred to a resource that does not exist."),
    Entry(92, "DUPLICATE_RESOURCE", false, "A request illegally referred to the same resource twice."),
    Entry(
      93, "UNACCEPTABLE_CREDENTIAL", false,
      "Requested credential would not meet criteria for acceptability."),
    Entry(
      94, "INCONSISTENT_VOTER_SET", false,
      "Indicates that the either the sender or recipient of a voter-only request is not one of the "
        + "expected voters."),
    Entry(95, "INVALID_UPDATE_VERSION", false, "The given update version was invalid."),
    Entry(
      96, "FEATURE_UPDATE_FAILED", false,
      "Unable to update finalized features due to an unexpected server error."),
    Entry(
      97, "PRINCIPAL_DESERIALIZATION_FAILURE", false,
      "Request principal deserialization failed during forwarding. This indicates an internal error on "
        + "the broker cluster security setup."),
    Entry(98, "SNAPSHOT_NOT_FOUND", false, "Requested snapshot was not found."),
    Entry(
      99, "POSITION_OUT_OF_RANGE", false,
      "Requested position is not greater than or equal to zero, and less than the size of the snapshot."),
    Entry(100, "UNKNOWN_TOPIC_ID", true, "This server does not host this topic ID."),
    Entry(101, "DUPLICATE_BROKER_REGISTRATION", false, "This broker ID is already in use."),
    Entry(102, "BROKER_ID_NOT_REGISTERED", false, "The given broker ID was not registered."),
    Entry(
      103, "INCONSISTENT_TOPIC_ID", true,
      "The log's topic ID did not match the topic ID in the request."),
    Entry(
      104, "INCONSISTENT_CLUSTER_ID", false,
      "The clusterId in the request does not match that found on the server."),
    Entry(105, "TRANSACTIONAL_ID_NOT_FOUND", false, "The transactionalId could not be found."),
    Entry(
      106, "FETCH_SESSION_TOPIC_ID_ERROR", true,
      "The fetch session encountered inconsistent topic ID usage."),
    Entry(107, "INELIGIBLE_REPLICA", false, "The new ISR contains at least one ineligible replica."),
    Entry(
      108, "NEW_LEADER_ELECTED", false,
      "The AlterPartition request successfully updated the partition state but the leader has changed."),
    Entry(109, "OFFSET_MOVED_TO_TIERED_STORAGE", false, "The requested offset is moved to tiered storage."),
    Entry(
      110, "FENCED_MEMBER_EPOCH", false,
      "The member epoch is fenced by the group coordinator. The member must abandon all its partitions "
        + "and rejoin."),
    Entry(
      111, "UNRELEASED_INSTANCE_ID", false,
      "The instance ID is still used by another member in the consumer group. That member must leave "
        + "first."),
    Entry(
      112, "UNSUPPORTED_ASSIGNOR", false,
      "The assignor or its version range is not supported by the consumer group."),
    Entry(
      113, "STALE_MEMBER_EPOCH", false,
      "The member epoch is stale. The member must retry after receiving its updated member epoch via "
        + "the ConsumerGroupHeartbeat API."),
    Entry(114, "MISMATCHED_ENDPOINT_TYPE", false, "The request was sent to an endpoint of the wrong type."),
    Entry(115, "UNSUPPORTED_ENDPOINT_TYPE", false, "This endpoint type is not supported yet."),
    Entry(116, "UNKNOWN_CONTROLLER_ID", false, "This controller ID is not known."),
    Entry(
      117, "UNKNOWN_SUBSCRIPTION_ID", false,
      "Client sent a push telemetry request with an invalid or outdated subscription ID."),
    Entry(
      118, "TELEMETRY_TOO_LARGE", false,
      "Client sent a push telemetry request larger than the maximum size the broker will accept."),
    Entry(
      119, "INVALID_REGISTRATION", false,
      "The controller has considered the broker registration to be invalid."),
    Entry(
      120, "TRANSACTION_ABORTABLE", false,
      "The server encountered an error with the transaction. The client can abort the transaction to "
        + "continue using this transactional ID."),
    Entry(
      121, "INVALID_RECORD_STATE", false,
      "The record state is invalid. The acknowledgement of delivery could not be completed."),
    Entry(122, "SHARE_SESSION_NOT_FOUND", true, "The share session was not found."),
    Entry(123, "INVALID_SHARE_SESSION_EPOCH", true, "The share session epoch is invalid."),
    Entry(
      124, "FENCED_STATE_EPOCH", false,
      "The share coordinator rejected the request because the share-group state epoch did not match."),
    Entry(125, "INVALID_VOTER_KEY", false, "The voter key doesn't match the receiving replica's key."),
    Entry(126, "DUPLICATE_VOTER", false, "The voter is already part of the set of voters."),
    Entry(127, "VOTER_NOT_FOUND", false, "The voter is not part of the set of voters."),
    Entry(128, "INVALID_REGULAR_EXPRESSION", false, "The regular expression is not valid."),
    Entry(
      129, "REBOOTSTRAP_REQUIRED", false,
      "Client metadata is stale, client should rebootstrap to obtain new metadata."),
    Entry(130, "STREAMS_INVALID_TOPOLOGY", false, "The supplied topology is invalid."),
    Entry(131, "STREAMS_INVALID_TOPOLOGY_EPOCH", false, "The supplied topology epoch is invalid."),
    Entry(132, "STREAMS_TOPOLOGY_FENCED", false, "The supplied topology epoch is outdated."),
    Entry(133, "SHARE_SESSION_LIMIT_REACHED", true, "The limit of share sessions has been reached."),
  ]
}
