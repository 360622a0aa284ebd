import ArgumentParser
import Foundation
import MedLedgerContracts
import MedLedgerCore
import MedLedgerMQTT
import MedLedgerNode
import MedLedgerStore

/// How a command signs a transaction: the channel, the submitter and key, the seq, where it goes —
/// into a file (or printed as hex), or published on the network and waited for until committed.
struct SigningOptions: ParsableArguments {
    @Option(help: "The channel's genesis.json (default with --devnet: the devnet's).")
    var genesis: String?
    @Option(help: "The submitter's private key (PEM; default with --devnet: its registrar's).")
    var key: String?
    @Option(
        help: "The submitter's id (registrar, manager, researcher or clinician; default with --devnet: its registrar).")
    var submitter: String?
    @Option(help: "The submitter's sequence number; without it, one above the highest committed in --db.")
    var seq: UInt64?
    @Option(help: "A store to take the next sequence number from (and to check a professional's key against).")
    var db: String?
    @Option(help: "The transaction's time, ms since the epoch or ISO 8601 (default: now).")
    var time: String?
    @Option(help: "Where to write the signed transaction; without it, its hex goes to standard output.")
    var out: String?
    @OptionGroup(title: "Publishing (instead of writing a file)") var network: NetworkOptions

    func validate() throws {
        if network.isSet {
            guard out == nil, seq == nil, time == nil else {
                throw ValidationError(
                    "--out, --seq and --time are for a transaction written to a file; with --devnet or --broker it is "
                        + "published, its seq and time taken from the clock")
            }
            if network.devnet == nil, genesis == nil || key == nil || submitter == nil {
                throw ValidationError("with --broker, give --genesis, --key and --submitter")
            }
        } else {
            guard genesis != nil, key != nil, submitter != nil else {
                throw ValidationError("give --genesis, --key and --submitter (or --devnet DIR to publish)")
            }
            guard seq != nil || db != nil else { throw ValidationError("give --seq or --db to take it from") }
        }
        _ = try time.map(QueryCommand.Readings.time)
    }

    /// The genesis, the submitter and its key: as given, or a devnet's registrar.
    func identity() throws -> (genesis: Genesis, submitter: String, key: PrivateKey) {
        let devnet = try network.devnetFile()
        guard let genesisPath = genesis ?? devnet?.genesis else { throw ValidationError("give --genesis") }
        let submitter = self.submitter ?? devnet?.registrarId
        guard let submitter else { throw ValidationError("give --submitter") }
        let keyPath = key ?? (submitter == devnet?.registrarId ? devnet?.registrarKey : nil)
        guard let keyPath else { throw ValidationError("give --key: the private key of '\(submitter)'") }
        return (try Files.genesis(genesisPath), submitter, try Files.privateKey(keyPath))
    }

    /// Checks the key against the genesis (or the store, for a professional).
    func checkKey(
        _ body: TransactionBody, genesis: Genesis, submitter: String, key privateKey: PrivateKey, store: LedgerStore?
    ) throws {
        let expected: PublicKey?
        switch body.signer {
        case .registrar:
            guard let member = genesis.registrar(submitter) else {
                throw ToolError("'\(submitter)' is not a registrar of channel \(genesis.channel)")
            }
            expected = member.publicKey
        case .manager:
            guard let member = genesis.managers.first(where: { $0.id == submitter }) else {
                throw ToolError("'\(submitter)' is not a manager of channel \(genesis.channel)")
            }
            expected = member.publicKey
        case .professional:
            expected = store?.state.access.professionals[submitter]?.key
            if let store, expected == nil {
                throw ToolError(
                    "'\(submitter)' is not a registered researcher or clinician in \(store.genesis.channel)")
            }
        }
        if let expected, expected != privateKey.publicKey {
            throw ToolError("\(key ?? "the key") is not the key '\(submitter)' is registered with")
        }
    }

    /// Signs a body, checking the key against the genesis (or the store, for a professional).
    func sign(_ body: TransactionBody) throws -> SignedTransaction {
        let (genesis, submitter, privateKey) = try identity()
        var store: LedgerStore?
        if let db {
            store = try Parse.store(db)
            guard store?.genesis == genesis else { throw ToolError("\(db) holds another channel than --genesis") }
        }
        try checkKey(body, genesis: genesis, submitter: submitter, key: privateKey, store: store)
        let seq = self.seq ?? ((store?.state.submitters[submitter]?.highest ?? 0) + 1)
        let time = try self.time.map(QueryCommand.Readings.time) ?? UInt64(Date().timeIntervalSince1970 * 1000)
        return try SignedTransaction(
            signing: Transaction(channel: genesis.channel, submitter: submitter, seq: seq, time: time, body: body),
            with: privateKey)
    }

