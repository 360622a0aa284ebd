/// The topics of a channel (PROTOCOL.md, docs/CONSENSUS.md, docs/FORMATS.md), and how a node
/// tells them apart.
public struct ChannelTopics: Sendable {
    /// The channel id.
    public let channel: String
    private let prefix: String

    /// The topics of a channel.
    public init(channel: String) {
        self.channel = channel
        prefix = "medledger/v1/\(channel)/"
    }

    /// A device's readings.
    public func readings(_ device: String) -> String { prefix + "readings/\(device)" }
    /// Every device's readings (a filter).
    public var allReadings: String { prefix + "readings/+" }
    /// A device's receipts.
    public func receipts(_ device: String) -> String { prefix + "receipts/\(device)" }
    /// A submitter's transactions.
    public func transactions(_ submitter: String) -> String { prefix + "tx/\(submitter)" }
    /// Every submitter's transactions (a filter).
    public var allTransactions: String { prefix + "tx/+" }
    /// A submitter's transaction receipts.
    public func transactionReceipts(_ submitter: String) -> String { prefix + "tx-receipts/\(submitter)" }
    /// The committed blocks (retained).
    public var commits: String { prefix + "commits" }
    /// Where a node answers sync requests.
    public func sync(_ node: String) -> String { prefix + "sync/\(node)" }
    /// The council's messages (a filter).
    public var council: String { prefix + "council/#" }
    /// Where a manager answers researchers' fetch requests (docs/CONTRACTS.md).
    public func fetch(_ manager: String) -> String { prefix + "fetch/\(manager)" }
    /// Where a manager answers requesters' questions about their access requests.
    public func accessStatus(_ manager: String) -> String { prefix + "access-status/\(manager)" }

    /// What a topic of this channel is.
    public enum Kind: Equatable, Sendable {
        /// A device's reading.
        case reading(device: String)
        /// A submitter's transaction.
        case transaction(submitter: String)
        /// A council message: proposal, vote or evidence.
        case proposal, vote, evidence
        /// A committed block.
        case commit
        /// A sync request to this node.
        case sync(node: String)
        /// A fetch request to a manager.
        case fetch(manager: String)
        /// A question to a manager about an access request.
        case accessStatus(manager: String)
        /// Something else.
        case other
    }

    /// Classifies a topic.
    public func kind(of topic: String) -> Kind {
        guard topic.hasPrefix(prefix) else { return .other }
        let rest = topic.utf8.dropFirst(prefix.utf8.count)
        let parts = rest.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard let first = parts.first.map({ String(decoding: $0, as: UTF8.self) }) else { return .other }
        switch (first, parts.count) {
        case ("readings", 2): return .reading(device: String(decoding: parts[1], as: UTF8.self))
        case ("tx", 2): return .transaction(submitter: String(decoding: parts[1], as: UTF8.self))
        case ("commits", 1): return .commit
        case ("sync", 2): return .sync(node: String(decoding: parts[1], as: UTF8.self))
        case ("fetch", 2): return .fetch(manager: String(decoding: parts[1], as: UTF8.self))
        case ("access-status", 2): return .accessStatus(manager: String(decoding: parts[1], as: UTF8.self))
        case ("council", 3):
            switch String(decoding: parts[1], as: UTF8.self) {
            case "proposal": return .proposal
            case "vote": return .vote
            case "evidence": return .evidence
            default: return .other
            }
        default: return .other
        }
    }
}
