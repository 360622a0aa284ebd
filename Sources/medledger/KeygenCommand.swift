import ArgumentParser
import MedLedgerCore

struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Make a signing key: writes the PKCS#8 PEM private key, prints the public key as PEM.")

    @Option(help: "The algorithm: ed25519 or es256.")
    var alg: SignatureAlgorithm = .ed25519

    @Option(help: "Where to write the private key (mode 0600).")
    var out: String

    func run() throws {
        let key = PrivateKey(generating: alg)
        try Files.write(key.pemRepresentation, to: out, secret: true)
        print(key.publicKey.pemRepresentation, terminator: "")
    }
}
