/// A reading's place on the chain: its block's height and its index among the block's readings.
public struct ReadingPosition: Hashable, Sendable, Comparable {
    /// The block's height.
    public var height: UInt64
    /// The reading's index in the block (its Merkle leaf index).
    public var position: Int

    /// Makes one.
    public init(height: UInt64, position: Int) {
        self.height = height
        self.position = position
    }

    /// Chain order.
    public static func < (lhs: ReadingPosition, rhs: ReadingPosition) -> Bool {
        (lhs.height, lhs.position) < (rhs.height, rhs.position)
    }

    var cbor: CBOR { .array([.unsigned(height), .unsigned(UInt64(position))]) }

    init?(cbor: CBOR?) {
        guard let items = cbor?.arrayValue, items.count == 2, let height = items[0].wireUInt,
            let position = items[1].wireUInt.flatMap({ Int(exactly: $0) })
        else { return nil }
        self.init(height: height, position: position)
    }
}

/// A researcher's or clinician's request to a manager for the data a grant covers, signed with the
/// key they were registered with. It may narrow the grant (fewer kinds, a shorter time range) and
/// page through the readings (`after`, `limit`).
public struct FetchRequest: Hashable, Sendable {
    /// The most readings one response carries.
    public static let maxLimit = 1000

    /// The channel id.
    public var channel: String
    /// The requester's id (the COSE kid).
    public var requester: String
    /// The grant.
    public var grant: Hash256
    /// The requester's clock, ms: a manager refuses a request too far from its own clock.
    public var time: UInt64
    /// 1 to 32 bytes that make each request distinct.
    public var nonce: [UInt8]
    /// Only these kinds (a subset of the grant's).
    public var kinds: [String]?
    /// Only readings at or after this time, ms.
    public var from: UInt64?
    /// Only readings at or before this time, ms.
    public var to: UInt64?
    /// Only readings after this position (the previous response's `next`).
    public var after: ReadingPosition?
    /// At most this many readings (1 to 1000; default 1000).
    public var limit: Int?

    /// Makes a request.
    public init(
        channel: String, requester: String, grant: Hash256, time: UInt64, nonce: [UInt8], kinds: [String]? = nil,
        from: UInt64? = nil, to: UInt64? = nil, after: ReadingPosition? = nil, limit: Int? = nil
    ) {
        self.channel = channel
        self.requester = requester
        self.grant = grant
        self.time = time
        self.nonce = nonce
        self.kinds = kinds
        self.from = from
        self.to = to
        self.after = after
        self.limit = limit
    }

    /// The payload in deterministic CBOR: `{1: channel, 2: requester, 3: grant, 4: time, 5: nonce,
    /// ? 6: [kinds], ? 7: from, ? 8: to, ? 9: [height, position], ? 10: limit}`.
    public func payloadBytes() -> [UInt8] {
        var entries: [CBORMapEntry] = [
            CBORMapEntry(1, .text(channel)), CBORMapEntry(2, .text(requester)), CBORMapEntry(3, .bytes(grant.bytes)),
            CBORMapEntry(4, .unsigned(time)), CBORMapEntry(5, .bytes(nonce)),
        ]
        if let kinds { entries.append(CBORMapEntry(6, .array(kinds.map(CBOR.text)))) }
        if let from { entries.append(CBORMapEntry(7, .unsigned(from))) }
        if let to { entries.append(CBORMapEntry(8, .unsigned(to))) }
        if let after { entries.append(CBORMapEntry(9, after.cbor)) }
        if let limit { entries.append(CBORMapEntry(10, .unsigned(UInt64(limit)))) }
        return CBOR.map(entries).encoded()
    }

