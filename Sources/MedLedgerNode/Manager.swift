internal import Logging
internal import MedLedgerConsensus
internal import MedLedgerCore
internal import MedLedgerStore

/// The manager's part of a node: readings and transactions in, receipts out, blocks proposed in
/// its turn.
extension LedgerNode {
    /// Checks the readings that arrived since the last call, in one batch (signatures on every
    /// core), and answers each device.
    func admitIncoming() {
        let batch = incoming
        incoming = []
        let started = ContinuousClock.now
        let outcomes = store.state.intake(
            batch, now: now(), pool: &pool, pendingTransactions: transactionPool, verifier: verifier)
        metrics.intakeVerification.record(ContinuousClock.now - started)
        for (message, outcome) in zip(batch, outcomes) {
            let status: Receipt.Status
            switch outcome {
            case .accepted(let signed):
                counters.readingsAccepted += 1
                verifiedReadings.insert(Hash256.sha256(signed.bytes))
                status = .accepted
            case .pending:
                status = .accepted
            case .poolFull:
                counters.readingsBusy += 1
                status = .busy
            case .rejected(_, let rejection):
                counters.readingsRejected[rejection.reason.rawValue, default: 0] += 1
                status = .rejected(rejection.reason)
            case .committedOrReplayed(let signed, let rejection):
                if let found = try? store.committedReading(device: signed.keyID, seq: signed.reading.seq),
                    found.bytes == signed.bytes
                {
                    counters.readingsRecommitted += 1
                    status = .committed(height: found.height, blockHash: found.blockHash)
                } else {
                    counters.readingsRejected[rejection.reason.rawValue, default: 0] += 1
                    status = .rejected(rejection.reason)
                }
            }
            answer(message.topicDevice, Receipt(seq: outcome.seq, status: status))
        }
        proposeIfReady()
    }

    /// Publishes a receipt to a device, signed when it is final (SignedReceipt.swift).
    func answer(_ device: String, _ receipt: Receipt) {
        let topic = topics.receipts(device)
        guard let managerKey else { return }
        do {
            publish(topic, try receipt.published(topic: topic, manager: configuration.id, key: managerKey))
        } catch {
            logger.error("cannot sign a receipt", metadata: ["device": "\(device)", "error": "\(error)"])
        }
    }

    /// Checks a transaction and queues it for a block, answering its submitter.
    func admitTransaction(_ bytes: [UInt8], submitter: String) {
        let answer = topics.transactionReceipts(submitter)
        let signed: SignedTransaction
        do {
            signed = try SignedTransaction(decoding: bytes)
        } catch {
            counters.transactionsRejected += 1
            publish(answer, TransactionReceipt(seq: 0, status: .rejected(.malformed)).encoded())
            return
        }
        let seq = signed.transaction.seq
        if let pending = transactionPool.first(where: {
            $0.transaction.submitter == signed.transaction.submitter && $0.transaction.seq == seq
        }) {
            let status: TransactionReceipt.Status = pending.bytes == signed.bytes ? .accepted : .rejected(.replayed)
            publish(answer, TransactionReceipt(seq: seq, status: status).encoded())
            return
        }
        guard transactionPool.count < configuration.transactionPoolCapacity ?? 1000 else {
            // Full: the submitter sends it again later, as after a reading's `busy`.
            counters.transactionsBusy += 1
            publish(answer, TransactionReceipt(seq: seq, status: .busy).encoded())
            return
        }
        if let rejection = store.state.check(signed) {
            if rejection.reason == .replayed,
                let found = try? store.committedTransaction(submitter: signed.transaction.submitter, seq: seq),
                found.bytes == signed.bytes
            {
                // Sent again after it was committed (its receipt was lost): committed, once.
                publish(
                    answer,
                    TransactionReceipt(seq: seq, status: .committed(height: found.height, blockHash: found.blockHash))
                        .encoded())
                return
            }
            counters.transactionsRejected += 1
            publish(answer, TransactionReceipt(seq: seq, status: .rejected(rejection.reason)).encoded())
            return
        }
        counters.transactionsAccepted += 1
        transactionPool.append(signed)
        publish(answer, TransactionReceipt(seq: seq, status: .accepted).encoded())
        proposeIfReady()
    }

