import MedLedgerConsensus
import MedLedgerCore
import MedLedgerTestSupport

/// How a byzantine validator misbehaves.
enum ValidatorFault: String, CaseIterable, Sendable {
    /// Never sends anything.
    case silent
    /// Sends each of its votes to some nodes and a conflicting signed vote to the others.
    case equivocating
    /// Votes for blocks that do not exist.
    case phantomVotes
    /// Votes honestly, and also sends garbage, forgeries and votes for far rounds and heights.
    case noisy
}

/// How a byzantine manager misbehaves as a proposer.
enum ManagerFault: String, CaseIterable, Sendable {
    /// Proposes blocks the validity check refuses.
    case invalidBlocks
    /// Sends different signed proposals (some claiming a valid round) to different nodes.
    case equivocating
    /// Never proposes.
    case withholding
    /// Proposes a fresh block every time, never its valid value: what locks protect against.
    case forgetful
}

/// One seeded run: who is in the council, who is faulty, and how the network misbehaves before
/// the global stabilisation time (GST). Everything is drawn from the seed.
struct Scenario: CustomStringConvertible, Sendable {
    struct Partition: Sendable {
        var start: UInt64
        var end: UInt64
        /// The nodes on one side; messages between the sides are lost.
        var side: Set<Int>
    }

    struct Crash: Sendable {
        var node: Int
        var at: UInt64
        var downFor: UInt64
        /// Whether the node dies in the middle of executing a list of effects.
        var midEffects: Bool
    }

    var seed: UInt64
    var validators: Int
    var managers: Int
    var observers: Int
    var validatorFaults: [Int: ValidatorFault]
    var managerFaults: [Int: ManagerFault]
    var gst: UInt64
    var dropRate: Double
    /// When set, each directed link's own loss rate before GST (instead of `dropRate`), so that
    /// some nodes see quorums that others don't.
    var linkDrop: [[Double]]?
    var duplicateRate: Double
    var maxDelay: UInt64
    var delta: UInt64
    var partitions: [Partition]
    var crashes: [Crash]
    /// Whether every message is encoded and decoded on its way (and garbage is sent as bytes).
    var wire: Bool
    /// Whether commit announcements and catch-up are lost before GST, so that replicas learn
    /// decisions only from votes (where locks matter most).
    var commitsLostBeforeGST: Bool
    /// Heights every correct replica must add after GST.
    var growth: Int
    /// How long after GST they may take.
    var patience: UInt64

    var nodeCount: Int { validators + managers + observers }