    /// Writes the transaction (or prints its hex) and says what it is.
    func emit(_ signed: SignedTransaction, _ summary: String) throws {
        let tx = signed.transaction
        let line = "\(tx.body.typeName) seq \(tx.seq) by \(tx.submitter): \(summary) (\(signed.bytes.count) bytes)"
        if let out {
            try Files.write(signed.bytes, to: out)
            print("\(line); wrote \(out)")
        } else {
            print(Hex.encode(signed.bytes))
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    /// Checks that a signed transaction decodes as a manager would decode it: a body it would refuse
    /// as malformed is named here.
    static func checkDecodes(_ bytes: [UInt8], _ body: TransactionBody) throws {
        do {
            _ = try SignedTransaction(decoding: bytes)
        } catch {
            throw ToolError("the \(body.typeName) transaction is not valid: \(error)")
        }
    }

    /// Signs and writes a transaction, or, with --devnet or --broker, publishes it and waits until it
    /// is committed (seq from the clock).
    /// - Parameters:
    ///   - body: what it does.
    ///   - summary: a line about it; given the transaction, for an id that depends on its bytes.
    /// - Returns: the transaction, and the height it was committed at when it was published.
    @discardableResult
    func deliver(_ body: TransactionBody, _ summary: (SignedTransaction) -> String) async throws -> (
        SignedTransaction, height: UInt64?
    ) {
        guard network.isSet else {
            let signed = try sign(body)
            try Self.checkDecodes(signed.bytes, body)
            try emit(signed, summary(signed))
            return (signed, nil)
        }
        let (genesis, submitter, privateKey) = try identity()
        try checkKey(body, genesis: genesis, submitter: submitter, key: privateKey, store: nil)
        try Self.checkDecodes(
            try SignedTransaction(
                signing: Transaction(channel: genesis.channel, submitter: submitter, seq: 1, time: 0, body: body),
                with: privateKey
            ).bytes, body)
        let (signed, height, block) = try await network.submit(
            body, channel: genesis.channel, submitter: submitter, key: privateKey)
        print(
            "\(body.typeName) seq \(signed.transaction.seq) by \(submitter): \(summary(signed)); committed at height "
                + "\(height), block \(block.hex)")
        return (signed, height)
    }
}

enum Parse {
    static func hash(_ text: String, _ what: String) throws -> Hash256 {
        guard let hash = Hash256(hex: text) else { throw ValidationError("\(what) '\(text)' is not 64 hex digits") }
        return hash
    }

    static func kinds(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    static func file(_ path: String, what: String) throws -> [UInt8] {
        var bytes =
            path == "-" ? Array(FileHandle.standardInput.readDataToEndOfFile()) : try Files.read(path, what: what)
        let text = String(decoding: bytes, as: UTF8.self).filter { !$0.isWhitespace }
        if !text.isEmpty, let decoded = Hex.decode(text) { bytes = decoded }
        return bytes
    }

    static func store(_ path: String) throws -> LedgerStore {
        do {
            return try LedgerStore(path: path)
        } catch {
            throw ToolError("\(path): \(error)")
        }
    }
}

// MARK: - Contracts

struct ContractCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contract", abstract: "Deploy and list access contracts (WebAssembly modules).",
        subcommands: [Compile.self, Deploy.self, List.self])

    struct Compile: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compile a contract written in WebAssembly text (WAT) into a module.",
            discussion: """
                The same text always gives the same bytes (no name section or other custom section), so a \
                WAT contract's module is reproducible like the C ones. The module is checked as validators will \
                run it (docs/CONTRACTS.md) and refused, naming why, unless --force.
                """)

        @Argument(help: "The WAT file.")
        var source: String
        @Option(help: "Where to write the module (.wasm).")
        var out: String
        @Flag(help: "Write even a module the runner would refuse.")
        var force = false