    /// Decodes a payload (any valid encoding).
    /// - Throws: `LedgerFormatError` naming the field that is wrong.
    public init(payload: [UInt8]) throws(LedgerFormatError) {
        let map: CBOR
        do {
            map = try CBOR.decode(payload, limits: .fetch)
        } catch {
            throw LedgerFormatError("fetch request payload: \(error)")
        }
        guard let channel = map[intKey: 1]?.textValue, let requester = map[intKey: 2]?.textValue,
            Identifiers.isValidNodeID(requester), let raw = map[intKey: 3]?.bytesValue,
            let grant = Hash256(bytes: raw), let time = map[intKey: 4]?.wireUInt,
            let nonce = map[intKey: 5]?.bytesValue, (1...32).contains(nonce.count)
        else {
            throw LedgerFormatError(
                "a fetch request is {1: channel, 2: requester, 3: grant (32 bytes), 4: time, 5: nonce (1 to 32 bytes)}")
        }
        var kinds: [String]?
        if let item = map[intKey: 6] {
            guard let items = item.arrayValue, (1...AccessRequest.maxKinds).contains(items.count) else {
                throw LedgerFormatError("fetch request key 6 (kinds) is not an array of 1 to 32 codes")
            }
            var codes: [String] = []
            for item in items {
                guard let code = item.textValue else { throw LedgerFormatError("fetch request: a kind is not text") }
                codes.append(code)
            }
            kinds = codes
        }
        func optionalTime(_ key: Int64) throws(LedgerFormatError) -> UInt64? {
            guard let item = map[intKey: key] else { return nil }
            guard let value = item.wireUInt else {
                throw LedgerFormatError("fetch request key \(key) is not an unsigned integer")
            }
            return value
        }
        var after: ReadingPosition?
        if let item = map[intKey: 9] {
            guard let position = ReadingPosition(cbor: item) else {
                throw LedgerFormatError("fetch request key 9 (after) is not [height, position]")
            }
            after = position
        }
        var limit: Int?
        if let item = map[intKey: 10] {
            guard let value = item.wireUInt, (1...UInt64(Self.maxLimit)).contains(value) else {
                throw LedgerFormatError("fetch request key 10 (limit) is not 1 to \(Self.maxLimit)")
            }
            limit = Int(value)
        }
        self.init(
            channel: channel, requester: requester, grant: grant, time: time, nonce: nonce, kinds: kinds,
            from: try optionalTime(7), to: try optionalTime(8), after: after, limit: limit)
    }
}

extension CBORLimits {
    /// Limits for a fetch request (at most 4 KiB).
    public static let fetch = CBORLimits(
        maxDepth: 4, maxInputBytes: SignedFetchRequest.maxEncodedBytes, maxItems: 128,
        maxStringBytes: SignedFetchRequest.maxEncodedBytes, maxCollectionCount: 64)
}

/// A signed fetch request: COSE_Sign1 with the requester's id as kid.
public struct SignedFetchRequest: Hashable, Sendable {
    /// The largest encoded fetch request accepted.
    public static let maxEncodedBytes = 4096

    /// The bytes exactly as signed.
    public let bytes: [UInt8]
    /// The COSE_Sign1 message.
    public let message: COSESign1
    /// The decoded request.
    public let request: FetchRequest

    /// SHA-256 of the signed bytes: the id an access log names.
    public var id: Hash256 { Hash256.sha256(bytes) }

    /// Decodes a signed fetch request (the signature is checked by `LedgerState.authorize`).
    /// - Throws: `LedgerFormatError` naming what is wrong.
    public init(decoding bytes: [UInt8]) throws(LedgerFormatError) {
        guard bytes.count <= Self.maxEncodedBytes else {
            throw LedgerFormatError(
                "a fetch request of \(bytes.count) bytes is over the limit of \(Self.maxEncodedBytes)")
        }
        do {
            message = try COSESign1(decoding: bytes, limits: .fetch)
        } catch {
            throw LedgerFormatError("fetch request: \(error)")
        }
        request = try FetchRequest(payload: message.payload)
        guard let kid = message.keyID, kid == Array(request.requester.utf8) else {
            throw LedgerFormatError("the fetch request's kid is not its requester '\(request.requester)'")
        }
        self.bytes = bytes
    }

    /// Signs a request with the requester's key.
    /// - Throws: `KeyError` when signing fails.
    public init(signing request: FetchRequest, with key: PrivateKey) throws(KeyError) {
        message = try COSESign1.sign(payload: request.payloadBytes(), keyID: Array(request.requester.utf8), key: key)
        bytes = message.encoded()
        self.request = request
    }
}