    static func random(seed: UInt64) -> Scenario {
        var random = SeededRandom(seed: seed)
        let validators = Double.random(in: 0..<1, using: &random) < 0.8 ? 4 : 7
        let managers = Int.random(in: 1...3, using: &random)
        let f = (validators - 1) / 3
        var validatorFaults: [Int: ValidatorFault] = [:]
        let faulty = Int.random(in: 0...f, using: &random)
        for index in Array(0..<validators).shuffled(using: &random).prefix(faulty) {
            validatorFaults[index] = ValidatorFault.allCases.randomElement(using: &random)
        }
        var managerFaults: [Int: ManagerFault] = [:]
        if managers >= 2, Double.random(in: 0..<1, using: &random) < 0.5 {
            let count = Int.random(in: 1...(managers - 1), using: &random)
            for index in Array(0..<managers).shuffled(using: &random).prefix(count) {
                managerFaults[index] = ManagerFault.allCases.randomElement(using: &random)
            }
        }
        let observers = 1
        let nodeCount = validators + managers + observers
        let gst = UInt64.random(in: 500...5000, using: &random)
        var partitions: [Partition] = []
        for _ in 0..<Int.random(in: 0...2, using: &random) {
            let start = UInt64.random(in: 0..<gst, using: &random)
            let end = UInt64.random(in: start...gst, using: &random)
            let side = Set((0..<nodeCount).filter { _ in Bool.random(using: &random) })
            partitions.append(Partition(start: start, end: end, side: side))
        }
        var crashes: [Crash] = []
        let honest = (0..<nodeCount).filter { node in
            if node < validators { return validatorFaults[node] == nil }
            if node < validators + managers { return managerFaults[node - validators] == nil }
            return true
        }
        for node in honest.shuffled(using: &random).prefix(Int.random(in: 0...2, using: &random)) {
            let at = UInt64.random(in: 0..<gst, using: &random)
            crashes.append(
                Crash(
                    node: node, at: at, downFor: UInt64.random(in: 0...(gst - at), using: &random),
                    midEffects: Bool.random(using: &random)))
        }
        var linkDrop: [[Double]]?
        if Bool.random(using: &random) {
            linkDrop = (0..<nodeCount).map { _ in
                (0..<nodeCount).map { _ in Double.random(in: 0..<1, using: &random) < 0.3 ? 0.9 : 0.05 }
            }
        }
        return Scenario(
            seed: seed, validators: validators, managers: managers, observers: observers,
            validatorFaults: validatorFaults, managerFaults: managerFaults, gst: gst,
            dropRate: Double.random(in: 0...0.4, using: &random), linkDrop: linkDrop,
            duplicateRate: Double.random(in: 0...0.1, using: &random),
            maxDelay: UInt64.random(in: 20...1500, using: &random), delta: 40, partitions: partitions,
            crashes: crashes, wire: Double.random(in: 0..<1, using: &random) < 0.25,
            commitsLostBeforeGST: Bool.random(using: &random), growth: 3, patience: 30_000)
    }

    var description: String {
        let vf = validatorFaults.sorted { $0.key < $1.key }.map { "v\($0.key):\($0.value.rawValue)" }
        let mf = managerFaults.sorted { $0.key < $1.key }.map { "m\($0.key):\($0.value.rawValue)" }
        return
            "seed \(seed): n=\(validators) m=\(managers) faults=[\((vf + mf).joined(separator: ", "))] gst=\(gst)ms "
            + "drop=\(linkDrop == nil ? "\(Int(dropRate * 100))%" : "per-link") dup=\(Int(duplicateRate * 100))% delay≤\(maxDelay)ms "
            + "partitions=\(partitions.count) crashes=\(crashes.count) wire=\(wire) commits-lost=\(commitsLostBeforeGST)"
    }
}

/// What a run measured.
struct SimulationOutcome: Sendable {
    var failure: String?
    var steps = 0
    var deliveries = 0
    var decisions = 0
    var evidence = 0
    var highestRound: UInt64 = 0
    var finalHeight = 0
}

/// A seeded discrete-event simulation of a council: n validators, m managers and an observer,
/// each a `ConsensusMachine` inside a small shell, over a network that delays, drops, duplicates,
/// reorders and partitions messages until GST, with crashes and restarts from the persisted
/// state and byzantine validators and managers. After every step it checks agreement, validity
/// and that no correct validator signed two votes for one slot; after GST, that the chain grows.
final class Simulation {
    private enum Message {
        case proposal(Proposal)
        case vote(Vote)
        case commit(CommitCertificate, ProposalValue)
        case syncRequest(from: Int, height: UInt64)
        case syncResponse([(CommitCertificate, ProposalValue)])
        case garbage([UInt8], vote: Bool)
    }

    private enum Event {
        case deliver(to: Int, Message)
        case timer(node: Int, incarnation: Int, ConsensusTimeout)
        case validated(node: Int, incarnation: Int, Hash256, Bool)
        case proposalReady(node: Int, incarnation: Int, height: UInt64, round: UInt64)
        case crash(node: Int, downFor: UInt64, midEffects: Bool)
        case restart(node: Int)
        case tick(node: Int)
    }

