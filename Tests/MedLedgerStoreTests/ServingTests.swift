import MedLedgerContracts
import MedLedgerCore
import MedLedgerTestSupport
import Testing

@testable import MedLedgerStore

/// What a manager serves under a grant, and what the researcher's client verifies.
@Suite("Serving data under grants")
struct ServingTests {
    let directory: TemporaryDirectory
    let store: LedgerStore
    var ledger: AccessFixture
    let study: Hash256
    let aggregate: Hash256
    let clinician: Hash256
    let start: UInt64

    /// Six patients with readings in two blocks (blood pressure, and heart rate for patient 0);
    /// patients 0, 1, 2 consent to bp-study.
    init() throws {
        directory = try TemporaryDirectory()
        let channel = TestChannel()
        store = try LedgerStore(path: directory.file("ledger.sqlite"), genesis: channel.genesis)
        ledger = try AccessFixture(channel: channel, patients: 6, runner: WasmContractRunner(), store: store)
        study = try ledger.deploy("consent-study", module: ShippedContracts.module("consent-study"))
        aggregate = try ledger.deploy("aggregate", module: ShippedContracts.module("aggregate"), parameters: ["k": 2])
        clinician = try ledger.deploy("clinician", module: ShippedContracts.module("clinician"))
        try ledger.consent([0, 1, 2], to: "bp-study")
        start = ledger.state.time
        try ledger.commit([], readings: (0..<6).map { ledger.reading(patient: $0, time: start) })
        var second = (0..<6).map { ledger.reading(patient: $0, time: start + 500) }
        second.append(
            ledger.reading(
                patient: 0, time: start + 600,
                records: [ReadingRecord(code: "8867-4", unit: "/min", value: .integer(72))]))
        try ledger.commit([], readings: second)
    }

    func ask(
        _ contract: Hash256, kinds: [String] = ["8480-6", "8462-4"], study: String? = "bp-study",
        patient: String? = nil
    ) -> AccessRequest {
        AccessRequest(
            contract: contract, kinds: kinds, from: 0, to: start + 1_000_000, purpose: "test", patient: patient,
            study: study)
    }

    mutating func grant(_ request: AccessRequest, by requester: String = AccessFixture.researcher) throws
        -> AccessGrant
    {
        let decision = try ledger.decide(request, by: requester)
        guard case .granted(let grant) = decision.outcome else { throw FixtureError("denied: \(decision.outcome)") }
        return grant
    }

    func fetch(
        _ grant: AccessGrant, by requester: String = AccessFixture.researcher, key: PrivateKey? = nil,
        after: ReadingPosition? = nil, limit: Int? = nil, kinds: [String]? = nil, time: UInt64? = nil
    ) -> SignedFetchRequest {
        let key = key ?? (requester == AccessFixture.clinician ? ledger.clinicianKey : ledger.researcherKey)
        return try! SignedFetchRequest(
            signing: FetchRequest(
                channel: ledger.channel.genesis.channel, requester: requester, grant: grant.id,
                time: time ?? ledger.state.time, nonce: [1, 2, 3], kinds: kinds, after: after, limit: limit),
            with: key)
    }

    func served(_ response: FetchResponse) -> [ServedReading] {
        if case .readings(let readings, _, _) = response.content { return readings }
        return []
    }

    func refusal(_ response: FetchResponse) -> FetchRefusal.Reason? {
        if case .refused(let refusal) = response.content { return refusal.reason }
        return nil
    }

