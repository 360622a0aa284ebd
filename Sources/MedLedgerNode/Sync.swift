internal import Logging
internal import MedLedgerCore
internal import MedLedgerMQTT
internal import MedLedgerStore

/// Catching up: a node that is behind asks its peers (the genesis' validators and managers) for
/// the committed blocks it lacks, over MQTT 5 request/response, and verifies every block and
/// certificate before it applies it. Every node answers such requests from its store.
extension LedgerNode {
    /// The most bytes of blocks one sync response carries.
    static let syncResponseBytes = 4 << 20

    /// Starts catching up to at least `height` (once; a running catch-up takes the new target).
    func catchUp(to height: UInt64) {
        syncTarget = max(syncTarget, height)
        guard !syncing else { return }
        syncing = true
        let peers = (genesis.council + genesis.managers).map(\.id).filter { $0 != configuration.id }
        Task { [weak self] in
            await self?.syncLoop(peers: peers)
        }
    }

    func syncLoop(peers: [String]) async {
        var failures = 0
        var peerIndex = Int.random(in: 0..<max(1, peers.count))
        while !stopped, !peers.isEmpty, store.height + 1 < syncTarget || failures > 0 && store.height < syncTarget {
            let peer = peers[peerIndex % peers.count]
            let request = SyncRequest(channel: genesis.channel, from: store.height + 1, count: SyncRequest.maxCount)
            do {
                let response = try await client.request(
                    topic: topics.sync(peer), payload: request.encoded(), timeout: .seconds(5))
                let answer = try SyncResponse(decoding: response.payload, parameters: genesis.block)
                let applied = try applySynced(answer.blocks)
                if applied == 0 {
                    failures += 1
                    peerIndex += 1
                } else {
                    failures = 0
                    // The peer's height is a hint, taken only as far as it has shown verified
                    // blocks: one more request's worth past what it sent.
                    syncTarget = max(syncTarget, min(answer.height, store.height + UInt64(SyncRequest.maxCount)))
                }
            } catch let error as StoreError where error.code == .sqlite {
                // Its own store cannot be written (a full disk): no peer can help.
                logger.critical("cannot write a synced block; stopping", metadata: ["error": "\(error)"])
                fail("cannot write a synced block: \(error)")
                break
            } catch {
                logger.info("sync from a peer failed", metadata: ["peer": "\(peer)", "error": "\(error)"])
                failures += 1
                peerIndex += 1
            }
            if failures >= peers.count * 3 {
                logger.warning("no peer could help this node catch up; it waits for the next commit")
                break
            }
            if failures > 0 { try? await Task.sleep(for: .milliseconds(200 * min(failures, 10))) }
        }
        syncing = false
        startHeight(store.height + 1)
        writeStatus()
    }

    /// Verifies and applies blocks a peer sent, in order; stops at the first that does not fit.
    /// - Returns: how many were applied.
    func applySynced(_ encoded: [[UInt8]]) throws -> Int {
        var applied = 0
        for bytes in encoded {
            let committed = try CommittedBlock(decoding: bytes, parameters: genesis.block)
            guard committed.header.height == store.height + 1 else { break }
            let block = try committed.verifiedBlock(genesis: genesis)
            let checked = try store.append(block, certificate: committed.certificate, verifier: knownReadingsVerifier)
            if configuration.role == .manager { answerCommitted(checked) }
            observeReadings(checked)
            counters.blocksSynced += 1
            applied += 1
        }
        if applied > 0 {
            logger.info("caught up from a peer", metadata: ["height": "\(store.height)", "blocks": "\(applied)"])
        }
        return applied
    }

    /// Answers a peer's sync request with the blocks the store has from the height asked for.
    func answerSync(_ message: MQTTMessage) {
        guard message.properties.responseTopic != nil else { return }
        var blocks: [[UInt8]] = []
        if let request = try? SyncRequest(decoding: message.payload), request.channel == genesis.channel {
            var bytes = 0
            var height = request.from
            while height <= store.height, blocks.count < request.count {
                guard let stored = try? store.storedBlock(at: height) else { break }
                let committed = CommittedBlock(
                    header: stored.header, compressedBody: stored.compressedBody, certificate: stored.certificate
                ).encoded()
                if !blocks.isEmpty, bytes + committed.count > Self.syncResponseBytes { break }
                bytes += committed.count
                blocks.append(committed)
                height += 1
            }
        }
        let response = SyncResponse(blocks: blocks, height: store.height).encoded()
        let client = self.client
        Task {
            try? await client.respond(to: message, payload: response)
        }
    }
}