    private struct Node {
        var machine: ConsensusMachine?
        var persisted: PersistedConsensusState?
        /// Every own vote and proposal any persisted state held: what was durable before it was sent.
        var everPersistedVotes = Set<Vote>()
        var everPersistedProposals = Set<Proposal>()
        var chain: [ProposalValue] = []
        var up = true
        var incarnation = 0
        var crashMidEffects: UInt64?
        var syncTarget: UInt64 = 0
    }

    private struct Slot: Hashable {
        var validator: Int
        var height: UInt64
        var round: UInt64
        var step: VoteStep
    }

    /// A binary heap of small entries; the events themselves sit in slots that are reused.
    private struct Queue {
        private var heap: [(time: UInt64, order: UInt64, slot: Int)] = []
        private var slots: [Event?] = []
        private var free: [Int] = []
        private var order: UInt64 = 0

        var isEmpty: Bool { heap.isEmpty }

        mutating func push(_ time: UInt64, _ event: Event) {
            order += 1
            let slot: Int
            if let reused = free.popLast() {
                slot = reused
                slots[slot] = event
            } else {
                slot = slots.count
                slots.append(event)
            }
            heap.append((time, order, slot))
            var child = heap.count - 1
            while child > 0 {
                let parent = (child - 1) / 2
                guard Self.before(heap[child], heap[parent]) else { break }
                heap.swapAt(child, parent)
                child = parent
            }
        }

        mutating func pop() -> (UInt64, Event)? {
            guard !heap.isEmpty else { return nil }
            heap.swapAt(0, heap.count - 1)
            let top = heap.removeLast()
            var parent = 0
            while true {
                let left = 2 * parent + 1
                let right = left + 1
                var first = parent
                if left < heap.count, Self.before(heap[left], heap[first]) { first = left }
                if right < heap.count, Self.before(heap[right], heap[first]) { first = right }
                guard first != parent else { break }
                heap.swapAt(first, parent)
                parent = first
            }
            let event = slots[top.slot]!
            slots[top.slot] = nil
            free.append(top.slot)
            return (top.time, event)
        }

        private static func before(
            _ a: (time: UInt64, order: UInt64, slot: Int), _ b: (time: UInt64, order: UInt64, slot: Int)
        ) -> Bool {
            a.time != b.time ? a.time < b.time : a.order < b.order
        }
    }

    let scenario: Scenario
    private var random: SeededRandom
    private let configuration: ConsensusConfiguration
    private let verifier: CheapVerifier
    private var nodes: [Node]
    private var queue = Queue()
    private var now: UInt64 = 0
    private var decided: [UInt64: Hash256] = [:]
    private var honestVotes: [Slot: Hash256?] = [:]
    private var honestProposals: [Slot: Hash256] = [:]
    private var baseline: Int?
    private var outcome = SimulationOutcome()
    private let trace: Bool
    private let maxSteps = 3_000_000

    init(_ scenario: Scenario, trace: Bool = false) {
        self.scenario = scenario
        self.trace = trace
        random = SeededRandom(seed: scenario.seed ^ 0x5EED_5EED_5EED_5EED)
        configuration = try! ConsensusConfiguration(
            channel: "sim", validatorCount: scenario.validators, managerCount: scenario.managers,
            timeouts: TimeoutPolicy(
                proposeMs: 200, proposeDeltaMs: 100, prevoteMs: 100, prevoteDeltaMs: 50, precommitMs: 100,
                precommitDeltaMs: 50, retransmitMs: 600, maxMs: 5000))
        verifier = CheapVerifier(validators: scenario.validators, managers: scenario.managers)
        nodes = Array(repeating: Node(), count: scenario.nodeCount)
    }

    // MARK: - Who is who

    private func validatorIndex(_ node: Int) -> Int? { node < scenario.validators ? node : nil }

    private func managerIndex(_ node: Int) -> Int? {
        let index = node - scenario.validators
        return index >= 0 && index < scenario.managers ? index : nil
    }

    private func validatorFault(_ node: Int) -> ValidatorFault? {
        validatorIndex(node).flatMap { scenario.validatorFaults[$0] }
    }

