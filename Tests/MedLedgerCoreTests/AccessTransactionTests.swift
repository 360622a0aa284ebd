import MedLedgerCore
import MedLedgerTestSupport
import Testing

/// A runner whose decisions a test scripts in Swift.
struct ScriptedRunner: ContractRunner {
    let body: @Sendable (DeployedContract, ContractRequestContext, AccessLedgerView) -> ContractVerdict

    var runtime: String { "scripted" }

    func decide(contract: DeployedContract, context: ContractRequestContext, ledger: AccessLedgerView)
        -> ContractVerdict
    {
        body(contract, context, ledger)
    }

    /// Grants every request for an hour.
    static let grantAll = ScriptedRunner { _, context, _ in .grant(mode: .readings, expiresAt: context.time + 3_600_000)
    }
}

@Suite("Access transactions and their rules")
struct AccessTransactionTests {
    static let module: [UInt8] = [0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x41]

    func fixture(_ runner: any ContractRunner = ScriptedRunner.grantAll) throws -> AccessFixture {
        try AccessFixture(patients: 4, runner: runner)
    }

    func studyRequest(_ contract: Hash256, study: String? = "s1", kinds: [String] = ["8867-4"]) -> AccessRequest {
        AccessRequest(contract: contract, kinds: kinds, from: 10, to: 20, purpose: "a study", study: study)
    }

    /// The rule a block of these transactions breaks, or nil.
    func rule(_ ledger: AccessFixture, _ transactions: [SignedTransaction]) -> String? {
        do {
            _ = try ledger.state.check(
                ledger.channel.block(on: ledger.state, transactions: transactions),
                verifier: SequentialSignatureVerifier(), contracts: ledger.runner)
            return nil
        } catch {
            return error.rule
        }
    }

