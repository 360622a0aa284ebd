internal import HTTPTypes
internal import Hummingbird
public import Logging
internal import NIOCore
internal import ServiceLifecycle

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
public final class LedgerWebServer: Sendable {
    /// The address it listens on.
    public let host: String
    /// The port asked for (0: a free one, reported to `onBound`).
    public let port: Int
    private let group: ServiceGroup

    /// Makes a server; nothing listens before `run`.
    /// - Parameters:
    ///   - host: the address to bind, e.g. `127.0.0.1`.
    ///   - port: the TCP port; 0 picks a free one.
    ///   - source: where the pages' data comes from.
    ///   - logger: where the server logs.
    ///   - onBound: called once the server listens, with the bound host and port.
    public init(
        host: String, port: Int, source: any LedgerWebSource, logger: Logger,
        onBound: @escaping @Sendable (String, Int) async -> Void
    ) {
        self.host = host
        self.port = port
        let router = Router()
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
        let application = Application(
            router: router, configuration: ApplicationConfiguration(address: .hostname(host, port: port)),
            onServerRunning: { channel in
                await onBound(host, channel.localAddress?.port ?? 0)
            }, logger: logger)
        var configuration = ServiceGroupConfiguration(services: [application], logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(2)
        group = ServiceGroup(configuration: configuration)
    }

    /// Serves until `shutdown` (or the task's cancellation).
    /// - Throws: when the address cannot be bound.
    public func run() async throws {
        try await group.run()
    }

    /// Stops serving: open requests may finish (for at most 2 seconds); `run` then returns.
    public func shutdown() async {
        await group.triggerGracefulShutdown()
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