    private func managerFault(_ node: Int) -> ManagerFault? {
        managerIndex(node).flatMap { scenario.managerFaults[$0] }
    }

    private func isHonest(_ node: Int) -> Bool { validatorFault(node) == nil && managerFault(node) == nil }

    private func makeMachine(_ node: Int, restoring state: PersistedConsensusState?) throws -> ConsensusMachine {
        let role: ConsensusRole
        if let index = validatorIndex(node) {
            role = .validator(index: index, signer: verifier.validatorSigner(index))
        } else if let index = managerIndex(node) {
            role = .manager(index: index, signer: verifier.managerSigner(index))
        } else {
            role = .observer
        }
        return try ConsensusMachine(configuration: configuration, role: role, verifier: verifier, restoring: state)
    }

    // MARK: - Running

    /// Runs the scenario to success or to the first failure.
    func run() -> SimulationOutcome {
        for node in nodes.indices {
            if validatorFault(node) == .silent {
                nodes[node].up = false
                continue
            }
            nodes[node].machine = try! makeMachine(node, restoring: nil)
            queue.push(UInt64.random(in: 0...50, using: &random), .tick(node: node))
        }
        for crash in scenario.crashes {
            queue.push(crash.at, .crash(node: crash.node, downFor: crash.downFor, midEffects: crash.midEffects))
        }
        for node in nodes.indices where nodes[node].machine != nil {
            step(node, .startHeight(1))
        }
        while outcome.failure == nil, let (time, event) = queue.pop() {
            now = time
            outcome.steps += 1
            if baseline == nil, now >= scenario.gst {
                baseline = honestNodes.map { nodes[$0].chain.count }.max() ?? 0
                decidedSinceCheck = true
            }
            if now > scenario.gst + scenario.patience {
                outcome.failure =
                    "no progress: \(scenario.patience) ms after GST the heights are "
                    + "\(honestNodes.map { nodes[$0].chain.count }) (needed \((baseline ?? 0) + scenario.growth))"
                break
            }
            if outcome.steps > maxSteps {
                outcome.failure = "more than \(maxSteps) steps"
                break
            }
            handle(event)
            if decidedSinceCheck {
                decidedSinceCheck = false
                if outcome.failure == nil, grownEnough { break }
            }
        }
        outcome.finalHeight = honestNodes.map { nodes[$0].chain.count }.min() ?? 0
        if outcome.failure == nil, !grownEnough {
            outcome.failure = "the run ended before the chain grew"
        }
        return outcome
    }

    private lazy var honestNodes: [Int] = nodes.indices.filter(isHonest)
    private var decidedSinceCheck = false

    private var grownEnough: Bool {
        guard let baseline else { return false }
        return honestNodes.allSatisfy { nodes[$0].up && nodes[$0].chain.count >= baseline + scenario.growth }
    }

    private func log(_ text: @autoclosure () -> String) {
        if trace { print("[\(now)] \(text())") }
    }

    private func handle(_ event: Event) {
        switch event {
        case .deliver(let node, let message):
            guard nodes[node].up, nodes[node].machine != nil else { return }
            outcome.deliveries += 1
            deliver(message, to: node)
        case .timer(let node, let incarnation, let timeout):
            guard nodes[node].up, nodes[node].incarnation == incarnation else { return }
            log("n\(node) timeout \(timeout.kind) h\(timeout.height) r\(timeout.round)")
            step(node, .timeout(timeout))
        case .validated(let node, let incarnation, let digest, let valid):
            guard nodes[node].up, nodes[node].incarnation == incarnation else { return }
            step(node, .validated(digest, valid: valid))
        case .proposalReady(let node, let incarnation, let height, let round):
            guard nodes[node].up, nodes[node].incarnation == incarnation, let index = managerIndex(node) else { return }
            if managerFault(node) == .withholding { return }
            let good = managerFault(node) != .invalidBlocks
            let value = testValue(
                height: height, label: "m\(index)-h\(height)-r\(round)-\(random.next() % 1000)", good: good)
            step(node, .proposalValue(height: height, round: round, value: value))
        case .crash(let node, let downFor, let midEffects):
            guard nodes[node].up else { return }
            if midEffects {
                nodes[node].crashMidEffects = downFor
            } else {
                crash(node, downFor: downFor)
            }
        case .restart(let node):
            restart(node)
        case .tick(let node):
            tick(node)
        }
    }

