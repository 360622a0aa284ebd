import Foundation
import MedLedgerCore
import MedLedgerTestSupport
import Testing

/// The C reference device (firmware-sim/c), built by scripts/build-device.sh and run as a real
/// process against real Mosquitto brokers. These tests play the manager's part by hand: they
/// read what the device publishes and answer with receipts.
@Suite("C reference device", .network)
struct CDeviceTests {
    @Test func itsUnitTestsPassAgainstTheSharedVectors() throws {
        _ = try CDevice.binary.get()
        let scratch = try TemporaryDirectory("device-unit-tests")
        defer { scratch.remove() }
        let result = try ToolRunner.run(
            CDevice.unitTests, ["\(repositoryRoot)/firmware-sim/vectors"], in: scratch.path, timeout: 60)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("checks passed"))
    }

    /// Keys as a user makes them (`medledger keygen`, `openssl genpkey`), readings of several kinds.
    @Test(arguments: [
        (SignatureAlgorithm.ed25519, DeviceSetup.KeySource.keygen, "bp"),
        (SignatureAlgorithm.es256, DeviceSetup.KeySource.openssl, "vitals"),
        (SignatureAlgorithm.ed25519, DeviceSetup.KeySource.openssl, "glucose-mmol"),
    ])
    func publishesReadingsThatDecodeAndVerify(
        _ algorithm: SignatureAlgorithm, _ source: DeviceSetup.KeySource, _ kind: String
    ) async throws {
        try await DeviceSetup.with(algorithm, key: source) { setup in
            let broker = try await TestBroker.start(for: setup)
            let subscriber = try await Subscriber.start(
                broker: broker, topics: ["medledger/v1/\(setup.channel)/readings/#"], for: setup)
            let start: UInt64 = 1_700_000_000_000
            let device = try setup.start(
                brokers: [broker.address],
                ["--count", "3", "--interval-ms", "40", "--start-time-ms", "\(start)", "--kind", kind])
            try await eventually("3 readings", context: device.process.report + subscriber.process.report) {
                subscriber.messages.count >= 3
            }
            #expect(await device.stop() == 0)
            await subscriber.stop()
            await broker.stop()

            let expectedCodes: [String: [String]] = [
                "bp": ["8480-6", "8462-4"], "vitals": ["8867-4", "59408-5", "8310-5"], "glucose-mmol": ["15074-8"],
            ]
            let kinds = KindTable()
            let readings = try subscriber.readings()
            #expect(readings.count == 3)
            for (index, (topic, signed)) in readings.enumerated() {
                #expect(topic == setup.readingsTopic)
                try signed.message.verify(with: setup.publicKey)
                #expect(signed.message.algorithm == algorithm)
                #expect(signed.keyID == setup.device)
                #expect(signed.reading.device == setup.device)
                #expect(signed.reading.channel == setup.channel)
                #expect(signed.reading.seq == UInt64(index + 1))
                #expect(signed.reading.time == start + UInt64(index) * 40)
                #expect(signed.reading.records.map(\.code) == expectedCodes[kind])
                for record in signed.reading.records {
                    let known = try #require(kinds[record.code])
                    #expect(record.unit == known.unit)
                    #expect(known.isPlausible(record.value.doubleValue), "\(record)")
                }
                #expect(signed.reading.payloadBytes() == signed.message.payload, "the payload is deterministic CBOR")
                #expect(signed.bytes.count <= Reading.maxEncodedBytes)
            }
            if kind == "glucose-mmol" {
                #expect(
                    readings.allSatisfy { if case .float = $0.signed.reading.records[0].value { true } else { false } })
            }

            // The project's own tool agrees.
            try Data(readings[0].signed.bytes).write(to: URL(fileURLWithPath: setup.directory.file("r1.cose")))
            let inspected = try ToolRunner.medledger(
                "reading", "inspect", "r1.cose", "--public-key", setup.publicKeyPath, in: setup.directory.path)
            #expect(inspected.status == 0, "\(inspected.stdout)\n\(inspected.stderr)")
            #expect(inspected.stdout.contains("\"signature\" : \"valid\""))

            #expect(device.seqs("published") == [1, 2, 3])
            #expect(device.seqs("sampled") == [1, 2, 3])
            #expect(device.events("broker").first?["address"] == broker.address)
            let alg = algorithm == .ed25519 ? "-8" : "-7"
            #expect(device.events("start").first?["alg"] == alg)
            #expect(device.index(of: "stopped", ["pending": "3"]) != nil)
            #expect(try String(contentsOfFile: setup.seqPath, encoding: .utf8) == "3\n")
        }
    }

    /// Accepted readings are kept, committed and rejected ones are dropped: after a reconnect the
    /// device resends exactly the readings not yet committed, with the very same bytes.
    @Test func resendsExactlyTheUncommittedReadingsAfterAReconnect() async throws {
        try await DeviceSetup.with { setup in
            let broker = try await TestBroker.start(for: setup)
            let subscriber = try await Subscriber.start(
                broker: broker, topics: [setup.readingsTopic], for: setup)
            let device = try setup.start(
                brokers: [broker.address],
                [
                    "--count", "6", "--interval-ms", "20", "--resend-ms", "0", "--exit-when-committed", "--timeout-ms",
                    "60000",
                ])
            let report = { device.process.report + subscriber.process.report }
            try await eventually("seqs 1...6", context: report()) { try subscriber.seqs() == [1, 2, 3, 4, 5, 6] }
            let firstCopies = Dictionary(
                uniqueKeysWithValues: try subscriber.readings().map { ($0.signed.reading.seq, $0.signed.bytes) })

            for seq: UInt64 in 1...6 { try setup.sendReceipt(Receipt(seq: seq, status: .accepted), port: broker.port) }
            for seq: UInt64 in 1...3 { try setup.sendReceipt(DeviceSetup.committed(seq, height: 4), port: broker.port) }
            try setup.sendReceipt(Receipt(seq: 5, status: .rejected(.implausibleValue)), port: broker.port)
            try MQTTClient.publish(port: broker.port, topic: setup.receiptsTopic, payload: [0xFF, 0x00])
            try setup.sendReceipt(DeviceSetup.committed(2, height: 4), port: broker.port)  // a duplicate
            // Forged final receipts for 4 and 6: one unsigned, one signed in manager-1's name with
            // another key. The device ignores them (and resends 4 and 6 below).
            try MQTTClient.publish(
                port: broker.port, topic: setup.receiptsTopic, payload: DeviceSetup.committed(4, height: 4).encoded())
            try MQTTClient.publish(
                port: broker.port, topic: setup.receiptsTopic,
                payload: try DeviceSetup.committed(6, height: 4).published(
                    topic: setup.receiptsTopic, manager: "manager-1", key: PrivateKey(generating: .ed25519)))
            try await device.waitFor("untrusted-receipt", ["why": "unsigned"])
            try await device.waitFor("untrusted-receipt", ["why": "bad-signature"])
            try await device.waitFor("committed", ["seq": "3", "height": "4"])
            try await device.waitFor("rejected", ["seq": "5", "reason": "implausible-value"])
            try await device.waitFor("bad-receipt")
            try await device.waitFor("stale", ["seq": "2", "status": "committed"])
            #expect(device.seqs("accepted") == [1, 2, 3, 4, 5, 6])
            #expect(device.seqs("committed") == [1, 2, 3])

            // Take the device's client id over: the broker drops its connection, and it reconnects.
            try MQTTClient.publish(
                port: broker.port, topic: "probe/takeover", payload: Array("x".utf8), clientID: setup.device)
            try await device.waitFor("broker-lost")
            try await eventually("a reconnect", context: report()) { device.events("broker").count >= 2 }
            try await eventually("the resends of 4 and 6", context: report()) {
                let seqs = try subscriber.seqs()
                return seqs.filter { $0 == 6 }.count >= 2
            }
            let seqs = try subscriber.seqs()
            #expect(Array(seqs.dropFirst(6).prefix(2)) == [4, 6], "the device resends oldest first: \(seqs)")
            for seq: UInt64 in [1, 2, 3, 5] {
                #expect(seqs.filter { $0 == seq }.count == 1, "seq \(seq) was committed or rejected: never sent again")
            }
            for (_, signed) in try subscriber.readings() {
                #expect(signed.bytes == firstCopies[signed.reading.seq], "a resend carries the very same bytes")
            }
            #expect(device.seqs("resent") == [4, 6])

            for seq: UInt64 in [4, 6] {
                try setup.sendReceipt(DeviceSetup.committed(seq, height: 5), port: broker.port)
            }
            #expect(try await device.waitForExit() == 4, "done, but one reading was rejected")
            #expect(device.index(of: "done", ["sampled": "6", "committed": "5", "rejected": "1"]) != nil)
        }
    }

    @Test func exitsZeroOnceEveryReadingIsCommitted() async throws {
        try await DeviceSetup.with { setup in
            let broker = try await TestBroker.start(for: setup)
            let device = try setup.start(
                brokers: [broker.address], ["--count", "2", "--interval-ms", "10", "--exit-when-committed"])
            try await device.waitFor("published", ["seq": "2"])
            for seq: UInt64 in [2, 1] { try setup.sendReceipt(DeviceSetup.committed(seq), port: broker.port) }
            #expect(try await device.waitForExit() == 0)
            #expect(device.index(of: "done", ["sampled": "2", "committed": "2", "rejected": "0"]) != nil)

            let timingOut = try setup.start(
                brokers: [broker.address],
                ["--count", "1", "--exit-when-committed", "--timeout-ms", "300"], name: "device-timeout")
            #expect(try await timingOut.waitForExit() == 3)
            #expect(timingOut.index(of: "timeout", ["pending": "1"]) != nil)
            #expect(timingOut.seqs("published") == [3], "the seq file carried on from the first run")
        }
    }

    /// The first broker of the list is down from the start: the device goes to the second.
    @Test func failsOverWhenTheFirstBrokerIsDown() async throws {
        try await DeviceSetup.with { setup in
            let dead = "127.0.0.1:\(try freeLoopbackPort())"
            let broker = try await TestBroker.start(for: setup)
            let subscriber = try await Subscriber.start(
                broker: broker, topics: [setup.readingsTopic], for: setup)
            let device = try setup.start(
                brokers: [dead, broker.address],
                ["--count", "3", "--interval-ms", "20", "--exit-when-committed", "--timeout-ms", "60000"])
            try await eventually("seqs 1...3 on the second broker", context: device.process.report) {
                try subscriber.seqs() == [1, 2, 3]
            }
            let down = try #require(device.index(of: "broker-down", ["address": dead]))
            let up = try #require(device.index(of: "broker", ["address": broker.address]))
            #expect(down < up)
            for seq: UInt64 in 1...3 { try setup.sendReceipt(DeviceSetup.committed(seq), port: broker.port) }
            #expect(try await device.waitForExit() == 0)
        }
    }

    /// A broker that accepts the TCP connection but never answers CONNECT is given up after the
    /// connect timeout, and the next one is used.
    @Test func failsOverFromABrokerThatNeverAnswers() async throws {
        try await DeviceSetup.with { setup in
            let silent = try SilentListener()
            defer { silent.close() }
            let broker = try await TestBroker.start(for: setup)
            let device = try setup.start(
                brokers: ["127.0.0.1:\(silent.port)", broker.address],
                ["--count", "1", "--connect-timeout-ms", "400", "--exit-when-committed", "--timeout-ms", "30000"])
            try await device.waitFor("published", ["seq": "1"])
            let down = try #require(device.events("broker-down").first)
            #expect(down["address"] == "127.0.0.1:\(silent.port)")
            #expect(down["reason"] == "no CONNACK within 400 ms")
            #expect(device.events("broker").map { $0["address"] } == [broker.address])
            try setup.sendReceipt(DeviceSetup.committed(1), port: broker.port)
            #expect(try await device.waitForExit() == 0)
        }
    }

    /// The broker in use stops mid-run: the backlog (everything not yet committed, including
    /// what was sampled while offline) goes to the next broker of the list.
    @Test func movesItsBacklogToTheNextBrokerWhenOneStops() async throws {
        try await DeviceSetup.with { setup in
            let first = try await TestBroker.start(for: setup)
            let second = try await TestBroker.start(for: setup)
            let onFirst = try await Subscriber.start(broker: first, topics: [setup.readingsTopic], for: setup)
            let onSecond = try await Subscriber.start(
                broker: second, topics: [setup.readingsTopic], for: setup)
            let device = try setup.start(
                brokers: [first.address, second.address],
                [
                    "--count", "6", "--interval-ms", "150", "--resend-ms", "0", "--exit-when-committed", "--timeout-ms",
                    "60000",
                ])
            let report = { device.process.report }
            try await eventually("seqs 1 and 2 on the first broker", context: report()) {
                try onFirst.seqs().starts(with: [1, 2])
            }
            try setup.sendReceipt(DeviceSetup.committed(1), port: first.port)
            try await device.waitFor("committed", ["seq": "1"])
            let bytesOnFirst = try onFirst.readings().first { $0.signed.reading.seq == 2 }?.signed.bytes
            await first.stop()

            try await device.waitFor("broker", ["address": second.address])
            try await eventually("the backlog 2...6 on the second broker", context: report()) {
                Set(try onSecond.seqs()) == Set(2...6)
            }
            #expect(device.index(of: "broker-lost", ["address": first.address]) != nil)
            #expect(device.index(of: "broker-down", ["address": first.address]) != nil)
            #expect(try !onSecond.seqs().contains(1), "a committed reading is not resent")
            #expect(try onSecond.readings().first { $0.signed.reading.seq == 2 }?.signed.bytes == bytesOnFirst)
            for seq: UInt64 in 2...6 { try setup.sendReceipt(DeviceSetup.committed(seq, height: 2), port: second.port) }
            #expect(try await device.waitForExit() == 0)
            #expect(device.index(of: "done", ["sampled": "6", "committed": "6", "rejected": "0"]) != nil)
        }
    }

    /// With nothing committed the ring fills and the device stops sampling (it never overwrites
    /// an unacknowledged reading); each committed reading makes room for one more sample.
    @Test func aFullRingStopsSamplingUntilReadingsAreCommitted() async throws {
        try await DeviceSetup.with { setup in
            let broker = try await TestBroker.start(for: setup)
            let device = try setup.start(
                brokers: [broker.address], ["--count", "100", "--interval-ms", "1", "--resend-ms", "0"])
            try await device.waitFor("ring-full")
            let capacity = try #require(device.events("ring-full").first?["capacity"].flatMap { Int($0) })
            #expect(capacity == 64)
            #expect(device.seqs("sampled") == Array(1...UInt64(capacity)))
            try await device.waitFor("published", ["seq": "\(capacity)"])

            for seq: UInt64 in 1...6 { try setup.sendReceipt(DeviceSetup.committed(seq), port: broker.port) }
            try await device.waitFor("committed", ["seq": "6"])
            let last = UInt64(capacity + 6)
            try await device.waitFor("sampled", ["seq": "\(last)"])
            let sampledLast = try #require(device.index(of: "sampled", ["seq": "\(last)"]))
            try await device.waitFor("ring-full", after: sampledLast)
            #expect(device.seqs("sampled") == Array(1...last), "exactly one sample per committed reading")
            #expect(await device.stop() == 0)
            #expect(device.index(of: "stopped", ["pending": "\(capacity)"]) != nil)
        }
    }

    /// While connected, a reading left unanswered for --resend-ms is sent again, until committed.
    @Test func resendsUnansweredReadingsPeriodically() async throws {
        try await DeviceSetup.with { setup in
            let broker = try await TestBroker.start(for: setup)
            let device = try setup.start(
                brokers: [broker.address], ["--count", "2", "--interval-ms", "10", "--resend-ms", "150"])
            try await device.waitFor("resent", ["seq": "1"])
            try await device.waitFor("resent", ["seq": "2"])
            try setup.sendReceipt(DeviceSetup.committed(1), port: broker.port)
            try await device.waitFor("committed", ["seq": "1"])
            let committedAt = try #require(device.index(of: "committed", ["seq": "1"]))
            try await eventually("two more resends of seq 2", context: device.process.report) {
                device.lines.dropFirst(committedAt + 1).filter { $0 == "resent seq=2" }.count >= 2
            }
            #expect(!device.lines.dropFirst(committedAt + 1).contains("resent seq=1"))
        }
    }

    /// The seq file survives restarts: a new run continues after the last seq used, and a
    /// damaged file stops the device rather than risk reusing a seq.
    @Test func neverReusesASeqAcrossRestarts() async throws {
        try await DeviceSetup.with { setup in
            let broker = try await TestBroker.start(for: setup)
            let subscriber = try await Subscriber.start(
                broker: broker, topics: [setup.readingsTopic], for: setup)
            for run in 0..<2 {
                let device = try setup.start(
                    brokers: [broker.address], ["--count", "2", "--interval-ms", "10"], name: "device-\(run)")
                try await device.waitFor("published", ["seq": "\(2 * run + 2)"])
                #expect(device.events("start").first?["next-seq"] == "\(2 * run + 1)")
                await device.stop()
            }
            try await eventually("seqs 1...4", context: subscriber.process.report) {
                try subscriber.seqs() == [1, 2, 3, 4]
            }

            try "4x\n".write(toFile: setup.seqPath, atomically: true, encoding: .utf8)
            let damaged = try setup.start(brokers: [broker.address], ["--count", "1"], name: "device-damaged")
            #expect(try await damaged.waitForExit() == 1)
            #expect(damaged.process.stderr.contains(setup.seqPath))
            #expect(damaged.seqs("sampled").isEmpty)
        }
    }

    /// Wrong credentials are a refused CONNACK, named; the right ones connect.
    @Test func usesItsMQTTCredentials() async throws {
        try await DeviceSetup.with { setup in
            let passwords = setup.directory.file("passwords")
            let made = try ToolRunner.run(
                "/usr/bin/mosquitto_passwd", ["-b", "-c", passwords, setup.device, "s3cret"], in: setup.directory.path)
            #expect(made.status == 0, "\(made.stderr)")
            let manager = try ToolRunner.run(
                "/usr/bin/mosquitto_passwd", ["-b", passwords, "manager-1", "m4nager"], in: setup.directory.path)
            #expect(manager.status == 0, "\(manager.stderr)")
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: passwords)
            let broker = try await TestBroker.start(for: setup, extraConfig: ["password_file \(passwords)"])

            let refused = try setup.start(
                brokers: [broker.address], ["--count", "1", "--password", "wrong", "--timeout-ms", "1500"],
                name: "refused")
            #expect(try await refused.waitForExit() == 3)
            let down = try #require(refused.events("broker-down").first)
            #expect(down["reason"]?.contains("not authorised") == true, "\(down)")
            #expect(refused.events("broker").isEmpty)

            let accepted = try setup.start(
                brokers: [broker.address], ["--count", "1", "--password", "s3cret", "--exit-when-committed"],
                name: "accepted")
            try await accepted.waitFor("published", ["seq": "2"])
            try setup.sendReceipt(
                DeviceSetup.committed(2), port: broker.port, credentials: ("manager-1", "m4nager"))
            #expect(try await accepted.waitForExit() == 0)
        }
    }

    @Test func connectsOverTLS() async throws {
        try await DeviceSetup.with { setup in
            let path = setup.directory.path
            let openssl = "/usr/bin/openssl"
            let steps: [[String]] = [
                [
                    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                    "ca.key",
                    "-out", "ca.crt", "-subj", "/CN=medledger-test-ca", "-days", "1",
                ],
                [
                    "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "server.key",
                    "-out", "server.csr", "-subj", "/CN=127.0.0.1",
                ],
                [
                    "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out",
                    "server.crt", "-days", "1", "-extfile", "san.ext",
                ],
            ]
            try "subjectAltName=IP:127.0.0.1\n".write(toFile: "\(path)/san.ext", atomically: true, encoding: .utf8)
            for step in steps {
                let result = try ToolRunner.run(openssl, step, in: path)
                #expect(result.status == 0, "openssl \(step.joined(separator: " ")): \(result.stderr)")
            }
            for file in ["ca.crt", "server.crt", "server.key"] {
                try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: "\(path)/\(file)")
            }
            let broker = try await TestBroker.start(
                for: setup,
                extraConfig: ["cafile \(path)/ca.crt", "certfile \(path)/server.crt", "keyfile \(path)/server.key"])
            let device = try setup.start(
                brokers: [broker.address], ["--count", "1", "--tls-ca", "\(path)/ca.crt", "--exit-when-committed"])
            try await device.waitFor("published", ["seq": "1"])
            // The manager's side needs TLS too: mosquitto_pub with the same CA.
            try Data(try setup.published(DeviceSetup.committed(1))).write(to: URL(fileURLWithPath: "\(path)/receipt"))
            let published = try ToolRunner.run(
                "/usr/bin/mosquitto_pub",
                [
                    "-h", "127.0.0.1", "-p", "\(broker.port)", "--cafile", "\(path)/ca.crt", "-q", "1", "-t",
                    setup.receiptsTopic, "-f", "\(path)/receipt",
                ], in: path, timeout: 20)
            #expect(published.status == 0, "\(published.stderr)")
            #expect(try await device.waitForExit() == 0)

            let untrusted = try setup.start(
                brokers: [broker.address], ["--count", "1", "--timeout-ms", "1000"], name: "device-plain")
            #expect(try await untrusted.waitForExit() == 3, "plain MQTT to a TLS listener does not connect")
            #expect(untrusted.events("broker").isEmpty)
        }
    }

    @Test(arguments: [
        ([String](), "at least one --broker"),
        (["--broker", "nohost"], "--broker wants HOST:PORT"),
        (["--broker", "h:70000"], "--broker wants HOST:PORT"),
        (["--broker", "h:1", "--channel", "Ward"], "is not [a-z0-9-]{1,32}"),
        (["--broker", "h:1", "--channel", "w", "--device", "cuff/1"], "is not [A-Za-z0-9._-]{1,64}"),
        (["--broker", "h:1", "--channel", "w", "--device", "d"], "--key"),
        (["--broker", "h:1", "--channel", "w", "--device", "d", "--key", "k"], "--seq-file is needed"),
        (["--kind", "sphygmo"], "unknown kind 'sphygmo'"),
        (["--count", "-1"], "--count wants a whole number"),
        (["--interval-ms", "fast"], "--interval-ms wants milliseconds"),
        (["--frobnicate", "1"], "unknown option --frobnicate"),
        (
            [
                "--broker", "h:1", "--channel", "w", "--device", "d", "--key", "k", "--seq-file", "s",
                "--manager-key", "manager-1=m.pub", "--exit-when-committed",
            ],
            "--exit-when-committed needs --count"
        ),
        (
            ["--broker", "h:1", "--channel", "w", "--device", "d", "--key", "k", "--seq-file", "s"],
            "at least one --manager-key ID=PEMFILE is needed"
        ),
        (
            [
                "--broker", "h:1", "--channel", "w", "--device", "d", "--key", "k", "--seq-file", "s",
                "--manager-key", "manager-1",
            ],
            "--manager-key"
        ),
    ])
    func aBadCommandLineIsNamed(_ arguments: [String], _ message: String) throws {
        let directory = try TemporaryDirectory("cdevice-usage")
        defer { directory.remove() }
        let result = try ToolRunner.run(try CDevice.binary.get(), arguments, in: directory.path, timeout: 10)
        #expect(result.status == 2)
        #expect(result.stderr.contains(message), "\(result.stderr)")
    }

    @Test func aMissingKeyFileIsNamed() throws {
        let directory = try TemporaryDirectory("cdevice-key")
        defer { directory.remove() }
        let result = try ToolRunner.run(
            try CDevice.binary.get(),
            [
                "--broker", "127.0.0.1:1", "--channel", "w", "--device", "d", "--key", "absent.key", "--seq-file", "s",
                "--manager-key", "manager-1=absent.pub",
            ],
            in: directory.path, timeout: 10)
        #expect(result.status == 1)
        #expect(result.stderr.contains("absent.key") || result.stderr.contains("absent.pub"), "\(result.stderr)")
    }
}
