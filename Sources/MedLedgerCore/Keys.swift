internal import Crypto

/// A signature algorithm, by its COSE algorithm identifier (RFC 9053, RFC 9864).
public enum SignatureAlgorithm: String, Hashable, Sendable, CaseIterable, Codable {
    /// EdDSA with Ed25519 (COSE -8, or -19 as RFC 9864 names it).
    case ed25519
    /// ECDSA with P-256 and SHA-256 (COSE -7, or -9 as RFC 9864's ESP256).
    case es256

    /// The COSE algorithm identifier this project writes.
    public var coseIdentifier: Int64 {
        switch self {
        case .ed25519: -8
        case .es256: -7
        }
    }

    /// The algorithm named by a COSE identifier, accepting RFC 9864's fully specified ids too.
    /// - Parameter coseIdentifier: the `alg` value of a protected header.
    public init?(coseIdentifier: Int64) {
        switch coseIdentifier {
        case -8, -19: self = .ed25519
        case -7, -9: self = .es256
        default: return nil
        }
    }
}

/// A public key that verifies readings, transactions or votes.
///
/// Two keys are equal when their algorithm and raw bytes are. The parsed key is kept so that
/// verifying many signatures with one key does not parse it again.
public struct PublicKey: Hashable, Sendable {
    /// The algorithm this key verifies.
    public let algorithm: SignatureAlgorithm
    /// Ed25519: the 32-byte key; ES256: the 65-byte uncompressed SEC1 point.
    public let rawBytes: [UInt8]
    private let parsed: Parsed

    /// swift-crypto's key types are immutable value types but don't declare Sendable on Linux;
    /// nothing here mutates them after creation, so sharing them across threads is safe.
    private enum Parsed: @unchecked Sendable {
        case ed25519(Curve25519.Signing.PublicKey)
        case es256(P256.Signing.PublicKey)
    }

    /// Parses a raw public key.
    /// - Parameters:
    ///   - algorithm: the key's algorithm.
    ///   - rawBytes: 32 bytes for Ed25519; a SEC1 point (65 bytes uncompressed, or 33 compressed) for ES256.
    /// - Throws: `KeyError` when the bytes are not a valid key.
    public init(algorithm: SignatureAlgorithm, rawBytes: [UInt8]) throws(KeyError) {
        self.algorithm = algorithm
        do {
            switch algorithm {
            case .ed25519:
                guard rawBytes.count == 32 else {
                    throw KeyError(.invalidKey, "an Ed25519 public key has 32 bytes, not \(rawBytes.count)")
                }
                parsed = .ed25519(try Curve25519.Signing.PublicKey(rawRepresentation: rawBytes))
                self.rawBytes = rawBytes
            case .es256:
                let key: P256.Signing.PublicKey
                if rawBytes.count == 33 {
                    key = try P256.Signing.PublicKey(compressedRepresentation: rawBytes)
                } else {
                    key = try P256.Signing.PublicKey(x963Representation: rawBytes)
                }
                parsed = .es256(key)
                self.rawBytes = Array(key.x963Representation)
            }
        } catch let error as KeyError {
            throw error
        } catch {
            throw KeyError(.invalidKey, "not a valid \(algorithm.rawValue) public key: \(error)")
        }
    }

    /// Parses a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), as `openssl pkey -pubout` writes it.
    /// - Parameter pem: the PEM text.
    /// - Throws: `KeyError` when the text is not an Ed25519 or P-256 public key.
    public init(pem: String) throws(KeyError) {
        let der = try PEM.decode(pem, label: "PUBLIC KEY")
        if der.count == 44, Array(der.prefix(12)) == DERPrefix.ed25519PublicKey {
            try self.init(algorithm: .ed25519, rawBytes: Array(der.suffix(32)))
            return
        }
        do {
            let key = try P256.Signing.PublicKey(derRepresentation: der)
            try self.init(algorithm: .es256, rawBytes: Array(key.x963Representation))
        } catch {
            throw KeyError(.invalidKey, "the PEM public key is neither Ed25519 nor P-256")
        }
    }

