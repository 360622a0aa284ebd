public import MedLedgerCore

/// Signs what a node sends: a validator's votes or a manager's proposals.
///
/// The real node signs with its `PrivateKey` (which conforms); simulations may inject a cheaper
/// signer, as long as no node can sign for another.
public protocol ConsensusSigner: Sendable {
    /// Signs a message.
    /// - Parameter message: the bytes to sign.
    /// - Returns: the signature.
    /// - Throws: when signing fails.
    func sign(_ message: [UInt8]) throws -> [UInt8]
}

/// Checks the signatures of council messages against the members' keys.
public protocol ConsensusVerifier: Sendable {
    /// Whether a vote signature by a validator verifies.
    /// - Parameters:
    ///   - signature: the signature.
    ///   - message: the vote's signing bytes.
    ///   - validator: the validator's index in the council.
    func isValidVoteSignature(_ signature: [UInt8], message: [UInt8], validator: Int) -> Bool

    /// Whether a proposal signature by a manager verifies.
    /// - Parameters:
    ///   - signature: the signature.
    ///   - message: the proposal's signing bytes.
    ///   - manager: the manager's index in the genesis managers.
    func isValidProposalSignature(_ signature: [UInt8], message: [UInt8], manager: Int) -> Bool
}

extension PrivateKey: ConsensusSigner {
    /// Signs a council message with this key (Ed25519, or ES256 as r‖s).
    /// - Parameter message: the bytes to sign.
    /// - Throws: `KeyError` when the crypto library fails.
    public func sign(_ message: [UInt8]) throws -> [UInt8] { try signature(for: message) }
}

/// Verifies council signatures with the keys named in a genesis.
public struct GenesisVerifier: ConsensusVerifier {
    private let validators: [PublicKey]
    private let managers: [PublicKey]

    /// Makes a verifier.
    /// - Parameter genesis: the channel's genesis.
    public init(genesis: Genesis) {
        validators = genesis.council.map(\.publicKey)
        managers = genesis.managers.map(\.publicKey)
    }

    /// Checks a vote signature with the validator's genesis key.
    public func isValidVoteSignature(_ signature: [UInt8], message: [UInt8], validator: Int) -> Bool {
        guard validators.indices.contains(validator) else { return false }
        return validators[validator].isValidSignature(signature, for: message)
    }

    /// Checks a proposal signature with the manager's genesis key.
    public func isValidProposalSignature(_ signature: [UInt8], message: [UInt8], manager: Int) -> Bool {
        guard managers.indices.contains(manager) else { return false }
        return managers[manager].isValidSignature(signature, for: message)
    }
}