/// Why a manager refuses a fetch.
public struct FetchRefusal: Error, Hashable, Sendable, CustomStringConvertible {
    /// The reason.
    public enum Reason: String, Hashable, Sendable, CaseIterable {
        /// Not a valid signed fetch request.
        case malformed
        /// For another channel.
        case wrongChannel = "wrong-channel"
        /// The requester is not a registered professional.
        case unknownRequester = "unknown-requester"
        /// The signature does not verify with the requester's registered key.
        case badSignature = "bad-signature"
        /// The request's time is too far from the manager's clock.
        case stale
        /// No such grant is committed.
        case unknownGrant = "unknown-grant"
        /// The grant is someone else's.
        case notYourGrant = "not-your-grant"
        /// The grant was revoked.
        case revoked
        /// The grant expired.
        case expired
        /// Fewer patients than the grant's k would be aggregated.
        case cohortTooSmall = "cohort-too-small"
        /// The request narrows to kinds outside the grant.
        case outOfScope = "out-of-scope"
        /// The manager could not serve now (its store failed, or the access log of what it would
        /// serve was not committed in time); nothing was served. Ask again, or ask another manager.
        case unavailable
    }

    /// The reason.
    public var reason: Reason
    /// What exactly, for a person.
    public var message: String

    /// Makes a refusal.
    public init(_ reason: Reason, _ message: String) {
        self.reason = reason
        self.message = message
    }

    /// `reason: message`.
    public var description: String { "\(reason.rawValue): \(message)" }
}

/// What a manager will serve for a fetch: decided on the committed state alone, before it reads any
/// reading.
public struct ServingPlan: Hashable, Sendable {
    /// The grant.
    public var grant: AccessGrant
    /// The fetch request's id.
    public var fetch: Hash256
    /// The patients whose readings may be served, sorted: those who consent to the grant's study now
    /// (narrowed to its patient, if it names one), or its patient while the requester treats them.
    public var patients: [String]
    /// The kinds served (the grant's, narrowed by the request), sorted.
    public var kinds: [String]
    /// The earliest reading time served, ms.
    public var from: UInt64
    /// The latest reading time served, ms.
    public var to: UInt64
    /// Readings after this position only.
    public var after: ReadingPosition?
    /// At most this many readings.
    public var limit: Int
}

extension LedgerState {
    /// The patients a grant covers now: a study's grant covers the patients who consent to the study
    /// (only its patient, if it names one); a patient's grant without a study covers that patient
    /// while the requester is recorded as treating them. A withdrawn consent or an ended treatment
    /// takes effect at once.
    /// - Parameter grant: the grant.
    /// - Returns: the patients, sorted.
    public func coveredPatients(_ grant: AccessGrant) -> [String] {
        let view = AccessLedgerView(state: self)
        if let study = grant.scope.study {
            let consenting = view.consentingPatients(study: study)
            guard let patient = grant.scope.patient else { return consenting }
            return consenting.contains(patient) ? [patient] : []
        }
        guard let patient = grant.scope.patient else { return [] }
        return view.isTreating(clinician: grant.requester, patient: patient) ? [patient] : []
    }