    private func crash(_ node: Int, downFor: UInt64) {
        log("n\(node) crashes for \(downFor) ms")
        nodes[node].up = false
        nodes[node].machine = nil
        nodes[node].incarnation += 1
        nodes[node].crashMidEffects = nil
        queue.push(now + downFor, .restart(node: node))
    }

    private func restart(_ node: Int) {
        log(
            "n\(node) restarts from \(nodes[node].persisted.map { "h\($0.height) r\($0.round) \($0.votes.count) votes" } ?? "nothing")"
        )
        nodes[node].up = true
        do {
            var machine = try makeMachine(node, restoring: nodes[node].persisted)
            let effects = machine.handle(.startHeight(UInt64(nodes[node].chain.count + 1)))
            nodes[node].machine = machine
            execute(node, effects)
        } catch {
            outcome.failure = "n\(node) cannot restore its persisted state: \(error)"
        }
    }

    private func tick(_ node: Int) {
        queue.push(now + 400, .tick(node: node))
        guard nodes[node].up, nodes[node].machine != nil else { return }
        // The retained commit: the newest certificate reaches one random peer now and then.
        if let last = nodes[node].chain.last, validatorFault(node) == nil || validatorFault(node) == .noisy {
            let height = UInt64(nodes[node].chain.count)
            if let certificate = certificates[height] {
                send(.commit(certificate, last), from: node, to: Int.random(in: 0..<nodes.count, using: &random))
            }
        }
        // A node that knows it is behind asks again until it has caught up.
        if nodes[node].syncTarget > UInt64(nodes[node].chain.count + 1) {
            requestSync(node)
        }
    }

    /// Certificates by height, as the honest deciders made them (the simulation's block store).
    private var certificates: [UInt64: CommitCertificate] = [:]

    private func requestSync(_ node: Int) {
        var peer = Int.random(in: 0..<nodes.count - 1, using: &random)
        if peer >= node { peer += 1 }
        send(.syncRequest(from: node, height: UInt64(nodes[node].chain.count + 1)), from: node, to: peer)
    }

    /// Hands an event to a node's machine and executes the effects.
    private func step(_ node: Int, _ event: ConsensusEvent) {
        // Handled in place: a copy of the machine would make its tables copy on write.
        guard let effects = nodes[node].machine?.handle(event) else { return }
        execute(node, effects)
    }

    // MARK: - Delivery

