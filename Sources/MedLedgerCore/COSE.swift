/// A COSE_Sign1 message (RFC 9052 §4.2): one signer, the signature over the protected header and
/// the payload.
///
/// Decoding keeps the exact protected-header and payload bytes, so the signature can be checked
/// whatever encoding the signer used.
public struct COSESign1: Hashable, Sendable {
    /// The CBOR tag of a COSE_Sign1 message.
    public static let tag: UInt64 = 18

    /// The protected header as it was serialized (the content of the byte string).
    public let protectedBytes: [UInt8]
    /// The protected header, decoded (an empty map when `protectedBytes` is empty).
    public let protectedHeader: CBOR
    /// The unprotected header map.
    public let unprotectedHeader: CBOR
    /// The payload bytes.
    public let payload: [UInt8]
    /// The signature bytes.
    public let signature: [UInt8]
    /// Whether the message carried CBOR tag 18.
    public let isTagged: Bool

    /// The algorithm label (1) of the protected header, else of the unprotected one.
    public var algorithmIdentifier: CBOR? {
        protectedHeader[intKey: 1] ?? unprotectedHeader[intKey: 1]
    }

    /// The algorithm named by the header, when it is one this project verifies.
    public var algorithm: SignatureAlgorithm? {
        algorithmIdentifier?.int64Value.flatMap(SignatureAlgorithm.init(coseIdentifier:))
    }

    /// The key id (label 4) of the protected header, else of the unprotected one.
    public var keyID: [UInt8]? {
        (protectedHeader[intKey: 4] ?? unprotectedHeader[intKey: 4])?.bytesValue
    }

    /// Decodes a COSE_Sign1 message, tagged (18) or untagged.
    /// - Parameters:
    ///   - bytes: the encoded message.
    ///   - limits: the CBOR decoding limits.
    /// - Throws: `COSEError` naming what is wrong.
    public init(decoding bytes: [UInt8], limits: CBORLimits = .default) throws(COSEError) {
        let item: CBOR
        do {
            item = try CBOR.decode(bytes, limits: limits)
        } catch {
            throw COSEError(.malformed, "not CBOR: \(error)")
        }
        var body = item
        isTagged = {
            if case .tagged = item { return true }
            return false
        }()
        if case .tagged(let tag, let inner) = item {
            guard tag == Self.tag else {
                throw COSEError(.wrongTag, "tagged \(tag), but COSE_Sign1 is tag \(Self.tag)")
            }
            body = inner
        }
        guard let parts = body.arrayValue, parts.count == 4 else {
            throw COSEError(.malformed, "COSE_Sign1 is an array of 4 items")
        }
        guard let protectedBytes = parts[0].bytesValue else {
            throw COSEError(.malformed, "the protected header is not a byte string")
        }
        if protectedBytes.isEmpty {
            protectedHeader = .map([])
        } else {
            do {
                protectedHeader = try CBOR.decode(protectedBytes, limits: limits)
            } catch {
                throw COSEError(.malformed, "the protected header is not CBOR: \(error)")
            }
            guard protectedHeader.mapValue != nil else {
                throw COSEError(.malformed, "the protected header is not a map")
            }
        }
        guard parts[1].mapValue != nil else {
            throw COSEError(.malformed, "the unprotected header is not a map")
        }
        guard let payload = parts[2].bytesValue else {
            throw COSEError(.malformed, "the payload is not a byte string (detached payloads are not supported)")
        }
        guard let signature = parts[3].bytesValue else {
            throw COSEError(.malformed, "the signature is not a byte string")
        }
        self.protectedBytes = protectedBytes
        self.unprotectedHeader = parts[1]
        self.payload = payload
        self.signature = signature
    }

    /// Makes a message from its parts, as `sign` does before signing.
    /// - Parameters:
    ///   - protectedHeader: the protected header map, serialized deterministically.
    ///   - unprotectedHeader: the unprotected header map.
    ///   - payload: the payload bytes.
    ///   - signature: the signature bytes.
    public init(protectedHeader: CBOR, unprotectedHeader: CBOR = .map([]), payload: [UInt8], signature: [UInt8]) {
        self.protectedHeader = protectedHeader
        self.protectedBytes = protectedHeader.mapValue?.isEmpty == true ? [] : protectedHeader.encoded()
        self.unprotectedHeader = unprotectedHeader
        self.payload = payload
        self.signature = signature
        self.isTagged = true
    }

