import MedLedgerConsensus
import MedLedgerCore
import MedLedgerTestSupport
import Testing

/// The council's wire formats: deterministic CBOR, round trips, and strict refusal of anything else.
@Suite("Council wire formats")
struct WireTests {
    let council = Council()
    let a = testValue(height: 3, label: "a")

    /// The code of the `ConsensusError` the body throws, or nil when it throws nothing.
    func code(_ body: () throws -> Void) -> ConsensusError.Code? {
        do {
            try body()
            return nil
        } catch let error as ConsensusError {
            return error.code
        } catch {
            Issue.record("not a ConsensusError: \(error)")
            return nil
        }
    }

    /// A vote map with some entries replaced, encoded (deterministically when `sorted`).
    func voteBytes(_ changes: [Int64: CBOR?] = [:]) -> [UInt8] {
        let vote = council.vote(2, .precommit, height: 3, round: 1, a.id)
        var entries: [Int64: CBOR] = [
            1: .text(vote.channel), 2: .unsigned(vote.height), 3: .unsigned(vote.round), 4: .unsigned(2),
            5: .bytes(a.id.bytes), 6: .unsigned(2), 7: .bytes(vote.signature),
        ]
        for (key, value) in changes { entries[key] = value }
        return CBOR.map(entries.keys.sorted().map { CBORMapEntry(.int($0), entries[$0]!) }).encoded()
    }