    private func deliver(_ message: Message, to node: Int) {
        switch message {
        case .proposal(var proposal):
            if scenario.wire {
                do {
                    let decoded = try Proposal(decoding: proposal.encoded(), maxBytes: 1 << 16)
                    guard decoded == proposal else {
                        outcome.failure = "a proposal changed on the wire"
                        return
                    }
                    proposal = decoded
                } catch {
                    outcome.failure = "a proposal did not decode: \(error)"
                    return
                }
            }
            log(
                "n\(node) <- proposal h\(proposal.height) r\(proposal.round) vr\(proposal.validRound.map(String.init) ?? "-") \(proposal.value.id.hex.prefix(6))"
            )
            step(node, .proposal(proposal))
        case .vote(var vote):
            if scenario.wire {
                do {
                    let decoded = try Vote(decoding: vote.encoded())
                    guard decoded == vote else {
                        outcome.failure = "a vote changed on the wire"
                        return
                    }
                    vote = decoded
                } catch {
                    outcome.failure = "a vote did not decode: \(error)"
                    return
                }
            }
            log(
                "n\(node) <- \(vote.step) v\(vote.validator) h\(vote.height) r\(vote.round) \(vote.blockHash.map { String($0.hex.prefix(6)) } ?? "nil")"
            )
            step(node, .vote(vote))
        case .garbage(let bytes, let isVote):
            if isVote {
                if let vote = try? Vote(decoding: bytes) { step(node, .vote(vote)) }
            } else if let proposal = try? Proposal(decoding: bytes, maxBytes: 1 << 16) {
                step(node, .proposal(proposal))
            }
        case .commit(let certificate, let value):
            step(node, .commit(certificate, value: value))
        case .syncRequest(let from, let height):
            guard isHonest(node) else { return }
            var items: [(CommitCertificate, ProposalValue)] = []
            var next = height
            while next <= UInt64(nodes[node].chain.count), items.count < 8, let certificate = certificates[next] {
                items.append((certificate, nodes[node].chain[Int(next - 1)]))
                next += 1
            }
            if !items.isEmpty { send(.syncResponse(items), from: node, to: from) }
        case .syncResponse(let items):
            for (certificate, value) in items {
                guard let machine = nodes[node].machine, nodes[node].up else { return }
                if certificate.height == machine.height {
                    step(node, .commit(certificate, value: value))
                }
            }
        }
    }

    private func send(_ message: Message, from: Int, to: Int) {
        if now < scenario.gst {
            guard nodes[from].up else { return }
            if scenario.commitsLostBeforeGST {
                switch message {
                case .commit, .syncRequest, .syncResponse: return
                default: break
                }
            }
            for partition in scenario.partitions where partition.start <= now && now < partition.end {
                if partition.side.contains(from) != partition.side.contains(to) { return }
            }
            let loss = scenario.linkDrop?[from][to] ?? scenario.dropRate
            if Double.random(in: 0..<1, using: &random) < loss { return }
            let copies = Double.random(in: 0..<1, using: &random) < scenario.duplicateRate ? 2 : 1
            for _ in 0..<copies {
                queue.push(now + UInt64.random(in: 0...scenario.maxDelay, using: &random), .deliver(to: to, message))
            }
        } else {
            queue.push(now + UInt64.random(in: 1...scenario.delta, using: &random), .deliver(to: to, message))
        }
    }

    private func broadcast(_ message: Message, from: Int) {
        for to in nodes.indices { send(message, from: from, to: to) }
    }

    // MARK: - Effects

    private func execute(_ node: Int, _ effects: [ConsensusEffect]) {
        var effects = effects[...]
        if let downFor = nodes[node].crashMidEffects {
            let cut = Int.random(in: 0...effects.count, using: &random)
            for effect in effects.prefix(cut) { perform(effect, at: node) }
            crash(node, downFor: downFor)
            return
        }
        while let effect = effects.popFirst(), outcome.failure == nil {
            perform(effect, at: node)
        }
        // The shell applies a decided block and starts the next height.
        while outcome.failure == nil, nodes[node].up, let machine = nodes[node].machine, machine.decision != nil,
            UInt64(nodes[node].chain.count) >= machine.height
        {
            step(node, .startHeight(UInt64(nodes[node].chain.count + 1)))
        }
    }

