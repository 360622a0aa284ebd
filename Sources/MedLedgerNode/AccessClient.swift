public import MedLedgerCore
public import MedLedgerMQTT

#if canImport(Glibc)
    internal import Glibc
#endif

/// A researcher's or clinician's side of serving: signs fetch requests with their key, sends each
/// to one manager as an MQTT 5 request on `fetch/{manager}`, and checks every response against the
/// channel's genesis alone (`FetchResponse.verify`).
public struct AccessClient: Sendable {
    /// The channel's genesis.
    public let genesis: Genesis
    /// The requester's id (a registered researcher or clinician).
    public let requester: String
    private let key: PrivateKey
    private let client: MQTTClient
    private let topics: ChannelTopics

    /// Makes a client over a connected MQTT 5 client.
    public init(client: MQTTClient, genesis: Genesis, requester: String, key: PrivateKey) {
        self.client = client
        self.genesis = genesis
        self.requester = requester
        self.key = key
        topics = ChannelTopics(channel: genesis.channel)
    }

    /// What to fetch under a grant: all of it, or fewer kinds, a shorter time range, a page.
    public struct Query: Hashable, Sendable {
        /// The grant.
        public var grant: Hash256
        /// Only these kinds.
        public var kinds: [String]?
        /// Only readings at or after this time, ms.
        public var from: UInt64?
        /// Only readings at or before this time, ms.
        public var to: UInt64?
        /// Only readings after this position.
        public var after: ReadingPosition?
        /// At most this many readings a page.
        public var limit: Int?

        /// Makes a query.
        public init(
            grant: Hash256, kinds: [String]? = nil, from: UInt64? = nil, to: UInt64? = nil,
            after: ReadingPosition? = nil, limit: Int? = nil
        ) {
            self.grant = grant
            self.kinds = kinds
            self.from = from
            self.to = to
            self.after = after
            self.limit = limit
        }
    }

    /// A signed fetch request for one page of a query, with a fresh nonce and the clock's time.
    /// - Throws: `NodeError` when signing fails.
    public func request(_ query: Query) throws(NodeError) -> SignedFetchRequest {
        var nonce = [UInt8](repeating: 0, count: 16)
        for index in nonce.indices { nonce[index] = UInt8.random(in: 0...255) }
        let request = FetchRequest(
            channel: genesis.channel, requester: requester, grant: query.grant, time: Self.now(), nonce: nonce,
            kinds: query.kinds, from: query.from, to: query.to, after: query.after, limit: query.limit)
        do {
            return try SignedFetchRequest(signing: request, with: key)
        } catch {
            throw NodeError(.configuration, "cannot sign the fetch request: \(error)")
        }
    }

    /// Sends a signed fetch request to a manager and returns its response, unverified.
    /// - Parameters:
    ///   - signed: the request.
    ///   - manager: the manager's id.
    ///   - timeout: the longest wait (a manager answers once the access log of what it serves is
    ///     committed).
    /// - Returns: the response and its exact bytes.
    /// - Throws: `NodeError` on a broker failure, a timeout, or a response that does not decode.
    public func send(_ signed: SignedFetchRequest, to manager: String, timeout: Duration = .seconds(40))
        async throws(NodeError) -> (response: FetchResponse, bytes: [UInt8])
    {
        let message: MQTTMessage
        do {
            message = try await client.request(topic: topics.fetch(manager), payload: signed.bytes, timeout: timeout)
        } catch {
            throw NodeError(.network, "no answer from manager '\(manager)': \(error)")
        }
        do {
            return (try FetchResponse(decoding: message.payload), message.payload)
        } catch {
            throw NodeError(.network, "manager '\(manager)' answered with something that is not a response: \(error)")
        }
    }

    /// One page of a query, fetched and verified.
    public struct Page: Sendable {
        /// The signed request.
        public var request: SignedFetchRequest
        /// The response.
        public var response: FetchResponse
        /// Its exact bytes.
        public var bytes: [UInt8]
        /// The readings, each checked against the genesis (empty for aggregates or a refusal).
        public var readings: [VerifiedReading]
    }

    /// Fetches one page and verifies it against the genesis (and, given the grant's scope, that
    /// every reading is inside it).
    /// - Throws: `NodeError` as `send`; `AccessVerificationError` when the response does not verify.
    public func fetch(_ query: Query, from manager: String, scope: AccessScope? = nil, timeout: Duration = .seconds(40))
        async throws -> Page
    {
        let signed = try request(query)
        let (response, bytes) = try await send(signed, to: manager, timeout: timeout)
        let readings = try response.verify(genesis: genesis, fetch: signed, scope: scope)
        return Page(request: signed, response: response, bytes: bytes, readings: readings)
    }

    /// Asks a manager what became of one of the requester's access requests: the decision on its
    /// committed state and the reads logged under the grant. (The manager's word: a replica of the
    /// ledger, `medledger access status --db`, needs no trust in it.)
    /// - Parameters:
    ///   - request: the access request's id (the grant's).
    ///   - manager: the manager's id.
    ///   - timeout: the longest wait.
    /// - Throws: `NodeError` on a broker failure, a timeout, or an answer that does not decode.
    public func status(of request: Hash256, from manager: String, timeout: Duration = .seconds(20))
        async throws(NodeError) -> AccessStatusResponse
    {
        let question = try self.request(Query(grant: request))
        let message: MQTTMessage
        do {
            message = try await client.request(
                topic: topics.accessStatus(manager), payload: question.bytes, timeout: timeout)
        } catch {
            throw NodeError(.network, "no answer from manager '\(manager)': \(error)")
        }
        do {
            return try AccessStatusResponse(decoding: message.payload)
        } catch {
            throw NodeError(.network, "manager '\(manager)' answered with something that is not a status: \(error)")
        }
    }

    static func now() -> UInt64 { WallClock.nowMs() }
}
