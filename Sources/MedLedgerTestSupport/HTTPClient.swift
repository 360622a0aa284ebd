import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// What an HTTP GET returned.
public struct HTTPResult: Sendable {
    /// The status code.
    public var status: Int
    /// The Content-Type header ("" when none).
    public var type: String
    /// The body as UTF-8 text.
    public var body: String
}

/// The failure of an HTTP GET that got no HTTP response.
public struct HTTPFailure: Error, CustomStringConvertible {
    /// What went wrong.
    public var description: String
}

/// A real HTTP GET with URLSession (libcurl underneath on Linux), for what a node serves.
/// - Parameters:
///   - url: the URL.
///   - timeout: seconds before the request fails.
/// - Throws: `HTTPFailure` for a bad URL or no response; URLSession's error when it fails.
public func httpGet(_ url: String, timeout: Double = 10) async throws -> HTTPResult {
    guard let target = URL(string: url) else { throw HTTPFailure(description: "not a URL: \(url)") }
    let configuration = URLSessionConfiguration.ephemeral
    configuration.timeoutIntervalForRequest = timeout
    let session = URLSession(configuration: configuration)
    defer { session.finishTasksAndInvalidate() }
    let (data, response) = try await session.data(from: target)
    guard let http = response as? HTTPURLResponse else {
        throw HTTPFailure(description: "no HTTP response from \(url)")
    }
    return HTTPResult(
        status: http.statusCode, type: http.value(forHTTPHeaderField: "Content-Type") ?? "",
        body: String(decoding: data, as: UTF8.self))
}
