internal import HTTPTypes
internal import Hummingbird
public import Logging
internal import NIOCore

/// Where the web server gets what it shows: a node answers each call from its own state.
public protocol LedgerWebSource: Sendable {
    /// The overview page's snapshot.
    func overviewPage() async -> OverviewPage
    /// A block's page; nil when the node has no block at that height.
    func blockPage(height: UInt64) async -> BlockPage?
    /// The node's status as JSON (what its status file holds).
    func statusJSON() async -> [UInt8]
    /// The node's metrics in the Prometheus text exposition format.
    func metricsText() async -> [UInt8]
}

/// A node's read-only HTTP endpoint (Hummingbird): `/` (overview), `/blocks/{height}`,
/// `/metrics` (Prometheus text), `/status.json`. Nothing it serves changes the ledger.
public struct LedgerWebServer: Sendable {
    /// The address to listen on.
    public let host: String
    /// The port (0: a free one, reported to `run`'s `onBound`).
    public let port: Int
    let source: any LedgerWebSource
    let logger: Logger

    /// Makes a server; nothing listens before `run`.
    /// - Parameters:
    ///   - host: the address to bind, e.g. `127.0.0.1`.
    ///   - port: the TCP port; 0 picks a free one.
    ///   - source: where the pages' data comes from.
    ///   - logger: where the server logs.
    public init(host: String, port: Int, source: any LedgerWebSource, logger: Logger) {
        self.host = host
        self.port = port
        self.source = source
        self.logger = logger
    }

    /// Serves until the task is cancelled (or gracefully shut down).
    /// - Parameter onBound: called once the server listens, with the bound host and port.
    /// - Throws: when the address cannot be bound.
    public func run(onBound: @escaping @Sendable (String, Int) async -> Void) async throws {
        let router = Router()
        let source = self.source
        router.get("/") { _, _ -> Response in
            Self.response(.ok, type: "text/html; charset=utf-8", WebPages.overview(await source.overviewPage()))
        }
        router.get("/blocks/:height") { _, context -> Response in
            guard let text = context.parameters.get("height"), let height = UInt64(text), height > 0 else {
                return Self.response(
                    .badRequest, type: "text/html; charset=utf-8",
                    WebPages.notFound("A block height is a positive integer."))
            }
            guard let page = await source.blockPage(height: height) else {
                return Self.response(
                    .notFound, type: "text/html; charset=utf-8",
                    WebPages.notFound("This node has no block at height \(height)."))
            }
            return Self.response(.ok, type: "text/html; charset=utf-8", WebPages.block(page))
        }
        router.get("/metrics") { _, _ -> Response in
            Self.response(.ok, type: "text/plain; version=0.0.4; charset=utf-8", bytes: await source.metricsText())
        }
        router.get("/status.json") { _, _ -> Response in
            Self.response(.ok, type: "application/json", bytes: await source.statusJSON())
        }
        let host = self.host
        let application = Application(
            router: router, configuration: ApplicationConfiguration(address: .hostname(host, port: port)),
            onServerRunning: { channel in
                await onBound(host, channel.localAddress?.port ?? 0)
            }, logger: logger)
        try await application.run()
    }

    static func response(_ status: HTTPResponse.Status, type: String, _ text: String) -> Response {
        response(status, type: type, bytes: Array(text.utf8))
    }

    static func response(_ status: HTTPResponse.Status, type: String, bytes: [UInt8]) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
