import MedLedgerConsensus
import MedLedgerCore
import Testing

/// Paper scenarios, one machine at a time, with messages signed by the test council.
@Suite("Tendermint rules of the consensus machine")
struct MachineTests {
    let council = Council()
    let a = testValue(height: 1, label: "a")
    let b = testValue(height: 1, label: "b")

    /// Starts validator 0 at height 1 and makes it prevote and lock on `a` in round 0.
    func lockedOnA() -> ConsensusMachine {
        var machine = council.validator(0)
        _ = machine.handle(.startHeight(1))
        _ = machine.handle(.proposal(council.proposal(height: 1, round: 0, value: a)))
        _ = machine.handle(.validated(a.digest, valid: true))
        _ = machine.handle(.vote(council.vote(1, .prevote, height: 1, round: 0, a.id)))
        _ = machine.handle(.vote(council.vote(2, .prevote, height: 1, round: 0, a.id)))
        return machine
    }

    @Test func prevotesAValidProposalAfterTheShellChecksIt() {
        var machine = council.validator(0)
        var effects = machine.handle(.startHeight(1))
        #expect(
            effects.timeouts.map(\.0) == [
                ConsensusTimeout(.propose, height: 1, round: 0), .init(.retransmit, height: 1, round: 0),
            ])
        #expect(effects.timeouts.first?.1 == 1000)
        effects = machine.handle(.proposal(council.proposal(height: 1, round: 0, value: a)))
        #expect(effects.validations == [a])
        #expect(effects.votes.isEmpty)
        effects = machine.handle(.validated(a.digest, valid: true))
        #expect(effects.votes == [council.vote(0, .prevote, height: 1, round: 0, a.id)])
        #expect(effects.persistsBeforeBroadcasts)
        #expect(machine.step == .prevote)
    }

    @Test func prevotesNilForAnInvalidProposalOrWhenTheProposalIsLate() {
        var machine = council.validator(0)
        _ = machine.handle(.startHeight(1))
        _ = machine.handle(.proposal(council.proposal(height: 1, round: 0, value: a)))
        let effects = machine.handle(.validated(a.digest, valid: false))
        #expect(effects.votes == [council.vote(0, .prevote, height: 1, round: 0, nil)])

        var late = council.validator(1)
        _ = late.handle(.startHeight(1))
        let timedOut = late.handle(.timeout(ConsensusTimeout(.propose, height: 1, round: 0)))
        #expect(timedOut.votes == [council.vote(1, .prevote, height: 1, round: 0, nil)])
        // The proposal arriving after the prevote changes nothing.
        let after = late.handle(.proposal(council.proposal(height: 1, round: 0, value: a)))
        #expect(after.votes.isEmpty)
    }

    @Test func locksOnAPolkaAndPrecommits() {
        var machine = council.validator(0)
        _ = machine.handle(.startHeight(1))
        _ = machine.handle(.proposal(council.proposal(height: 1, round: 0, value: a)))
        _ = machine.handle(.validated(a.digest, valid: true))
        _ = machine.handle(.vote(council.vote(1, .prevote, height: 1, round: 0, a.id)))
        #expect(machine.lockedRound == nil)
        let effects = machine.handle(.vote(council.vote(2, .prevote, height: 1, round: 0, a.id)))
        #expect(effects.votes == [council.vote(0, .precommit, height: 1, round: 0, a.id)])
        #expect(effects.persisted.last?.lockedRound == 0)
        #expect(effects.persisted.last?.lockedBlockHash == a.id)
        #expect(effects.persistsBeforeBroadcasts)
        #expect(machine.lockedRound == 0 && machine.lockedBlockHash == a.id)
        #expect(machine.validRound == 0 && machine.validValue == a)
        #expect(machine.step == .precommit)
    }

    @Test func aLockedValidatorPrevotesNilForAnotherFreshValue() {
        var machine = lockedOnA()
        _ = machine.handle(.vote(council.vote(1, .precommit, height: 1, round: 0, nil)))
        let timer = machine.handle(.vote(council.vote(2, .precommit, height: 1, round: 0, nil)))
        #expect(timer.timeouts.map(\.0) == [ConsensusTimeout(.precommit, height: 1, round: 0)])
        let next = machine.handle(.timeout(ConsensusTimeout(.precommit, height: 1, round: 0)))
        #expect(machine.round == 1)
        #expect(next.timeouts.map(\.1) == [1500])
        let effects = machine.handle(.proposal(council.proposal(height: 1, round: 1, value: b)))
        // Locked on a: no need to check b at all. The proposer ignored the lock, so the validator
        // sends the lock's proposal and polka again (once per round) before its nil prevote.
        #expect(effects.validations.isEmpty)
        #expect(effects.proposals == [council.proposal(height: 1, round: 0, value: a)])
        #expect(
            effects.votes == [0, 1, 2].map { council.vote($0, .prevote, height: 1, round: 0, a.id) } + [
                council.vote(0, .prevote, height: 1, round: 1, nil)
            ])
        #expect(machine.lockedBlockHash == a.id)
    }

    @Test func aHigherPolkaSeenInTheRoundMovesTheLock() {
        var machine = lockedOnA()
        _ = machine.handle(.vote(council.vote(1, .precommit, height: 1, round: 0, nil)))
        _ = machine.handle(.vote(council.vote(2, .precommit, height: 1, round: 0, nil)))
        _ = machine.handle(.timeout(ConsensusTimeout(.precommit, height: 1, round: 0)))
        _ = machine.handle(.proposal(council.proposal(height: 1, round: 1, value: b)))
        for validator in 1...3 {
            _ = machine.handle(.vote(council.vote(validator, .prevote, height: 1, round: 1, b.id)))
        }
        // Line 36 needs valid(b): the machine asks once.
        let check = machine.handle(.validated(b.digest, valid: true))
        #expect(check.votes == [council.vote(0, .precommit, height: 1, round: 1, b.id)])
        #expect(machine.lockedRound == 1 && machine.lockedBlockHash == b.id)
    }

    @Test func aReproposalWithAValidRoundAboveTheLockUnlocks() {
        var machine = lockedOnA()
        _ = machine.handle(.vote(council.vote(1, .precommit, height: 1, round: 0, nil)))
        _ = machine.handle(.vote(council.vote(2, .precommit, height: 1, round: 0, nil)))
        _ = machine.handle(.timeout(ConsensusTimeout(.precommit, height: 1, round: 0)))
        _ = machine.handle(.timeout(ConsensusTimeout(.propose, height: 1, round: 1)))
        // f+1 validators are in round 2: skip there (line 55).
        _ = machine.handle(.vote(council.vote(1, .prevote, height: 1, round: 2, nil)))
        _ = machine.handle(.vote(council.vote(2, .prevote, height: 1, round: 2, nil)))
        #expect(machine.round == 2)
        // Round 2's proposer re-proposes b with valid round 1; the polka of round 1 arrives after it.
        let waiting = machine.handle(.proposal(council.proposal(height: 1, round: 2, value: b, validRound: 1)))
        #expect(waiting.votes.isEmpty && waiting.validations.isEmpty)
        for validator in 1...3 {
            _ = machine.handle(.vote(council.vote(validator, .prevote, height: 1, round: 1, b.id)))
        }
        #expect(machine.lockedRound == 0)
        let effects = machine.handle(.validated(b.digest, valid: true))
        #expect(effects.votes == [council.vote(0, .prevote, height: 1, round: 2, b.id)])
    }

    @Test func aReproposalBelowTheLockGetsNil() {
        var machine = lockedOnA()
        _ = machine.handle(.vote(council.vote(1, .precommit, height: 1, round: 0, nil)))
        _ = machine.handle(.vote(council.vote(2, .precommit, height: 1, round: 0, nil)))
        _ = machine.handle(.timeout(ConsensusTimeout(.precommit, height: 1, round: 0)))
        // A polka for b in round 0 can't exist beside ours for a, but a byzantine proposer can still claim one.
        for validator in [1, 3] {
            _ = machine.handle(.vote(council.vote(validator, .prevote, height: 1, round: 1, b.id)))
        }
        _ = machine.handle(.vote(council.vote(2, .precommit, height: 1, round: 1, nil)))
        _ = machine.handle(.timeout(ConsensusTimeout(.propose, height: 1, round: 1)))
        #expect(machine.round == 1)
        _ = machine.handle(.vote(council.vote(1, .precommit, height: 1, round: 2, nil)))
        _ = machine.handle(.vote(council.vote(2, .precommit, height: 1, round: 2, nil)))
        #expect(machine.round == 2)
        // Valid round 1 without a polka in round 1: the machine waits (then times out to nil).
        let waiting = machine.handle(.proposal(council.proposal(height: 1, round: 2, value: b, validRound: 1)))
        #expect(waiting.votes.isEmpty)
        let timedOut = machine.handle(.timeout(ConsensusTimeout(.propose, height: 1, round: 2)))
        #expect(timedOut.votes == [council.vote(0, .prevote, height: 1, round: 2, nil)])
    }

    @Test func timeoutsGrowWithTheRound() {
        let policy = TimeoutPolicy(
            proposeMs: 100, proposeDeltaMs: 50, prevoteMs: 40, prevoteDeltaMs: 10, precommitMs: 30,
            precommitDeltaMs: 20, retransmitMs: 70, maxMs: 400)
        #expect((0..<4).map { policy.duration(.propose, round: $0) } == [100, 150, 200, 250])
        #expect(policy.duration(.prevote, round: 3) == 70)
        #expect(policy.duration(.precommit, round: 2) == 70)
        #expect(policy.duration(.propose, round: 1000) == 400)
        #expect(policy.duration(.propose, round: .max) == 400)
        #expect(policy.duration(.retransmit, round: 9) == 70)

        let council = Council(timeouts: policy)
        var machine = council.validator(0)
        var durations = [machine.handle(.startHeight(1)).timeouts.first { $0.0.kind == .propose }!.1]
        for round in 0..<3 as Range<UInt64> {
            _ = machine.handle(.timeout(ConsensusTimeout(.propose, height: 1, round: round)))
            for validator in 1...2 {
                _ = machine.handle(.vote(council.vote(validator, .prevote, height: 1, round: round, nil)))
            }
            for validator in 1...2 {
                _ = machine.handle(.vote(council.vote(validator, .precommit, height: 1, round: round, nil)))
            }
            let effects = machine.handle(.timeout(ConsensusTimeout(.precommit, height: 1, round: round)))
            durations.append(contentsOf: effects.timeouts.filter { $0.0.kind == .propose }.map(\.1))
        }
        #expect(durations == [100, 150, 200, 250])
        #expect(machine.round == 3)
    }

    @Test func fPlusOneValidatorsInAHigherRoundMakeTheMachineSkipThere() {
        var machine = council.validator(0)
        _ = machine.handle(.startHeight(1))
        _ = machine.handle(.vote(council.vote(1, .prevote, height: 1, round: 5, nil)))
        _ = machine.handle(.vote(council.vote(1, .precommit, height: 1, round: 5, nil)))
        // One validator (f = 1) alone, whatever it sends, moves nobody.
        #expect(machine.round == 0)
        let effects = machine.handle(.vote(council.vote(3, .prevote, height: 1, round: 5, nil)))
        #expect(machine.round == 5)
        #expect(effects.timeouts.map(\.0) == [ConsensusTimeout(.propose, height: 1, round: 5)])
        #expect(effects.timeouts.first?.1 == 1000 + 5 * 500)
    }

    @Test func commitsWithACertificateOfTwoFPlusOnePrecommits() throws {
        var machine = lockedOnA()
        _ = machine.handle(.vote(council.vote(2, .precommit, height: 1, round: 0, a.id)))
        #expect(machine.decision == nil)
        let effects = machine.handle(.vote(council.vote(3, .precommit, height: 1, round: 0, a.id)))
        let decision = try #require(effects.decisions.first)
        #expect(decision.height == 1 && decision.round == 0 && decision.value == a)
        #expect(decision.certificate.blockHash == a.id)
        #expect(decision.certificate.signatures.map(\.validator) == [0, 2, 3])
        for entry in decision.certificate.signatures {
            #expect(
                council.verifier.isValidVoteSignature(
                    entry.signature, message: decision.certificate.signingBytes, validator: entry.validator))
        }
        // Nothing more happens at the height; the next one starts when the shell says so.
        #expect(machine.handle(.vote(council.vote(1, .precommit, height: 1, round: 0, a.id))).isEmpty)
        let next = machine.handle(.startHeight(2))
        #expect(machine.height == 2 && machine.decision == nil && machine.lockedRound == nil)
        #expect(next.timeouts.contains { $0.0 == ConsensusTimeout(.propose, height: 2, round: 0) })
    }

    @Test func decidesInAnEarlierRoundFromLatePrecommitsWithoutCheckingTheBlock() throws {
        var observer = council.observer()
        _ = observer.handle(.startHeight(1))
        _ = observer.handle(.proposal(council.proposal(height: 1, round: 0, value: a)))
        for validator in 1...3 {
            _ = observer.handle(.vote(council.vote(validator, .precommit, height: 1, round: 3, nil)))
        }
        #expect(observer.round == 3)
        var effects: [ConsensusEffect] = []
        for validator in [0, 2, 3] {
            effects += observer.handle(.vote(council.vote(validator, .precommit, height: 1, round: 0, a.id)))
        }
        #expect(effects.validations.isEmpty)
        #expect(try #require(effects.decisions.first).round == 0)
    }

    @Test func managersProposeInTurnAndReproposeTheirValidValue() throws {
        // Height 1: round 0 is manager 1's, round 1 manager 0's.
        #expect(council.configuration.proposer(height: 1, round: 0) == 1)
        #expect(council.configuration.proposer(height: 1, round: 1) == 0)
        #expect(council.configuration.proposer(height: 2, round: 0) == 0)

        var first = council.manager(1)
        let start = first.handle(.startHeight(1))
        #expect(start.needProposals.map(\.0) == [1] && start.needProposals.map(\.1) == [0])
        let proposed = first.handle(.proposalValue(height: 1, round: 0, value: a))
        let proposal = try #require(proposed.proposals.first)
        #expect(proposal.validRound == nil && proposal.proposer == 1 && proposal.value == a)
        #expect(
            council.verifier.isValidProposalSignature(proposal.signature, message: proposal.signingBytes, manager: 1))
        #expect(proposed.persistsBeforeBroadcasts)

        var second = council.manager(0)
        #expect(second.handle(.startHeight(1)).needProposals.isEmpty)
        _ = second.handle(.proposal(proposal))
        for validator in 0...2 {
            _ = second.handle(.vote(council.vote(validator, .prevote, height: 1, round: 0, a.id)))
        }
        #expect(second.validRound == 0 && second.validValue == a)
        for validator in 0...2 {
            _ = second.handle(.vote(council.vote(validator, .precommit, height: 1, round: 0, nil)))
        }
        let next = second.handle(.timeout(ConsensusTimeout(.precommit, height: 1, round: 0)))
        #expect(next.needProposals.isEmpty)
        let reproposal = try #require(next.proposals.first)
        #expect(reproposal.round == 1 && reproposal.validRound == 0 && reproposal.value == a)
        #expect(next.persisted.last?.validValue == a)
    }

    @Test func aManagerLearnsAnEarlierPolkaEvenWhenItSkipsPastThatRound() throws {
        // Manager 1 is still at height 1 while the council works on height 2: a proposal of round 0
        // and its polka, and f+1 validators already in round 3, wait in its buffer.
        var manager = council.manager(1)
        _ = manager.handle(.startHeight(1))
        let two = testValue(height: 2, label: "two")
        _ = manager.handle(.proposal(council.proposal(height: 2, round: 0, value: two)))
        for validator in [0, 1, 2] {
            _ = manager.handle(.vote(council.vote(validator, .prevote, height: 2, round: 0, two.id)))
        }
        for validator in [1, 3] {
            _ = manager.handle(.vote(council.vote(validator, .precommit, height: 2, round: 3, nil)))
        }
        _ = manager.handle(.commit(certificate(height: 1, value: a), value: a))
        let effects = manager.handle(.startHeight(2))
        #expect(manager.round == 3)
        #expect(manager.validRound == 0 && manager.validValue == two)
        #expect(effects.persisted.last?.polka?.proposal.value == two)
        // Round 4 of height 2 is manager 0's; round 5 is this manager's: it proposes `two` again.
        _ = manager.handle(.vote(council.vote(0, .precommit, height: 2, round: 5, nil)))
        let turn = manager.handle(.vote(council.vote(2, .precommit, height: 2, round: 5, nil)))
        let proposal = try #require(turn.proposals.first)
        #expect(proposal.round == 5 && proposal.validRound == 0 && proposal.value == two)
        #expect(turn.votes.map(\.validator) == [0, 1, 2])
    }

    @Test func aRestartedValidatorResendsItsVotesAndNeverSignsAConflictingOne() throws {
        var machine = lockedOnA()
        var persisted: PersistedConsensusState?
        _ = machine.handle(.vote(council.vote(1, .precommit, height: 1, round: 0, nil)))
        let effects = machine.handle(.vote(council.vote(2, .precommit, height: 1, round: 0, nil)))
        #expect(effects.persisted.isEmpty)
        // What it persisted last: the prevote and precommit for a, the lock on a.
        var replay = council.validator(0)
        _ = replay.handle(.startHeight(1))
        _ = replay.handle(.proposal(council.proposal(height: 1, round: 0, value: a)))
        persisted = replay.handle(.validated(a.digest, valid: true)).persisted.last
        _ = replay.handle(.vote(council.vote(1, .prevote, height: 1, round: 0, a.id)))
        persisted = replay.handle(.vote(council.vote(2, .prevote, height: 1, round: 0, a.id))).persisted.last
        let state = try #require(persisted)
        #expect(state.votes.count == 2 && state.lockedBlockHash == a.id)
        let stored = try PersistedConsensusState(decoding: state.encoded())
        #expect(stored == state)

        var restarted = council.validator(0, restoring: stored)
        let resumed = restarted.handle(.startHeight(1))
        #expect(resumed.votes == state.votes)
        #expect(resumed.persisted.isEmpty)
        #expect(restarted.step == .precommit && restarted.lockedBlockHash == a.id)
        // A conflicting proposal for round 0 and the propose timeout sign nothing new.
        var later = restarted.handle(.proposal(council.proposal(height: 1, round: 0, value: b)))
        later += restarted.handle(.timeout(ConsensusTimeout(.propose, height: 1, round: 0)))
        later += restarted.handle(.timeout(ConsensusTimeout(.prevote, height: 1, round: 0)))
        #expect(later.votes.isEmpty)
        // The lock survives: in round 1 it prevotes nil for b.
        _ = restarted.handle(.vote(council.vote(1, .precommit, height: 1, round: 0, nil)))
        _ = restarted.handle(.vote(council.vote(2, .precommit, height: 1, round: 0, nil)))
        _ = restarted.handle(.timeout(ConsensusTimeout(.precommit, height: 1, round: 0)))
        let round1 = restarted.handle(.proposal(council.proposal(height: 1, round: 1, value: b)))
        #expect(round1.votes.last == council.vote(0, .prevote, height: 1, round: 1, nil))
        // The polka of the lock was persisted with it, so the restarted node can still relay it.
        #expect(round1.proposals == [council.proposal(height: 1, round: 0, value: a)])
        #expect(round1.votes.dropLast().map(\.validator) == [0, 1, 2])
    }

    @Test func thePersistedStateKeepsOnlyTheLastTwoRoundsHoweverLongAHeightTakes() throws {
        var machine = council.validator(0)
        _ = machine.handle(.startHeight(1))
        var last: PersistedConsensusState?
        for round in 0..<6 as Range<UInt64> {
            last = machine.handle(.timeout(ConsensusTimeout(.propose, height: 1, round: round))).persisted.last ?? last
            for validator in 1...2 {
                let effects = machine.handle(.vote(council.vote(validator, .prevote, height: 1, round: round, nil)))
                last = effects.persisted.last ?? last
            }
            for validator in 1...2 {
                _ = machine.handle(.vote(council.vote(validator, .precommit, height: 1, round: round, nil)))
            }
            _ = machine.handle(.timeout(ConsensusTimeout(.precommit, height: 1, round: round)))
        }
        let state = try #require(last)
        #expect(state.round == 5)
        #expect(state.votes.map(\.round) == [4, 4, 5, 5])
        let resent = machine.handle(.timeout(ConsensusTimeout(.retransmit, height: 1, round: 0)))
        #expect(resent.votes.map(\.round) == [5, 5])
    }

    @Test func aRestoredValidatorDoesNotVoteBelowItsPersistedHeight() {
        let state = PersistedConsensusState(
            height: 3, round: 0, votes: [council.vote(0, .prevote, height: 3, round: 0, nil)])
        var machine = council.validator(0, restoring: state)
        _ = machine.handle(.startHeight(2))
        let two = testValue(height: 2, label: "two")
        var effects = machine.handle(.proposal(council.proposal(height: 2, round: 0, value: two)))
        effects += machine.handle(.timeout(ConsensusTimeout(.propose, height: 2, round: 0)))
        #expect(effects.votes.isEmpty && effects.validations.isEmpty)
        // At the persisted height it resumes and resends its vote.
        _ = machine.handle(.commit(certificate(height: 2, value: two), value: two))
        #expect(machine.handle(.startHeight(3)).votes == state.votes)
    }

    @Test func restoringAnotherNodesStateIsRefused() {
        let state = PersistedConsensusState(
            height: 3, round: 0, votes: [council.vote(1, .prevote, height: 3, round: 0, nil)])
        #expect(throws: ConsensusError.self) {
            try ConsensusMachine(
                configuration: council.configuration,
                role: .validator(index: 0, signer: council.verifier.validatorSigner(0)), verifier: council.verifier,
                restoring: state)
        }
    }

    func certificate(height: UInt64, value: ProposalValue, signers: [Int] = [0, 1, 2]) -> CommitCertificate {
        CommitCertificate(
            channel: council.configuration.channel, height: height, round: 0, blockHash: value.id,
            signatures: signers.map {
                ValidatorSignature(
                    validator: $0, signature: council.vote($0, .precommit, height: height, round: 0, value.id).signature
                )
            })
    }

    @Test func equivocationIsKeptAsEvidenceOnce() throws {
        var machine = council.validator(0)
        _ = machine.handle(.startHeight(1))
        _ = machine.handle(.vote(council.vote(1, .prevote, height: 1, round: 0, a.id)))
        let effects = machine.handle(.vote(council.vote(1, .prevote, height: 1, round: 0, b.id)))
        let evidence = try #require(effects.evidence.first)
        #expect(evidence.verify(channel: "ward-7", verifier: council.verifier))
        #expect(try Evidence(decoding: evidence.encoded()) == evidence)
        #expect(machine.handle(.vote(council.vote(1, .prevote, height: 1, round: 0, nil))).evidence.isEmpty)
        // As in the paper, every signed message counts: validator 1's vote for b makes a polka
        // with validator 2's and this node's, so nobody misses a polka another correct node saw.
        _ = machine.handle(.proposal(council.proposal(height: 1, round: 0, value: b)))
        _ = machine.handle(.validated(b.digest, valid: true))
        #expect(machine.step == .prevote)
        _ = machine.handle(.vote(council.vote(2, .prevote, height: 1, round: 0, b.id)))
        #expect(machine.step == .precommit && machine.lockedBlockHash == b.id)

        // Two proposals of one manager for one round.
        var other = council.validator(2)
        _ = other.handle(.startHeight(1))
        _ = other.handle(.proposal(council.proposal(height: 1, round: 0, value: a)))
        let proposals = other.handle(.proposal(council.proposal(height: 1, round: 0, value: b))).evidence
        #expect(proposals.count == 1)
        #expect(proposals.first?.verify(channel: "ward-7", verifier: council.verifier) == true)
    }

    @Test func aFloodOfVotesForMadeUpBlocksCannotHideAVoteForAProposedOne() {
        var machine = council.validator(0)
        _ = machine.handle(.startHeight(1))
        _ = machine.handle(.vote(council.vote(1, .prevote, height: 1, round: 0, nil)))
        for label in 0..<20 {
            let phantom = testValue(height: 1, label: "phantom-\(label)").id
            _ = machine.handle(.vote(council.vote(1, .prevote, height: 1, round: 0, phantom)))
        }
        _ = machine.handle(.proposal(council.proposal(height: 1, round: 0, value: b)))
        _ = machine.handle(.validated(b.digest, valid: true))
        _ = machine.handle(.vote(council.vote(1, .prevote, height: 1, round: 0, b.id)))
        #expect(machine.step == .prevote)
        _ = machine.handle(.vote(council.vote(2, .prevote, height: 1, round: 0, b.id)))
        #expect(machine.step == .precommit && machine.lockedBlockHash == b.id)
    }

    @Test func aValidCertificateForTheHeightDecidesAtOnce() throws {
        var observer = council.observer()
        _ = observer.handle(.startHeight(1))
        var forged = certificate(height: 1, value: a, signers: [0, 1])
        forged.signatures.append(ValidatorSignature(validator: 2, signature: [UInt8](repeating: 7, count: 32)))
        forged.signatures.append(forged.signatures[0])
        let refused = observer.handle(.commit(forged, value: a))
        #expect(refused.diagnostics.map(\.code) == [.invalidCertificate])
        #expect(observer.decision == nil)
        // A certificate without the block, when no proposal with its hash was seen: fetch it.
        #expect(observer.handle(.commit(certificate(height: 1, value: a), value: nil)).behind == [2])
        let effects = observer.handle(.commit(certificate(height: 1, value: a), value: a))
        let decision = try #require(effects.decisions.first)
        #expect(decision.value == a && decision.certificate.signatures.count == 3)
        // One for a later height says how far behind the node is.
        _ = observer.handle(.startHeight(2))
        let far = testValue(height: 6, label: "far")
        #expect(observer.handle(.commit(certificate(height: 6, value: far), value: nil)).behind == [7])
    }

    @Test func messagesForTheNextHeightWaitUntilItStarts() {
        var machine = council.validator(0)
        _ = machine.handle(.startHeight(1))
        let two = testValue(height: 2, label: "two")
        #expect(machine.handle(.proposal(council.proposal(height: 2, round: 0, value: two))).isEmpty)
        #expect(machine.handle(.vote(council.vote(1, .prevote, height: 2, round: 0, two.id))).isEmpty)
        _ = machine.handle(.commit(certificate(height: 1, value: a), value: a))
        let effects = machine.handle(.startHeight(2))
        #expect(effects.validations == [two])
        let voted = machine.handle(.validated(two.digest, valid: true))
        #expect(voted.votes == [council.vote(0, .prevote, height: 2, round: 0, two.id)])
    }

    @Test func fPlusOneValidatorsAheadMeanTheNodeIsBehind() {
        var machine = council.validator(0)
        _ = machine.handle(.startHeight(1))
        #expect(machine.handle(.vote(council.vote(1, .prevote, height: 9, round: 0, nil))).behind.isEmpty)
        #expect(machine.handle(.vote(council.vote(1, .prevote, height: 9, round: 1, nil))).behind.isEmpty)
        #expect(machine.handle(.vote(council.vote(2, .prevote, height: 9, round: 0, nil))).behind == [9])
        #expect(machine.handle(.vote(council.vote(3, .prevote, height: 9, round: 0, nil))).behind.isEmpty)
    }

    @Test func refusesMessagesFromStrangersForgeriesAndOtherChannels() {
        var machine = council.validator(0)
        _ = machine.handle(.startHeight(1))
        var stranger = council.vote(1, .prevote, height: 1, round: 0, a.id)
        stranger.validator = 9
        var forged = council.vote(1, .prevote, height: 1, round: 0, a.id)
        forged.blockHash = b.id
        var elsewhere = council.vote(1, .prevote, height: 1, round: 0, a.id)
        elsewhere.channel = "ward-8"
        var impostor = council.proposal(height: 1, round: 0, value: a)
        impostor.proposer = 0
        var tampered = council.proposal(height: 1, round: 0, value: a)
        tampered.value = b
        var effects: [ConsensusEffect] = []
        for event in [
            ConsensusEvent.vote(stranger), .vote(forged), .vote(elsewhere), .proposal(impostor), .proposal(tampered),
        ] {
            effects += machine.handle(event)
        }
        #expect(
            effects.diagnostics.map(\.code) == [
                .unknownSender, .badSignature, .wrongChannel, .wrongProposer, .badSignature,
            ])
        #expect(effects.validations.isEmpty && effects.votes.isEmpty)
        // None of them counted: the real proposal is still taken.
        #expect(machine.handle(.proposal(council.proposal(height: 1, round: 0, value: a))).validations == [a])
    }

    @Test func eachValidatorKeepsFewRoundsAheadAndDropsItsLowest() {
        var machine = council.validator(0)
        _ = machine.handle(.startHeight(1))
        // Validator 1 floods rounds 1...50; it keeps only the highest 4 (47...50).
        for round in 1...50 as ClosedRange<UInt64> {
            _ = machine.handle(.vote(council.vote(1, .prevote, height: 1, round: round, nil)))
        }
        _ = machine.handle(.vote(council.vote(2, .prevote, height: 1, round: 3, nil)))
        #expect(machine.round == 0)
        _ = machine.handle(.vote(council.vote(2, .prevote, height: 1, round: 48, nil)))
        #expect(machine.round == 48)
    }
}