    /// A manager's check of a fetch request against the committed state: the signature with the
    /// requester's registered key, freshness, the grant (theirs, not revoked, not expired), and what
    /// it covers now.
    /// - Parameters:
    ///   - fetch: the signed request.
    ///   - now: the manager's clock, ms; a grant has expired once this or the last block's time
    ///     reaches its expiry.
    /// - Returns: what may be served, or why nothing may.
    public func authorize(_ fetch: SignedFetchRequest, now: UInt64) -> Result<ServingPlan, FetchRefusal> {
        let request = fetch.request
        guard request.channel == genesis.channel else {
            return .failure(FetchRefusal(.wrongChannel, "the request is for channel '\(request.channel)'"))
        }
        guard let requester = access.professionals[request.requester] else {
            return .failure(
                FetchRefusal(.unknownRequester, "'\(request.requester)' is not a registered researcher or clinician"))
        }
        do {
            try fetch.message.verify(with: requester.key)
        } catch {
            return .failure(FetchRefusal(.badSignature, "\(error)"))
        }
        let distance = request.time > now ? request.time - now : now - request.time
        guard distance <= genesis.skewMs else {
            return .failure(
                FetchRefusal(.stale, "the request's time \(request.time) is over \(genesis.skewMs) ms from \(now)"))
        }
        guard let grant = access.grants[request.grant] else {
            return .failure(FetchRefusal(.unknownGrant, "no grant \(request.grant.hex) is committed"))
        }
        guard grant.requester == request.requester else {
            return .failure(FetchRefusal(.notYourGrant, "grant \(grant.id.hex) is not \(request.requester)'s"))
        }
        if let revokedAt = grant.revokedAt {
            return .failure(FetchRefusal(.revoked, "grant \(grant.id.hex) was revoked at height \(revokedAt)"))
        }
        let clock = Swift.max(now, time)
        guard grant.isLive(at: clock) else {
            return .failure(FetchRefusal(.expired, "grant \(grant.id.hex) expired at \(grant.expiresAt)"))
        }
        var kinds = grant.scope.kinds
        if let asked = request.kinds {
            let outside = Set(asked).subtracting(kinds)
            guard outside.isEmpty else {
                return .failure(
                    FetchRefusal(.outOfScope, "kinds \(outside.sorted().joined(separator: ", ")) are outside the grant")
                )
            }
            kinds = Array(Set(asked)).sorted()
        }
        let patients = coveredPatients(grant)
        if case .aggregates(let k) = grant.scope.mode, patients.count < k {
            return .failure(
                FetchRefusal(.cohortTooSmall, "\(patients.count) patients are covered now, fewer than k = \(k)"))
        }
        return .success(
            ServingPlan(
                grant: grant, fetch: fetch.id, patients: patients, kinds: kinds,
                from: Swift.max(grant.scope.from, request.from ?? 0),
                to: Swift.min(grant.scope.to, request.to ?? .max), after: request.after,
                limit: request.limit ?? FetchRequest.maxLimit))
    }
}

/// One reading served, with its Merkle inclusion path under its block's readings root.
public struct ServedReading: Hashable, Sendable {
    /// Where it is on the chain.
    public var position: ReadingPosition
    /// The exact signed bytes the device sent.
    public var bytes: [UInt8]
    /// The pseudonymous patient its device was assigned to when it was committed.
    public var patient: String
    /// The RFC 9162 inclusion path of `bytes` at `position.position` in its block.
    public var path: [Hash256]

    /// Makes one.
    public init(position: ReadingPosition, bytes: [UInt8], patient: String, path: [Hash256]) {
        self.position = position
        self.bytes = bytes
        self.patient = patient
        self.path = path
    }

    var cbor: CBOR {
        .map([
            CBORMapEntry(1, .unsigned(position.height)), CBORMapEntry(2, .unsigned(UInt64(position.position))),
            CBORMapEntry(3, .bytes(bytes)), CBORMapEntry(4, .text(patient)),
            CBORMapEntry(5, .array(path.map { .bytes($0.bytes) })),
        ])
    }
}

/// A block header with its commit certificate: what a reader checks a proof against.
public struct CertifiedHeader: Hashable, Sendable {
    /// The header.
    public var header: BlockHeader
    /// Its commit certificate.
    public var certificate: CommitCertificate

    /// Makes one.
    public init(header: BlockHeader, certificate: CommitCertificate) {
        self.header = header
        self.certificate = certificate
    }
}

/// Counts, mean and range of one kind on one day (UTC), over the readings of at least k patients.
public struct AggregateRow: Hashable, Sendable {
    /// The LOINC code.
    public var code: String
    /// Its UCUM unit.
    public var unit: String
    /// The day: ms of its UTC midnight.
    public var day: UInt64
    /// How many values.
    public var count: Int
    /// Of how many distinct patients.
    public var patients: Int
    /// Their mean.
    public var mean: Double
    /// The smallest.
    public var minimum: Double
    /// The largest.
    public var maximum: Double