    /// The key as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    public var pemRepresentation: String {
        switch parsed {
        case .ed25519: PEM.encode(DERPrefix.ed25519PublicKey + rawBytes, label: "PUBLIC KEY")
        case .es256(let key): key.pemRepresentation + "\n"
        }
    }

    /// Checks a signature over a message.
    /// - Parameters:
    ///   - signature: Ed25519: 64 bytes; ES256: 64 bytes, r‖s.
    ///   - message: the signed bytes.
    /// - Returns: whether the signature is valid.
    public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        guard signature.count == 64 else { return false }
        switch parsed {
        case .ed25519(let key):
            return key.isValidSignature(signature, for: message)
        case .es256(let key):
            guard let sig = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(sig, for: message)
        }
    }

    /// Equality by algorithm and raw bytes.
    public static func == (lhs: PublicKey, rhs: PublicKey) -> Bool {
        lhs.algorithm == rhs.algorithm && lhs.rawBytes == rhs.rawBytes
    }

    /// Hashes the algorithm and raw bytes.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(algorithm)
        hasher.combine(rawBytes)
    }
}

/// A private key that signs readings, transactions or votes.
public struct PrivateKey: Sendable {
    /// Immutable swift-crypto key values (see `PublicKey.Parsed` for why this is Sendable).
    private enum Storage: @unchecked Sendable {
        case ed25519(Curve25519.Signing.PrivateKey)
        case es256(P256.Signing.PrivateKey)
    }
    private let storage: Storage

    /// The algorithm of this key.
    public var algorithm: SignatureAlgorithm {
        switch storage {
        case .ed25519: .ed25519
        case .es256: .es256
        }
    }

    /// Makes a new random key.
    /// - Parameter algorithm: the key's algorithm.
    public init(generating algorithm: SignatureAlgorithm) {
        switch algorithm {
        case .ed25519: self.init(storage: .ed25519(Curve25519.Signing.PrivateKey()))
        case .es256: self.init(storage: .es256(P256.Signing.PrivateKey()))
        }
    }

    /// Makes a key from its raw secret bytes (Ed25519 seed or P-256 scalar, 32 bytes each).
    /// - Parameters:
    ///   - algorithm: the key's algorithm.
    ///   - rawBytes: the 32 secret bytes.
    /// - Throws: `KeyError` when the bytes are not a valid key.
    public init(algorithm: SignatureAlgorithm, rawBytes: [UInt8]) throws(KeyError) {
        do {
            switch algorithm {
            case .ed25519: self.init(storage: .ed25519(try Curve25519.Signing.PrivateKey(rawRepresentation: rawBytes)))
            case .es256: self.init(storage: .es256(try P256.Signing.PrivateKey(rawRepresentation: rawBytes)))
            }
        } catch {
            throw KeyError(.invalidKey, "not a valid \(algorithm.rawValue) private key: \(error)")
        }
    }

    /// Parses a PEM private key: PKCS#8 (`PRIVATE KEY`) for Ed25519 or P-256, or SEC1
    /// (`EC PRIVATE KEY`) for P-256.
    /// - Parameter pem: the PEM text.
    /// - Throws: `KeyError` when the text is not such a key.
    public init(pem: String) throws(KeyError) {
        if pem.contains("BEGIN PRIVATE KEY") {
            let der = try PEM.decode(pem, label: "PRIVATE KEY")
            if der.count == 48, Array(der.prefix(16)) == DERPrefix.ed25519PrivateKey {
                try self.init(algorithm: .ed25519, rawBytes: Array(der.suffix(32)))
                return
            }
        }
        guard let key = try? P256.Signing.PrivateKey(pemRepresentation: pem) else {
            throw KeyError(.invalidKey, "the PEM private key is neither an Ed25519 nor a P-256 key")
        }
        self.init(storage: .es256(key))
    }

