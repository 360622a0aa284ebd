import MedLedgerContracts
import MedLedgerCore
import MedLedgerTestSupport
import Testing

@testable import MedLedgerStore

/// The access tables: written with each block, reloaded, and re-checked by verify.
@Suite("The store's access tables")
struct AccessStoreTests {
    /// A store with three contracts, consents, a treatment, a granted and a denied request, a
    /// revoked grant, an access log and readings.
    struct Scenario {
        var ledger: AccessFixture
        let store: LedgerStore
        let path: String
        var granted: Hash256
        var denied: Hash256
        var revoked: Hash256
        var clinicianGrant: Hash256
    }

    static func scenario(_ directory: TemporaryDirectory) throws -> Scenario {
        let path = directory.file("ledger.sqlite")
        let channel = TestChannel()
        let store = try LedgerStore(path: path, genesis: channel.genesis)
        var ledger = try AccessFixture(channel: channel, patients: 6, runner: WasmContractRunner(), store: store)
        let study = try ledger.deploy("consent-study", module: ShippedContracts.module("consent-study"))
        let aggregate = try ledger.deploy(
            "aggregate", module: ShippedContracts.module("aggregate"), parameters: ["k": 3])
        let clinician = try ledger.deploy("clinician", module: ShippedContracts.module("clinician"))
        try ledger.consent([0, 1, 2], to: "bp-study")
        try ledger.commit([
            ledger.registrar(.recordTreatment(clinician: AccessFixture.clinician, patient: "patient-4"))
        ])
        let time = ledger.state.time
        try ledger.commit([], readings: (0..<6).map { ledger.reading(patient: $0, time: time) })
        func ask(_ contract: Hash256, study: String? = "bp-study", patient: String? = nil) -> AccessRequest {
            AccessRequest(
                contract: contract, kinds: ["8480-6", "8462-4"], from: 0, to: time + 100_000, purpose: "test",
                patient: patient, study: study)
        }
        let granted = try ledger.decide(ask(study))
        let denied = try ledger.decide(ask(aggregate, study: "tiny"))
        let revoked = try ledger.decide(ask(study))
        let clinicianGrant = try ledger.decide(
            ask(clinician, study: nil, patient: "patient-4"), by: AccessFixture.clinician)
        try ledger.commit([
            ledger.registrar(.revokeGrant(grant: revoked.id)),
            ledger.registrar(.withdrawConsent(patient: "patient-2", study: "bp-study")),
            ledger.signed(
                .accessLog(
                    AccessLogEntry(
                        grant: granted.id, requester: AccessFixture.researcher, fetch: .sha256([1]), count: 4,
                        servedHash: .sha256([2]), servedAt: time)), by: "manager-1", key: channel.managerKeys[0]),
        ])
        try ledger.commit([ledger.registrar(.endTreatment(clinician: AccessFixture.clinician, patient: "patient-4"))])
        return Scenario(
            ledger: ledger, store: store, path: path, granted: granted.id, denied: denied.id, revoked: revoked.id,
            clinicianGrant: clinicianGrant.id)
    }