    /// Makes a row.
    public init(
        code: String, unit: String, day: UInt64, count: Int, patients: Int, mean: Double, minimum: Double,
        maximum: Double
    ) {
        self.code = code
        self.unit = unit
        self.day = day
        self.count = count
        self.patients = patients
        self.mean = mean
        self.minimum = minimum
        self.maximum = maximum
    }

    var cbor: CBOR {
        .map([
            CBORMapEntry(1, .text(code)), CBORMapEntry(2, .text(unit)), CBORMapEntry(3, .unsigned(day)),
            CBORMapEntry(4, .unsigned(UInt64(count))), CBORMapEntry(5, .unsigned(UInt64(patients))),
            CBORMapEntry(6, .float(mean)), CBORMapEntry(7, .float(minimum)), CBORMapEntry(8, .float(maximum)),
        ])
    }

    /// Aggregates readings per kind and UTC day, over the records of the given kinds, leaving out
    /// every group with readings of fewer than `k` distinct patients.
    /// - Parameters:
    ///   - readings: each reading with its patient.
    ///   - kinds: the kinds to aggregate.
    ///   - k: the smallest number of patients a group may describe.
    /// - Returns: the rows (sorted by code, then day) and how many groups were left out.
    public static func aggregate(_ readings: [(patient: String, reading: Reading)], kinds: [String], k: Int)
        -> (rows: [AggregateRow], suppressed: Int)
    {
        struct Key: Hashable {
            var code: String
            var day: UInt64
        }
        struct Group {
            var unit: String
            var count = 0
            var sum = 0.0
            var minimum = Double.infinity
            var maximum = -Double.infinity
            var patients = Set<String>()
        }
        let covered = Set(kinds)
        var groups: [Key: Group] = [:]
        for (patient, reading) in readings {
            let day = reading.time - reading.time % 86_400_000
            for record in reading.records where covered.contains(record.code) {
                let value = record.value.doubleValue
                let key = Key(code: record.code, day: day)
                var group = groups[key] ?? Group(unit: record.unit)
                group.count += 1
                group.sum += value
                group.minimum = Swift.min(group.minimum, value)
                group.maximum = Swift.max(group.maximum, value)
                group.patients.insert(patient)
                groups[key] = group
            }
        }
        var rows: [AggregateRow] = []
        var suppressed = 0
        for (key, group) in groups {
            guard group.patients.count >= k else {
                suppressed += 1
                continue
            }
            rows.append(
                AggregateRow(
                    code: key.code, unit: group.unit, day: key.day, count: group.count,
                    patients: group.patients.count, mean: group.sum / Double(group.count), minimum: group.minimum,
                    maximum: group.maximum))
        }
        rows.sort { ($0.code, $0.day) < ($1.code, $1.day) }
        return (rows, suppressed)
    }
}

/// What a manager answers to a fetch: readings with their proofs, aggregates, or a refusal.
public struct FetchResponse: Hashable, Sendable {
    /// What was served.
    public enum Content: Hashable, Sendable {
        /// Readings, each with its inclusion path; the certified header of each block they are in;
        /// and where the next page starts, if there is more.
        case readings([ServedReading], headers: [CertifiedHeader], next: ReadingPosition?)
        /// Aggregate rows, and how many groups were left out for having fewer than k patients.
        case aggregates([AggregateRow], suppressed: Int)
        /// Nothing, and why.
        case refused(FetchRefusal)
    }

    /// The grant asked under.
    public var grant: Hash256
    /// The fetch request's id.
    public var fetch: Hash256
    /// The manager's clock when it served, ms.
    public var servedAt: UInt64
    /// The height of the state it served from.
    public var height: UInt64
    /// What was served.
    public var content: Content

    /// Whether the request it answers was shown to be its requester's and fresh: served, or refused
    /// for a reason found after the signature and time checks (a manager remembers only such
    /// requests' ids).
    public var isAuthentic: Bool {
        guard case .refused(let refusal) = content else { return true }
        switch refusal.reason {
        case .malformed, .wrongChannel, .unknownRequester, .badSignature, .stale: return false
        default: return true
        }
    }

