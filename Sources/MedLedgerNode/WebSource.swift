import Foundation
internal import Logging
internal import MedLedgerConsensus
internal import MedLedgerCore
internal import MedLedgerStore
internal import MedLedgerWeb

/// The node's web pages and metrics, read from the node: small snapshots are taken on its actor
/// (the store is not shared across threads); a block's page is decompressed, decoded and given
/// its proofs off the actor.
struct NodeWebSource: LedgerWebSource {
    let node: LedgerNode

    func overviewPage() async -> OverviewPage { await node.overviewPage() }

    func blockPage(height: UInt64) async -> BlockPage? {
        guard let stored = await node.storedBlockForPage(height) else { return nil }
        return Self.page(stored)
    }

    func statusJSON() async -> [UInt8] { await node.statusJSON() }

    func metricsText() async -> [UInt8] { await node.metricsText() }

    /// What a block page is made from.
    struct StoredBlock: Sendable {
        var channel: String
        var node: String
        var ledgerHeight: UInt64
        var header: BlockHeader
        var compressedBody: [UInt8]
        var certificate: CommitCertificate
        var parameters: BlockParameters
        var council: [String]
    }

    /// Decodes a stored block and proves each of its readings into the readings root.
    static func page(_ stored: StoredBlock) -> BlockPage {
        let header = stored.header
        let body = try? BlockBody(compressed: stored.compressedBody, parameters: stored.parameters)
        let readings = body?.readings ?? []
        let leaves = readings.map { MerkleTree.leafHash($0) }
        let proofs = MerkleTree.inclusionProofs(leafHashes: leaves)
        var rows: [ReadingRow] = []
        rows.reserveCapacity(readings.count)
        for (position, bytes) in readings.enumerated() {
            let proof = proofs[position].map(\.hex)
            if let signed = try? SignedReading(decoding: bytes) {
                let reading = signed.reading
                rows.append(
                    ReadingRow(
                        position: position, device: reading.device, seq: reading.seq, time: reading.time,
                        values: LedgerNode.describe(reading.records), leafHash: leaves[position].hex, proof: proof))
            } else {
                rows.append(
                    ReadingRow(
                        position: position, device: "?", seq: 0, time: 0, values: "(does not decode)",
                        leafHash: leaves[position].hex, proof: proof))
            }
        }
        let transactions = (body?.transactions ?? []).enumerated().map { position, bytes in
            guard let signed = try? SignedTransaction(decoding: bytes) else {
                return TransactionRow(position: position, submitter: "?", seq: 0, summary: "(does not decode)")
            }
            let transaction = signed.transaction
            var summary = "\(transaction.body.typeName) \(transaction.body.subject)"
            switch transaction.body {
            case .registerDevice(_, let key, let patient):
                summary += " (\(key.algorithm))" + (patient.map { " for \($0)" } ?? "")
            case .assignDevice(_, let patient): summary += " to \(patient)"
            case .registerProfessional(_, let role, _, let organisation):
                summary += " (\(role.rawValue))" + (organisation.map { " of \($0)" } ?? "")
            case .consent(_, let study), .withdrawConsent(_, let study): summary += " for \(study)"
            case .recordTreatment(let clinician, _), .endTreatment(let clinician, _): summary += " by \(clinician)"
            case .accessRequest(let request): summary += " (\(request.purpose))"
            case .revokeDevice, .deployContract, .revokeGrant, .accessLog: break
            }
            return TransactionRow(
                position: position, submitter: transaction.submitter, seq: transaction.seq, summary: summary)
        }
        let signers = stored.certificate.signatures.map { entry in
            stored.council.indices.contains(entry.validator) ? stored.council[entry.validator] : "#\(entry.validator)"
        }
        return BlockPage(
            channel: stored.channel, node: stored.node, ledgerHeight: stored.ledgerHeight, height: header.height,
            hash: header.hash.hex, previousHash: header.previousHash.hex, time: header.time, proposer: header.proposer,
            readingsRoot: header.readingsRoot.hex, transactionsRoot: header.transactionsRoot.hex,
            councilHash: header.councilHash.hex, certificateRound: stored.certificate.round, signers: signers,
            readings: rows, transactions: transactions)
    }
}

extension LedgerNode {
    /// How many blocks the overview lists.
    static let overviewBlocks = 12
    /// How many devices the overview lists.
    static let overviewDevices = 200