    /// Answers the machine's request for a proposal once there is something to propose: a
    /// block's worth of readings or bytes, readings that waited the block timeout, or a
    /// transaction. (An idle channel makes no empty blocks.)
    func proposeIfReady() {
        guard let wanted = wantedProposal else { return }
        guard wanted.height == machine.height, wanted.round == machine.round, wanted.height == store.height + 1
        else {
            wantedProposal = nil
            return
        }
        let now = self.now()
        guard !transactionPool.isEmpty || pool.shouldCut(genesis.block, now: now) else { return }
        let reserved = min(
            transactionPool.reduce(0) { $0 + $1.bytes.count }, LedgerState.transactionByteBudget(genesis.block))
        let assembly = store.state.assemble(
            transactions: transactionPool, readings: pool.batch(genesis.block, reservedBytes: reserved), time: now,
            proposer: configuration.id)
        for (signed, rejection) in assembly.refusedTransactions {
            transactionPool.removeAll { $0.bytes == signed.bytes }
            publish(
                topics.transactionReceipts(signed.transaction.submitter),
                TransactionReceipt(seq: signed.transaction.seq, status: .rejected(rejection.reason)).encoded())
        }
        if !assembly.refusedReadings.isEmpty {
            pool.remove(assembly.refusedReadings.map { ($0.0.reading.device, $0.0.reading.seq) })
            for (signed, rejection) in assembly.refusedReadings {
                verifiedReadings.remove(Hash256.sha256(signed.bytes))
                counters.readingsRejected[rejection.reason.rawValue, default: 0] += 1
                answer(signed.keyID, Receipt(seq: signed.reading.seq, status: .rejected(rejection.reason)))
            }
        }
        let block = assembly.block
        guard block.body.readings.count + block.body.transactions.count > 0 else { return }
        wantedProposal = nil
        execute(
            machine.handle(
                .proposalValue(height: wanted.height, round: wanted.round, value: ProposalValue(block: block))))
    }

    /// After a commit: every reading and transaction of the block leaves the pools and its sender
    /// gets a `committed` receipt.
    func answerCommitted(_ checked: CheckedBlock) {
        let height = checked.block.header.height
        let hash = checked.headerHash
        pool.remove(checked.readings.map { ($0.reading.device, $0.reading.seq) })
        for signed in checked.readings {
            if !verifiedReadings.isEmpty { verifiedReadings.remove(Hash256.sha256(signed.bytes)) }
            answer(signed.keyID, Receipt(seq: signed.reading.seq, status: .committed(height: height, blockHash: hash)))
        }
        if pool.count == 0 { verifiedReadings = [] }  // nothing pending: no digest is needed any more
        if !checked.transactions.isEmpty {
            let committed = Set(checked.transactions.map(\.bytes))
            transactionPool.removeAll { committed.contains($0.bytes) }
            for signed in checked.transactions {
                publish(
                    topics.transactionReceipts(signed.transaction.submitter),
                    TransactionReceipt(seq: signed.transaction.seq, status: .committed(height: height, blockHash: hash))
                        .encoded())
            }
        }
        // Transactions the new state refuses (a conflicting one was committed) are refused now.
        let state = store.state
        for signed in transactionPool {
            guard let rejection = state.check(signed) else { continue }
            transactionPool.removeAll { $0.bytes == signed.bytes }
            publish(
                topics.transactionReceipts(signed.transaction.submitter),
                TransactionReceipt(seq: signed.transaction.seq, status: .rejected(rejection.reason)).encoded())
        }
        releaseServed(checked)
    }
}
