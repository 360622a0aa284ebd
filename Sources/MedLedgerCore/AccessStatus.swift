/// What a manager answers a requester who asks, with a signed fetch request sent on the status
/// topic, what became of one of their access requests: the decision on the committed state, and the
/// reads logged under the grant.
public struct AccessStatusResponse: Hashable, Sendable {
    /// One read logged under a grant.
    public struct Read: Hashable, Sendable {
        /// The height of the block carrying the access log.
        public var height: UInt64
        /// The manager that served and logged it.
        public var manager: String
        /// How many readings or rows it served.
        public var count: UInt64
        /// When it was served, ms.
        public var servedAt: UInt64
        /// The fetch request's id.
        public var fetch: Hash256

        /// Makes one.
        public init(height: UInt64, manager: String, count: UInt64, servedAt: UInt64, fetch: Hash256) {
            self.height = height
            self.manager = manager
            self.count = count
            self.servedAt = servedAt
            self.fetch = fetch
        }
    }

    /// The answer.
    public enum Content: Hashable, Sendable {
        /// Granted: committed at a height, with the grant's mode, kinds, expiry, revocation and reads.
        case granted(
            committedAt: UInt64, mode: AccessMode, kinds: [String], expiresAt: UInt64, revokedAt: UInt64?,
            reads: [Read])
        /// Denied by its contract (or the runtime), committed at a height.
        case denied(committedAt: UInt64, AccessDenial)
        /// The question is not answered (not signed right, stale, no such request of the requester).
        case refused(FetchRefusal)
    }

    /// The access request asked about.
    public var request: Hash256
    /// The manager's height when it answered.
    public var height: UInt64
    /// The answer.
    public var content: Content

    /// Makes a response.
    public init(request: Hash256, height: UInt64, content: Content) {
        self.request = request
        self.height = height
        self.content = content
    }

    /// Answers a status question on a committed state: the question is a signed fetch request whose
    /// grant is the access request asked about; it must be the requester's own.
    /// - Parameters:
    ///   - question: the signed request.
    ///   - state: the committed state.
    ///   - decision: the committed decision on the request, if any.
    ///   - reads: the reads logged under it.
    ///   - now: the manager's clock, ms.
    public static func answer(
        _ question: SignedFetchRequest, state: LedgerState, decision: AccessDecision?, reads: [Read], now: UInt64
    ) -> AccessStatusResponse {
        let request = question.request
        func refused(_ reason: FetchRefusal.Reason, _ message: String) -> AccessStatusResponse {
            AccessStatusResponse(
                request: request.grant, height: state.height, content: .refused(FetchRefusal(reason, message)))
        }
        guard request.channel == state.genesis.channel else {
            return refused(.wrongChannel, "the request is for channel '\(request.channel)'")
        }
        guard let requester = state.access.professionals[request.requester] else {
            return refused(.unknownRequester, "'\(request.requester)' is not a registered researcher or clinician")
        }
        do {
            try question.message.verify(with: requester.key)
        } catch {
            return refused(.badSignature, "\(error)")
        }
        let distance = request.time > now ? request.time - now : now - request.time
        guard distance <= state.genesis.skewMs else {
            return refused(.stale, "the request's time \(request.time) is over \(state.genesis.skewMs) ms from \(now)")
        }
        guard let decision, decision.requester == request.requester else {
            return refused(
                .unknownGrant, "no access request \(request.grant.hex) of \(request.requester) is committed")
        }
        switch decision.outcome {
        case .granted(let grant):
            let revokedAt = state.access.grants[grant.id]?.revokedAt ?? grant.revokedAt
            return AccessStatusResponse(
                request: request.grant, height: state.height,
                content: .granted(
                    committedAt: decision.height, mode: grant.scope.mode, kinds: grant.scope.kinds,
                    expiresAt: grant.expiresAt, revokedAt: revokedAt, reads: reads))
        case .denied(let denial):
            return AccessStatusResponse(
                request: request.grant, height: state.height, content: .denied(committedAt: decision.height, denial))
        }
    }