    /// The overview page's snapshot.
    func overviewPage() -> OverviewPage {
        let height = store.height
        var blocks: [BlockSummary] = []
        var level = height
        while level >= 1, blocks.count < Self.overviewBlocks {
            if let stored = try? store.storedBlock(at: level) {
                let header = stored.header
                blocks.append(
                    BlockSummary(
                        height: level, hash: header.hash.hex, time: header.time, proposer: header.proposer,
                        readings: header.readingCount, transactions: header.transactionCount))
            }
            level -= 1
        }
        let council = genesis.council.enumerated().map { index, member in
            MemberRow(id: member.id, last: observed.votes[index]?.seen, isSelf: member.id == configuration.id)
        }
        let managers = genesis.managers.enumerated().map { index, member in
            MemberRow(id: member.id, last: observed.proposals[index]?.seen, isSelf: member.id == configuration.id)
        }
        let registry = store.state.devices
        let shown = registry.keys.sorted().prefix(Self.overviewDevices)
        let devices = shown.map { id -> DeviceRow in
            let record = registry[id]!
            return DeviceRow(
                id: id, patient: record.patient, revoked: record.revoked,
                last: lastReading(device: id, highest: record.replay.highest))
        }
        let step =
            switch machine.step {
            case .propose: "propose"
            case .prevote: "prevote"
            case .precommit: "precommit"
            }
        let rows: [CountRow] = [
            CountRow("readings received", counters.readingsReceived),
            CountRow("readings accepted", counters.readingsAccepted),
            CountRow("readings answered busy", counters.readingsBusy),
            CountRow("readings committed", counters.readingsCommitted),
            CountRow("blocks committed", counters.blocksCommitted),
            CountRow("blocks synced", counters.blocksSynced),
            CountRow("proposals sent", counters.proposalsSent),
            CountRow("blocks validated", counters.blocksValidated),
            CountRow("invalid proposals", counters.invalidProposals),
            CountRow("step timeouts", counters.timeouts),
            CountRow("evidence recorded", counters.evidence),
        ]
        return OverviewPage(
            channel: genesis.channel, node: configuration.id, role: configuration.role.rawValue, height: height,
            headHash: store.state.headerHash.hex, round: machine.round, step: step, time: now(), blocks: blocks,
            council: council, managers: managers, devices: devices, deviceCount: registry.count,
            rejections: counters.readingsRejected.sorted { $0.key < $1.key }.map { CountRow($0.key, $0.value) },
            counters: rows)
    }

    /// A device's last committed reading: from what this node saw committed, else looked up in
    /// the store once (after a restart).
    func lastReading(device: String, highest: UInt64) -> ReadingSummary? {
        if let known = observed.lastReadings[device], known.seq >= highest { return known }
        guard highest > 0, let found = try? store.committedReading(device: device, seq: highest),
            let signed = try? SignedReading(decoding: found.bytes)
        else { return observed.lastReadings[device] }
        let summary = ReadingSummary(
            seq: highest, time: signed.reading.time, values: Self.describe(signed.reading.records), height: found.height
        )
        observed.lastReadings[device] = summary
        return summary
    }

    /// What a block's page is made from, read from the store.
    func storedBlockForPage(_ height: UInt64) -> NodeWebSource.StoredBlock? {
        guard height >= 1, height <= store.height, let stored = try? store.storedBlock(at: height) else { return nil }
        return NodeWebSource.StoredBlock(
            channel: genesis.channel, node: configuration.id, ledgerHeight: store.height, header: stored.header,
            compressedBody: stored.compressedBody, certificate: stored.certificate, parameters: genesis.block,
            council: genesis.council.map(\.id))
    }

    /// The node's status, as its status file holds it.
    var status: NodeStatus {
        NodeStatus(
            node: configuration.id, role: configuration.role.rawValue, pid: getpid(), height: store.height,
            headHash: store.state.headerHash.hex, counters: counters, time: now(), http: observed.httpURL)
    }

    /// A file's size in bytes; 0 when it does not exist.
    static func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
    }

    /// The node's status as JSON.
    func statusJSON() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? Array(encoder.encode(status))) ?? Array("{}".utf8)
    }

    // MARK: - The HTTP endpoint

    /// Starts the HTTP endpoint when the configuration asks for one (`webListening` waits until
    /// it listens).
    /// - Returns: the running endpoint, or nil without `configuration.http`.
    func startWeb() -> RunningWeb? {
        guard let http = configuration.http else { return nil }
        let (events, continuation) = AsyncStream.makeStream(of: Result<String, NodeError>.self)
        let server = LedgerWebServer(
            host: http.host, port: http.port, source: NodeWebSource(node: self), logger: logger
        ) { host, port in
            continuation.yield(.success(host.contains(":") ? "http://[\(host)]:\(port)/" : "http://\(host):\(port)/"))
        }
        let logger = self.logger
        let task = Task {
            do {
                try await server.run()
            } catch {
                logger.error("the HTTP endpoint stopped", metadata: ["error": "\(error)"])
                continuation.yield(
                    .failure(NodeError(.network, "cannot serve HTTP on \(http.host):\(http.port): \(error)")))
            }
            continuation.finish()
        }
        return RunningWeb(server: server, task: task, events: events, address: "\(http.host):\(http.port)")
    }

    /// Waits until the endpoint listens and notes its URL.
    /// - Throws: `NodeError.Code.network` when the address cannot be bound.
    func webListening(_ web: RunningWeb) async throws(NodeError) {
        for await event in web.events {
            switch event {
            case .success(let url):
                observed.httpURL = url
                logger.info("serving the web page and metrics", metadata: ["url": "\(url)"])
                return
            case .failure(let error):
                throw error
            }
        }
        throw NodeError(.network, "the HTTP endpoint on \(web.address) stopped before it listened")
    }

    /// Whether the node has connected, subscribed and started consensus.
    public var isStarted: Bool { startedHeight > 0 }
}

/// The node's HTTP endpoint while it runs.
struct RunningWeb {
    let server: LedgerWebServer
    let task: Task<Void, Never>
    let events: AsyncStream<Result<String, NodeError>>
    let address: String

    /// Stops it and waits until it has stopped.
    func stop() async {
        await server.shutdown()
        await task.value
    }
}