        func run() throws {
            let text = String(decoding: try Files.read(source, what: "WAT source"), as: UTF8.self)
            let module: [UInt8]
            do {
                module = try ContractText.compile(text)
            } catch {
                throw ToolError("\(source): \(error)")
            }
            if !force, let denial = ContractModuleCheck.check(module) {
                throw ToolError("\(source) would deny every request: \(denial) (use --force to write it anyway)")
            }
            try Files.write(module, to: out)
            say("\(out): \(module.count) bytes, contract \(Hash256.sha256(module).hex)")
        }
    }

    struct Deploy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build and sign a registrar's deploy-contract transaction.",
            discussion: """
                The contract id is SHA-256 of the module. The module is checked first as validators will run it
                (docs/CONTRACTS.md); one that every request would be denied by is refused unless --force.
                """)

        @Option(help: "The WebAssembly module (.wasm).")
        var wasm: String
        @Option(help: "A name for people.")
        var name: String
        @Option(help: "A deployment parameter, name=integer (repeatable), e.g. k=5.")
        var param: [String] = []
        @Flag(help: "Deploy even a module the runner would refuse.")
        var force = false
        @OptionGroup var signing: SigningOptions

        func run() async throws {
            let module = try Files.read(wasm, what: "module")
            var parameters: [String: Int64] = [:]
            for item in param {
                let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, ContractDeployment.isValidParameterName(parts[0]),
                    let value = Int64(parts[1])
                else { throw ValidationError("--param '\(item)' is not name=integer with a name [a-z0-9_]{1,32}") }
                parameters[parts[0]] = value
            }
            if !force, let denial = ContractModuleCheck.check(module) {
                throw ToolError("\(wasm) would deny every request: \(denial) (use --force to deploy it anyway)")
            }
            let deployment = ContractDeployment(name: name, module: module, parameters: parameters)
            try await signing.deliver(.deployContract(deployment)) { _ in "contract \(deployment.id.hex)" }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the contracts deployed in a store.")

        @Option(help: "The SQLite store.")
        var db: String
        @Flag(help: "Print JSON.")
        var json = false

        func run() throws {
            let store = try Parse.store(db)
            let contracts = store.deployedContracts
            if json {
                let items = contracts.map { contract -> [String: Any] in
                    [
                        "id": contract.id.hex, "name": contract.name, "deployer": contract.deployer,
                        "height": contract.deployedAt, "bytes": contract.module.count,
                        "parameters": contract.parameters,
                    ]
                }
                print(try JSONOutput.string(["channel": store.genesis.channel, "contracts": items]))
                return
            }
            for contract in contracts {
                let parameters = contract.parameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                print(
                    "\(contract.id.hex)  \(contract.name)  height \(contract.deployedAt)  by \(contract.deployer)  "
                        + "\(contract.module.count) bytes"
                        + (parameters.isEmpty ? "" : "  " + parameters.joined(separator: " ")))
            }
            if contracts.isEmpty { print("no contracts are deployed on channel \(store.genesis.channel)") }
        }
    }
}

// MARK: - Registrars

struct ConsentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consent",
        abstract: "Record or withdraw a patient's consent to a study (a registrar's transaction).",
        subcommands: [Record.self, Withdraw.self])

    struct Record: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record a patient's consent to a study.")
        @Option(help: "The patient's pseudonymous id.") var patient: String
        @Option(help: "The study id.") var study: String
        @OptionGroup var signing: SigningOptions

        func run() async throws {
            try await signing.deliver(.consent(patient: patient, study: study)) { _ in
                "\(patient) consents to \(study)"
            }
        }
    }

    struct Withdraw: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Withdraw a patient's consent: no further reads under any grant it supported.")
        @Option(help: "The patient's pseudonymous id.") var patient: String
        @Option(help: "The study id.") var study: String
        @OptionGroup var signing: SigningOptions

        func run() async throws {
            try await signing.deliver(.withdrawConsent(patient: patient, study: study)) { _ in
                "\(patient) withdraws consent to \(study)"
            }
        }
    }
}

struct ProfessionalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "professional", abstract: "Register researchers and clinicians (a registrar's transaction).",
        subcommands: [Register.self])

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a researcher or clinician with their key.")
        @Option(help: "Their id, [A-Za-z0-9._-]{1,64}.") var id: String
        @Option(help: "researcher or clinician.") var role: String
        @Option(help: "Their public key (SPKI PEM, as 'medledger keygen' prints it).") var publicKey: String
        @Option(help: "Their organisation.") var organisation: String?
        @OptionGroup var signing: SigningOptions

        func run() async throws {
            guard let role = ProfessionalRole(rawValue: role) else {
                throw ValidationError("--role must be researcher or clinician, not '\(role)'")
            }
            let key = try Files.publicKey(publicKey)
            try await signing.deliver(
                .registerProfessional(id: id, role: role, key: key, organisation: organisation)
            ) { _ in "\(role.rawValue) \(id)" }
        }
    }
}