    /// The response in deterministic CBOR: `{1: request, 2: height, 3: "granted" | "denied" | "refused",
    /// 4: committed at, 5: mode, ? 6: k, 7: [kinds], 8: expires at, ? 9: revoked at,
    /// 10: [{1: height, 2: manager, 3: count, 4: served at, 5: fetch}], 11: denial code,
    /// 12: denial message, 13: refusal reason, 14: refusal message}`.
    public func encoded() -> [UInt8] {
        var entries: [CBORMapEntry] = [CBORMapEntry(1, .bytes(request.bytes)), CBORMapEntry(2, .unsigned(height))]
        switch content {
        case .granted(let committedAt, let mode, let kinds, let expiresAt, let revokedAt, let reads):
            entries.append(CBORMapEntry(3, "granted"))
            entries.append(CBORMapEntry(4, .unsigned(committedAt)))
            entries.append(CBORMapEntry(5, .text(mode.name)))
            if case .aggregates(let k) = mode { entries.append(CBORMapEntry(6, .unsigned(UInt64(k)))) }
            entries.append(CBORMapEntry(7, .array(kinds.map(CBOR.text))))
            entries.append(CBORMapEntry(8, .unsigned(expiresAt)))
            if let revokedAt { entries.append(CBORMapEntry(9, .unsigned(revokedAt))) }
            entries.append(
                CBORMapEntry(
                    10,
                    .array(
                        reads.map {
                            .map([
                                CBORMapEntry(1, .unsigned($0.height)), CBORMapEntry(2, .text($0.manager)),
                                CBORMapEntry(3, .unsigned($0.count)), CBORMapEntry(4, .unsigned($0.servedAt)),
                                CBORMapEntry(5, .bytes($0.fetch.bytes)),
                            ])
                        })))
        case .denied(let committedAt, let denial):
            entries.append(CBORMapEntry(3, "denied"))
            entries.append(CBORMapEntry(4, .unsigned(committedAt)))
            entries.append(CBORMapEntry(11, .text(denial.code.rawValue)))
            entries.append(CBORMapEntry(12, .text(denial.message)))
        case .refused(let refusal):
            entries.append(CBORMapEntry(3, "refused"))
            entries.append(CBORMapEntry(13, .text(refusal.reason.rawValue)))
            entries.append(CBORMapEntry(14, .text(refusal.message)))
        }
        return CBOR.map(entries).encoded()
    }

    /// Decodes a response (it must be in deterministic encoding).
    /// - Throws: `LedgerFormatError` naming what is wrong.
    public init(decoding bytes: [UInt8]) throws(LedgerFormatError) {
        let map = try LedgerFormatError.decodeDeterministic(
            bytes, what: "access status response",
            limits: CBORLimits(
                maxDepth: 4, maxInputBytes: 16 << 20, maxItems: 1 << 20, maxStringBytes: 1 << 16,
                maxCollectionCount: 1 << 18))
        guard let raw = map[intKey: 1]?.bytesValue, let request = Hash256(bytes: raw),
            let height = map[intKey: 2]?.wireUInt, let status = map[intKey: 3]?.textValue
        else {
            throw LedgerFormatError("an access status response needs 1 (request), 2 (height) and 3 (status)")
        }
        let content: Content
        switch status {
        case "granted":
            guard let committedAt = map[intKey: 4]?.wireUInt, let modeName = map[intKey: 5]?.textValue,
                let kindItems = map[intKey: 7]?.arrayValue, let expiresAt = map[intKey: 8]?.wireUInt
            else { throw LedgerFormatError("an access status grant needs 4, 5, 7 and 8") }
            let mode: AccessMode
            switch modeName {
            case "readings": mode = .readings
            case "aggregates":
                guard let k = map[intKey: 6]?.wireUInt.flatMap({ Int(exactly: $0) }) else {
                    throw LedgerFormatError("an aggregates grant needs 6 (k)")
                }
                mode = .aggregates(k: k)
            default: throw LedgerFormatError("unknown grant mode '\(modeName)'")
            }
            var reads: [Read] = []
            for item in map[intKey: 10]?.arrayValue ?? [] {
                guard let height = item[intKey: 1]?.wireUInt, let manager = item[intKey: 2]?.textValue,
                    let count = item[intKey: 3]?.wireUInt, let servedAt = item[intKey: 4]?.wireUInt,
                    let fetchBytes = item[intKey: 5]?.bytesValue, let fetch = Hash256(bytes: fetchBytes)
                else { throw LedgerFormatError("a read is {1: height, 2: manager, 3: count, 4: served at, 5: fetch}") }
                reads.append(Read(height: height, manager: manager, count: count, servedAt: servedAt, fetch: fetch))
            }
            content = .granted(
                committedAt: committedAt, mode: mode, kinds: kindItems.compactMap(\.textValue), expiresAt: expiresAt,
                revokedAt: map[intKey: 9]?.wireUInt, reads: reads)
        case "denied":
            guard let committedAt = map[intKey: 4]?.wireUInt,
                let code = map[intKey: 11]?.textValue.flatMap(DenialCode.init(rawValue:)),
                let message = map[intKey: 12]?.textValue
            else { throw LedgerFormatError("an access status denial needs 4, 11 (a known code) and 12") }
            content = .denied(committedAt: committedAt, AccessDenial(code, message))
        case "refused":
            guard let reason = map[intKey: 13]?.textValue.flatMap(FetchRefusal.Reason.init(rawValue:)),
                let message = map[intKey: 14]?.textValue
            else { throw LedgerFormatError("an access status refusal needs 13 (a known reason) and 14") }
            content = .refused(FetchRefusal(reason, message))
        default:
            throw LedgerFormatError("access status response: unknown status '\(status)'")
        }
        self.init(request: request, height: height, content: content)
    }
}
