import Foundation
import MedLedgerCore
import MedLedgerTestSupport
import Testing

@testable import MedLedgerStore

/// The access commands, run as real processes on a local channel: registrar transactions, a
/// researcher's request, a manager's answer, the researcher's check, and FHIR output validated by
/// the fhir.resources package from PyPI.
@Suite("medledger: contracts, consents, access", .network)
struct AccessToolTests {
    /// python3 on PATH, if there is one.
    static var python3: String? {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let path = "\(directory)/python3"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// The Python with fhir.resources: $MEDLEDGER_PYTHON, or the environment scripts/python-tools.sh
    /// makes (scripts/setup.sh runs it; it is made here when missing).
    static func fhirPython() throws -> String {
        if let path = ProcessInfo.processInfo.environment["MEDLEDGER_PYTHON"] { return path }
        let made = try ToolRunner.run(
            "/bin/bash", [ShippedContracts.repositoryRoot + "/scripts/python-tools.sh"], in: NSTemporaryDirectory(),
            timeout: 600)
        guard made.status == 0, let path = made.stdout.split(separator: "\n").last.map(String.init) else {
            throw FixtureError(
                "scripts/python-tools.sh could not install fhir.resources (run scripts/setup.sh): \(made.stderr)")
        }
        return path
    }

    /// Validates a FHIR Bundle with fhir.resources; returns what the validator printed.
    static func validateFHIR(_ path: String, expect: Int, in directory: String) throws -> ToolRunner.Result {
        try ToolRunner.run(
            try fhirPython(),
            [ShippedContracts.repositoryRoot + "/scripts/validate-fhir.py", path, "--expect", "\(expect)"],
            in: directory)
    }

    struct Channel {
        let directory: TemporaryDirectory
        var path: String { directory.path }

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

        static let chain = ["--dir", "ch", "--db", "ledger.sqlite", "--devices", "4", "--readings", "20"]
        static let registrar = [
            "--genesis", "ch/genesis.json", "--key", "ch/keys/registrar-1.key", "--submitter", "registrar-1",
            "--db", "ledger.sqlite",
        ]

        /// Commits signed transaction files in one block (and `blocks` blocks of readings after it).
        func commit(_ files: [String], blocks: Int = 0) throws {
            let result = try run(
                ["sample-chain"] + Self.chain + ["--blocks", "\(blocks)"] + files.flatMap { ["--transaction", $0] })
            guard result.status == 0 else { throw FixtureError("commit \(files): \(result.stderr)") }
        }
    }

    /// A channel with 4 devices of patients 0 and 1, readings, researcher r-1, the consent-study
    /// contract, and patient-0's consent to study s1.
    func channel() throws -> (Channel, contract: String) {
        let channel = Channel(directory: try TemporaryDirectory("access-tool"))
        try channel.ok("channel", "init", "--dir", "ch", "--channel", "ward-7", "--validators", "1")
        let sample = try channel.run(["sample-chain"] + Channel.chain + ["--blocks", "2"])
        #expect(sample.status == 0, "\(sample.stderr)")
        let pub = try channel.run(["keygen", "--out", "r.key"])
        try pub.stdout.write(toFile: channel.directory.file("r.pub"), atomically: true, encoding: .utf8)
        try channel.run(
            ["professional", "register", "--id", "r-1", "--role", "researcher", "--public-key", "r.pub"]
                + Channel.registrar + ["--out", "t1.tx"]
        ).expectSuccess()
        let deployed = try channel.run(
            [
                "contract", "deploy", "--wasm", ShippedContracts.directory + "/consent-study.wasm", "--name",
                "consent-study", "--param", "duration_ms=86400000", "--seq", "6",
            ] + Channel.registrar + ["--out", "t2.tx"])
        try deployed.expectSuccess()
        let contract = try #require(deployed.stdout.split(separator: " ").first { $0.count == 64 }.map(String.init))
        try channel.run(
            ["consent", "record", "--patient", "patient-0", "--study", "s1", "--seq", "7"] + Channel.registrar
                + ["--out", "t3.tx"]
        ).expectSuccess()
        try channel.commit(["t1.tx", "t2.tx", "t3.tx"])
        return (channel, contract)
    }

    @Test func aWATContractCompilesToTheCommittedModuleAndABadOneIsNamed() throws {
        let directory = try TemporaryDirectory("wat")
        defer { directory.remove() }
        let root = ShippedContracts.repositoryRoot
        let compiled = try ToolRunner.medledger(
            "contract", "compile", root + "/contracts/src/recent-study.wat", "--out", directory.file("r.wasm"),
            in: directory.path)
        #expect(compiled.status == 0, "\(compiled.stderr)")
        #expect(compiled.stdout.contains("contract 039a86fe258a46ea"), "\(compiled.stdout)")
        #expect(
            FileManager.default.contents(atPath: directory.file("r.wasm"))
                == FileManager.default.contents(atPath: ShippedContracts.directory + "/recent-study.wasm"))
        // Floating point is refused at deployment (validators would deny every request).
        try "(module (func (export \"decide\") (drop (f32.const 1))))".write(
            toFile: directory.file("undecided.wat"), atomically: true, encoding: .utf8)
        let undecided = try ToolRunner.medledger(
            "contract", "compile", directory.file("undecided.wat"), "--out", directory.file("u.wasm"),
            in: directory.path)
        #expect(undecided.status != 0 && undecided.stderr.contains("would deny every request"), "\(undecided.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.file("u.wasm")))
        try "(module\n (func (i32.nonsense)))".write(
            toFile: directory.file("bad.wat"), atomically: true, encoding: .utf8)
        let bad = try ToolRunner.medledger(
            "contract", "compile", directory.file("bad.wat"), "--out", directory.file("b.wasm"), in: directory.path)
        #expect(bad.status != 0 && bad.stderr.contains("not a valid WAT module at line 2"), "\(bad.stderr)")
    }