struct TreatmentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "treatment",
        abstract: "Record or end that a clinician treats a patient (a registrar's transaction).",
        subcommands: [Record.self, End.self])

    struct Record: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record that a clinician treats a patient.")
        @Option(help: "The clinician's id.") var clinician: String
        @Option(help: "The patient's pseudonymous id.") var patient: String
        @OptionGroup var signing: SigningOptions

        func run() async throws {
            try await signing.deliver(.recordTreatment(clinician: clinician, patient: patient)) { _ in
                "\(clinician) treats \(patient)"
            }
        }
    }

    struct End: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End a treating relationship: the clinician's reads stop at once.")
        @Option(help: "The clinician's id.") var clinician: String
        @Option(help: "The patient's pseudonymous id.") var patient: String
        @OptionGroup var signing: SigningOptions

        func run() async throws {
            try await signing.deliver(.endTreatment(clinician: clinician, patient: patient)) { _ in
                "\(clinician) no longer treats \(patient)"
            }
        }
    }
}

// MARK: - Access

struct AccessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "access",
        abstract: "Ask for data through an access contract, follow the decision, fetch and verify what is served.",
        subcommands: [Request.self, Status.self, Fetch.self, Serve.self, Verify.self, Revoke.self])

    struct Request: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build and sign an access request (the researcher's or clinician's own transaction).",
            discussion: """
                The contract decides when the block carrying the request is checked; the request's id (printed) is
                the id of the grant it may become: 'medledger access status --id' shows the decision.
                """)
        @Option(help: "The contract's id (64 hex digits).") var contract: String
        @Option(help: "The LOINC codes asked for, comma-separated.") var kinds: String
        @Option(help: "The earliest reading time, ms or ISO 8601.") var from: String
        @Option(help: "The latest reading time, ms or ISO 8601.") var to: String
        @Option(help: "Why, for the record.") var purpose: String
        @Option(help: "The one patient asked about (a clinician's request).") var patient: String?
        @Option(help: "The study the data is for (a researcher's request).") var study: String?
        @OptionGroup var signing: SigningOptions

        func run() async throws {
            let request = AccessRequest(
                contract: try Parse.hash(contract, "--contract"), kinds: Parse.kinds(kinds),
                from: try QueryCommand.Readings.time(from), to: try QueryCommand.Readings.time(to), purpose: purpose,
                patient: patient, study: study)
            let (signed, height) = try await signing.deliver(.accessRequest(request)) { "request \($0.id.hex)" }
            guard let height else { return }
            guard signing.network.devnet != nil else { return try await askDecision(signed) }
            let store = try await signing.network.devnetStore(atLeast: height)
            guard let decision = try store.accessDecision(signed.id) else {
                throw ToolError("request \(signed.id.hex) is not in the devnet's store at height \(store.height)")
            }
            switch decision.outcome {
            case .granted(let grant):
                print(
                    "granted: \(grant.scope.mode.name)" + (Self.k(grant.scope.mode).map { " (k = \($0))" } ?? "")
                        + ", expires at \(FHIRExport.dateTime(grant.expiresAt)), grant \(grant.id.hex)")
            case .denied(let denial):
                print("denied: \(denial)")
            }
        }

        /// Asks the first manager for the decision (it may apply the block a moment after the
        /// manager whose receipt said committed).
        func askDecision(_ signed: SignedTransaction) async throws {
            let (genesis, submitter, key) = try signing.identity()
            let client = try await signing.network.connect(as: submitter)
            defer { client.shutdown() }
            let access = AccessClient(client: client, genesis: genesis, requester: submitter, key: key)
            let manager = genesis.managers.first?.id ?? ""
            for attempt in 1...20 {
                let answer: AccessStatusResponse
                do {
                    answer = try await access.status(of: signed.id, from: manager)
                } catch {
                    throw ToolError("committed; the decision: \(error)")
                }
                switch answer.content {
                case .granted(_, let mode, _, let expiresAt, _, _):
                    print(
                        "granted: \(mode.name)" + (Self.k(mode).map { " (k = \($0))" } ?? "")
                            + ", expires at \(FHIRExport.dateTime(expiresAt)), grant \(signed.id.hex)")
                    return
                case .denied(_, let denial):
                    print("denied: \(denial)")
                    return
                case .refused(let refusal) where refusal.reason == .unknownGrant && attempt < 20:
                    try await Task.sleep(for: .milliseconds(100))
                case .refused(let refusal):
                    throw ToolError("committed; manager \(manager) does not tell the decision: \(refusal)")
                }
            }
        }

        static func k(_ mode: AccessMode) -> Int? {
            if case .aggregates(let k) = mode { return k }
            return nil
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the decisions on access requests, with the reads logged under each grant.",
            discussion: """
                From a store (--db, or a devnet's manager with --devnet), or, with --broker (or --devnet and --key),
                by asking a manager over MQTT 5 about one of the requester's own requests (--id), signed with the
                requester's key.
                """)
        @Option(help: "The SQLite store.") var db: String?
        @Option(help: "One request (or grant) id.") var id: String?
        @Option(help: "Only this requester's requests; with --key, the requester who asks.") var requester: String?
        @Option(help: "The requester's private key: ask a manager instead of reading a store.") var key: String?
        @Option(help: "The channel's genesis.json (with --broker).") var genesis: String?
        @Option(help: "The manager to ask (default: the genesis' first).") var manager: String?
        @OptionGroup(title: "Asking a manager") var network: NetworkOptions

        var asks: Bool { network.broker != nil || key != nil }

        func validate() throws {
            if asks {
                guard network.isSet, key != nil, requester != nil, id != nil else {
                    throw ValidationError("to ask a manager, give --devnet or --broker, --key, --requester and --id")
                }
                if network.devnet == nil, genesis == nil { throw ValidationError("with --broker, give --genesis") }
            } else {
                guard (db == nil) != (network.devnet == nil) else { throw ValidationError("give --db or --devnet") }
            }
        }

        func run() async throws {
            if asks { return try await ask() }
            var path = db ?? ""
            if let devnet = try network.devnetFile() {
                guard let database = devnet.anyDatabase else {
                    throw ToolError("the devnet at \(network.devnet ?? "") names no database")
                }
                path = database
            }
            let store = try Parse.store(path)
            var decisions: [AccessDecision]
            if let id {
                guard let decision = try store.accessDecision(try Parse.hash(id, "--id")) else {
                    throw ToolError("no access request \(id) is committed in \(path) (height \(store.height))")
                }
                decisions = [decision]
            } else {
                decisions = try store.accessDecisions(requester: requester)
            }
            let items = try decisions.map { decision -> [String: Any] in
                let request = decision.request
                var item: [String: Any] = [
                    "id": decision.id.hex, "requester": decision.requester, "height": decision.height,
                    "position": decision.position, "contract": request.contract.hex, "kinds": request.kinds,
                    "from": request.from, "to": request.to, "purpose": request.purpose,
                    "patient": request.patient ?? NSNull(), "study": request.study ?? NSNull(),
                ]
                switch decision.outcome {
                case .granted(let grant):
                    var mode: [String: Any] = ["mode": grant.scope.mode.name]
                    if case .aggregates(let k) = grant.scope.mode { mode["k"] = k }
                    item["outcome"] = "granted"
                    item["grant"] = mode.merging([
                        "expiresAt": grant.expiresAt, "revokedAt": grant.revokedAt.map { $0 as Any } ?? NSNull(),
                        "live": grant.isLive(at: store.state.time), "kinds": grant.scope.kinds,
                    ]) { first, _ in first }
                    item["reads"] = try store.accessLog(grant: grant.id).map { record -> [String: Any] in
                        [
                            "height": record.height, "manager": record.manager, "count": record.entry.count,
                            "servedAt": record.entry.servedAt, "fetch": record.entry.fetch.hex,
                            "servedHash": record.entry.servedHash.hex,
                        ]
                    }
                case .denied(let denial):
                    item["outcome"] = "denied"
                    item["denial"] = ["code": denial.code.rawValue, "message": denial.message]
                }
                return item
            }
            print(
                try JSONOutput.string([
                    "channel": store.genesis.channel, "height": store.height, "requests": items,
                ]))
        }

        /// Asks a manager about one request and prints its answer in the same shape.
        func ask() async throws {
            let devnetGenesis = try network.devnetFile()?.genesis
            guard let genesisPath = genesis ?? devnetGenesis, let key, let requester, let id else {
                throw ValidationError("give --genesis, --key, --requester and --id")
            }
            let genesis = try Files.genesis(genesisPath)
            let manager = self.manager ?? genesis.managers.first?.id ?? ""
            let client = try await network.connect(as: requester)
            defer { client.shutdown() }
            let access = AccessClient(
                client: client, genesis: genesis, requester: requester, key: try Files.privateKey(key))
            let answer: AccessStatusResponse
            do {
                answer = try await access.status(
                    of: try Parse.hash(id, "--id"), from: manager, timeout: .seconds(network.timeout))
            } catch {
                throw ToolError("\(error)")
            }
            var item: [String: Any] = ["id": answer.request.hex, "requester": requester, "manager": manager]
            switch answer.content {
            case .refused(let refusal):
                throw ToolError("manager \(manager) refused: \(refusal)")
            case .denied(let committedAt, let denial):
                item["height"] = committedAt
                item["outcome"] = "denied"
                item["denial"] = ["code": denial.code.rawValue, "message": denial.message]
            case .granted(let committedAt, let mode, let kinds, let expiresAt, let revokedAt, let reads):
                item["height"] = committedAt
                item["outcome"] = "granted"
                var grant: [String: Any] = [
                    "mode": mode.name, "kinds": kinds, "expiresAt": expiresAt,
                    "revokedAt": revokedAt.map { $0 as Any } ?? NSNull(),
                    "live": revokedAt == nil && UInt64(Date().timeIntervalSince1970 * 1000) < expiresAt,
                ]
                if case .aggregates(let k) = mode { grant["k"] = k }
                item["grant"] = grant
                item["reads"] = reads.map { read -> [String: Any] in
                    [
                        "height": read.height, "manager": read.manager, "count": read.count,
                        "servedAt": read.servedAt, "fetch": read.fetch.hex,
                    ]
                }
            }
            print(
                try JSONOutput.string([
                    "channel": genesis.channel, "height": answer.height, "requests": [item],
                ]))
        }
    }

    struct Fetch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fetch the data under a grant from a manager and verify it, or sign a fetch request to send.",
            discussion: """
                With --devnet or --broker: sends the signed request to a manager over MQTT 5 (request/response on
                medledger/v1/{channel}/fetch/{manager}), follows the pages, checks every answer against the genesis
                alone (commit certificates, Merkle inclusion) and writes the readings as json, csv or a FHIR R4
                Bundle, or the aggregates as JSON. Exits 1 on a refusal or an answer that does not verify.
                Without them: writes the COSE_Sign1 request (--out); a manager answers it ('medledger access serve'
                from its store) and 'medledger access verify' checks the answer.
                """)
        @Option(help: "The channel's genesis.json (default with --devnet: the devnet's).") var genesis: String?
        @Option(help: "The requester's private key (PEM).") var key: String
        @Option(help: "The requester's id.") var requester: String
        @Option(help: "The grant's id.") var grant: String
        @Option(help: "Only these kinds (comma-separated, within the grant's).") var kinds: String?
        @Option(help: "Only readings at or after this time, ms or ISO 8601.") var from: String?
        @Option(help: "Only readings at or before this time, ms or ISO 8601.") var to: String?
        @Option(help: "Only readings after HEIGHT:POSITION (a previous answer's next).") var after: String?
        @Option(help: "At most this many readings (1 to 1000; a page, over the network).") var limit: Int?
        @Option(help: "Where to write the request; without it, its hex goes to standard output.") var out: String?
        @OptionGroup(title: "Fetching over the network") var network: NetworkOptions
        @Option(help: "The manager to ask (default: the genesis' first).") var manager: String?
        @Option(help: "json, csv or fhir.") var format: QueryCommand.Format = .json
        @Option(help: "Where to write the verified data (default: standard output).") var output: String?
        @Option(help: "Keep each raw answer (CBOR): the first page in FILE, the n-th in FILE.n.")
        var saveResponse: String?
        @Option(help: "Follow at most this many pages.") var maxPages: Int = 1000

        func validate() throws {
            if network.isSet {
                guard out == nil else {
                    throw ValidationError("--out writes a request to send by hand; not with --devnet or --broker")
                }
                if network.devnet == nil, genesis == nil { throw ValidationError("with --broker, give --genesis") }
            } else if genesis == nil {
                throw ValidationError("give --genesis")
            }
            guard maxPages >= 1 else { throw ValidationError("--max-pages must be at least 1") }
            if let limit, !(1...FetchRequest.maxLimit).contains(limit) {
                throw ValidationError("--limit must be 1 to \(FetchRequest.maxLimit)")
            }
        }

        func query() throws -> AccessClient.Query {
            var position: ReadingPosition?
            if let after {
                let parts = after.split(separator: ":")
                guard parts.count == 2, let height = UInt64(parts[0]), let index = Int(parts[1]) else {
                    throw ValidationError("--after must be HEIGHT:POSITION")
                }
                position = ReadingPosition(height: height, position: index)
            }
            return AccessClient.Query(
                grant: try Parse.hash(grant, "--grant"), kinds: kinds.map(Parse.kinds),
                from: try from.map(QueryCommand.Readings.time), to: try to.map(QueryCommand.Readings.time),
                after: position, limit: limit)
        }

        func run() async throws {
            let devnetGenesis = try network.devnetFile()?.genesis
            guard let genesisPath = genesis ?? devnetGenesis else {
                throw ValidationError("give --genesis")
            }
            let genesis = try Files.genesis(genesisPath)
            let privateKey = try Files.privateKey(key)
            guard network.isSet else {
                let signed = try offline(genesis: genesis, key: privateKey)
                if let out {
                    try Files.write(signed.bytes, to: out)
                    print("fetch \(signed.id.hex) under grant \(grant); wrote \(out)")
                } else {
                    print(Hex.encode(signed.bytes))
                }
                return
            }
            let manager = self.manager ?? genesis.managers.first?.id ?? ""
            guard genesis.managers.contains(where: { $0.id == manager }) else {
                throw ValidationError("'\(manager)' is not a manager of channel \(genesis.channel)")
            }
            let client = try await network.connect(as: requester)
            defer { client.shutdown() }
            let access = AccessClient(client: client, genesis: genesis, requester: requester, key: privateKey)
            var query = try self.query()
            var readings: [VerifiedReading] = []
            var pages = 0
            var next: ReadingPosition?
            while true {
                let signed = try access.request(query)
                let (answer, bytes): (FetchResponse, [UInt8])
                do {
                    (answer, bytes) = try await access.send(signed, to: manager, timeout: .seconds(network.timeout))
                } catch {
                    throw ToolError("\(error)")
                }
                pages += 1
                if let saveResponse {
                    try Files.write(bytes, to: pages == 1 ? saveResponse : "\(saveResponse).\(pages)")
                }
                let verified: [VerifiedReading]
                do {
                    verified = try answer.verify(genesis: genesis, fetch: signed)
                } catch {
                    print("FAIL page \(pages): \(error)")
                    throw ExitCode(1)
                }
                switch answer.content {
                case .refused(let refusal):
                    print("refused: \(refusal)")
                    throw ExitCode(1)
                case .aggregates(let rows, let suppressed):
                    try write(try ServedOutput.aggregates(rows, suppressed: suppressed, grant: answer.grant))
                    return
                case .readings(_, _, let more):
                    readings += verified
                    next = more
                }
                guard let more = next, pages < maxPages else { break }
                query.after = more
            }
            try write(
                try ServedOutput.readings(
                    readings, genesis: genesis, grant: try Parse.hash(grant, "--grant"), next: next, format: format))
            FileHandle.standardError.write(
                Data("verified \(readings.count) reading(s) in \(pages) page(s) from \(manager)\n".utf8))
        }

        func write(_ text: String) throws {
            if let output {
                try Files.write(Array((text + "\n").utf8), to: output)
            } else {
                print(text)
            }
        }

        func offline(genesis: Genesis, key: PrivateKey) throws -> SignedFetchRequest {
            let query = try self.query()
            var nonce = [UInt8](repeating: 0, count: 16)
            for index in nonce.indices { nonce[index] = UInt8.random(in: 0...255) }
            let request = FetchRequest(
                channel: genesis.channel, requester: requester, grant: query.grant,
                time: UInt64(Date().timeIntervalSince1970 * 1000), nonce: nonce, kinds: query.kinds, from: query.from,
                to: query.to, after: query.after, limit: query.limit)
            return try SignedFetchRequest(signing: request, with: key)
        }
    }

    struct Serve: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Answer a fetch request from a store, as a manager does, and sign the access log.",
            discussion: """
                Serves only what the grant covers now: readings of consenting (or treated) patients within its kinds
                and times, each with its Merkle inclusion path and its block's commit certificate; or aggregates;
                or the refusal. With --manager-key, also writes the manager's signed access-log transaction.
                """)
        @Option(help: "The manager's SQLite store.") var db: String
        @Option(help: "The signed fetch request (binary or hex).") var request: String
        @Option(help: "Where to write the answer (CBOR).") var out: String
        @Option(help: "The manager's private key, to sign the access log.") var managerKey: String?
        @Option(help: "The manager's id.") var manager: String?
        @Option(help: "The manager's sequence number for the log (default: one above the store's).") var seq: UInt64?
        @Option(help: "Where to write the signed access-log transaction.") var logOut: String?
        @Option(help: "The manager's clock, ms (default: now).") var now: UInt64?

        func validate() throws {
            if (managerKey == nil) != (logOut == nil) || (managerKey != nil && manager == nil) {
                throw ValidationError("--manager-key, --manager and --log-out go together")
            }
        }

        func run() throws {
            let store = try Parse.store(db)
            let signed: SignedFetchRequest
            do {
                signed = try SignedFetchRequest(decoding: try Parse.file(request, what: "fetch request"))
            } catch let error as LedgerFormatError {
                throw ToolError("\(request): \(error)")
            }
            let clock = now ?? UInt64(Date().timeIntervalSince1970 * 1000)
            let response = try store.serve(signed, now: clock)
            try Files.write(response.encoded(), to: out)
            if case .refused(let refusal) = response.content {
                print("refused: \(refusal)")
                throw ExitCode(1)
            }
            print("served \(response.servedCount) item(s) under grant \(response.grant.hex); wrote \(out)")
            if let managerKey, let manager, let logOut,
                let entry = response.accessLog(requester: signed.request.requester)
            {
                let key = try Files.privateKey(managerKey)
                guard store.genesis.managers.first(where: { $0.id == manager })?.publicKey == key.publicKey else {
                    throw ToolError("\(managerKey) is not the key of manager '\(manager)'")
                }
                let log = try SignedTransaction(
                    signing: Transaction(
                        channel: store.genesis.channel, submitter: manager,
                        seq: seq ?? ((store.state.submitters[manager]?.highest ?? 0) + 1), time: clock,
                        body: .accessLog(entry)),
                    with: key)
                try Files.write(log.bytes, to: logOut)
                print("access-log seq \(log.transaction.seq) by \(manager); wrote \(logOut)")
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a manager's answer against the channel's genesis alone and print what it holds.",
            discussion: """
                Checks each block's commit certificate, each reading's Merkle inclusion and that it decodes (and,
                with --request, that the answer is to that request). Exits 1 naming the first reading that fails.
                Prints the readings as json, csv or a FHIR R4 Bundle, or the aggregates as JSON.
                """)
        @Option(help: "The answer (CBOR, from 'medledger access serve' or a manager).") var response: String
        @Option(help: "The channel's genesis.json.") var genesis: String
        @Option(help: "The signed fetch request it answers.") var request: String?
        @Option(help: "json, csv or fhir.") var format: QueryCommand.Format = .json

        func run() throws {
            let genesis = try Files.genesis(genesis)
            let answer: FetchResponse
            do {
                answer = try FetchResponse(decoding: try Files.read(response, what: "answer"))
            } catch let error as LedgerFormatError {
                throw ToolError("\(response): \(error)")
            }
            var fetch: SignedFetchRequest?
            if let request {
                do {
                    fetch = try SignedFetchRequest(decoding: try Parse.file(request, what: "fetch request"))
                } catch let error as LedgerFormatError {
                    throw ToolError("\(request): \(error)")
                }
            }
            let verified: [VerifiedReading]
            do {
                verified = try answer.verify(genesis: genesis, fetch: fetch)
            } catch {
                print("FAIL \(error)")
                throw ExitCode(1)
            }
            switch answer.content {
            case .refused(let refusal):
                print("refused: \(refusal)")
                throw ExitCode(1)
            case .aggregates(let rows, let suppressed):
                print(try ServedOutput.aggregates(rows, suppressed: suppressed, grant: answer.grant))
            case .readings(_, _, let next):
                print(
                    try ServedOutput.readings(
                        verified, genesis: genesis, grant: answer.grant, next: next, format: format)
                )
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build and sign a registrar's revoke-grant transaction: no further reads under it.")
        @Option(help: "The grant's id.") var grant: String
        @OptionGroup var signing: SigningOptions

        func run() async throws {
            try await signing.deliver(.revokeGrant(grant: try Parse.hash(grant, "--grant"))) { _ in "grant \(grant)" }
        }
    }
}

/// How verified served data is written: readings as json, csv or FHIR, aggregates as JSON.
enum ServedOutput {
    static func aggregates(_ rows: [AggregateRow], suppressed: Int, grant: Hash256) throws -> String {
        let items = rows.map { row -> [String: Any] in
            [
                "code": row.code, "unit": row.unit, "day": FHIRExport.dateTime(row.day).prefix(10),
                "count": row.count, "patients": row.patients, "mean": row.mean, "min": row.minimum,
                "max": row.maximum,
            ]
        }
        return try JSONOutput.string(["grant": grant.hex, "aggregates": items, "suppressed": suppressed])
    }

    static func readings(
        _ verified: [VerifiedReading], genesis: Genesis, grant: Hash256, next: ReadingPosition?,
        format: QueryCommand.Format
    ) throws -> String {
        let exported = verified.map {
            ExportedReading(
                height: $0.position.height, position: $0.position.position, device: $0.device,
                seq: $0.reading.seq, time: $0.reading.time, patient: $0.patient, bytes: $0.bytes,
                reading: $0.reading)
        }
        switch format {
        case .csv: return ReadingOutput.csv(exported)
        case .fhir:
            return try JSONOutput.string(
                FHIRExport.bundle(exported, channel: genesis.channel, kinds: genesis.kindTable))
        case .json:
            var object: [String: Any] = [
                "channel": genesis.channel, "grant": grant.hex, "verified": exported.count,
                "readings": exported.map(ReadingOutput.jsonItem),
            ]
            if let next { object["next"] = "\(next.height):\(next.position)" }
            return try JSONOutput.string(object)
        }
    }
}