    /// The bytes the signature covers: `Sig_structure = ["Signature1", protected, external_aad, payload]`.
    /// - Parameter externalAAD: externally supplied data (empty in this project's protocol).
    ///
    /// When the protected header is an empty map, the signature covers a zero-length byte string
    /// in its place, as RFC 9052 §4.4 says, whatever bytes carried the empty map.
    public func toBeSigned(externalAAD: [UInt8] = []) -> [UInt8] {
        let covered = protectedHeader.mapValue?.isEmpty == true ? [] : protectedBytes
        return Self.sigStructure(protectedBytes: covered, payload: payload, externalAAD: externalAAD)
    }

    /// Builds `Sig_structure` bytes without building CBOR values first.
    /// - Parameters:
    ///   - protectedBytes: the serialized protected header.
    ///   - payload: the payload bytes.
    ///   - externalAAD: externally supplied data.
    public static func sigStructure(protectedBytes: [UInt8], payload: [UInt8], externalAAD: [UInt8] = []) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(protectedBytes.count + payload.count + externalAAD.count + 32)
        out.append(0x84)
        out.append(0x6A)
        out.append(contentsOf: "Signature1".utf8)
        CBOR.bytes(protectedBytes).encode(into: &out)
        CBOR.bytes(externalAAD).encode(into: &out)
        CBOR.bytes(payload).encode(into: &out)
        return out
    }

    /// Checks the signature with a key, and that the header's algorithm is the key's.
    /// - Parameters:
    ///   - key: the signer's public key.
    ///   - externalAAD: externally supplied data.
    /// - Throws: `COSEError` with `.unsupportedAlgorithm`, `.algorithmMismatch` or `.badSignature`.
    public func verify(with key: PublicKey, externalAAD: [UInt8] = []) throws(COSEError) {
        guard let identifier = algorithmIdentifier else {
            throw COSEError(.unsupportedAlgorithm, "the header names no algorithm")
        }
        guard let algorithm = identifier.int64Value.flatMap(SignatureAlgorithm.init(coseIdentifier:)) else {
            throw COSEError(.unsupportedAlgorithm, "algorithm \(identifier.diagnosticNotation) is not supported")
        }
        guard algorithm == key.algorithm else {
            throw COSEError(
                .algorithmMismatch, "signed with \(algorithm.rawValue), but the key is \(key.algorithm.rawValue)")
        }
        guard key.isValidSignature(signature, for: toBeSigned(externalAAD: externalAAD)) else {
            throw COSEError(.badSignature, "the signature does not verify")
        }
    }

    /// The encoded message: `18([protected, unprotected, payload, signature])` (untagged if decoded so).
    public func encoded() -> [UInt8] {
        let array = CBOR.array([.bytes(protectedBytes), unprotectedHeader, .bytes(payload), .bytes(signature)])
        return isTagged ? CBOR.tagged(Self.tag, array).encoded() : array.encoded()
    }

    /// Signs a payload with a protected header `{1: alg, 4: kid}` and an empty unprotected header.
    /// - Parameters:
    ///   - payload: the payload bytes.
    ///   - keyID: the key id (label 4), or nil to leave it out.
    ///   - key: the signing key.
    ///   - externalAAD: externally supplied data the signature also covers (empty for readings).
    /// - Returns: the signed message.
    /// - Throws: `KeyError` if signing fails.
    public static func sign(
        payload: [UInt8], keyID: [UInt8]?, key: PrivateKey, externalAAD: [UInt8] = []
    ) throws(KeyError) -> COSESign1 {
        var header: [CBORMapEntry] = [CBORMapEntry(.unsigned(1), .int(key.algorithm.coseIdentifier))]
        if let keyID { header.append(CBORMapEntry(.unsigned(4), .bytes(keyID))) }
        let unsigned = COSESign1(protectedHeader: .map(header), payload: payload, signature: [])
        let signature = try key.signature(for: unsigned.toBeSigned(externalAAD: externalAAD))
        return COSESign1(protectedHeader: .map(header), payload: payload, signature: signature)
    }
}

/// An error decoding or verifying a COSE message.
public struct COSEError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure.
    public enum Code: Hashable, Sendable {
        /// Not a well-formed COSE_Sign1 structure.
        case malformed
        /// Tagged with another tag than 18.
        case wrongTag
        /// The algorithm is missing or not one this project verifies.
        case unsupportedAlgorithm
        /// The header names another algorithm than the key's.
        case algorithmMismatch
        /// The signature does not verify.
        case badSignature
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