    @Test func votesRoundTripInDeterministicCBOR() throws {
        for vote in [
            council.vote(2, .precommit, height: 3, round: 1, a.id), council.vote(0, .prevote, height: 1, round: 0, nil),
        ] {
            let bytes = vote.encoded()
            #expect(CBOR.isDeterministic(bytes))
            #expect(try Vote(decoding: bytes) == vote)
            #expect(
                vote.signingBytes
                    == voteSigningBytes(
                        channel: "ward-7", height: vote.height, round: vote.round, step: vote.step,
                        blockHash: vote.blockHash))
        }
        #expect(voteBytes() == council.vote(2, .precommit, height: 3, round: 1, a.id).encoded())
    }

    @Test func refusesMalformedVotes() {
        let valid = voteBytes()
        #expect(code { _ = try Vote(decoding: valid) } == nil)
        #expect(code { _ = try Vote(decoding: Array(valid.dropLast())) } == .malformed)
        #expect(code { _ = try Vote(decoding: valid + [0]) } == .malformed)
        #expect(code { _ = try Vote(decoding: []) } == .malformed)
        #expect(code { _ = try Vote(decoding: voteBytes([8: .unsigned(1)])) } == .malformed)
        #expect(code { _ = try Vote(decoding: voteBytes([7: nil])) } == .malformed)
        #expect(code { _ = try Vote(decoding: voteBytes([2: .text("3")])) } == .malformed)
        #expect(code { _ = try Vote(decoding: voteBytes([2: .unsigned(0)])) } == .malformed)
        #expect(code { _ = try Vote(decoding: voteBytes([2: .unsigned(1 << 63)])) } == .outOfRange)
        #expect(code { _ = try Vote(decoding: voteBytes([3: .unsigned(1 << 40)])) } == .outOfRange)
        #expect(code { _ = try Vote(decoding: voteBytes([4: .unsigned(3)])) } == .malformed)
        #expect(code { _ = try Vote(decoding: voteBytes([5: .bytes([1, 2, 3])])) } == .malformed)
        #expect(code { _ = try Vote(decoding: voteBytes([6: .unsigned(1 << 20)])) } == .outOfRange)
        #expect(code { _ = try Vote(decoding: voteBytes([6: .negative(0)])) } == .malformed)
        #expect(code { _ = try Vote(decoding: voteBytes([7: .bytes(Array(repeating: 1, count: 300))])) } != nil)
        #expect(code { _ = try Vote(decoding: voteBytes([1: .text(String(repeating: "w", count: 40))])) } == .malformed)
        #expect(code { _ = try Vote(decoding: Array(repeating: 0x41, count: 600)) } == .outOfRange)
        // Not deterministic: keys out of order, or an integer in a longer form than needed.
        let unsorted = CBOR.map([CBORMapEntry(2, .unsigned(3)), CBORMapEntry(1, .text("ward-7"))]).encoded()
        #expect(code { _ = try Vote(decoding: unsorted) } == .malformed)
        var long = valid
        let heightAt = try! #require(long.firstIndex(of: 0x02)) + 1
        long.replaceSubrange(heightAt...heightAt, with: [0x18, 0x03])
        #expect(code { _ = try Vote(decoding: long) } == .malformed)
    }

    /// 0, 1, 2^31, 2^53, 2^63−1, 2^63, 2^64−1, −1 and −2^64 in every integer of a vote, a
    /// proposal and a piece of evidence (their signatures are made again over the changed fields):
    /// each is refused with its code, or decodes in range and is then judged by the machine's
    /// rules; nothing traps.
    @Test func edgeIntegersInEveryFieldOfACouncilMessageAreRefusedOrInRange() throws {
        let edges: [CBOR] = [
            .unsigned(0), .unsigned(1), .unsigned(1 << 31), .unsigned(1 << 53), .unsigned(UInt64(Int64.max)),
            .unsigned(1 << 63), .unsigned(.max), .negative(0), .negative(.max),
        ]
        let vote = council.vote(2, .precommit, height: 3, round: 1, a.id)
        let proposal = council.proposal(height: 3, round: 2, value: a, validRound: 1)
        var decodedVotes = 0
        var decodedProposals = 0
        for (key, field) in [(2, "height"), (3, "round"), (4, "step"), (6, "validator")] {
            for edge in edges {
                let bytes = voteBytes([Int64(key): edge])
                do {
                    let decoded = try Vote(decoding: bytes)
                    decodedVotes += 1
                    #expect(decoded.height <= UInt64(Int64.max) && decoded.round <= UInt64(Int64.max), "\(field)")
                    #expect(decoded.validator >= 0, "\(field)")
                    // The signature was over the old value: it no longer verifies.
                    #expect(
                        !council.verifier.isValidVoteSignature(
                            decoded.signature, message: decoded.signingBytes, validator: decoded.validator)
                            || decoded == vote, "\(field) = \(edge)")
                } catch {
                    #expect(error.code == .malformed || error.code == .outOfRange, "\(field) = \(edge): \(error)")
                }
            }
        }
        let encoded = try CBOR.decode(proposal.encoded())
        guard case .map(let entries) = encoded else {
            Issue.record("a proposal is a map")
            return
        }
        for index in entries.indices {
            guard case .unsigned = entries[index].value else { continue }
            for edge in edges {
                var copy = entries
                copy[index] = CBORMapEntry(entries[index].key, edge)
                do {
                    let decoded = try Proposal(decoding: CBOR.map(copy).encoded(), maxBytes: 4096)
                    decodedProposals += 1
                    #expect(decoded.height <= UInt64(Int64.max) && decoded.round <= UInt64(Int64.max))
                    #expect(decoded.proposer >= 0)
                } catch {
                    #expect(error.code == .malformed || error.code == .outOfRange, "\(entries[index].key) = \(edge)")
                }
            }
        }
        #expect(decodedVotes > 0 && decodedProposals > 0)
    }

    @Test func proposalsRoundTripAndRefuseWhatTheyMustNot() throws {
        let fresh = council.proposal(height: 3, round: 2, value: a)
        let again = council.proposal(height: 3, round: 2, value: a, validRound: 1)
        for proposal in [fresh, again] {
            let bytes = proposal.encoded()
            #expect(CBOR.isDeterministic(bytes))
            let decoded = try Proposal(decoding: bytes, maxBytes: 4096)
            #expect(decoded == proposal && decoded.value.id == a.id && decoded.value.digest == a.digest)
            #expect(code { _ = try Proposal(decoding: bytes, maxBytes: bytes.count - 1) } == .outOfRange)
            #expect(code { _ = try Proposal(decoding: Array(bytes.dropLast()), maxBytes: 4096) } == .malformed)
        }
        var claim = council.proposal(height: 3, round: 2, value: a)
        claim.validRound = 2
        #expect(code { _ = try Proposal(decoding: claim.encoded(), maxBytes: 4096) } == .malformed)
        var zero = fresh
        zero.height = 0
        #expect(code { _ = try Proposal(decoding: zero.encoded(), maxBytes: 4096) } == .malformed)
        // The signature covers the body: another body under the same header is another proposal.
        var swapped = fresh
        swapped.value = ProposalValue(header: a.header, body: [9, 9])
        #expect(swapped.value.id == fresh.value.id)
        #expect(swapped.signingBytes != fresh.signingBytes)
    }

    @Test func persistedStateAndEvidenceRoundTrip() throws {
        let prevotes = (0..<3).map { council.vote($0, .prevote, height: 3, round: 1, a.id) }
        let state = PersistedConsensusState(
            height: 3, round: 2, lockedRound: 1, lockedBlockHash: a.id, validRound: 1, validValue: a,
            votes: [prevotes[0], council.vote(0, .precommit, height: 3, round: 1, a.id)],
            proposals: [council.proposal(height: 3, round: 2, value: a, validRound: 1)],
            polka: Polka(proposal: council.proposal(height: 3, round: 1, value: a), prevotes: prevotes))
        let bytes = state.encoded()
        #expect(CBOR.isDeterministic(bytes))
        #expect(try PersistedConsensusState(decoding: bytes) == state)
        #expect(code { _ = try PersistedConsensusState(decoding: Array(bytes.dropLast())) } == .malformed)
        let empty = PersistedConsensusState(height: 1, round: 0)
        #expect(try PersistedConsensusState(decoding: empty.encoded()) == empty)

        let evidence = Evidence.conflictingVotes(prevotes[1], council.vote(1, .prevote, height: 3, round: 1, nil))
        #expect(try Evidence(decoding: evidence.encoded()) == evidence)
        #expect(evidence.verify(channel: "ward-7", verifier: council.verifier))
        // Two votes for the same block, or of different rounds, prove nothing.
        #expect(
            !Evidence.conflictingVotes(prevotes[1], prevotes[1]).verify(channel: "ward-7", verifier: council.verifier))
        let otherRound = council.vote(1, .prevote, height: 3, round: 0, nil)
        #expect(
            !Evidence.conflictingVotes(prevotes[1], otherRound).verify(channel: "ward-7", verifier: council.verifier))
        #expect(code { _ = try Evidence(decoding: CBOR.array([.unsigned(3), .null, .null]).encoded()) } == .malformed)
    }

    @Test func realBlocksTravelAsProposalValuesAndCommitsAsAnnouncements() throws {
        let channel = TestChannel(validators: 4, managers: 2)
        let state = LedgerState(genesis: channel.genesis)
        let device = TestChannel.deviceKey(1)
        let block = channel.block(
            on: state,
            transactions: [
                channel.transaction(seq: 1, .registerDevice(device: "bp-1", key: device.publicKey, patient: nil))
            ])
        let value = ProposalValue(block: block)
        #expect(value.id == block.header.hash)
        #expect(try value.block(parameters: channel.genesis.block) == block)
        let key = channel.managerKeys[1]
        var proposal = Proposal(
            channel: channel.genesis.channel, height: 1, round: 0, validRound: nil, proposer: 1, value: value,
            signature: [])
        proposal.signature = try key.sign(proposal.signingBytes)
        let limit = Proposal.maxEncodedBytes(parameters: channel.genesis.block)
        #expect(limit > channel.genesis.block.maxBytes)
        let decoded = try Proposal(decoding: proposal.encoded(), maxBytes: limit)
        let verifier = GenesisVerifier(genesis: channel.genesis)
        #expect(verifier.isValidProposalSignature(decoded.signature, message: decoded.signingBytes, manager: 1))
        #expect(!verifier.isValidProposalSignature(decoded.signature, message: decoded.signingBytes, manager: 0))
        #expect(!verifier.isValidProposalSignature(decoded.signature, message: decoded.signingBytes, manager: 5))

        let certificate = channel.certificate(for: block.header)
        let announcement = CommitAnnouncement(header: block.header, certificate: certificate)
        let received = try CommitAnnouncement(decoding: announcement.encoded())
        #expect(received == announcement)
        try received.verify(genesis: channel.genesis)
        var forged = received
        forged.certificate.signatures.removeLast()
        #expect(code { try forged.verify(genesis: channel.genesis) } == .invalidCertificate)
        #expect(code { _ = try CommitAnnouncement(decoding: [0xA0]) } == .malformed)
    }

    @Test func topicsNameTheChannelAndThePublisher() {
        #expect(
            CouncilTopics.proposal(channel: "ward-7", manager: "manager-1")
                == "medledger/v1/ward-7/council/proposal/manager-1")
        #expect(
            CouncilTopics.vote(channel: "ward-7", validator: "validator-2")
                == "medledger/v1/ward-7/council/vote/validator-2")
        #expect(CouncilTopics.all(channel: "ward-7") == "medledger/v1/ward-7/council/#")
        #expect(CouncilTopics.commits(channel: "ward-7") == "medledger/v1/ward-7/commits")
    }

    @Test func mutatedMessagesNeverCrashTheDecoders() throws {
        var random = SeededRandom(seed: 4242)
        let samples: [[UInt8]] = [
            council.vote(2, .precommit, height: 3, round: 1, a.id).encoded(),
            council.vote(1, .prevote, height: 9, round: 0, nil).encoded(),
            council.proposal(height: 3, round: 2, value: a, validRound: 1).encoded(),
            PersistedConsensusState(height: 3, round: 2, votes: [council.vote(0, .prevote, height: 3, round: 2, nil)])
                .encoded(),
            Evidence.conflictingVotes(
                council.vote(1, .prevote, height: 3, round: 1, nil),
                council.vote(1, .prevote, height: 3, round: 1, a.id)
            ).encoded(),
        ]
        var accepted = 0
        for _ in 0..<4000 {
            var bytes = samples.randomElement(using: &random)!
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                switch Int.random(in: 0..<3, using: &random) {
                case 0:
                    bytes[Int.random(in: 0..<bytes.count, using: &random)] ^= UInt8.random(in: 1...255, using: &random)
                case 1: bytes.removeSubrange(Int.random(in: 0..<bytes.count, using: &random)...)
                default:
                    bytes.insert(
                        UInt8.random(in: 0...255, using: &random), at: Int.random(in: 0...bytes.count, using: &random))
                }
                if bytes.isEmpty { bytes = [0] }
            }
            // Whatever decodes encodes back to the very same bytes: one value, one encoding.
            if let vote = try? Vote(decoding: bytes) {
                #expect(vote.encoded() == bytes)
                accepted += 1
            }
            if let proposal = try? Proposal(decoding: bytes, maxBytes: 4096) {
                #expect(proposal.encoded() == bytes)
                accepted += 1
            }
            if let state = try? PersistedConsensusState(decoding: bytes) { #expect(state.encoded() == bytes) }
            if let evidence = try? Evidence(decoding: bytes) { #expect(evidence.encoded() == bytes) }
        }
        #expect(accepted > 0)
    }

    @Test func configurationsThatCannotRunAreRefused() {
        #expect(
            code { _ = try ConsensusConfiguration(channel: "c", validatorCount: 5, managerCount: 1) }
                == .invalidConfiguration)
        #expect(
            code { _ = try ConsensusConfiguration(channel: "c", validatorCount: 4, managerCount: 0) }
                == .invalidConfiguration)
        let configuration = try! ConsensusConfiguration(channel: "c", validatorCount: 7, managerCount: 3)
        #expect(configuration.faultTolerance == 2 && configuration.quorum == 5)
        #expect((0..<6).map { configuration.proposer(height: 4, round: $0) } == [1, 2, 0, 1, 2, 0])
        #expect(configuration.proposer(height: .max, round: .max) < 3)
        #expect(
            code {
                _ = try ConsensusMachine(
                    configuration: configuration, role: .validator(index: 7, signer: CheapSigner(secret: [])),
                    verifier: CheapVerifier(validators: 7, managers: 3))
            } == .invalidConfiguration)
    }
}