    /// Makes a response.
    public init(grant: Hash256, fetch: Hash256, servedAt: UInt64, height: UInt64, content: Content) {
        self.grant = grant
        self.fetch = fetch
        self.servedAt = servedAt
        self.height = height
        self.content = content
    }

    /// How many readings or aggregate rows were served (0 for a refusal).
    public var servedCount: Int {
        switch content {
        case .readings(let readings, _, _): readings.count
        case .aggregates(let rows, _): rows.count
        case .refused: 0
        }
    }

    /// The served set's hash, which the manager's access log records: SHA-256 of the deterministic
    /// CBOR array of the served readings (key 6) or aggregate rows (key 9); nil for a refusal.
    public var servedHash: Hash256? {
        switch content {
        case .readings(let readings, _, _): Hash256.sha256(CBOR.array(readings.map(\.cbor)).encoded())
        case .aggregates(let rows, _): Hash256.sha256(CBOR.array(rows.map(\.cbor)).encoded())
        case .refused: nil
        }
    }

    /// The access log a manager signs for this response, or nil when it served nothing.
    /// - Parameter requester: who asked.
    public func accessLog(requester: String) -> AccessLogEntry? {
        guard let servedHash else { return nil }
        return AccessLogEntry(
            grant: grant, requester: requester, fetch: fetch, count: UInt64(servedCount), servedHash: servedHash,
            servedAt: servedAt)
    }

    /// The response in deterministic CBOR:
    /// `{1: grant, 2: fetch, 3: served at, 4: height, 5: "readings" | "aggregates" | "refused",
    ///   6: [{1: height, 2: position, 3: bytes, 4: patient, 5: [path]}], 7: [{1: header, 2: certificate}],
    ///   8: next [height, position], 9: [{1: code, 2: unit, 3: day, 4: count, 5: patients, 6: mean,
    ///   7: min, 8: max}], 10: suppressed, 11: refusal reason, 12: refusal message}`.
    public func encoded() -> [UInt8] {
        var entries: [CBORMapEntry] = [
            CBORMapEntry(1, .bytes(grant.bytes)), CBORMapEntry(2, .bytes(fetch.bytes)),
            CBORMapEntry(3, .unsigned(servedAt)), CBORMapEntry(4, .unsigned(height)),
        ]
        switch content {
        case .readings(let readings, let headers, let next):
            entries.append(CBORMapEntry(5, "readings"))
            entries.append(CBORMapEntry(6, .array(readings.map(\.cbor))))
            entries.append(
                CBORMapEntry(
                    7,
                    .array(
                        headers.map {
                            .map([
                                CBORMapEntry(1, .bytes($0.header.encoded())),
                                CBORMapEntry(2, .bytes($0.certificate.encoded())),
                            ])
                        })))
            if let next { entries.append(CBORMapEntry(8, next.cbor)) }
        case .aggregates(let rows, let suppressed):
            entries.append(CBORMapEntry(5, "aggregates"))
            entries.append(CBORMapEntry(9, .array(rows.map(\.cbor))))
            entries.append(CBORMapEntry(10, .unsigned(UInt64(suppressed))))
        case .refused(let refusal):
            entries.append(CBORMapEntry(5, "refused"))
            entries.append(CBORMapEntry(11, .text(refusal.reason.rawValue)))
            entries.append(CBORMapEntry(12, .text(refusal.message)))
        }
        return CBOR.map(entries).encoded()
    }

