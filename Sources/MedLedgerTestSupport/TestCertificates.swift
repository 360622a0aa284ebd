import Foundation

/// Test certificates from scripts/make-certs.sh: a CA, server certificates (for `NAME`,
/// `localhost` and 127.0.0.1) and client certificates, as `NAME.crt`/`NAME.key` in a directory.
public enum TestCertificates {
    /// Runs scripts/make-certs.sh.
    /// - Parameters:
    ///   - directory: where the files go (`ca.crt`, `ca.key`, one pair per name).
    ///   - caName: the CA's common name.
    ///   - servers: server certificates to make.
    ///   - identities: client certificates to make.
    public static func make(
        in directory: String, caName: String = "MedLedger test CA", servers: [String], identities: [String]
    ) throws {
        let arguments =
            ["\(ShippedContracts.repositoryRoot)/scripts/make-certs.sh", directory, "--ca-name", caName]
            + servers.flatMap { ["--server", $0] } + identities
        let result = try ToolRunner.run("/bin/bash", arguments, in: NSTemporaryDirectory())
        guard result.status == 0 else {
            throw FixtureError("make-certs.sh failed with status \(result.status): \(result.stderr)")
        }
    }
}
