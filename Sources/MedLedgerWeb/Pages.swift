/// What the overview page (`/`) shows: a snapshot of one node, taken when the page is asked for.
/// Every string comes from the ledger or the network and is escaped when rendered.
public struct OverviewPage: Hashable, Sendable {
    /// The channel id.
    public var channel: String
    /// The node's id.
    public var node: String
    /// Its role (validator, manager, observer).
    public var role: String
    /// Its ledger height.
    public var height: UInt64
    /// The newest header hash, hex.
    public var headHash: String
    /// The consensus round it is in at `height + 1`.
    public var round: UInt64
    /// The consensus step it is in (propose, prevote, precommit).
    public var step: String
    /// When the snapshot was taken, ms since the Unix epoch.
    public var time: UInt64
    /// The newest blocks, newest first.
    public var blocks: [BlockSummary]
    /// The council, in genesis order, with the last vote seen from each.
    public var council: [MemberRow]
    /// The managers, in genesis order, with the last proposal seen from each.
    public var managers: [MemberRow]
    /// Registered devices (at most a page's worth), with their last committed reading.
    public var devices: [DeviceRow]
    /// How many devices are registered in all.
    public var deviceCount: Int
    /// Readings refused by this node, by reason (managers).
    public var rejections: [CountRow]
    /// The node's main counters, by name.
    public var counters: [CountRow]

    /// Makes a snapshot.
    public init(
        channel: String, node: String, role: String, height: UInt64, headHash: String, round: UInt64, step: String,
        time: UInt64, blocks: [BlockSummary], council: [MemberRow], managers: [MemberRow], devices: [DeviceRow],
        deviceCount: Int, rejections: [CountRow], counters: [CountRow]
    ) {
        self.channel = channel
        self.node = node
        self.role = role
        self.height = height
        self.headHash = headHash
        self.round = round
        self.step = step
        self.time = time
        self.blocks = blocks
        self.council = council
        self.managers = managers
        self.devices = devices
        self.deviceCount = deviceCount
        self.rejections = rejections
        self.counters = counters
    }
}

/// One block in the overview's list.
public struct BlockSummary: Hashable, Sendable {
    /// Its height.
    public var height: UInt64
    /// Its header hash, hex.
    public var hash: String
    /// The proposer's time, ms since the Unix epoch.
    public var time: UInt64
    /// The proposing manager's id.
    public var proposer: String
    /// How many readings it holds.
    public var readings: Int
    /// How many transactions it holds.
    public var transactions: Int

    /// Makes one.
    public init(height: UInt64, hash: String, time: UInt64, proposer: String, readings: Int, transactions: Int) {
        self.height = height
        self.hash = hash
        self.time = time
        self.proposer = proposer
        self.readings = readings
        self.transactions = transactions
    }
}

/// A council member or manager, and the last signed message seen from it.
public struct MemberRow: Hashable, Sendable {
    /// Its id in the genesis.
    public var id: String
    /// The last vote (a council member) or proposal (a manager) seen from it; nil: none yet.
    public var last: MessageSeen?
    /// Whether this row is the node itself.
    public var isSelf: Bool

    /// Makes one.
    public init(id: String, last: MessageSeen?, isSelf: Bool = false) {
        self.id = id
        self.last = last
        self.isSelf = isSelf
    }
}

/// A signed consensus message seen from a member.
public struct MessageSeen: Hashable, Sendable {
    /// The height it is for.
    public var height: UInt64
    /// The round.
    public var round: UInt64
    /// What it is: prevote, precommit or proposal.
    public var kind: String
    /// The block hash it names, hex; nil for a vote for nil.
    public var block: String?
    /// When this node saw it, ms since the Unix epoch.
    public var seen: UInt64

    /// Makes one.
    public init(height: UInt64, round: UInt64, kind: String, block: String?, seen: UInt64) {
        self.height = height
        self.round = round
        self.kind = kind
        self.block = block
        self.seen = seen
    }
}

/// A registered device and its last committed reading.
public struct DeviceRow: Hashable, Sendable {
    /// The device id.
    public var id: String
    /// The patient it is assigned to.
    public var patient: String?
    /// Whether it is revoked.
    public var revoked: Bool
    /// Its last committed reading, if it has one.
    public var last: ReadingSummary?