    @Test func aResearcherRequestsFetchesAndVerifies() throws {
        let (channel, contract) = try channel()
        defer { channel.directory.remove() }
        let listed = try channel.ok("contract", "list", "--db", "ledger.sqlite")
        #expect(
            listed.contains(contract) && listed.contains("consent-study") && listed.contains("duration_ms=86400000"))

        let requested = try channel.ok(
            "access", "request", "--contract", contract, "--kinds", "8480-6,8462-4", "--from", "0", "--to",
            "2100-01-01T00:00:00Z", "--purpose", "blood pressure study", "--study", "s1", "--genesis",
            "ch/genesis.json", "--key", "r.key", "--submitter", "r-1", "--db", "ledger.sqlite", "--out", "t4.tx")
        let grant = try #require(requested.split(separator: " ").first { $0.count == 64 }.map(String.init))
        try channel.commit(["t4.tx"], blocks: 1)

        let status = try channel.ok("access", "status", "--db", "ledger.sqlite", "--id", grant)
        let object = try JSONSerialization.jsonObject(with: Data(status.utf8)) as? [String: Any]
        let request = try #require((object?["requests"] as? [[String: Any]])?.first)
        #expect(request["outcome"] as? String == "granted")
        #expect((request["grant"] as? [String: Any])?["live"] as? Bool == true)