    private func perform(_ effect: ConsensusEffect, at node: Int) {
        switch effect {
        case .persist(let state):
            nodes[node].persisted = state
            nodes[node].everPersistedVotes.formUnion(state.votes)
            nodes[node].everPersistedProposals.formUnion(state.proposals)
        case .broadcastVote(let vote):
            broadcastVote(vote, from: node)
        case .broadcastProposal(let proposal):
            broadcastProposal(proposal, from: node)
        case .scheduleTimeout(let timeout, let ms):
            queue.push(now + ms, .timer(node: node, incarnation: nodes[node].incarnation, timeout))
            outcome.highestRound = max(outcome.highestRound, timeout.kind == .retransmit ? 0 : timeout.round)
        case .validate(let value, let height):
            queue.push(
                now + UInt64.random(in: 5...30, using: &random),
                .validated(
                    node: node, incarnation: nodes[node].incarnation, value.digest,
                    isValidTestValue(value, height: height)))
        case .needProposal(let height, let round):
            queue.push(
                now + UInt64.random(in: 1...20, using: &random),
                .proposalReady(node: node, incarnation: nodes[node].incarnation, height: height, round: round))
        case .decide(let decision):
            apply(decision, at: node)
        case .evidence(let evidence):
            outcome.evidence += 1
            guard evidence.verify(channel: configuration.channel, verifier: verifier) else {
                outcome.failure = "n\(node) reported evidence that does not verify"
                return
            }
            let accused: Int
            switch evidence {
            case .conflictingVotes(let vote, _): accused = vote.validator
            case .conflictingProposals(let proposal, _): accused = scenario.validators + proposal.proposer
            }
            if isHonest(accused) { outcome.failure = "n\(node) holds evidence against correct node n\(accused)" }
        case .behind(let height):
            log("n\(node) behind: f+1 at height \(height)")
            nodes[node].syncTarget = max(nodes[node].syncTarget, height)
            requestSync(node)
        case .diagnostic(let error):
            log("n\(node) diagnostic \(error)")
        }
    }

    private func apply(_ decision: Decision, at node: Int) {
        outcome.decisions += 1
        log("n\(node) decides h\(decision.height) r\(decision.round) \(decision.value.id.hex.prefix(6))")
        guard decision.height == UInt64(nodes[node].chain.count + 1) else {
            outcome.failure = "n\(node) decided height \(decision.height) with \(nodes[node].chain.count) applied"
            return
        }
        if let earlier = decided[decision.height], earlier != decision.value.id {
            outcome.failure =
                "agreement broken at height \(decision.height): n\(node) decided \(decision.value.id.hex.prefix(12)), "
                + "another replica \(earlier.hex.prefix(12))"
            return
        }
        guard isValidTestValue(decision.value, height: decision.height) else {
            outcome.failure = "n\(node) decided an invalid value at height \(decision.height)"
            return
        }
        let certificate = decision.certificate
        var signers = Set<Int>()
        for entry in certificate.signatures
        where verifier.isValidVoteSignature(
            entry.signature, message: certificate.signingBytes, validator: entry.validator)
        {
            signers.insert(entry.validator)
        }
        guard certificate.height == decision.height, certificate.blockHash == decision.value.id,
            signers.count >= configuration.quorum
        else {
            outcome.failure = "n\(node)'s certificate for height \(decision.height) is not 2f+1 valid precommits"
            return
        }
        decided[decision.height] = decision.value.id
        decidedSinceCheck = true
        if certificates[decision.height] == nil { certificates[decision.height] = certificate }
        nodes[node].chain.append(decision.value)
        broadcast(.commit(certificate, decision.value), from: node)
    }

    // MARK: - Honest and byzantine senders

    private func signedVote(_ vote: Vote, hash: Hash256?, node: Int) -> Vote {
        var other = vote
        other.blockHash = hash
        other.signature = try! verifier.validatorSigner(vote.validator).sign(other.signingBytes)
        return other
    }

    private func randomHash() -> Hash256 { Hash256.sha256(random.bytes(8)) }

    private func broadcastVote(_ vote: Vote, from node: Int) {
        guard vote.validator == validatorIndex(node) else {
            // A relay of another validator's vote (a polka): nobody can change it.
            broadcast(.vote(vote), from: node)
            return
        }
        switch validatorFault(node) {
        case nil:
            let slot = Slot(validator: vote.validator, height: vote.height, round: vote.round, step: vote.step)
            if let earlier = honestVotes[slot], earlier != vote.blockHash {
                outcome.failure =
                    "correct validator \(vote.validator) signed two \(vote.step) votes at height \(vote.height) round \(vote.round)"
                return
            }
            guard nodes[node].everPersistedVotes.contains(vote) else {
                outcome.failure = "n\(node) sends a vote it has not persisted"
                return
            }
            honestVotes[slot] = vote.blockHash
            broadcast(.vote(vote), from: node)
        case .silent:
            return
        case .equivocating:
            let other = signedVote(vote, hash: vote.blockHash == nil ? randomHash() : nil, node: node)
            for to in nodes.indices { send(.vote(Bool.random(using: &random) ? vote : other), from: node, to: to) }
        case .phantomVotes:
            broadcast(.vote(signedVote(vote, hash: randomHash(), node: node)), from: node)
        case .noisy:
            broadcast(.vote(vote), from: node)
            sendNoise(vote, from: node)
        }
    }

