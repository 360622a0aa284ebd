/// A failure to configure, start or stop a Mosquitto broker.
public struct BrokerError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure.
    public enum Code: Hashable, Sendable {
        /// A configuration is invalid, or names a file that cannot be read.
        case invalidConfiguration
        /// The `mosquitto` program could not be started.
        case spawnFailed
        /// The broker exited before it accepted connections (its log is in the message).
        case exited
        /// The broker did not accept connections in time.
        case timeout
        /// A file or directory could not be made or written.
        case io
    }

    /// What kind of failure.
    public var code: Code
    /// What is wrong, for a person.
    public var message: String

    /// Makes an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { message }
}