        try channel.ok(
            "access", "fetch", "--genesis", "ch/genesis.json", "--key", "r.key", "--requester", "r-1", "--grant",
            grant, "--out", "fetch.cose")
        let served = try channel.ok(
            "access", "serve", "--db", "ledger.sqlite", "--request", "fetch.cose", "--out", "answer.cbor",
            "--manager-key", "ch/keys/manager-1.key", "--manager", "manager-1", "--log-out", "log.tx")
        #expect(served.contains("served "))
        let verified = try channel.ok(
            "access", "verify", "--response", "answer.cbor", "--genesis", "ch/genesis.json", "--request",
            "fetch.cose")
        let readings = try #require(
            (try JSONSerialization.jsonObject(with: Data(verified.utf8)) as? [String: Any])?["readings"]
                as? [[String: Any]])
        #expect(!readings.isEmpty)
        #expect(readings.allSatisfy { $0["patient"] as? String == "patient-0" })

        // The researcher's export as FHIR, validated by fhir.resources.
        let fhir = try channel.ok(
            "access", "verify", "--response", "answer.cbor", "--genesis", "ch/genesis.json", "--format", "fhir")
        try fhir.write(toFile: channel.directory.file("bundle.json"), atomically: true, encoding: .utf8)
        if Self.python3 != nil {
            let validated = try Self.validateFHIR("bundle.json", expect: readings.count, in: channel.path)
            #expect(validated.status == 0, "\(validated.stdout) \(validated.stderr)")
        }

        // The access log commits; status shows the read.
        try channel.commit(["log.tx"])
        let after = try channel.ok("access", "status", "--db", "ledger.sqlite", "--id", grant)
        #expect(after.contains("\"manager\" : \"manager-1\""))
        #expect(try channel.ok("verify", "--db", "ledger.sqlite").hasPrefix("OK"))

        // A tampered answer fails the researcher's check.
        var answer = Array(try Data(contentsOf: URL(fileURLWithPath: channel.directory.file("answer.cbor"))))
        let decoded = try FetchResponse(decoding: answer)
        guard case .readings(var items, let headers, let next) = decoded.content else {
            Issue.record("no readings in the answer")
            return
        }
        items[0].bytes[items[0].bytes.count - 70] ^= 0x01
        var tampered = decoded
        tampered.content = .readings(items, headers: headers, next: next)
        answer = tampered.encoded()
        try Data(answer).write(to: URL(fileURLWithPath: channel.directory.file("tampered.cbor")))
        let failed = try channel.run([
            "access", "verify", "--response", "tampered.cbor", "--genesis", "ch/genesis.json",
        ])
        #expect(failed.status == 1)
        #expect(failed.stdout.contains("FAIL reading 0"))
    }

    @Test func registrarCommandsRefuseWrongKeysAndBadInput() throws {
        let (channel, contract) = try channel()
        defer { channel.directory.remove() }
        let wrongKey = try channel.run(
            [
                "consent", "record", "--patient", "patient-1", "--study", "s1", "--genesis", "ch/genesis.json", "--key",
                "r.key", "--submitter", "registrar-1", "--db", "ledger.sqlite",
            ])
        #expect(wrongKey.status != 0)
        #expect(wrongKey.stderr.contains("is not the key 'registrar-1' is registered with"))
        let notAProfessional = try channel.run(
            [
                "access", "request", "--contract", contract, "--kinds", "8480-6", "--from", "0", "--to", "1",
                "--purpose",
                "x", "--study", "s1", "--genesis", "ch/genesis.json", "--key", "r.key", "--submitter", "r-9", "--db",
                "ledger.sqlite",
            ])
        #expect(notAProfessional.stderr.contains("'r-9' is not a registered researcher or clinician"))
        try Data([0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00]).write(
            to: URL(fileURLWithPath: channel.directory.file("empty.wasm")))
        let empty = try channel.run(
            ["contract", "deploy", "--wasm", "empty.wasm", "--name", "empty"] + Channel.registrar)
        #expect(empty.status != 0)
        #expect(empty.stderr.contains("missing-export"))
        let badParam = try channel.run(
            ["contract", "deploy", "--wasm", "empty.wasm", "--name", "e", "--param", "K=x", "--force"]
                + Channel.registrar)
        #expect(badParam.stderr.contains("name=integer"))
        // The hex form of a transaction goes to standard output and can be committed as it is.
        let hex = try channel.ok(
            "consent", "withdraw", "--patient", "patient-0", "--study", "s1", "--genesis", "ch/genesis.json", "--key",
            "ch/keys/registrar-1.key", "--submitter", "registrar-1", "--db", "ledger.sqlite")
        try hex.write(toFile: channel.directory.file("w.hex"), atomically: true, encoding: .utf8)
        try channel.commit(["w.hex"])
        let store = try LedgerStore(path: channel.directory.file("ledger.sqlite"))
        #expect(store.state.access.consents["s1"] == nil)
    }

    @Test(.enabled(if: python3 != nil, "python3 is needed to validate FHIR with fhir.resources"))
    func queryReadingsAsFHIRIsValid() throws {
        let channel = Channel(directory: try TemporaryDirectory("fhir"))
        defer { channel.directory.remove() }
        try channel.ok("channel", "init", "--dir", "ch", "--channel", "ward-7", "--validators", "1")
        try channel.ok("sample-chain", "--dir", "ch", "--db", "ledger.sqlite", "--blocks", "2", "--readings", "25")
        let fhir = try channel.ok("query", "readings", "--db", "ledger.sqlite", "--format", "fhir")
        try fhir.write(toFile: channel.directory.file("bundle.json"), atomically: true, encoding: .utf8)
        let validated = try Self.validateFHIR("bundle.json", expect: 50, in: channel.path)
        #expect(validated.status == 0, "\(validated.stdout) \(validated.stderr)")
        let bundle = try JSONSerialization.jsonObject(with: Data(fhir.utf8)) as? [String: Any]
        let entries = try #require(bundle?["entry"] as? [[String: Any]])
        let pressure = try #require(
            entries.compactMap { $0["resource"] as? [String: Any] }.first { $0["component"] != nil })
        #expect(
            (pressure["code"] as? [String: Any]).flatMap {
                ($0["coding"] as? [[String: Any]])?.first?["code"] as? String
            } == "85354-9")
        #expect((pressure["component"] as? [[String: Any]])?.count == 2)
        let reference = (pressure["subject"] as? [String: Any])?["reference"] as? String
        #expect(reference?.hasPrefix("Patient/patient-") == true)
        // A broken document fails the validator: it is not a rubber stamp.
        try fhir.replacingOccurrences(of: "\"effectiveDateTime\" : \"", with: "\"effectiveDateTime\" : \"x")
            .write(toFile: channel.directory.file("broken.json"), atomically: true, encoding: .utf8)
        #expect(try Self.validateFHIR("broken.json", expect: 50, in: channel.path).status != 0)
    }
}

extension ToolRunner.Result {
    func expectSuccess() throws {
        guard status == 0 else { throw FixtureError("exit \(status): \(stdout) \(stderr)") }
    }
}