    /// Makes one.
    public init(id: String, patient: String?, revoked: Bool, last: ReadingSummary?) {
        self.id = id
        self.patient = patient
        self.revoked = revoked
        self.last = last
    }
}

/// A committed reading in brief.
public struct ReadingSummary: Hashable, Sendable {
    /// Its seq.
    public var seq: UInt64
    /// The device's time, ms since the Unix epoch.
    public var time: UInt64
    /// Its records as text, e.g. `8480-6 = 120 mm[Hg]`.
    public var values: String
    /// The height of the block that holds it.
    public var height: UInt64

    /// Makes one.
    public init(seq: UInt64, time: UInt64, values: String, height: UInt64) {
        self.seq = seq
        self.time = time
        self.values = values
        self.height = height
    }
}

/// A name and a count.
public struct CountRow: Hashable, Sendable {
    /// The name.
    public var name: String
    /// The count.
    public var count: Int

    /// Makes one.
    public init(_ name: String, _ count: Int) {
        self.name = name
        self.count = count
    }
}

/// What a block's page (`/blocks/{height}`) shows.
public struct BlockPage: Hashable, Sendable {
    /// The channel id.
    public var channel: String
    /// The node serving the page.
    public var node: String
    /// The ledger's height (for the next/previous links).
    public var ledgerHeight: UInt64
    /// The header's fields, hex for hashes.
    public var height: UInt64
    /// The header hash.
    public var hash: String
    /// The previous header's hash.
    public var previousHash: String
    /// The proposer's time, ms since the Unix epoch.
    public var time: UInt64
    /// The proposing manager.
    public var proposer: String
    /// The Merkle root of the readings.
    public var readingsRoot: String
    /// The Merkle root of the transactions.
    public var transactionsRoot: String
    /// The hash of the council the block was made under.
    public var councilHash: String
    /// The round whose precommits certify the block.
    public var certificateRound: UInt64
    /// The council members whose precommit signatures the certificate holds.
    public var signers: [String]
    /// The block's readings in order, each with its inclusion proof.
    public var readings: [ReadingRow]
    /// The block's transactions in order.
    public var transactions: [TransactionRow]

    /// Makes one.
    public init(
        channel: String, node: String, ledgerHeight: UInt64, height: UInt64, hash: String, previousHash: String,
        time: UInt64, proposer: String, readingsRoot: String, transactionsRoot: String, councilHash: String,
        certificateRound: UInt64, signers: [String], readings: [ReadingRow], transactions: [TransactionRow]
    ) {
        self.channel = channel
        self.node = node
        self.ledgerHeight = ledgerHeight
        self.height = height
        self.hash = hash
        self.previousHash = previousHash
        self.time = time
        self.proposer = proposer
        self.readingsRoot = readingsRoot
        self.transactionsRoot = transactionsRoot
        self.councilHash = councilHash
        self.certificateRound = certificateRound
        self.signers = signers
        self.readings = readings
        self.transactions = transactions
    }
}

/// A reading in a block, with the proof that the block's readings root includes it.
public struct ReadingRow: Hashable, Sendable {
    /// Its index in the block (the Merkle leaf index).
    public var position: Int
    /// The device id.
    public var device: String
    /// Its seq.
    public var seq: UInt64
    /// The device's time, ms since the Unix epoch.
    public var time: UInt64
    /// Its records as text.
    public var values: String
    /// The Merkle leaf hash of its signed bytes, hex.
    public var leafHash: String
    /// The RFC 9162 inclusion proof (audit path), leaf to root, each hash hex.
    public var proof: [String]

    /// Makes one.
    public init(
        position: Int, device: String, seq: UInt64, time: UInt64, values: String, leafHash: String, proof: [String]
    ) {
        self.position = position
        self.device = device
        self.seq = seq
        self.time = time
        self.values = values
        self.leafHash = leafHash
        self.proof = proof
    }
}

/// A transaction in a block.
public struct TransactionRow: Hashable, Sendable {
    /// Its index in the block.
    public var position: Int
    /// The registrar that signed it.
    public var submitter: String
    /// Its seq.
    public var seq: UInt64
    /// What it does, as text.
    public var summary: String

    /// Makes one.
    public init(position: Int, submitter: String, seq: UInt64, summary: String) {
        self.position = position
        self.submitter = submitter
        self.seq = seq
        self.summary = summary
    }
}