    /// Decodes a response (it must be in deterministic encoding).
    /// - Throws: `LedgerFormatError` naming what is wrong.
    public init(decoding bytes: [UInt8]) throws(LedgerFormatError) {
        let map = try LedgerFormatError.decodeDeterministic(
            bytes, what: "fetch response",
            limits: CBORLimits(
                maxDepth: 6, maxInputBytes: 64 << 20, maxItems: 1 << 22, maxStringBytes: 1 << 20,
                maxCollectionCount: 1 << 20))
        func hash(_ item: CBOR?, _ what: String) throws(LedgerFormatError) -> Hash256 {
            guard let raw = item?.bytesValue, let hash = Hash256(bytes: raw) else {
                throw LedgerFormatError("fetch response: \(what) is not a 32-byte hash")
            }
            return hash
        }
        guard let servedAt = map[intKey: 3]?.wireUInt, let height = map[intKey: 4]?.wireUInt,
            let status = map[intKey: 5]?.textValue
        else { throw LedgerFormatError("a fetch response needs 3 (served at), 4 (height) and 5 (status)") }
        let content: Content
        switch status {
        case "readings":
            var readings: [ServedReading] = []
            for item in map[intKey: 6]?.arrayValue ?? [] {
                guard let height = item[intKey: 1]?.wireUInt,
                    let position = item[intKey: 2]?.wireUInt.flatMap({ Int(exactly: $0) }),
                    let bytes = item[intKey: 3]?.bytesValue, let patient = item[intKey: 4]?.textValue,
                    let pathItems = item[intKey: 5]?.arrayValue
                else {
                    throw LedgerFormatError(
                        "fetch response: a reading is not {1: height, 2: pos, 3: bytes, 4: patient, 5: path}")
                }
                var path: [Hash256] = []
                for node in pathItems { path.append(try hash(node, "a path node")) }
                readings.append(
                    ServedReading(
                        position: ReadingPosition(height: height, position: position), bytes: bytes, patient: patient,
                        path: path))
            }
            var headers: [CertifiedHeader] = []
            for item in map[intKey: 7]?.arrayValue ?? [] {
                guard let header = item[intKey: 1]?.bytesValue, let certificate = item[intKey: 2]?.bytesValue else {
                    throw LedgerFormatError("fetch response: a header is not {1: header, 2: certificate}")
                }
                headers.append(
                    CertifiedHeader(
                        header: try BlockHeader(decoding: header),
                        certificate: try CommitCertificate(decoding: certificate)))
            }
            var next: ReadingPosition?
            if let item = map[intKey: 8] {
                guard let position = ReadingPosition(cbor: item) else {
                    throw LedgerFormatError("fetch response: next is not [height, position]")
                }
                next = position
            }
            content = .readings(readings, headers: headers, next: next)
        case "aggregates":
            var rows: [AggregateRow] = []
            for item in map[intKey: 9]?.arrayValue ?? [] {
                guard let code = item[intKey: 1]?.textValue, let unit = item[intKey: 2]?.textValue,
                    let day = item[intKey: 3]?.wireUInt,
                    let count = item[intKey: 4]?.wireUInt.flatMap({ Int(exactly: $0) }),
                    let patients = item[intKey: 5]?.wireUInt.flatMap({ Int(exactly: $0) }),
                    let mean = item[intKey: 6]?.doubleValue, let minimum = item[intKey: 7]?.doubleValue,
                    let maximum = item[intKey: 8]?.doubleValue
                else { throw LedgerFormatError("fetch response: an aggregate row lacks a field") }
                rows.append(
                    AggregateRow(
                        code: code, unit: unit, day: day, count: count, patients: patients, mean: mean,
                        minimum: minimum, maximum: maximum))
            }
            content = .aggregates(rows, suppressed: Int(map[intKey: 10]?.wireUInt ?? 0))
        case "refused":
            guard let reason = map[intKey: 11]?.textValue.flatMap(FetchRefusal.Reason.init(rawValue:)),
                let message = map[intKey: 12]?.textValue
            else { throw LedgerFormatError("fetch response: a refusal needs 11 (reason) and 12 (message)") }
            content = .refused(FetchRefusal(reason, message))
        default:
            throw LedgerFormatError("fetch response: unknown status '\(status)'")
        }
        self.init(
            grant: try hash(map[intKey: 1], "the grant"), fetch: try hash(map[intKey: 2], "the fetch id"),
            servedAt: servedAt, height: height, content: content)
    }
}