    private func sendNoise(_ vote: Vote, from node: Int) {
        let to = Int.random(in: 0..<nodes.count, using: &random)
        switch Int.random(in: 0..<5, using: &random) {
        case 0:
            // A vote far ahead in rounds.
            var ahead = vote
            ahead.round += UInt64.random(in: 1...1000, using: &random)
            send(.vote(signedVote(ahead, hash: ahead.blockHash, node: node)), from: node, to: to)
        case 1:
            // A vote far ahead in heights.
            var ahead = vote
            ahead.height += UInt64.random(in: 1...50, using: &random)
            send(.vote(signedVote(ahead, hash: randomHash(), node: node)), from: node, to: to)
        case 2:
            // A forgery in another validator's name.
            var forged = vote
            forged.validator = Int.random(in: 0..<scenario.validators, using: &random)
            forged.blockHash = randomHash()
            send(.vote(forged), from: node, to: to)
        default:
            // Bytes: a valid encoding with a byte flipped, or noise.
            var bytes = vote.encoded()
            if Bool.random(using: &random) {
                let index = Int.random(in: 0..<bytes.count, using: &random)
                bytes[index] ^= UInt8.random(in: 1...255, using: &random)
            } else {
                bytes = random.bytes(Int.random(in: 0...80, using: &random))
            }
            send(.garbage(bytes, vote: Bool.random(using: &random)), from: node, to: to)
        }
    }

    private func broadcastProposal(_ proposal: Proposal, from node: Int) {
        guard proposal.proposer == managerIndex(node) else {
            // A validator relays the proposal of its lock.
            broadcast(.proposal(proposal), from: node)
            return
        }
        switch managerFault(node) {
        case nil:
            let slot = Slot(
                validator: proposal.proposer, height: proposal.height, round: proposal.round, step: .prevote)
            if let earlier = honestProposals[slot], earlier != proposal.value.digest {
                outcome.failure =
                    "correct manager \(proposal.proposer) signed two proposals for h\(proposal.height) r\(proposal.round)"
                return
            }
            guard nodes[node].everPersistedProposals.contains(proposal) else {
                outcome.failure = "n\(node) sends a proposal it has not persisted"
                return
            }
            honestProposals[slot] = proposal.value.digest
            broadcast(.proposal(proposal), from: node)
        case .withholding:
            return
        case .invalidBlocks:
            broadcast(.proposal(proposal), from: node)
        case .forgetful:
            var fresh = proposal
            if fresh.validRound != nil {
                fresh.validRound = nil
                fresh.value = testValue(height: proposal.height, label: "forgot-\(random.next() % 1000)")
                fresh.signature = try! verifier.managerSigner(proposal.proposer).sign(fresh.signingBytes)
            }
            broadcast(.proposal(fresh), from: node)
        case .equivocating:
            var other = proposal
            other.value = testValue(height: proposal.height, label: "fork-\(random.next() % 1000)")
            if proposal.round > 0, Bool.random(using: &random) {
                other.validRound = UInt64.random(in: 0..<proposal.round, using: &random)
            }
            other.signature = try! verifier.managerSigner(proposal.proposer).sign(other.signingBytes)
            for to in nodes.indices {
                send(.proposal(Bool.random(using: &random) ? proposal : other), from: node, to: to)
            }
        }
    }
}
