import Foundation
import Logging
import MedLedgerCore
import MedLedgerMQTT
import MedLedgerNode
import MedLedgerStore
import MedLedgerTestSupport
import Testing

/// Access contracts end to end over the network, as users run them: `medledger devnet` (a real
/// broker and real node processes), registrars' and researchers' commands publishing their
/// transactions and waiting for the commit, researchers fetching from a manager over MQTT 5 and
/// verifying what they get against the genesis alone.
@Suite("Access over a devnet: managers serve researchers only what grants cover", .serialized, .network)
struct AccessNetworkTests {
    static let study = "bp-study"
    static let patients = (0..<7).map { "p-\($0)" }
    static let readingsEach = 3

    /// The devnet, the channel's files and the professionals' keys.
    struct Network {
        let directory: TemporaryDirectory
        let devnet: RunningDevnet
        let file: DevnetFile
        let genesis: Genesis

        var dir: String { devnet.directory }
        var broker: String { "\(file.broker.host):\(file.broker.port)" }

        func run(_ arguments: [String]) throws -> ToolRunner.Result {
            try ToolRunner.run(ToolRunner.medledgerPath, arguments, in: directory.path)
        }

        /// Runs medledger and expects success.
        @discardableResult
        func ok(_ arguments: String...) throws -> String {
            let result = try run(arguments)
            guard result.status == 0 else {
                throw FixtureError("medledger \(arguments.joined(separator: " ")): \(result.stdout) \(result.stderr)")
            }
            return result.stdout
        }

        /// A client of the test's own on the devnet's broker.
        func client(_ id: String) async throws -> MQTTClient {
            let client = try MQTTClient(
                configuration: MQTTConfiguration(
                    host: file.broker.host, port: file.broker.port, clientID: "\(id)-\(UUID().uuidString.prefix(6))"),
                logger: Logger(label: "medledger.tests"))
            try await within(.seconds(10), "connect \(id)") { try await client.connect() }
            return client
        }

        /// The JSON `medledger access status --devnet DIR --id ID` prints for one request.
        func status(_ id: String) throws -> [String: Any] {
            let text = try ok("access", "status", "--devnet", dir, "--id", id)
            let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
            guard let request = (object?["requests"] as? [[String: Any]])?.first else {
                throw FixtureError("no request in: \(text)")
            }
            return request
        }