/// A served reading the researcher's client checked: the council committed exactly these bytes.
public struct VerifiedReading: Hashable, Sendable {
    /// Where it is on the chain.
    public var position: ReadingPosition
    /// The pseudonymous patient, as the manager named it.
    public var patient: String
    /// The exact signed bytes.
    public var bytes: [UInt8]
    /// The decoded reading.
    public var reading: Reading
    /// The device's key id (its device id).
    public var device: String
}

/// Why a response does not verify: which reading (or header), and what.
public struct AccessVerificationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The index of the reading that fails, when one does.
    public var index: Int?
    /// What is wrong.
    public var message: String

    /// Makes one.
    public init(index: Int?, _ message: String) {
        self.index = index
        self.message = message
    }

    /// `reading i: message`.
    public var description: String { index.map { "reading \($0): \(message)" } ?? message }
}

extension FetchResponse {
    /// The researcher's check of a response, trusting nothing but the channel's genesis: each block
    /// header's commit certificate (2f+1 council signatures), each reading's Merkle inclusion under
    /// its header's readings root, that each reading decodes and names the channel, that readings come
    /// in chain order without repeats, and — given the grant's scope — that each is inside it.
    /// A manager could still leave readings out; it cannot change, invent or move one.
    /// - Parameters:
    ///   - genesis: the channel's genesis.
    ///   - fetch: the request this answers (its id and grant must match).
    ///   - scope: the grant's scope, to check every reading against.
    /// - Returns: the verified readings (empty for aggregates or a refusal).
    /// - Throws: `AccessVerificationError` naming the first reading or header that fails.
    public func verify(genesis: Genesis, fetch: SignedFetchRequest? = nil, scope: AccessScope? = nil)
        throws(AccessVerificationError) -> [VerifiedReading]
    {
        if let fetch {
            guard self.fetch == fetch.id, grant == fetch.request.grant else {
                throw AccessVerificationError(index: nil, "the response answers another request")
            }
        }
        guard case .readings(let readings, let headers, _) = content else { return [] }
        var certified: [UInt64: BlockHeader] = [:]
        for entry in headers {
            guard entry.header.channel == genesis.channel else {
                throw AccessVerificationError(index: nil, "header \(entry.header.height) is for another channel")
            }
            do {
                try entry.certificate.verify(genesis: genesis, header: entry.header)
            } catch {
                throw AccessVerificationError(index: nil, "header \(entry.header.height): \(error)")
            }
            certified[entry.header.height] = entry.header
        }
        var out: [VerifiedReading] = []
        var previous: ReadingPosition?
        for (index, served) in readings.enumerated() {
            func fail(_ message: String) -> AccessVerificationError { AccessVerificationError(index: index, message) }
            if let previous, served.position <= previous { throw fail("it is out of chain order or repeated") }
            previous = served.position
            guard let header = certified[served.position.height] else {
                throw fail("no certified header for height \(served.position.height)")
            }
            do {
                try MerkleTree.verifyInclusion(
                    leafIndex: UInt64(served.position.position), treeSize: UInt64(header.readingCount),
                    leafHash: MerkleTree.leafHash(served.bytes), proof: served.path, root: header.readingsRoot)
            } catch {
                throw fail("its bytes are not the ones the council committed: \(error)")
            }
            let signed: SignedReading
            do {
                signed = try SignedReading(decoding: served.bytes)
            } catch {
                throw fail("it does not decode: \(error)")
            }
            guard signed.reading.channel == genesis.channel else { throw fail("it is for another channel") }
            if let scope {
                let covered = Set(scope.kinds)
                guard signed.reading.records.allSatisfy({ covered.contains($0.code) }) else {
                    throw fail("it has a record of a kind outside the grant")
                }
                guard signed.reading.time >= scope.from, signed.reading.time <= scope.to else {
                    throw fail("its time \(signed.reading.time) is outside the grant's range")
                }
                if let patient = scope.patient, served.patient != patient {
                    throw fail("it is of patient \(served.patient), not the grant's \(patient)")
                }
            }
            out.append(
                VerifiedReading(
                    position: served.position, patient: served.patient, bytes: served.bytes, reading: signed.reading,
                    device: signed.keyID))
        }
        return out
    }
}
