import Foundation
import MedLedgerCore
import Testing

/// The COSE Working Group's examples (Tests/Vectors/cose), for the algorithms we support.
@Suite("COSE_Sign1 against the COSE WG examples")
struct COSEVectorTests {
    struct Vector: CustomStringConvertible, Sendable {
        var file: String
        var key: PublicKey?
        var message: [UInt8]
        var toBeSigned: [UInt8]
        var externalAAD: [UInt8]
        var shouldFail: Bool
        var description: String { file }
    }

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Vectors/cose").standardized

    static let vectors: [Vector] = {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return files.filter { $0.hasSuffix(".json") }.sorted().compactMap { file in
            let data = try! Data(contentsOf: directory.appendingPathComponent(file))
            let json = try! JSONSerialization.jsonObject(with: data) as! [String: Any]
            let input = json["input"] as! [String: Any]
            let sign0 = input["sign0"] as! [String: Any]
            let keyJSON = sign0["key"] as! [String: String]
            let key: PublicKey?
            switch keyJSON["crv"] {
            case "Ed25519":
                key = try? PublicKey(algorithm: .ed25519, rawBytes: Hex.decode(keyJSON["x_hex"]!)!)
            case "P-256":
                let x = Base64.decode(keyJSON["x"]!)!
                let y = Base64.decode(keyJSON["y"]!)!
                key = try? PublicKey(algorithm: .es256, rawBytes: [0x04] + x + y)
            default:
                return nil  // P-384 and Ed448: algorithms this project does not verify.
            }
            let output = json["output"] as! [String: Any]
            let intermediates = json["intermediates"] as! [String: Any]
            return Vector(
                file: file, key: key, message: Hex.decode(output["cbor"] as! String)!,
                toBeSigned: Hex.decode(intermediates["ToBeSign_hex"] as! String)!,
                externalAAD: Hex.decode((sign0["external"] as? String) ?? "") ?? [],
                shouldFail: (json["fail"] as? Bool) ?? false)
        }
    }()

    @Test func theSupportedVectorsAreAllThere() {
        #expect(Self.vectors.count == 11)
        #expect(Self.vectors.filter(\.shouldFail).count == 6)
    }

    @Test(arguments: vectors)
    func vector(_ vector: Vector) throws {
        let key = try #require(vector.key)
        let result: Result<COSESign1, COSEError>
        do {
            result = .success(try COSESign1(decoding: vector.message))
        } catch {
            result = .failure(error)
        }
        if vector.shouldFail {
            if case .success(let message) = result {
                #expect(throws: COSEError.self) { try message.verify(with: key, externalAAD: vector.externalAAD) }
            }
        } else {
            let message = try result.get()
            #expect(message.toBeSigned(externalAAD: vector.externalAAD) == vector.toBeSigned)
            try message.verify(with: key, externalAAD: vector.externalAAD)
            #expect(message.encoded() == vector.message)
        }
    }

    @Test func aWrongTagIsNamed() throws {
        let vector = try #require(Self.vectors.first { $0.file.contains("sign-fail-01") })
        #expect(throws: COSEError(.wrongTag, "tagged 998, but COSE_Sign1 is tag 18")) {
            try COSESign1(decoding: vector.message)
        }
    }

    @Test func anUnknownAlgorithmIsNamed() throws {
        let vector = try #require(Self.vectors.first { $0.file.contains("sign-fail-03") })
        let message = try COSESign1(decoding: vector.message)
        let error = try #require(throws: COSEError.self) { try message.verify(with: vector.key!) }
        #expect(error.code == .unsupportedAlgorithm)
    }
}

@Suite("COSE_Sign1 signing")
struct COSESigningTests {
    @Test(arguments: SignatureAlgorithm.allCases)
    func signThenVerify(_ algorithm: SignatureAlgorithm) throws {
        let key = PrivateKey(generating: algorithm)
        let message = try COSESign1.sign(payload: Array("hello".utf8), keyID: Array("dev-1".utf8), key: key)
        let decoded = try COSESign1(decoding: message.encoded())
        #expect(decoded == message)
        #expect(decoded.algorithm == algorithm)
        #expect(decoded.keyID == Array("dev-1".utf8))
        try decoded.verify(with: key.publicKey)
        #expect(throws: COSEError.self) { try decoded.verify(with: PrivateKey(generating: algorithm).publicKey) }
    }

    @Test func rfc9864IdentifiersAreAccepted() {
        #expect(SignatureAlgorithm(coseIdentifier: -19) == .ed25519)
        #expect(SignatureAlgorithm(coseIdentifier: -9) == .es256)
        #expect(SignatureAlgorithm(coseIdentifier: -35) == nil)
    }

    @Test(arguments: SignatureAlgorithm.allCases)
    func pemRoundTrips(_ algorithm: SignatureAlgorithm) throws {
        let key = PrivateKey(generating: algorithm)
        #expect(key.pemRepresentation.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        let again = try PrivateKey(pem: key.pemRepresentation)
        #expect(again.publicKey == key.publicKey)
        #expect(try PublicKey(pem: key.publicKey.pemRepresentation) == key.publicKey)
    }

    @Test func badPEMIsNamed() {
        #expect(throws: KeyError.self) { try PublicKey(pem: "not a key") }
        #expect(throws: KeyError.self) {
            try PrivateKey(pem: "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----")
        }
        #expect(throws: KeyError.self) { try PublicKey(algorithm: .ed25519, rawBytes: [1, 2, 3]) }
    }
}