    @Test func everyBodyRoundTripsThroughItsEncoding() throws {
        let key = TestChannel.key(seed: 9)
        let hash = Hash256.sha256([1, 2, 3])
        let bodies: [TransactionBody] = [
            .registerProfessional(id: "r-1", role: .researcher, key: key.publicKey, organisation: "Lab"),
            .registerProfessional(id: "c-1", role: .clinician, key: key.publicKey, organisation: nil),
            .consent(patient: "p-1", study: "s.1"), .withdrawConsent(patient: "p-1", study: "s.1"),
            .recordTreatment(clinician: "c-1", patient: "p-2"), .endTreatment(clinician: "c-1", patient: "p-2"),
            .deployContract(ContractDeployment(name: "study", module: Self.module, parameters: ["k": 5, "x_y": -3])),
            .deployContract(ContractDeployment(name: "plain", module: Self.module)),
            .accessRequest(
                AccessRequest(
                    contract: hash, kinds: ["8480-6", "8462-4"], from: 1, to: 2, purpose: "why", patient: "p-1",
                    study: "s")),
            .accessRequest(AccessRequest(contract: hash, kinds: ["8480-6"], from: 5, to: 5, purpose: "x")),
            .revokeGrant(grant: hash),
            .accessLog(
                AccessLogEntry(
                    grant: hash, requester: "r-1", fetch: .sha256([4]), count: 17, servedHash: .sha256([5]),
                    servedAt: 99)),
        ]
        for body in bodies {
            let transaction = Transaction(channel: "c", submitter: "someone", seq: 3, time: 4, body: body)
            let decoded = try Transaction(payload: transaction.payloadBytes())
            #expect(decoded == transaction, "\(body.typeName)")
            let signed = try SignedTransaction(signing: transaction, with: key)
            #expect(try SignedTransaction(decoding: signed.bytes).transaction == transaction)
        }
        #expect(TransactionBody.revokeGrant(grant: hash).subject == hash.hex)
        #expect(TransactionBody.consent(patient: "p-1", study: "s").subject == "p-1")
        #expect(TransactionBody.accessRequest(studyRequest(hash)).signer == .professional)
        #expect(
            TransactionBody.accessLog(
                AccessLogEntry(grant: hash, requester: "r", fetch: hash, count: 0, servedHash: hash, servedAt: 0)
            ).signer == .manager)
        #expect(TransactionBody.consent(patient: "p", study: "s").signer == .registrar)
    }

    @Test func malformedBodiesNameWhatIsWrong() throws {
        func decodeError(_ type: String, _ body: CBOR) -> String? {
            let payload = CBOR.map([
                CBORMapEntry(1, "c"), CBORMapEntry(2, "someone"), CBORMapEntry(3, 1), CBORMapEntry(4, 1),
                CBORMapEntry(5, .text(type)), CBORMapEntry(6, body),
            ]).encoded()
            do {
                _ = try Transaction(payload: payload)
                return nil
            } catch {
                return error.message
            }
        }
        let hash = CBOR.bytes(Hash256.sha256([1]).bytes)
        #expect(
            decodeError("deploy-contract", [1: "x", 2: .bytes([1, 2, 3, 4, 5, 6, 7, 8, 9])])?.contains("WebAssembly")
                == true)
        #expect(
            decodeError("deploy-contract", [1: "x", 2: .bytes(Self.module), 3: ["K": 1]])?.contains("parameter")
                == true)
        #expect(decodeError("access-request", [1: hash, 2: [], 3: 1, 4: 2, 5: "p"])?.contains("kinds") == true)
        #expect(decodeError("access-request", [1: hash, 2: ["8480-6"], 3: 5, 4: 2, 5: "p"])?.contains("after") == true)
        #expect(
            decodeError("access-request", [1: hash, 2: ["8480-6"], 3: 1, 4: 2, 5: ""])?.contains("purpose") == true)
        #expect(
            decodeError("access-request", [1: .bytes([1]), 2: ["8480-6"], 3: 1, 4: 2, 5: "p"])?.contains("contract")
                == true)
        #expect(
            decodeError(
                "register-professional", [1: "r", 2: -8, 3: .bytes(Array(repeating: 1, count: 32)), 4: "nurse"])?
                .contains("role") == true)
        #expect(decodeError("consent", [1: "bad id!", 2: "s"])?.contains("patient") == true)
        #expect(decodeError("revoke-grant", [1: "not bytes"])?.contains("grant") == true)
        #expect(decodeError("fly", [1: "x"])?.contains("unknown transaction type") == true)
    }

    @Test func onlyADeploymentMayExceedSixteenKiB() throws {
        let key = TestChannel.key(seed: 9)
        let big = ContractDeployment(name: "big", module: Self.module + Array(repeating: 0, count: 40_000))
        let deploy = try SignedTransaction(
            signing: Transaction(channel: "c", submitter: "r", seq: 1, time: 1, body: .deployContract(big)), with: key)
        #expect(deploy.bytes.count > SignedTransaction.maxOrdinaryEncodedBytes)
        #expect(try SignedTransaction(decoding: deploy.bytes).transaction.body == .deployContract(big))
        let longPurpose = AccessRequest(
            contract: .zero, kinds: Array(repeating: String(repeating: "9", count: 32), count: 32), from: 0, to: 1,
            purpose: String(repeating: "p", count: 1024))
        let request = try SignedTransaction(
            signing: Transaction(channel: "c", submitter: "r", seq: 1, time: 1, body: .accessRequest(longPurpose)),
            with: key)
        #expect(request.bytes.count < SignedTransaction.maxOrdinaryEncodedBytes)
        let tooBig = ContractDeployment(
            name: "big", module: Self.module + Array(repeating: 0, count: ContractDeployment.maxModuleBytes))
        let over = try SignedTransaction(
            signing: Transaction(channel: "c", submitter: "r", seq: 1, time: 1, body: .deployContract(tooBig)),
            with: key)
        #expect(throws: LedgerFormatError.self) { try SignedTransaction(decoding: over.bytes) }
    }

    @Test func aTransactionLargerThanABlockIsTooLarge() throws {
        let channel = TestChannel(block: BlockParameters(maxReadings: 10, maxBytes: 2048, timeoutMs: 100))
        var ledger = try AccessFixture(channel: channel, patients: 1, runner: ScriptedRunner.grantAll)
        let deploy = ledger.registrar(
            .deployContract(ContractDeployment(name: "x", module: Self.module + Array(repeating: 0, count: 3000))))
        #expect(ledger.state.check(deploy)?.reason == .tooLarge)
    }

    @Test func professionalsRegisterOnceAndNotUnderAMembersID() throws {
        var ledger = try fixture()
        let key = TestChannel.key(seed: 40).publicKey
        #expect(ledger.state.access.professionals[AccessFixture.researcher]?.organisation == "Uni Lab")
        #expect(ledger.state.access.professionals[AccessFixture.clinician]?.role == .clinician)
        let again = ledger.registrar(
            .registerProfessional(id: AccessFixture.researcher, role: .researcher, key: key, organisation: nil))
        #expect(rule(ledger, [again]) == "transaction.professional-exists")
        let member = ledger.registrar(
            .registerProfessional(id: "manager-1", role: .researcher, key: key, organisation: nil))
        #expect(rule(ledger, [member]) == "transaction.professional-exists")
        let twice = [
            ledger.registrar(.registerProfessional(id: "r-2", role: .researcher, key: key, organisation: nil)),
            ledger.registrar(.registerProfessional(id: "r-2", role: .clinician, key: key, organisation: nil)),
        ]
        #expect(rule(ledger, twice) == "transaction.professional-exists")
    }

    @Test func whoMaySignWhat() throws {
        var ledger = try fixture()
        let researcherKey = ledger.researcherKey
        // A researcher cannot record a consent; a registrar cannot ask for access; a researcher
        // cannot write an access log.
        let consent = ledger.signed(
            .consent(patient: "patient-0", study: "s"), by: AccessFixture.researcher, key: researcherKey)
        #expect(rule(ledger, [consent]) == "transaction.unknown-submitter")
        let asked = ledger.registrar(.accessRequest(studyRequest(.zero)))
        #expect(rule(ledger, [asked]) == "transaction.unknown-submitter")
        let log = ledger.signed(
            .accessLog(
                AccessLogEntry(
                    grant: .zero, requester: AccessFixture.researcher, fetch: .zero, count: 0, servedHash: .zero,
                    servedAt: 0)), by: AccessFixture.researcher, key: researcherKey)
        #expect(rule(ledger, [log]) == "transaction.unknown-submitter")
        // A request signed with another key, or one whose seq was used.
        let forged = ledger.signed(
            .accessRequest(studyRequest(.zero)), by: AccessFixture.researcher, key: ledger.clinicianKey)
        #expect(rule(ledger, [forged]) == "transaction.bad-signature")
        let first = ledger.request(studyRequest(.zero))
        try ledger.commit([first])
        #expect(rule(ledger, [first]) == "transaction.replayed")
        // A manager's check of a request on the committed state.
        #expect(ledger.state.check(ledger.request(studyRequest(.zero))) == nil)
        #expect(ledger.state.check(ledger.request(studyRequest(.zero, kinds: ["0000-0"])))?.reason == .unknownCode)
    }

    @Test func consentsAreRecordedAndWithdrawn() throws {
        var ledger = try fixture()
        try ledger.consent([0, 2], to: "s1")
        #expect(ledger.state.access.consents["s1"] == ["patient-0", "patient-2"])
        #expect(
            rule(ledger, [ledger.registrar(.consent(patient: "patient-0", study: "s1"))])
                == "transaction.consent-exists")
        #expect(
            rule(ledger, [ledger.registrar(.withdrawConsent(patient: "patient-1", study: "s1"))])
                == "transaction.no-consent")
        // Consent and withdraw in one block: the second sees the first.
        #expect(
            rule(
                ledger,
                [
                    ledger.registrar(.consent(patient: "patient-3", study: "s1")),
                    ledger.registrar(.withdrawConsent(patient: "patient-3", study: "s1")),
                ]) == nil)
        try ledger.commit([
            ledger.registrar(.withdrawConsent(patient: "patient-0", study: "s1")),
            ledger.registrar(.withdrawConsent(patient: "patient-2", study: "s1")),
        ])
        #expect(ledger.state.access.consents["s1"] == nil)
    }

    @Test func treatmentsNeedARegisteredClinician() throws {
        var ledger = try fixture()
        #expect(
            rule(ledger, [ledger.registrar(.recordTreatment(clinician: "nobody", patient: "patient-0"))])
                == "transaction.unknown-professional")
        #expect(
            rule(
                ledger, [ledger.registrar(.recordTreatment(clinician: AccessFixture.researcher, patient: "patient-0"))])
                == "transaction.not-a-clinician")
        #expect(
            rule(ledger, [ledger.registrar(.endTreatment(clinician: AccessFixture.clinician, patient: "patient-0"))])
                == "transaction.no-treatment")
        try ledger.commit([ledger.registrar(.recordTreatment(clinician: AccessFixture.clinician, patient: "patient-0"))]
        )
        #expect(ledger.state.access.treatments == [Treatment(clinician: AccessFixture.clinician, patient: "patient-0")])
        #expect(
            rule(ledger, [ledger.registrar(.recordTreatment(clinician: AccessFixture.clinician, patient: "patient-0"))])
                == "transaction.treatment-exists")
        try ledger.commit([ledger.registrar(.endTreatment(clinician: AccessFixture.clinician, patient: "patient-0"))])
        #expect(ledger.state.access.treatments.isEmpty)
    }

    @Test func aContractIsDeployedOnceUnderTheHashOfItsModule() throws {
        var ledger = try fixture()
        let id = try ledger.deploy("study", module: Self.module, parameters: ["k": 4])
        #expect(id == Hash256.sha256(Self.module))
        let deployed = try #require(ledger.state.access.contracts[id])
        #expect(deployed.name == "study")
        #expect(deployed.parameters == ["k": 4])
        #expect(deployed.deployer == "registrar-1")
        #expect(deployed.deployedAt == ledger.state.height)
        let again = ledger.registrar(.deployContract(ContractDeployment(name: "other", module: Self.module)))
        #expect(rule(ledger, [again]) == "transaction.contract-exists")
    }

    @Test func requestsAreDecidedWhenTheirBlockIsChecked() throws {
        var ledger = try fixture()
        let contract = try ledger.deploy("study", module: Self.module)
        let unknown = try ledger.decide(studyRequest(Hash256.sha256([9])))
        #expect(
            unknown.outcome
                == .denied(AccessDenial(.unknownContract, "no contract \(Hash256.sha256([9]).hex) is deployed")))
        let decision = try ledger.decide(studyRequest(contract, kinds: ["8867-4", "8310-5", "8867-4"]))
        guard case .granted(let grant) = decision.outcome else {
            Issue.record("not granted: \(decision.outcome)")
            return
        }
        #expect(grant.id == decision.id)
        #expect(
            grant.scope
                == AccessScope(
                    mode: .readings, kinds: ["8310-5", "8867-4"], from: 10, to: 20, patient: nil, study: "s1"))
        #expect(grant.expiresAt == ledger.state.time + 3_600_000)
        #expect(grant.grantedAt == ledger.state.height && grant.grantedTime == ledger.state.time)
        #expect(decision.position == 0 && decision.height == ledger.state.height)
        #expect(ledger.state.access.grants[grant.id] == grant)
    }

    @Test func aContractSeesTheBlocksEarlierTransactions() throws {
        let runner = ScriptedRunner { _, context, ledger in
            ledger.hasConsented(patient: "patient-1", study: "s1")
                ? .grant(mode: .readings, expiresAt: context.time + 1)
                : .deny(AccessDenial(.contractDenied, "no consent"))
        }
        var ledger = try fixture(runner)
        let contract = try ledger.deploy("study", module: Self.module)
        let checked = try ledger.commit([
            ledger.request(studyRequest(contract)),
            ledger.registrar(.consent(patient: "patient-1", study: "s1")),
            ledger.request(studyRequest(contract)),
        ])
        #expect(checked.access.decisions.count == 2)
        #expect(checked.access.decisions[0].outcome == .denied(AccessDenial(.contractDenied, "no consent")))
        #expect(checked.access.decisions[0].position == 0 && checked.access.decisions[1].position == 2)
        guard case .granted = checked.access.decisions[1].outcome else {
            Issue.record("the second request was not granted")
            return
        }
    }

    @Test func invalidVerdictsBecomeDenials() throws {
        let runner = ScriptedRunner { _, context, _ in
            switch context.request.purpose {
            case "now": .grant(mode: .readings, expiresAt: context.time)
            case "k0": .grant(mode: .aggregates(k: 0), expiresAt: context.time + 5)
            default: .grant(mode: .readings, expiresAt: context.time + 5)
            }
        }
        var ledger = try fixture(runner)
        let contract = try ledger.deploy("study", module: Self.module)
        func code(_ purpose: String, study: String? = "s") throws -> DenialCode? {
            var request = studyRequest(contract, study: study)
            request.purpose = purpose
            if case .denied(let denial) = try ledger.decide(request).outcome { return denial.code }
            return nil
        }
        #expect(try code("now") == .invalidDecision)
        #expect(try code("k0") == .invalidDecision)
        #expect(try code("fine", study: nil) == .invalidDecision)
        #expect(try code("fine") == nil)
    }

    @Test func grantsAreRevokedInALaterBlockOnly() throws {
        var ledger = try fixture()
        let contract = try ledger.deploy("study", module: Self.module)
        let request = ledger.request(studyRequest(contract))
        // A revocation in the same block as the request does not see the grant: whether a block is
        // valid never depends on what a contract decided.
        #expect(
            rule(ledger, [request, ledger.registrar(.revokeGrant(grant: request.id))]) == "transaction.unknown-grant")
        try ledger.commit([request])
        #expect(ledger.state.access.grants[request.id]?.revokedAt == nil)
        try ledger.commit([ledger.registrar(.revokeGrant(grant: request.id))])
        #expect(ledger.state.access.grants[request.id]?.revokedAt == ledger.state.height)
        #expect(ledger.state.access.grants[request.id]?.isLive(at: 0) == false)
        #expect(rule(ledger, [ledger.registrar(.revokeGrant(grant: request.id))]) == "transaction.grant-revoked")
    }

    @Test func accessLogsAreAManagersRecordOfACommittedGrant() throws {
        var ledger = try fixture()
        let contract = try ledger.deploy("study", module: Self.module)
        let request = ledger.request(studyRequest(contract))
        try ledger.commit([request])
        let managerKey = ledger.channel.managerKeys[0]
        func log(_ grant: Hash256, requester: String = AccessFixture.researcher) -> SignedTransaction {
            ledger.signed(
                .accessLog(
                    AccessLogEntry(
                        grant: grant, requester: requester, fetch: .sha256([1]), count: 3, servedHash: .sha256([2]),
                        servedAt: ledger.state.time)), by: "manager-1", key: managerKey)
        }
        #expect(rule(ledger, [log(request.id)]) == nil)
        #expect(rule(ledger, [log(.zero)]) == "transaction.unknown-grant")
        #expect(rule(ledger, [log(request.id, requester: AccessFixture.clinician)]) == "transaction.wrong-requester")
        try ledger.commit([log(request.id)])
    }

    @Test func assemblyIncludesRequestsWithoutRunningContracts() throws {
        var ledger = try fixture()
        let contract = try ledger.deploy("study", module: Self.module)
        let request = ledger.request(studyRequest(contract))
        let assembly = ledger.state.assemble(
            transactions: [request, ledger.registrar(.consent(patient: "patient-0", study: "s1"))], readings: [],
            time: ledger.state.time + 10, proposer: "manager-1")
        #expect(assembly.refusedTransactions.isEmpty)
        #expect(assembly.block.body.transactions == [request.bytes, assembly.block.body.transactions[1]])
        let checked = try ledger.state.check(
            assembly.block, verifier: SequentialSignatureVerifier(), contracts: ledger.runner)
        #expect(checked.access.decisions.map(\.id) == [request.id])
    }
}
