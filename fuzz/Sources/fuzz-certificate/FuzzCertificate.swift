import FuzzSupport
import MedLedgerCore

/// Writes the seed corpus when `scripts/fuzz.sh` asks for it.
@_cdecl("LLVMFuzzerInitialize")
public func initialize(
    _ argc: UnsafeMutablePointer<CInt>?,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> CInt {
    Fuzz.writeSeedsIfAsked(Seeds.certificates)
    return 0
}

/// One input: `CommitCertificate(decoding:)` must return or throw; a certificate it accepts must
/// decode again from its own encoding.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Fuzz.bytes(data, size)
    guard let certificate = try? CommitCertificate(decoding: bytes) else { return 0 }
    _ = certificate.signingBytes
    let again = try? CommitCertificate(decoding: certificate.encoded())
    precondition(again == certificate, "an accepted certificate does not decode again from its own encoding")
    return 0
}

/// The entry point SwiftPM links as `main`: hands over to libFuzzer's driver.
@_cdecl("fuzz_certificate_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    Fuzz.run(argc, argv, testOneInput)
}