    private init(storage: Storage) { self.storage = storage }

    /// The key as a PKCS#8 PEM `PRIVATE KEY`.
    public var pemRepresentation: String {
        switch storage {
        case .ed25519(let key):
            PEM.encode(DERPrefix.ed25519PrivateKey + Array(key.rawRepresentation), label: "PRIVATE KEY")
        case .es256(let key):
            key.pemRepresentation + "\n"
        }
    }

    /// The matching public key.
    public var publicKey: PublicKey {
        switch storage {
        case .ed25519(let key):
            // A key swift-crypto made itself is always valid.
            try! PublicKey(algorithm: .ed25519, rawBytes: Array(key.publicKey.rawRepresentation))
        case .es256(let key):
            try! PublicKey(algorithm: .es256, rawBytes: Array(key.publicKey.x963Representation))
        }
    }

    /// Signs a message.
    /// - Parameter message: the bytes to sign.
    /// - Returns: 64 bytes: an Ed25519 signature, or ES256's r‖s.
    /// - Throws: `KeyError` if the crypto library fails.
    public func signature(for message: [UInt8]) throws(KeyError) -> [UInt8] {
        do {
            switch storage {
            case .ed25519(let key): return Array(try key.signature(for: message))
            case .es256(let key): return Array(try key.signature(for: message).rawRepresentation)
            }
        } catch {
            throw KeyError(.signingFailed, "signing failed: \(error)")
        }
    }
}

/// An error about a key: its bytes, its PEM form, or signing with it.
public struct KeyError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure.
    public enum Code: Hashable, Sendable {
        /// The bytes are not a key of the stated algorithm.
        case invalidKey
        /// The PEM text could not be read.
        case invalidPEM
        /// The crypto library refused to sign.
        case signingFailed
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

private enum DERPrefix {
    /// SubjectPublicKeyInfo for id-Ed25519 (RFC 8410), before the 32 key bytes.
    static let ed25519PublicKey: [UInt8] = [0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00]
    /// OneAsymmetricKey (PKCS#8 v1) for id-Ed25519 (RFC 8410), before the 32 seed bytes.
    static let ed25519PrivateKey: [UInt8] = [
        0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ]
}

/// PEM armour (RFC 7468) around DER bytes.
public enum PEM {
    /// Wraps DER bytes in PEM armour with 64-column base64 lines.
    /// - Parameters:
    ///   - der: the DER bytes.
    ///   - label: the label, e.g. `PUBLIC KEY`.
    public static func encode(_ der: [UInt8], label: String) -> String {
        let b64 = Base64.encode(der)
        var lines = ["-----BEGIN \(label)-----"]
        var index = b64.startIndex
        while index < b64.endIndex {
            let end = b64.index(index, offsetBy: 64, limitedBy: b64.endIndex) ?? b64.endIndex
            lines.append(String(b64[index..<end]))
            index = end
        }
        lines.append("-----END \(label)-----")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Reads the DER bytes of the first PEM block with the given label.
    /// - Parameters:
    ///   - pem: the PEM text.
    ///   - label: the label expected, e.g. `PUBLIC KEY`.
    /// - Throws: `KeyError.Code.invalidPEM` when no such block is there or its base64 is bad.
    public static func decode(_ pem: String, label: String) throws(KeyError) -> [UInt8] {
        let begin = "-----BEGIN \(label)-----"
        let end = "-----END \(label)-----"
        guard let start = pem.firstRange(of: begin), let stop = pem.firstRange(of: end),
            start.upperBound <= stop.lowerBound
        else {
            throw KeyError(.invalidPEM, "no '\(begin)' block found")
        }
        let body = pem[start.upperBound..<stop.lowerBound].filter { !$0.isWhitespace }
        guard let der = Base64.decode(String(body)) else {
            throw KeyError(.invalidPEM, "the '\(label)' block is not valid base64")
        }
        return der
    }
}