        /// Fetches under a grant with `medledger access fetch --devnet`, returning the verified readings'
        /// (patient, device) pairs, or the process' result when it fails.
        func fetch(_ requester: String, grant: String, save: String? = nil) throws -> Result<
            [(patient: String, device: String)], FixtureError
        > {
            let output = directory.file("fetch-\(UUID().uuidString.prefix(6)).json")
            var arguments = [
                "access", "fetch", "--devnet", dir, "--key", directory.file("\(requester).key"), "--requester",
                requester, "--grant", grant, "--output", output, "--manager", "manager-1",
            ]
            if let save { arguments += ["--save-response", save] }
            let result = try run(arguments)
            guard result.status == 0 else { return .failure(FixtureError(result.stdout + result.stderr)) }
            let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: output)))
            let readings = (object as? [String: Any])?["readings"] as? [[String: Any]] ?? []
            return .success(
                readings.map { (($0["patient"] as? String) ?? "", ($0["device"] as? String) ?? "") })
        }
    }

    @Test func consentsGrantsAndContractsDecideWhatAManagerServesOverMQTT() async throws {
        let directory = try TemporaryDirectory("access-net")
        defer { directory.remove() }
        let devnet = try await RunningDevnet.start(in: directory.path, channel: "access-net")
        let network: Network
        do {
            let file = try DevnetFile.load(directory: devnet.directory)
            let genesis = try JSONDecoder().decode(
                Genesis.self, from: Data(contentsOf: URL(fileURLWithPath: file.genesis)))
            network = Network(directory: directory, devnet: devnet, file: file, genesis: genesis)
            try await scenario(network)
        } catch {
            let result = devnet.stop()
            throw FixtureError("\(error)\n--- devnet:\n\(result.stdout)\n\(result.stderr)")
        }
        // Ctrl-C: the devnet stops every node and verifies every replica (re-deciding every request).
        let result = devnet.stop()
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("every replica verifies from genesis"), "\(result.stdout)")
    }

    func scenario(_ network: Network) async throws {
        let dir = network.dir
        let researcherKey = TestChannel.key(seed: 61)
        let clinicianKey = TestChannel.key(seed: 62)
        for (id, key) in [("researcher-1", researcherKey), ("clinician-1", clinicianKey)] {
            try key.pemRepresentation.write(
                toFile: network.directory.file("\(id).key"), atomically: true, encoding: .utf8)
            try key.publicKey.pemRepresentation.write(
                toFile: network.directory.file("\(id).pub"), atomically: true, encoding: .utf8)
        }

        // The registrar: devices for seven patients (in one batch, from the test's own client), then
        // the professionals, consents, a treatment and the contracts with the command line.
        let deviceKeys = (0..<Self.patients.count).map { TestChannel.deviceKey(40 + $0) }
        let registrar = try await network.client("registrar")
        let outcomes = try await TransactionSubmitter(
            client: registrar, channel: network.genesis.channel, submitter: network.file.registrarId,
            key: try PrivateKey(pem: String(contentsOfFile: network.file.registrarKey, encoding: .utf8))
        ).submit(
            deviceKeys.enumerated().map {
                .registerDevice(
                    device: "dev-\($0.offset)", key: $0.element.publicKey, patient: Self.patients[$0.offset])
            }, timeout: transactionWait)
        registrar.shutdown()
        #expect(outcomes.allSatisfy { if case .committed = $0 { true } else { false } }, "\(outcomes)")

        for (id, role) in [("researcher-1", "researcher"), ("clinician-1", "clinician")] {
            let out = try network.ok(
                "professional", "register", "--devnet", dir, "--id", id, "--role", role, "--public-key",
                network.directory.file("\(id).pub"))
            #expect(out.contains("committed at height"))
        }
        for patient in Self.patients.prefix(3) {
            try network.ok("consent", "record", "--devnet", dir, "--patient", patient, "--study", Self.study)
        }
        try network.ok("treatment", "record", "--devnet", dir, "--clinician", "clinician-1", "--patient", "p-3")
        var contracts: [String: String] = [:]
        for (name, extra) in [
            ("consent-study", [String]()), ("aggregate", []), ("clinician", ["--param", "duration_ms=8000"]),
            ("test-loop-forever", ["--force"]), ("test-trap", ["--force"]),
        ] {
            let path = "\(ShippedContracts.directory)/\(name).wasm"
            let out = try network.run(
                ["contract", "deploy", "--devnet", dir, "--wasm", path, "--name", name] + extra)
            #expect(out.status == 0, "\(name): \(out.stdout) \(out.stderr)")
            contracts[name] = Hash256.sha256(try ShippedContracts.module(name)).hex
        }

        // Readings of every patient's device, committed.
        try await sendReadings(network, keys: deviceKeys, seqs: 1...UInt64(Self.readingsEach))

        // A researcher's request under the consent-study contract: granted.
        let requestOutput = try network.ok(
            "access", "request", "--devnet", dir, "--submitter", "researcher-1", "--key",
            network.directory.file("researcher-1.key"), "--contract", contracts["consent-study"]!, "--kinds",
            "8480-6,8462-4", "--from", "0", "--to", "2100-01-01T00:00:00Z", "--purpose", "hypertension cohort",
            "--study", Self.study)
        #expect(requestOutput.contains("granted: readings"), "\(requestOutput)")
        let grant = try #require(Self.requestID(requestOutput))

        // Consented patients' readings are served, each verified; the other patients' are not.
        let response = network.directory.file("response.cbor")
        let served = try network.fetch("researcher-1", grant: grant, save: response).get()
        #expect(Set(served.map(\.patient)) == ["p-0", "p-1", "p-2"])
        #expect(served.count == 3 * Self.readingsEach)

        // The researcher's check: the answer as served verifies; with one byte of a served reading
        // changed, it fails, naming the reading.
        try network.ok("access", "verify", "--response", response, "--genesis", network.file.genesis)
        let tampered = network.directory.file("tampered.cbor")
        try Self.tamper(response, into: tampered)
        let check = try network.run(["access", "verify", "--response", tampered, "--genesis", network.file.genesis])
        #expect(check.status == 1)
        #expect(check.stdout.contains("FAIL reading 0"), "\(check.stdout) \(check.stderr)")

        // A withdrawn consent takes effect at the next read.
        try network.ok("consent", "withdraw", "--devnet", dir, "--patient", "p-1", "--study", Self.study)
        let afterWithdrawal = try network.fetch("researcher-1", grant: grant).get()
        #expect(Set(afterWithdrawal.map(\.patient)) == ["p-0", "p-2"])

        // The aggregate contract refuses a cohort below k (2 consenting patients, k = 5). (Through the
        // broker, as in a deployment: the decision comes from asking a manager.)
        let aggregate = try network.ok(
            "access", "request", "--broker", network.broker, "--genesis", network.file.genesis, "--submitter",
            "researcher-1", "--key",
            network.directory.file("researcher-1.key"), "--contract", contracts["aggregate"]!, "--kinds", "8480-6",
            "--from", "0", "--to", "2100-01-01T00:00:00Z", "--purpose", "daily means", "--study", Self.study)
        #expect(aggregate.contains("denied: contract-denied"), "\(aggregate)")

        // Three more consents make the cohort k: granted, aggregates only, and a fetch over MQTT
        // returns per-day aggregates of the five consenting patients and no reading.
        for patient in Self.patients.suffix(3) {
            try network.ok("consent", "record", "--devnet", dir, "--patient", patient, "--study", Self.study)
        }
        let cohort = try network.ok(
            "access", "request", "--broker", network.broker, "--genesis", network.file.genesis, "--submitter",
            "researcher-1", "--key", network.directory.file("researcher-1.key"), "--contract",
            contracts["aggregate"]!, "--kinds", "8480-6", "--from", "0", "--to", "2100-01-01T00:00:00Z",
            "--purpose", "daily means", "--study", Self.study)
        #expect(cohort.contains("granted: aggregates"), "\(cohort)")
        let aggregateGrant = try #require(Self.requestID(cohort))
        let aggregatesFile = network.directory.file("aggregates.json")
        let fetched = try network.run([
            "access", "fetch", "--devnet", dir, "--key", network.directory.file("researcher-1.key"), "--requester",
            "researcher-1", "--grant", aggregateGrant, "--output", aggregatesFile, "--manager", "manager-1",
        ])
        #expect(fetched.status == 0, "\(fetched.stdout) \(fetched.stderr)")
        let answered = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: aggregatesFile)))
        let object = try #require(answered as? [String: Any])
        let rows = object["aggregates"] as? [[String: Any]] ?? []
        let suppressed = object["suppressed"] as? Int ?? -1
        #expect(object["readings"] == nil)
        #expect(!rows.isEmpty || suppressed > 0)
        #expect(rows.allSatisfy { $0["code"] as? String == "8480-6" && ($0["patients"] as? Int ?? 0) >= 5 })
        // One UTC day holds them all, unless the readings straddle midnight: then a day's group
        // can fall below k and is counted as suppressed instead.
        let counted = rows.compactMap { $0["count"] as? Int }.reduce(0, +)
        #expect(counted == 5 * Self.readingsEach || suppressed > 0, "\(rows), \(suppressed) suppressed")

        // Contracts that loop for ever or trap are denied with the reason; the council goes on.
        for (name, code) in [("test-loop-forever", "out-of-fuel"), ("test-trap", "trap")] {
            let out = try network.ok(
                "access", "request", "--devnet", dir, "--submitter", "researcher-1", "--key",
                network.directory.file("researcher-1.key"), "--contract", contracts[name]!, "--kinds", "8480-6",
                "--from", "0", "--to", "2100-01-01T00:00:00Z", "--purpose", "misbehaving contract", "--study",
                Self.study)
            #expect(out.contains("denied: \(code)"), "\(name): \(out)")
            let status = try network.status(try #require(Self.requestID(out)))
            #expect((status["denial"] as? [String: Any])?["code"] as? String == code)
        }
        try await sendReadings(
            network, keys: deviceKeys, seqs: UInt64(Self.readingsEach + 1)...UInt64(Self.readingsEach + 1))

        // A clinician's time-limited grant to a patient they treat: served until it expires.
        let clinical = try network.ok(
            "access", "request", "--devnet", dir, "--submitter", "clinician-1", "--key",
            network.directory.file("clinician-1.key"), "--contract", contracts["clinician"]!, "--kinds",
            "8480-6,8462-4", "--from", "0", "--to", "2100-01-01T00:00:00Z", "--purpose", "follow-up",
            "--patient", "p-3")
        #expect(clinical.contains("granted: readings"), "\(clinical)")
        let clinicalGrant = try #require(Self.requestID(clinical))
        let treated = try network.fetch("clinician-1", grant: clinicalGrant).get()
        #expect(Set(treated.map(\.patient)) == ["p-3"])
        #expect(treated.count == Self.readingsEach + 1)
        let expiresAt = try #require(
            (try network.status(clinicalGrant)["grant"] as? [String: Any])?["expiresAt"] as? UInt64)
        try await eventually(.seconds(30), "the clinician's grant expires") {
            UInt64(Date().timeIntervalSince1970 * 1000) > expiresAt + 50
        }
        guard case .failure(let expired) = try network.fetch("clinician-1", grant: clinicalGrant) else {
            Issue.record("an expired grant was served")
            return
        }
        #expect(expired.description.contains("refused: expired"), "\(expired)")

        // A revoked grant refuses.
        try network.ok("access", "revoke", "--devnet", dir, "--grant", grant)
        guard case .failure(let revoked) = try network.fetch("researcher-1", grant: grant) else {
            Issue.record("a revoked grant was served")
            return
        }
        #expect(revoked.description.contains("refused: revoked"), "\(revoked)")

        // Every served fetch is an access log on the chain: who, which grant, how many, when.
        let reads = try network.status(grant)["reads"] as? [[String: Any]] ?? []
        #expect(reads.compactMap { $0["count"] as? Int }.sorted() == [2 * Self.readingsEach, 3 * Self.readingsEach])
        #expect(reads.allSatisfy { $0["manager"] as? String == "manager-1" })
        let clinicalReads = try network.status(clinicalGrant)["reads"] as? [[String: Any]] ?? []
        #expect(clinicalReads.compactMap { $0["count"] as? Int } == [Self.readingsEach + 1])

        // The researcher, with no store of their own, asks a manager instead: the same decision and
        // reads; and a manager tells no one else about them.
        let asked = try network.ok(
            "access", "status", "--broker", network.broker, "--genesis", network.file.genesis, "--key",
            network.directory.file("researcher-1.key"), "--requester", "researcher-1", "--id", grant, "--manager",
            "manager-2")
        let answer = try #require(
            (try JSONSerialization.jsonObject(with: Data(asked.utf8)) as? [String: Any])?["requests"]
                as? [[String: Any]]
        ).first
        #expect(answer?["outcome"] as? String == "granted")
        #expect((answer?["grant"] as? [String: Any])?["revokedAt"] as? Int != nil)
        #expect(
            (answer?["reads"] as? [[String: Any]] ?? []).compactMap { $0["count"] as? Int }.sorted()
                == [2 * Self.readingsEach, 3 * Self.readingsEach])
        let foreign = try network.run([
            "access", "status", "--devnet", dir, "--key", network.directory.file("clinician-1.key"), "--requester",
            "clinician-1", "--id", grant,
        ])
        #expect(foreign.status != 0)
        #expect(foreign.stderr.contains("unknown-grant"), "\(foreign.stdout) \(foreign.stderr)")
    }

    /// Publishes blood-pressure readings of every device and waits for their committed receipts.
    func sendReadings(_ network: Network, keys: [PrivateKey], seqs: ClosedRange<UInt64>) async throws {
        let topics = ChannelTopics(channel: network.genesis.channel)
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, key) in keys.enumerated() {
                let device = "dev-\(index)"
                let client = try await network.client(device)
                try await client.subscribe(topics.receipts(device))
                group.addTask {
                    defer { client.shutdown() }
                    let waiting = Task {
                        try await within(.seconds(60), "\(device)'s readings committed") {
                            var committed = Set<UInt64>()
                            for await message in client.messages {
                                guard
                                    let receipt = try? Receipt.open(
                                        message.payload, topic: message.topic, managers: network.genesis.managers
                                    ).receipt
                                else { continue }
                                if case .committed = receipt.status { committed.insert(receipt.seq) }
                                if committed.isSuperset(of: seqs) { return }
                            }
                        }
                    }
                    for seq in seqs {
                        let reading = Reading(
                            channel: network.genesis.channel, device: device, seq: seq, time: now - 60_000 + seq,
                            records: [
                                ReadingRecord(code: "8480-6", unit: "mm[Hg]", value: .integer(110 + Int64(seq))),
                                ReadingRecord(code: "8462-4", unit: "mm[Hg]", value: .integer(70 + Int64(index))),
                            ])
                        try await client.publish(
                            topic: topics.readings(device),
                            payload: try SignedReading(signing: reading, with: key).bytes)
                    }
                    try await waiting.value
                }
            }
            try await group.waitForAll()
        }
    }

    /// The request id in `access request`'s output ("... request ID; committed at height ...").
    static func requestID(_ output: String) -> String? {
        guard let range = output.range(of: ": request ") else { return nil }
        let id = output[range.upperBound...].prefix(64)
        return id.count == 64 && id.allSatisfy(\.isHexDigit) ? String(id) : nil
    }

    /// Copies a response, changing the last byte of the first served reading (its signature).
    static func tamper(_ path: String, into out: String) throws {
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let response = try FetchResponse(decoding: bytes)
        guard case .readings(let readings, _, _) = response.content, let first = readings.first else {
            throw FixtureError("the response holds no reading")
        }
        let reading = first.bytes
        guard
            let start = (0...(bytes.count - reading.count)).first(where: {
                bytes[$0..<$0 + reading.count].elementsEqual(reading)
            })
        else { throw FixtureError("the reading's bytes are not in the response") }
        bytes[start + reading.count - 1] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: out))
    }
}
