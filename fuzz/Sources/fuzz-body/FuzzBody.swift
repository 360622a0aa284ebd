import FuzzSupport
import MedLedgerCore

/// Writes the seed corpus when `scripts/fuzz.sh` asks for it.
@_cdecl("LLVMFuzzerInitialize")
public func initialize(
    _ argc: UnsafeMutablePointer<CInt>?,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> CInt {
    Fuzz.writeSeedsIfAsked(Seeds.compressedBodies)
    return 0
}

/// The default channel limits: 1,000 readings, 1 MiB.
private let parameters = BlockParameters()

/// One input: `BlockBody(compressed:parameters:)` (zstd within the limits, then CBOR) must return
/// or throw; a body it accepts must decode again from its own compressed encoding.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Fuzz.bytes(data, size)
    guard let body = try? BlockBody(compressed: bytes, parameters: parameters) else { return 0 }
    _ = body.readingsRoot
    _ = body.transactionsRoot
    let again = try? BlockBody(compressed: body.compressed(level: 1), parameters: parameters)
    precondition(again == body, "an accepted body does not decode again from its own encoding")
    return 0
}

/// The entry point SwiftPM links as `main`: hands over to libFuzzer's driver.
@_cdecl("fuzz_body_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    Fuzz.run(argc, argv, testOneInput)
}
