import MedLedgerConsensus
import MedLedgerCore
import MedLedgerStore
import MedLedgerTestSupport
import Testing

/// The council with real Ed25519 keys, real blocks and the ledger's full block check: what the
/// node will run, minus MQTT and timers.
@Suite("The council with real keys and real blocks")
struct RealKeysTests {
    /// One replica: the machine, its ledger state (what it checks blocks against) and, for the
    /// observer, an SQLite store that checks every certificate again.
    struct Replica {
        var machine: ConsensusMachine
        var state: LedgerState
        var decisions: [Decision] = []
    }

    /// A fault-free network with 1 ms delays and a clock for the timeouts, run to `heights`.
    final class Network {
        let channel: TestChannel
        var replicas: [Replica]
        var queue: [(time: UInt64, order: Int, target: Int, event: ConsensusEvent)] = []
        var order = 0
        var now: UInt64 = 0
        /// The managers whose blocks break a rule (their readings root is wrong).
        var badManagers: Set<Int> = []
        let store: LedgerStore
        let directory: TemporaryDirectory
        let device = TestChannel.deviceKey(1)

        init(badManagers: Set<Int> = []) throws {
            channel = TestChannel(validators: 4, managers: 2)
            self.badManagers = badManagers
            let genesis = channel.genesis
            let configuration = try ConsensusConfiguration(genesis: genesis)
            let verifier = GenesisVerifier(genesis: genesis)
            var replicas: [Replica] = []
            for (index, key) in channel.validatorKeys.enumerated() {
                let machine = try ConsensusMachine(
                    configuration: configuration, role: .validator(index: index, signer: key), verifier: verifier)
                replicas.append(Replica(machine: machine, state: LedgerState(genesis: genesis)))
            }
            for (index, key) in channel.managerKeys.enumerated() {
                let machine = try ConsensusMachine(
                    configuration: configuration, role: .manager(index: index, signer: key), verifier: verifier)
                replicas.append(Replica(machine: machine, state: LedgerState(genesis: genesis)))
            }
            let observer = try ConsensusMachine(configuration: configuration, role: .observer, verifier: verifier)
            replicas.append(Replica(machine: observer, state: LedgerState(genesis: genesis)))
            self.replicas = replicas
            directory = try TemporaryDirectory("consensus-real")
            store = try LedgerStore(path: directory.file("ledger.sqlite"), genesis: genesis)
        }

        deinit { directory.remove() }

        func push(_ target: Int, _ event: ConsensusEvent, after delay: UInt64 = 1) {
            order += 1
            queue.append((now + delay, order, target, event))
        }

        /// The block a manager proposes: block 1 registers the device, later blocks hold readings.
        func block(by manager: Int, on state: LedgerState, round: UInt64) -> Block {
            var block: Block
            if state.height == 0 {
                block = channel.block(
                    on: state,
                    transactions: [
                        channel.transaction(
                            seq: 1, .registerDevice(device: "bp-1", key: device.publicKey, patient: "p-1"))
                    ])
            } else {
                let readings = (0..<3).map {
                    channel.reading(device: "bp-1", key: device, seq: state.height * 10 + UInt64($0) + round * 100)
                }
                block = channel.block(on: state, readings: readings)
            }
            block.header.proposer = channel.genesis.managers[manager].id
            if badManagers.contains(manager) { block.header.readingsRoot = Hash256.sha256([1, 2, 3]) }
            return block
        }

        func run(heights: UInt64) throws {
            for index in replicas.indices { push(index, .startHeight(1), after: 0) }
            while replicas.contains(where: { $0.decisions.count < heights }) {
                let next = try #require(
                    queue.indices.min { (queue[$0].time, queue[$0].order) < (queue[$1].time, queue[$1].order) })
                let (time, _, target, event) = queue.remove(at: next)
                now = time
                try #require(now < 600_000, "the council made no progress")
                let effects = replicas[target].machine.handle(event)
                try execute(effects, at: target)
            }
        }

        func execute(_ effects: [ConsensusEffect], at target: Int) throws {
            for effect in effects {
                switch effect {
                case .broadcastVote(let vote):
                    for index in replicas.indices { push(index, .vote(try Vote(decoding: vote.encoded()))) }
                case .broadcastProposal(let proposal):
                    let bytes = proposal.encoded()
                    let maxBytes = Proposal.maxEncodedBytes(parameters: channel.genesis.block)
                    for index in replicas.indices {
                        push(index, .proposal(try Proposal(decoding: bytes, maxBytes: maxBytes)))
                    }
                case .scheduleTimeout(let timeout, let ms):
                    if timeout.kind != .retransmit { push(target, .timeout(timeout), after: ms) }
                case .validate(let value, let height):
                    let state = replicas[target].state
                    #expect(height == state.height + 1)
                    let valid =
                        (try? state.check(
                            value.block(parameters: state.genesis.block), verifier: SequentialSignatureVerifier()))
                        != nil
                    push(target, .validated(value.digest, valid: valid), after: 5)
                case .needProposal(let height, let round):
                    let manager = try #require(replicas[target].machine.role.managerIndex)
                    let block = block(by: manager, on: replicas[target].state, round: round)
                    push(target, .proposalValue(height: height, round: round, value: ProposalValue(block: block)))
                case .decide(let decision):
                    let block = try decision.value.block(parameters: channel.genesis.block)
                    try decision.certificate.verify(genesis: channel.genesis, header: block.header)
                    replicas[target].state = try replicas[target].state.applying(block)
                    replicas[target].decisions.append(decision)
                    if case .observer = replicas[target].machine.role {
                        _ = try store.append(
                            block, certificate: decision.certificate, verifier: SequentialSignatureVerifier())
                        let announcement = CommitAnnouncement(header: block.header, certificate: decision.certificate)
                        try CommitAnnouncement(decoding: announcement.encoded()).verify(genesis: channel.genesis)
                    }
                    push(target, .startHeight(decision.height + 1))
                case .persist, .evidence, .behind, .diagnostic:
                    if case .diagnostic(let error) = effect { Issue.record("diagnostic: \(error)") }
                    if case .evidence = effect { Issue.record("evidence against a correct node") }
                }
            }
        }
    }

    @Test func decidesRealBlocksWhoseCertificatesTheStoreAccepts() throws {
        let network = try Network()
        try network.run(heights: 3)
        let first = network.replicas[0].decisions
        for replica in network.replicas {
            #expect(replica.decisions.map(\.value.id) == first.map(\.value.id))
            #expect(replica.state.height == 3)
        }
        #expect(first.map(\.round) == [0, 0, 0])
        #expect(network.store.height == 3)
        for decision in first {
            #expect(decision.certificate.signatures.count >= network.channel.genesis.quorum)
        }
    }

    @Test func aBlockThatBreaksARuleGetsNilPrevotesAndTheNextManagerProposes() throws {
        // Height 1, round 0 belongs to manager 1, whose blocks have a wrong readings root.
        let network = try Network(badManagers: [1])
        try network.run(heights: 2)
        let decisions = network.replicas[0].decisions
        #expect(decisions[0].round == 1)
        let proposer = try decisions[0].value.block(parameters: network.channel.genesis.block).header.proposer
        #expect(proposer == network.channel.genesis.managers[0].id)
        #expect(network.store.height == 2)
    }
}
