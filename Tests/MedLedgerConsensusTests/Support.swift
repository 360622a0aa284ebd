import MedLedgerConsensus
import MedLedgerCore

/// A cheap signer for simulations: the signature is SHA-256(secret ‖ message). Only the holder of
/// the secret can make it, so a byzantine node can't forge another's message here either.
struct CheapSigner: ConsensusSigner {
    let secret: [UInt8]

    func sign(_ message: [UInt8]) throws -> [UInt8] { Hash256.sha256(secret + message).bytes }
}

/// Checks `CheapSigner` signatures; it knows every secret (as a verifier knows every public key).
struct CheapVerifier: ConsensusVerifier {
    let validators: [[UInt8]]
    let managers: [[UInt8]]

    init(validators: Int, managers: Int) {
        self.validators = (0..<validators).map { CheapVerifier.secret("validator", $0) }
        self.managers = (0..<managers).map { CheapVerifier.secret("manager", $0) }
    }

    static func secret(_ role: String, _ index: Int) -> [UInt8] { Hash256.sha256(Array("\(role)-\(index)".utf8)).bytes }

    func validatorSigner(_ index: Int) -> CheapSigner { CheapSigner(secret: validators[index]) }
    func managerSigner(_ index: Int) -> CheapSigner { CheapSigner(secret: managers[index]) }

    func isValidVoteSignature(_ signature: [UInt8], message: [UInt8], validator: Int) -> Bool {
        validators.indices.contains(validator) && Hash256.sha256(validators[validator] + message).bytes == signature
    }

    func isValidProposalSignature(_ signature: [UInt8], message: [UInt8], manager: Int) -> Bool {
        managers.indices.contains(manager) && Hash256.sha256(managers[manager] + message).bytes == signature
    }
}

/// An abstract value for tests: the "header" names the height and a label; `good` says whether
/// the test's validity oracle accepts it.
func testValue(height: UInt64, label: String, good: Bool = true) -> ProposalValue {
    ProposalValue(
        header: CBOR.array([.unsigned(height), .text(label), .bool(good)]).encoded(), body: Array(label.utf8))
}

/// The test oracle: a value is valid at a height when its header says that height and `good`.
func isValidTestValue(_ value: ProposalValue, height: UInt64) -> Bool {
    guard let item = try? CBOR.decode(value.header), let parts = item.arrayValue, parts.count == 3 else { return false }
    return parts[0].uint64Value == height && parts[2].boolValue == true
}

extension Array where Element == ConsensusEffect {
    var votes: [Vote] {
        compactMap {
            if case .broadcastVote(let vote) = $0 { return vote }
            return nil
        }
    }

    var proposals: [Proposal] {
        compactMap {
            if case .broadcastProposal(let proposal) = $0 { return proposal }
            return nil
        }
    }

    var timeouts: [(ConsensusTimeout, UInt64)] {
        compactMap {
            if case .scheduleTimeout(let timeout, let ms) = $0 { return (timeout, ms) }
            return nil
        }
    }

    var decisions: [Decision] {
        compactMap {
            if case .decide(let decision) = $0 { return decision }
            return nil
        }
    }

    var validations: [ProposalValue] {
        compactMap {
            if case .validate(let value, _) = $0 { return value }
            return nil
        }
    }

    var evidence: [Evidence] {
        compactMap {
            if case .evidence(let evidence) = $0 { return evidence }
            return nil
        }
    }

    var diagnostics: [ConsensusError] {
        compactMap {
            if case .diagnostic(let error) = $0 { return error }
            return nil
        }
    }

    var persisted: [PersistedConsensusState] {
        compactMap {
            if case .persist(let state) = $0 { return state }
            return nil
        }
    }

    var needProposals: [(UInt64, UInt64)] {
        compactMap {
            if case .needProposal(let height, let round) = $0 { return (height, round) }
            return nil
        }
    }

    var behind: [UInt64] {
        compactMap {
            if case .behind(let height) = $0 { return height }
            return nil
        }
    }

    /// Whether every broadcast vote and proposal comes after a persist that holds it.
    var persistsBeforeBroadcasts: Bool {
        var votes = Set<Vote>()
        var proposals = Set<Proposal>()
        for effect in self {
            switch effect {
            case .persist(let state):
                votes.formUnion(state.votes)
                proposals.formUnion(state.proposals)
            case .broadcastVote(let vote):
                if !votes.contains(vote) { return false }
            case .broadcastProposal(let proposal):
                if !proposals.contains(proposal) { return false }
            default:
                break
            }
        }
        return true
    }
}

/// A small council for unit tests: n validators and m managers with cheap keys, and helpers that
/// sign messages as any of them.
struct Council {
    let configuration: ConsensusConfiguration
    let verifier: CheapVerifier

    init(validators: Int = 4, managers: Int = 2, timeouts: TimeoutPolicy = TimeoutPolicy()) {
        configuration = try! ConsensusConfiguration(
            channel: "ward-7", validatorCount: validators, managerCount: managers, timeouts: timeouts)
        verifier = CheapVerifier(validators: validators, managers: managers)
    }

    func validator(_ index: Int, restoring state: PersistedConsensusState? = nil) -> ConsensusMachine {
        try! ConsensusMachine(
            configuration: configuration, role: .validator(index: index, signer: verifier.validatorSigner(index)),
            verifier: verifier, restoring: state)
    }

    func manager(_ index: Int, restoring state: PersistedConsensusState? = nil) -> ConsensusMachine {
        try! ConsensusMachine(
            configuration: configuration, role: .manager(index: index, signer: verifier.managerSigner(index)),
            verifier: verifier, restoring: state)
    }

    func observer() -> ConsensusMachine {
        try! ConsensusMachine(configuration: configuration, role: .observer, verifier: verifier)
    }

    func vote(_ validator: Int, _ step: VoteStep, height: UInt64, round: UInt64, _ hash: Hash256?) -> Vote {
        var vote = Vote(
            channel: configuration.channel, height: height, round: round, step: step, blockHash: hash,
            validator: validator, signature: [])
        vote.signature = try! verifier.validatorSigner(validator).sign(vote.signingBytes)
        return vote
    }

    /// A proposal signed by the rightful proposer of (height, round).
    func proposal(height: UInt64, round: UInt64, value: ProposalValue, validRound: UInt64? = nil) -> Proposal {
        let proposer = configuration.proposer(height: height, round: round)
        var proposal = Proposal(
            channel: configuration.channel, height: height, round: round, validRound: validRound, proposer: proposer,
            value: value, signature: [])
        proposal.signature = try! verifier.managerSigner(proposer).sign(proposal.signingBytes)
        return proposal
    }
}