    @Test func consentingPatientsReadingsAreServedAndVerify() throws {
        defer { directory.remove() }
        var test = self
        let grant = try test.grant(ask(study))
        let request = test.fetch(grant)
        let response = try store.serve(request, now: test.ledger.state.time)
        let readings = served(response)
        #expect(Set(readings.map(\.patient)) == ["patient-0", "patient-1", "patient-2"])
        #expect(readings.count == 6, "the heart-rate reading is outside the kinds")
        let verified = try response.verify(genesis: test.ledger.channel.genesis, fetch: request, scope: grant.scope)
        #expect(verified.count == 6)
        #expect(verified.allSatisfy { $0.reading.records.map(\.code) == ["8480-6", "8462-4"] })
        // The response survives its encoding, and the access log names what was served.
        let decoded = try FetchResponse(decoding: response.encoded())
        #expect(decoded == response)
        let log = try #require(response.accessLog(requester: AccessFixture.researcher))
        #expect(log.count == 6 && log.fetch == request.id && log.grant == grant.id)
        #expect(log.servedHash == decoded.servedHash)
        let managerKey = test.ledger.channel.managerKeys[0]
        try test.ledger.commit([test.ledger.signed(.accessLog(log), by: "manager-1", key: managerKey)])
        #expect(try store.accessLog(grant: grant.id).map(\.entry) == [log])
    }

    @Test func aWithdrawnConsentStopsFurtherReads() throws {
        defer { directory.remove() }
        var test = self
        let grant = try test.grant(ask(study))
        try test.ledger.commit([test.ledger.registrar(.withdrawConsent(patient: "patient-1", study: "bp-study"))])
        let readings = served(try store.serve(test.fetch(grant), now: test.ledger.state.time))
        #expect(Set(readings.map(\.patient)) == ["patient-0", "patient-2"])
    }

