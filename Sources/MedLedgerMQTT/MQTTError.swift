import CMosquitto

/// A failure of the MQTT transport, with libmosquitto's return code and the MQTT 5 reason code
/// where there is one, and libmosquitto's text for them.
public struct MQTTError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure.
    public enum Code: String, Hashable, Sendable {
        /// An argument was not acceptable (a bad topic, a bad filter, an oversize payload, a bad option).
        case invalidArgument
        /// The client is not connected, and the operation needs a connection.
        case notConnected
        /// The broker could not be reached, or refused the network connection.
        case unreachable
        /// The broker refused the MQTT connection (CONNACK with a failure reason).
        case connectionRefused
        /// The broker, or an ACL, refused the client's credentials or the operation.
        case notAuthorized
        /// The connection was lost.
        case connectionLost
        /// TLS failed (handshake, certificate, configuration).
        case tls
        /// The broker answered with a failure reason code (PUBACK, SUBACK, UNSUBACK).
        case rejected
        /// A protocol violation, or a malformed packet.
        case protocolError
        /// A wait ran past its time limit.
        case timeout
        /// The client was shut down, or disconnected while the operation waited.
        case closed
        /// A system call failed (its `errno` text is in the message).
        case system
        /// Memory ran out.
        case noMemory
        /// Something libmosquitto reported that fits no other code.
        case other
    }

    /// What kind of failure.
    public var code: Code
    /// libmosquitto's return code (`MOSQ_ERR_*`), when libmosquitto reported the failure.
    public var mosquittoCode: Int32?
    /// The MQTT reason code (MQTT 5, or a 3.1.1 CONNACK return code), when the broker sent one.
    public var reasonCode: Int?
    /// What is wrong, for a person (includes libmosquitto's text).
    public var message: String

    /// Makes an error.
    /// - Parameters:
    ///   - code: what kind of failure.
    ///   - message: what is wrong.
    ///   - mosquittoCode: libmosquitto's return code, if any.
    ///   - reasonCode: the MQTT reason code, if any.
    public init(_ code: Code, _ message: String, mosquittoCode: Int32? = nil, reasonCode: Int? = nil) {
        self.code = code
        self.message = message
        self.mosquittoCode = mosquittoCode
        self.reasonCode = reasonCode
    }

    /// The message with the codes.
    public var description: String {
        var text = "\(code.rawValue): \(message)"
        if let mosquittoCode { text += " (libmosquitto \(mosquittoCode))" }
        if let reasonCode { text += " (reason code \(reasonCode))" }
        return text
    }

    /// libmosquitto's text for one of its return codes.
    public static func mosquittoText(_ rc: Int32) -> String {
        String(cString: mosquitto_strerror(rc))
    }

    /// libmosquitto's text for an MQTT 5 reason code.
    public static func reasonText(_ reason: Int) -> String {
        String(cString: mosquitto_reason_string(Int32(reason)))
    }

    /// Wraps a libmosquitto return code.
    /// - Parameters:
    ///   - rc: the return code (`MOSQ_ERR_*`), not success.
    ///   - operation: what was being done, for the message.
    static func mosquitto(_ rc: Int32, _ operation: String) -> MQTTError {
        let text = mosquittoText(rc)
        let code: Code
        switch mosq_err_t(rawValue: rc) {
        case MOSQ_ERR_INVAL, MOSQ_ERR_PAYLOAD_SIZE, MOSQ_ERR_MALFORMED_UTF8, MOSQ_ERR_OVERSIZE_PACKET,
            MOSQ_ERR_QOS_NOT_SUPPORTED, MOSQ_ERR_RETAIN_NOT_SUPPORTED, MOSQ_ERR_DUPLICATE_PROPERTY,
            MOSQ_ERR_NOT_SUPPORTED:
            code = .invalidArgument
        case MOSQ_ERR_NO_CONN: code = .notConnected
        case MOSQ_ERR_CONN_REFUSED: code = .connectionRefused
        case MOSQ_ERR_CONN_LOST, MOSQ_ERR_KEEPALIVE: code = .connectionLost
        case MOSQ_ERR_TLS, MOSQ_ERR_TLS_HANDSHAKE, MOSQ_ERR_OCSP: code = .tls
        case MOSQ_ERR_AUTH, MOSQ_ERR_ACL_DENIED: code = .notAuthorized
        case MOSQ_ERR_PROTOCOL, MOSQ_ERR_MALFORMED_PACKET, MOSQ_ERR_TOPIC_ALIAS_INVALID: code = .protocolError
        case MOSQ_ERR_NOMEM: code = .noMemory
        case MOSQ_ERR_TIMEOUT: code = .timeout
        case MOSQ_ERR_EAI, MOSQ_ERR_LOOKUP: code = .unreachable
        case MOSQ_ERR_ERRNO:
            let number = medledger_errno()
            let reason = String(cString: strerror(number))
            let unreachable = [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, ETIMEDOUT, ECONNRESET, EPIPE]
            return MQTTError(
                unreachable.contains(number) ? .unreachable : .system, "\(operation): \(reason)", mosquittoCode: rc)
        default: code = .other
        }
        return MQTTError(code, "\(operation): \(text)", mosquittoCode: rc)
    }

    /// Wraps an MQTT 5 reason code (or a 3.1.1 CONNACK code) the broker sent.
    static func reason(_ reason: Int, _ operation: String, connack: Bool = false) -> MQTTError {
        let text: String
        let code: Code
        if connack && reason < 0x80 {
            // An MQTT 3.1.1 CONNACK return code.
            text = String(cString: mosquitto_connack_string(Int32(reason)))
            code = reason == 4 || reason == 5 ? .notAuthorized : .connectionRefused
        } else {
            text = reasonText(reason)
            switch reason {
            case 0x86, 0x87, 0x8C: code = .notAuthorized
            default: code = connack ? .connectionRefused : .rejected
            }
        }
        return MQTTError(code, "\(operation): \(text)", reasonCode: reason)
    }
}
