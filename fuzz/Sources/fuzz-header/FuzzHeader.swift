import FuzzSupport
import MedLedgerCore

/// Writes the seed corpus when `scripts/fuzz.sh` asks for it.
@_cdecl("LLVMFuzzerInitialize")
public func initialize(
    _ argc: UnsafeMutablePointer<CInt>?,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> CInt {
    Fuzz.writeSeedsIfAsked(Seeds.headers)
    return 0
}

/// One input: `BlockHeader(decoding:)` must return or throw; a header it accepts is in
/// deterministic encoding, so encoding it again gives the very same bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Fuzz.bytes(data, size)
    guard let header = try? BlockHeader(decoding: bytes) else { return 0 }
    precondition(header.encoded() == bytes, "an accepted header does not re-encode to its own bytes")
    return 0
}

/// The entry point SwiftPM links as `main`: hands over to libFuzzer's driver.
@_cdecl("fuzz_header_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    Fuzz.run(argc, argv, testOneInput)
}
