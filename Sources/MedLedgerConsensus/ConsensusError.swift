/// Why the consensus module refused an input, a configuration or a stored state.
public struct ConsensusError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of problem.
    public enum Code: String, Hashable, Sendable {
        /// The bytes are not a well-formed message of the expected kind.
        case malformed
        /// The message names another channel.
        case wrongChannel
        /// The sender's validator or manager index is not in the genesis.
        case unknownSender
        /// A proposal comes from a manager that is not the proposer of its height and round.
        case wrongProposer
        /// A signature does not verify.
        case badSignature
        /// A height, round or count is beyond what the machine keeps.
        case outOfRange
        /// A commit certificate does not hold enough valid precommits, or names another block.
        case invalidCertificate
        /// The configuration or role cannot run (council size, indices).
        case invalidConfiguration
        /// A persisted state does not belong to this node or is inconsistent.
        case invalidState
        /// The node's own signer failed.
        case signingFailed
    }

    /// What kind of problem.
    public var code: Code
    /// What is wrong, for a person.
    public var message: String

    /// Makes an error.
    /// - Parameters:
    ///   - code: the kind of problem.
    ///   - message: what is wrong.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The code and the message.
    public var description: String { "\(code.rawValue): \(message)" }
}
