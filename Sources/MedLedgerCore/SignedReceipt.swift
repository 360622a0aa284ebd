/// Receipts a device can trust (PROTOCOL.md, "Signed receipts").
///
/// A `committed` or `rejected` receipt tells a device it may drop a reading, so a forged one
/// loses the reading. Managers sign those two as COSE_Sign1 (RFC 9052) with their key that the
/// genesis names: protected `{1: alg, 4: kid}` with the manager's id as kid, the receipt map as
/// payload, and the receipts topic (`medledger/v1/{channel}/receipts/{device}`, its UTF-8) as
/// external AAD, so that a receipt signed for one device or channel does not verify for another.
/// `accepted` and `busy` stay bare maps: a device keeps the reading after them anyway.
extension LedgerReceipt {
    /// Whether the receipt is final (`committed`, `rejected`): the device may drop the reading,
    /// so it must come signed.
    public var isFinal: Bool {
        switch status {
        case .committed, .rejected: true
        case .accepted, .busy: false
        }
    }

    /// The receipt as a manager publishes it on `topic`: signed when final, the bare map otherwise.
    /// - Parameters:
    ///   - topic: the receipts topic it is published on (the signature covers it).
    ///   - manager: the manager's id (the kid).
    ///   - key: the manager's signing key.
    /// - Throws: `KeyError` if signing fails.
    public func published(topic: String, manager: String, key: PrivateKey) throws(KeyError) -> [UInt8] {
        guard isFinal else { return encoded() }
        return try COSESign1.sign(
            payload: encoded(), keyID: Array(manager.utf8), key: key, externalAAD: Array(topic.utf8)
        ).encoded()
    }

    /// Opens a receipt as a device does: a signed one must verify with the key of a manager of the
    /// channel, for this topic; a bare one is taken only when it is not final.
    /// - Parameters:
    ///   - bytes: the message received.
    ///   - topic: the receipts topic it arrived on.
    ///   - managers: the channel's managers (the genesis names them and their keys); nil: nothing
    ///     is verified (a test tool that has no genesis; never a device).
    /// - Returns: the receipt, and the id of the manager that signed it (nil for a bare one).
    /// - Throws: `ReceiptError` naming why the receipt cannot be trusted.
    public static func open(
        _ bytes: [UInt8], topic: String, managers: [Member]?
    ) throws(ReceiptError) -> (receipt: Self, signer: String?) {
        guard bytes.first == 0xD2 else {  // not tag 18: a bare receipt map
            let receipt = try decoded(bytes)
            guard !receipt.isFinal || managers == nil else {
                throw ReceiptError(.unsigned, "a \(receipt.statusName) receipt must be signed by a manager")
            }
            return (receipt, nil)
        }
        let message: COSESign1
        do {
            message = try COSESign1(decoding: bytes, limits: .reading)
        } catch {
            throw ReceiptError(.malformed, error.message)
        }
        let signer = message.keyID.flatMap { String(validating: $0, as: UTF8.self) }
        guard let managers else { return (try decoded(message.payload), signer) }
        guard let signer, let manager = managers.first(where: { $0.id == signer }) else {
            throw ReceiptError(.unknownSigner, "the receipt's kid names no manager of the channel")
        }
        do {
            try message.verify(with: manager.publicKey, externalAAD: Array(topic.utf8))
        } catch {
            throw ReceiptError(.badSignature, "\(signer)'s signature does not verify for \(topic): \(error.message)")
        }
        return (try decoded(message.payload), signer)
    }

    private static func decoded(_ bytes: [UInt8]) throws(ReceiptError) -> Self {
        do {
            return try Self(decoding: bytes)
        } catch {
            throw ReceiptError(.malformed, error.message)
        }
    }

    /// The status's name on the wire.
    public var statusName: String {
        switch status {
        case .accepted: "accepted"
        case .committed: "committed"
        case .rejected: "rejected"
        case .busy: "busy"
        }
    }
}

/// Why a device does not trust a receipt.
public struct ReceiptError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure.
    public enum Code: String, Hashable, Sendable, CaseIterable {
        /// Not a receipt, or a signed message whose payload is not one.
        case malformed
        /// A `committed` or `rejected` receipt that is not signed.
        case unsigned
        /// Signed, but the kid names no manager of the channel.
        case unknownSigner = "unknown-signer"
        /// Signed by a manager's name, but the signature does not verify (another key, another
        /// topic, changed bytes).
        case badSignature = "bad-signature"
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

    /// `code: message`.
    public var description: String { "\(code.rawValue): \(message)" }
}
