internal import Logging
internal import MedLedgerCore
internal import MedLedgerMQTT
internal import MedLedgerStore

/// What a manager keeps for serving researchers' fetch requests (docs/CONTRACTS.md, "Serving data
/// under a grant").
struct ServingState {
    /// The fetch ids seen, with the request's time: a repeat is dropped while its time is within the
    /// channel's skew of the manager's clock (after that, the request is refused as stale anyway).
    var seen: [Hash256: UInt64] = [:]
    /// Responses held until their access log is committed, by the log transaction's id.
    var waiting: [Hash256: HeldResponse] = [:]
    /// The seq of the manager's last access log (taken from the clock, always increasing).
    var lastLogSeq: UInt64 = 0
    /// When the seen ids are next pruned, ms.
    var nextPrune: UInt64 = 0
    /// The manager's key, read once when first needed.
    var key: PrivateKey?
    /// What has been served and refused.
    var counters = FetchCounters()
}

/// A response that goes out once the access log recording it is committed.
struct HeldResponse {
    let request: MQTTMessage
    let response: [UInt8]
    let fetch: Hash256
}

/// What a manager counts of the fetches it answered.
public struct FetchCounters: Codable, Hashable, Sendable {
    /// Fetches answered with readings or aggregates (each logged on the ledger first).
    public var served = 0
    /// Fetches refused (nothing served, nothing logged).
    public var refused: [String: Int] = [:]
    /// Repeated fetch ids dropped.
    public var duplicates = 0
    /// Fetch requests that named no response topic (dropped).
    public var unanswerable = 0
    /// Access logs published.
    public var logsPublished = 0
}

extension LedgerNode {
    /// How long a response waits for its access log to be committed before the fetch is refused as
    /// `unavailable` (`NodeConfiguration.accessLogWaitMs`, default 30 s).
    var accessLogWait: Duration { .milliseconds(configuration.accessLogWaitMs ?? 30_000) }

    /// What this manager has served and refused so far.
    public var fetchCounters: FetchCounters { serving.counters }

    /// Answers a researcher's fetch request (an MQTT 5 request on `fetch/{manager}`): decodes it,
    /// drops a repeated one, serves it from the committed state, and sends the response on the
    /// request's response topic with its correlation data — a refusal at once; readings or
    /// aggregates only after the access log that records them is committed.
    func answerFetch(_ message: MQTTMessage) {
        guard message.properties.responseTopic != nil else {
            serving.counters.unanswerable += 1
            return
        }
        let now = self.now()
        let signed: SignedFetchRequest
        do {
            signed = try SignedFetchRequest(decoding: message.payload)
        } catch {
            refuse(
                message, grant: .zero, fetch: Hash256.sha256(message.payload), now: now,
                FetchRefusal(.malformed, "\(error)"))
            return
        }
        let id = signed.id
        forgetOldFetches(now: now)
        if serving.seen[id] != nil {
            serving.counters.duplicates += 1
            logger.debug("a repeated fetch request dropped", metadata: ["fetch": "\(id.hex)"])
            return
        }
        let response: FetchResponse
        do {
            response = try store.serve(signed, now: now)
        } catch {
            logger.error("cannot serve a fetch", metadata: ["fetch": "\(id.hex)", "error": "\(error)"])
            refuse(
                message, grant: signed.request.grant, fetch: id, now: now,
                FetchRefusal(.unavailable, "the manager's store failed"))
            return
        }
        // Its id is kept only once the request's signature verified and its time is fresh: ids of
        // requests anyone can make up (unsigned, badly signed, stale) never take the manager's memory.
        if response.isAuthentic { serving.seen[id] = signed.request.time }
        guard let entry = response.accessLog(requester: signed.request.requester) else {
            if case .refused(let refusal) = response.content {
                serving.counters.refused[refusal.reason.rawValue, default: 0] += 1
            }
            respond(to: message, response.encoded())
            return
        }
        let log: SignedTransaction
        do {
            log = try signAccessLog(entry, now: now)
        } catch {
            logger.error("cannot sign an access log", metadata: ["error": "\(error)"])
            refuse(
                message, grant: signed.request.grant, fetch: id, now: now,
                FetchRefusal(.unavailable, "the manager cannot sign its access log"))
            return
        }
        serving.waiting[log.id] = HeldResponse(request: message, response: response.encoded(), fetch: id)
        serving.counters.logsPublished += 1
        // Into this manager's pool now, and to every other manager's through the broker.
        publish(topics.transactions(configuration.id), log.bytes)
        admitTransaction(log.bytes, submitter: configuration.id)
        let logID = log.id
        let wait = accessLogWait
        Task { [weak self] in
            try? await Task.sleep(for: wait)
            await self?.accessLogTimedOut(logID)
        }
    }

