public import ArgumentParser
import Foundation
import MedLedgerCore

/// A failure the tool reports as `error: message` with a non-zero exit status.
struct ToolError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum Files {
    static func read(_ path: String, what: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ToolError("cannot read \(what) '\(path)'")
        }
        return Array(data)
    }

    static func readText(_ path: String, what: String) throws -> String {
        String(decoding: try read(path, what: what), as: UTF8.self)
    }

    /// Writes a file atomically; private keys get mode 0600.
    static func write(_ bytes: [UInt8], to path: String, secret: Bool = false) throws {
        let url = URL(fileURLWithPath: path)
        do {
            try Data(bytes).write(to: url, options: .atomic)
            if secret {
                try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
            }
        } catch {
            throw ToolError("cannot write '\(path)': \(error.localizedDescription)")
        }
    }

    static func write(_ text: String, to path: String, secret: Bool = false) throws {
        try write(Array(text.utf8), to: path, secret: secret)
    }

    static func makeDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw ToolError("cannot create directory '\(path)': \(error.localizedDescription)")
        }
    }

    static func privateKey(_ path: String) throws -> PrivateKey {
        do {
            return try PrivateKey(pem: try readText(path, what: "private key"))
        } catch let error as KeyError {
            throw ToolError("\(path): \(error)")
        }
    }

    static func publicKey(_ path: String) throws -> PublicKey {
        do {
            return try PublicKey(pem: try readText(path, what: "public key"))
        } catch let error as KeyError {
            throw ToolError("\(path): \(error)")
        }
    }

    static func genesis(_ path: String) throws -> Genesis {
        let genesis: Genesis
        do {
            genesis = try JSONDecoder().decode(Genesis.self, from: Data(try read(path, what: "genesis")))
        } catch let error as ToolError {
            throw error
        } catch {
            throw ToolError("\(path) is not a genesis file: \(error)")
        }
        do {
            try genesis.validate()
        } catch {
            throw ToolError("\(path): \(error)")
        }
        return genesis
    }
}

enum JSONOutput {
    static func string(_ value: Any) throws -> String {
        let data = try JSONSerialization.data(
            withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value)) + [0x0A]
    }
}

extension SignatureAlgorithm: ExpressibleByArgument {}
