/// The step of a council vote.
public enum VoteStep: UInt64, Hashable, Sendable {
    /// A prevote.
    case prevote = 1
    /// A precommit.
    case precommit = 2
}

/// The canonical bytes a validator signs for a vote: deterministic CBOR
/// `["medledger/v1/vote", channel, height, round, step, block hash or null]`. Naming the channel,
/// height, round and step means no vote can be replayed anywhere else.
/// - Parameters:
///   - channel: the channel id.
///   - height: the height voted on.
///   - round: the round.
///   - step: prevote or precommit.
///   - blockHash: the header hash voted for, or nil for a vote for nothing.
public func voteSigningBytes(channel: String, height: UInt64, round: UInt64, step: VoteStep, blockHash: Hash256?)
    -> [UInt8]
{
    CBOR.array([
        .text("medledger/v1/vote"), .text(channel), .unsigned(height), .unsigned(round), .unsigned(step.rawValue),
        blockHash.map { .bytes($0.bytes) } ?? .null,
    ]).encoded()
}

/// One validator's precommit signature in a commit certificate.
public struct ValidatorSignature: Hashable, Sendable {
    /// The validator's index in the genesis council.
    public var validator: Int
    /// The signature over the precommit's signing bytes.
    public var signature: [UInt8]

    /// Makes a signature entry.
    public init(validator: Int, signature: [UInt8]) {
        self.validator = validator
        self.signature = signature
    }
}

/// The proof that the council committed a block: 2f+1 distinct validators' precommits for
/// (channel, height, round, header hash).
public struct CommitCertificate: Hashable, Sendable {
    /// The channel id.
    public var channel: String
    /// The height.
    public var height: UInt64
    /// The round in which the block was decided.
    public var round: UInt64
    /// The header hash of the committed block.
    public var blockHash: Hash256
    /// The precommit signatures.
    public var signatures: [ValidatorSignature]

    /// Makes a certificate.
    public init(channel: String, height: UInt64, round: UInt64, blockHash: Hash256, signatures: [ValidatorSignature]) {
        self.channel = channel
        self.height = height
        self.round = round
        self.blockHash = blockHash
        self.signatures = signatures
    }

    /// The bytes each precommit signed.
    public var signingBytes: [UInt8] {
        voteSigningBytes(channel: channel, height: height, round: round, step: .precommit, blockHash: blockHash)
    }

    /// Makes a certificate by signing with validators' keys (for tests, tools and the devnet).
    /// - Parameters:
    ///   - header: the header to certify.
    ///   - round: the round.
    ///   - keys: validator index and private key of each signer.
    /// - Throws: `KeyError` when signing fails.
    public static func signing(header: BlockHeader, round: UInt64 = 0, keys: [(Int, PrivateKey)]) throws(KeyError)
        -> CommitCertificate
    {
        var certificate = CommitCertificate(
            channel: header.channel, height: header.height, round: round, blockHash: header.hash, signatures: [])
        let message = certificate.signingBytes
        for (index, key) in keys {
            certificate.signatures.append(
                ValidatorSignature(validator: index, signature: try key.signature(for: message)))
        }
        return certificate
    }

    /// Checks the certificate against the genesis council: at least 2f+1 distinct council
    /// members whose signatures verify. Invalid or repeated entries don't count.
    /// - Parameters:
    ///   - genesis: the channel's genesis.
    ///   - header: the header the certificate must certify.
    /// - Throws: `LedgerFormatError` naming what is wrong.
    public func verify(genesis: Genesis, header: BlockHeader) throws(LedgerFormatError) {
        guard channel == genesis.channel else {
            throw LedgerFormatError("the certificate is for channel '\(channel)', not '\(genesis.channel)'")
        }
        guard height == header.height else {
            throw LedgerFormatError("the certificate is for height \(height), not \(header.height)")
        }
        guard blockHash == header.hash else {
            throw LedgerFormatError("the certificate certifies another header hash (\(blockHash.hex))")
        }
        let message = signingBytes
        // Each council member's first entry is the only one checked: a certificate padded with
        // repeated or invalid entries costs at most one signature check per member.
        var tried = Set<Int>()
        var valid = 0
        for entry in signatures where genesis.council.indices.contains(entry.validator) {
            guard tried.insert(entry.validator).inserted else { continue }
            if genesis.council[entry.validator].publicKey.isValidSignature(entry.signature, for: message) {
                valid += 1
            }
        }
        guard valid >= genesis.quorum else {
            throw LedgerFormatError(
                "the certificate has \(valid) valid distinct precommits; it needs \(genesis.quorum)")
        }
    }

    /// The certificate in deterministic CBOR `{1: channel, 2: height, 3: round, 4: hash, 5: [[index, sig]]}`.
    public func encoded() -> [UInt8] {
        CBOR.map([
            CBORMapEntry(.unsigned(1), .text(channel)),
            CBORMapEntry(.unsigned(2), .unsigned(height)),
            CBORMapEntry(.unsigned(3), .unsigned(round)),
            CBORMapEntry(.unsigned(4), .bytes(blockHash.bytes)),
            CBORMapEntry(
                .unsigned(5),
                .array(signatures.map { .array([.unsigned(UInt64($0.validator)), .bytes($0.signature)]) })),
        ]).encoded()
    }

    /// Decodes a certificate.
    /// - Parameter bytes: the encoded certificate.
    /// - Throws: `LedgerFormatError` naming what is wrong.
    public init(decoding bytes: [UInt8]) throws(LedgerFormatError) {
        let map = try LedgerFormatError.decodeDeterministic(bytes, what: "commit certificate")
        guard let channel = map[intKey: 1]?.textValue, let height = map[intKey: 2]?.wireUInt,
            let round = map[intKey: 3]?.wireUInt, let raw = map[intKey: 4]?.bytesValue,
            let hash = Hash256(bytes: raw), let items = map[intKey: 5]?.arrayValue
        else { throw LedgerFormatError("a commit certificate is {1: channel, 2: height, 3: round, 4: hash, 5: sigs}") }
        var signatures: [ValidatorSignature] = []
        for item in items {
            guard let pair = item.arrayValue, pair.count == 2, let index = pair[0].wireUInt,
                index < 1 << 16, let signature = pair[1].bytesValue
            else { throw LedgerFormatError("a certificate signature is [validator index, signature bytes]") }
            signatures.append(ValidatorSignature(validator: Int(index), signature: signature))
        }
        self.init(channel: channel, height: height, round: round, blockHash: hash, signatures: signatures)
    }
}