    /// Answers a requester's question about one of their access requests (an MQTT 5 request on
    /// `access-status/{manager}` carrying a signed fetch request whose grant is the request asked
    /// about): the decision on the committed state and the reads logged under it. Nothing is served,
    /// so nothing is logged.
    func answerAccessStatus(_ message: MQTTMessage) {
        guard message.properties.responseTopic != nil else { return }
        let now = self.now()
        let answer: AccessStatusResponse
        do {
            let question = try SignedFetchRequest(decoding: message.payload)
            let id = question.request.grant
            let reads = try store.accessLog(grant: id).map {
                AccessStatusResponse.Read(
                    height: $0.height, manager: $0.manager, count: $0.entry.count, servedAt: $0.entry.servedAt,
                    fetch: $0.entry.fetch)
            }
            answer = AccessStatusResponse.answer(
                question, state: store.state, decision: try store.accessDecision(id), reads: reads, now: now)
        } catch let error as LedgerFormatError {
            answer = AccessStatusResponse(
                request: .zero, height: store.height, content: .refused(FetchRefusal(.malformed, "\(error)")))
        } catch {
            logger.error("cannot answer an access status request", metadata: ["error": "\(error)"])
            answer = AccessStatusResponse(
                request: .zero, height: store.height,
                content: .refused(FetchRefusal(.unavailable, "the manager's store failed")))
        }
        respond(to: message, answer.encoded())
    }

    /// Signs an access log with the manager's key, with a seq from the clock above every one used.
    func signAccessLog(_ entry: AccessLogEntry, now: UInt64) throws -> SignedTransaction {
        if serving.key == nil {
            guard let path = configuration.key else { throw NodeError(.configuration, "a manager needs its key") }
            serving.key = try Self.readKey(path)
        }
        let committed = store.state.submitters[configuration.id]?.highest ?? 0
        let seq = max(now, serving.lastLogSeq + 1, committed + 1)
        serving.lastLogSeq = seq
        let transaction = Transaction(
            channel: genesis.channel, submitter: configuration.id, seq: seq, time: now, body: .accessLog(entry))
        return try SignedTransaction(signing: transaction, with: serving.key!)
    }

    /// After a commit: the responses whose access logs the block carries go out.
    func releaseServed(_ checked: CheckedBlock) {
        guard !serving.waiting.isEmpty else { return }
        for signed in checked.transactions {
            guard let held = serving.waiting.removeValue(forKey: signed.id) else { continue }
            serving.counters.served += 1
            respond(to: held.request, held.response)
        }
    }

    func accessLogTimedOut(_ logID: Hash256) {
        guard let held = serving.waiting.removeValue(forKey: logID) else { return }
        logger.warning(
            "an access log was not committed in time; the fetch is refused", metadata: ["fetch": "\(held.fetch.hex)"])
        let grant = (try? FetchResponse(decoding: held.response))?.grant ?? .zero
        refuse(
            held.request, grant: grant, fetch: held.fetch, now: now(),
            FetchRefusal(
                .unavailable, "the access log was not committed within \(accessLogWait); nothing was served"))
    }

    func refuse(_ message: MQTTMessage, grant: Hash256, fetch: Hash256, now: UInt64, _ refusal: FetchRefusal) {
        serving.counters.refused[refusal.reason.rawValue, default: 0] += 1
        let response = FetchResponse(
            grant: grant, fetch: fetch, servedAt: now, height: store.height, content: .refused(refusal))
        respond(to: message, response.encoded())
    }

    func respond(to message: MQTTMessage, _ payload: [UInt8]) {
        let client = self.client
        let logger = self.logger
        Task {
            do {
                try await client.respond(to: message, payload: payload)
            } catch {
                logger.info("cannot send a fetch response", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Forgets the fetch ids whose time is out of the skew window (they would be refused as stale),
    /// at most once a second.
    func forgetOldFetches(now: UInt64) {
        guard now >= serving.nextPrune else { return }
        serving.nextPrune = now + 1000
        let skew = genesis.skewMs
        serving.seen = serving.seen.filter { $0.value + skew >= now }
    }
}