    @Test func expiredRevokedAndForeignGrantsAreRefused() throws {
        defer { directory.remove() }
        var test = self
        let grant = try test.grant(ask(study))
        // Expiry in block-time terms: the manager's clock or the last block's time.
        let late = grant.expiresAt
        #expect(refusal(try store.serve(test.fetch(grant, time: late), now: late)) == .expired)
        #expect(refusal(try store.serve(test.fetch(grant, time: late - 1), now: late - 1)) == nil)
        // Another professional's request under this grant, a forged signature, a stale request.
        #expect(
            refusal(try store.serve(test.fetch(grant, by: AccessFixture.clinician), now: test.ledger.state.time))
                == .notYourGrant)
        #expect(
            refusal(try store.serve(test.fetch(grant, key: test.ledger.clinicianKey), now: test.ledger.state.time))
                == .badSignature)
        #expect(
            refusal(try store.serve(test.fetch(grant, time: 0), now: test.ledger.state.time)) == .stale)
        #expect(
            refusal(try store.serve(test.fetch(grant, kinds: ["8867-4"]), now: test.ledger.state.time))
                == .outOfScope)
        try test.ledger.commit([test.ledger.registrar(.revokeGrant(grant: grant.id))])
        #expect(refusal(try store.serve(test.fetch(grant), now: test.ledger.state.time)) == .revoked)
    }

    @Test func readingsArePagedInChainOrder() throws {
        defer { directory.remove() }
        var test = self
        let grant = try test.grant(ask(study))
        var all: [ServedReading] = []
        var after: ReadingPosition?
        var pages = 0
        repeat {
            let response = try store.serve(test.fetch(grant, after: after, limit: 4), now: test.ledger.state.time)
            _ = try response.verify(genesis: test.ledger.channel.genesis, scope: grant.scope)
            all += served(response)
            guard case .readings(_, _, let next) = response.content else { break }
            after = next
            pages += 1
        } while after != nil
        #expect(pages == 2)
        #expect(all.count == 6)
        #expect(all.map(\.position) == all.map(\.position).sorted())
    }

    @Test func aTamperedReadingFailsTheResearchersCheck() throws {
        defer { directory.remove() }
        var test = self
        let grant = try test.grant(ask(study))
        let response = try store.serve(test.fetch(grant), now: test.ledger.state.time)
        let genesis = test.ledger.channel.genesis
        guard case .readings(var readings, let headers, let next) = response.content else {
            Issue.record("no readings served")
            return
        }
        // One changed byte of a reading's signed value.
        var changed = readings
        changed[2].bytes[changed[2].bytes.count - 70] ^= 0x01
        var tampered = response
        tampered.content = .readings(changed, headers: headers, next: next)
        let error = try #require(throws: AccessVerificationError.self) { try tampered.verify(genesis: genesis) }
        #expect(error.index == 2)
        // A reading moved to another position, a header whose certificate is not the council's, a
        // reading outside the grant.
        readings.swapAt(0, 1)
        tampered.content = .readings(readings, headers: headers, next: next)
        #expect(throws: AccessVerificationError.self) { try tampered.verify(genesis: genesis) }
        var forged = headers
        forged[0].header.time += 1
        tampered.content = .readings(served(response), headers: forged, next: next)
        #expect(throws: AccessVerificationError.self) { try tampered.verify(genesis: genesis) }
        var narrow = grant.scope
        narrow.to = start
        #expect(throws: AccessVerificationError.self) { try response.verify(genesis: genesis, scope: narrow) }
        // Another channel's genesis trusts other validators.
        #expect(throws: AccessVerificationError.self) {
            try response.verify(genesis: TestChannel(channel: "other").genesis)
        }
    }

    @Test func aggregatesAreServedOnlyOverCohortsOfK() throws {
        defer { directory.remove() }
        var test = self
        let grant = try test.grant(ask(aggregate, kinds: ["8480-6", "8867-4"]))
        #expect(grant.scope.mode == .aggregates(k: 2))
        let response = try store.serve(test.fetch(grant), now: test.ledger.state.time)
        guard case .aggregates(let rows, let suppressed) = response.content else {
            Issue.record("not aggregates: \(response.content)")
            return
        }
        // Systolic values of patients 0, 1, 2 (110, 111, 112 twice): one day, one row. Heart rate
        // has one patient only: left out.
        #expect(rows.count == 1)
        #expect(suppressed == 1)
        let row = try #require(rows.first)
        #expect(row.code == "8480-6" && row.count == 6 && row.patients == 3)
        #expect(row.mean == 111 && row.minimum == 110 && row.maximum == 112)
        #expect(row.day == start - start % 86_400_000)
        #expect(try response.verify(genesis: test.ledger.channel.genesis).isEmpty)
        // Withdrawals below k: refused.
        try test.ledger.commit([
            test.ledger.registrar(.withdrawConsent(patient: "patient-0", study: "bp-study")),
            test.ledger.registrar(.withdrawConsent(patient: "patient-1", study: "bp-study")),
        ])
        #expect(refusal(try store.serve(test.fetch(grant), now: test.ledger.state.time)) == .cohortTooSmall)
    }

    @Test func aClinicianReadsTheirPatientUntilTheTreatmentEnds() throws {
        defer { directory.remove() }
        var test = self
        try test.ledger.commit([
            test.ledger.registrar(.recordTreatment(clinician: AccessFixture.clinician, patient: "patient-4"))
        ])
        let grant = try test.grant(ask(clinician, study: nil, patient: "patient-4"), by: AccessFixture.clinician)
        let request = test.fetch(grant, by: AccessFixture.clinician)
        let response = try store.serve(request, now: test.ledger.state.time)
        #expect(served(response).map(\.patient) == ["patient-4", "patient-4"])
        #expect(try response.verify(genesis: test.ledger.channel.genesis, scope: grant.scope).count == 2)
        try test.ledger.commit([
            test.ledger.registrar(.endTreatment(clinician: AccessFixture.clinician, patient: "patient-4"))
        ])
        #expect(
            served(try store.serve(test.fetch(grant, by: AccessFixture.clinician), now: test.ledger.state.time)).isEmpty
        )
    }

    @Test func batchInclusionProofsMatchSingleOnes() throws {
        defer { directory.remove() }
        for count in [1, 2, 3, 5, 7, 8, 13, 64, 100] {
            let leaves = (0..<count).map { MerkleTree.leafHash([UInt8(truncatingIfNeeded: $0), 7]) }
            let batch = try MerkleTree.inclusionProofs(leafIndices: Array(0..<count), leafHashes: leaves)
            for index in 0..<count {
                #expect(batch[index] == (try MerkleTree.inclusionProof(leafIndex: index, leafHashes: leaves)))
            }
        }
    }
}