    @Test func theAccessStateReloadsAndVerifies() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let scenario = try Self.scenario(directory)
        #expect(scenario.store.state == scenario.ledger.state)
        let reopened = try LedgerStore(path: scenario.path)
        #expect(reopened.state == scenario.ledger.state)
        #expect(reopened.state.access.consents["bp-study"] == ["patient-0", "patient-1"])
        #expect(reopened.state.access.treatments.isEmpty)
        #expect(reopened.deployedContracts.map(\.name) == ["consent-study", "aggregate", "clinician"])
        #expect(reopened.deployedContracts[1].parameters == ["k": 3])
        let report = try StoreVerifier.verify(path: scenario.path)
        #expect(report.isIntact, "\(report.problems)")
    }

    @Test func decisionsAndLogsAreQueryable() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let scenario = try Self.scenario(directory)
        let store = scenario.store
        let granted = try #require(try store.accessDecision(scenario.granted))
        guard case .granted(let grant) = granted.outcome else {
            Issue.record("not granted: \(granted.outcome)")
            return
        }
        #expect(grant.scope.study == "bp-study" && grant.revokedAt == nil)
        #expect(grant == store.state.access.grants[scenario.granted])
        let denied = try #require(try store.accessDecision(scenario.denied))
        #expect(
            denied.outcome
                == .denied(
                    AccessDenial(
                        .contractDenied, "the cohort of study tiny has 0 consenting patients, fewer than k = 3")))
        guard case .granted(let revoked) = try #require(try store.accessDecision(scenario.revoked)).outcome else {
            Issue.record("the revoked grant is not a grant")
            return
        }
        #expect(revoked.revokedAt == store.height - 1)
        #expect(
            try store.accessDecisions(requester: AccessFixture.researcher).map(\.id) == [
                scenario.granted, scenario.denied, scenario.revoked,
            ])
        #expect(try store.accessDecisions().count == 4)
        let logs = try store.accessLog(grant: scenario.granted)
        #expect(logs.count == 1)
        #expect(logs.first?.manager == "manager-1" && logs.first?.entry.count == 4)
        #expect(try store.accessLog(grant: scenario.revoked).isEmpty)
        #expect(try store.accessDecision(.zero) == nil)
    }

    func tamper(_ sql: String) throws -> [VerifyProblem] {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let scenario = try Self.scenario(directory)
        let db = try SQLiteConnection(path: scenario.path)
        try db.execute(sql)
        return try StoreVerifier.verify(path: scenario.path).problems
    }

    @Test func verifyFindsATamperedGrant() throws {
        let longer = try tamper(
            "UPDATE access_requests SET expires_at = expires_at + 86400000 WHERE outcome = 'granted'")
        #expect(longer.count == 3, "\(longer)")
        #expect(longer.allSatisfy { $0.message == "access_requests: a row differs from what the blocks imply" })
        let flipped = try tamper(
            "UPDATE access_requests SET outcome = 'granted', role = 'researcher', mode = 'readings', expires_at = 1, "
                + "granted_time = 1, denial_code = NULL, denial_message = NULL WHERE outcome = 'denied'")
        #expect(flipped.map(\.message) == ["access_requests: a row differs from what the blocks imply"])
        let unrevoked = try tamper("UPDATE access_requests SET revoked_at = NULL")
        #expect(unrevoked.count == 1)
        let invented = try tamper(
            "INSERT INTO access_requests SELECT zeroblob(32), height, pos + 1, requester, contract, kinds, from_ms, to_ms, purpose, patient, study, outcome, role, mode, k, expires_at, granted_time, revoked_at, denial_code, denial_message FROM access_requests LIMIT 1"
        )
        #expect(invented.map(\.message) == ["access_requests: a row is stored that no block implies"])
    }

    @Test func verifyFindsTamperedConsentsTreatmentsContractsAndLogs() throws {
        let consent = try tamper("UPDATE consents SET to_height = NULL WHERE patient = 'patient-2'")
        #expect(consent.map(\.message) == ["consents: a row differs from what the blocks imply"])
        let treatment = try tamper("DELETE FROM treatments")
        #expect(treatment.map(\.message) == ["treatments: a row the blocks imply is missing"])
        let contract = try tamper("UPDATE contracts SET parameters = x'a1616b05' WHERE name = 'aggregate'")
        #expect(contract.map(\.message) == ["contracts: a row differs from what the blocks imply"])
        let log = try tamper("UPDATE access_log SET count = 400")
        #expect(log.map(\.message) == ["access_log: a row differs from what the blocks imply"])
        let professional = try tamper("UPDATE professionals SET role = 'clinician' WHERE id = 'researcher-1'")
        #expect(professional.map(\.message) == ["professionals: a row differs from what the blocks imply"])
    }

    @Test func aBlockDecidedByAnotherRuntimeIsRefused() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let channel = TestChannel()
        let store = try LedgerStore(path: directory.file("ledger.sqlite"), genesis: channel.genesis)
        var ledger = try AccessFixture(channel: channel, runner: WasmContractRunner(), store: store)
        let contract = try ledger.deploy("grant-all", module: ShippedContracts.module("test-grant-all"))
        let request = ledger.request(
            AccessRequest(contract: contract, kinds: ["8867-4"], from: 0, to: 1, purpose: "p", study: "s"))
        let block = channel.block(on: store.state, transactions: [request])
        // The core's default runner decides otherwise (no-runner); the store refuses its decisions.
        let checked = try store.state.check(block, verifier: SequentialSignatureVerifier())
        let error = try #require(throws: StoreError.self) {
            try store.append(checked, certificate: channel.certificate(for: block.header))
        }
        #expect(error.code == .rejected)
        #expect(error.message.contains("contract runtime 'none'"))
        try store.append(block, certificate: channel.certificate(for: block.header))
        #expect(store.state.access.grants[request.id] != nil)
    }

    @Test func aVersionOneStoreIsMigrated() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("ledger.sqlite")
        let channel = TestChannel()
        do {
            let store = try LedgerStore(path: path, genesis: channel.genesis)
            var builder = ChainBuilder(channel: channel, deviceCount: 3)
            try builder.registerDevices(in: store)
            var random = SeededRandom(seed: 5)
            try builder.appendBlock(to: store, readings: 6, random: &random)
        }
        let db = try SQLiteConnection(path: path)
        try db.execute(
            """
            DROP TABLE professionals; DROP TABLE consents; DROP TABLE treatments; DROP TABLE contracts;
            DROP TABLE access_requests; DROP TABLE access_log; PRAGMA user_version = 1;
            """)
        #expect(try db.userVersion == 1)
        #expect(try StoreVerifier.verify(path: path).isIntact)
        let store = try LedgerStore(path: path)
        #expect(try db.userVersion == LedgerStore.schemaVersion)
        #expect(store.height == 2)
        #expect(try StoreVerifier.verify(path: path).isIntact)
    }
}
