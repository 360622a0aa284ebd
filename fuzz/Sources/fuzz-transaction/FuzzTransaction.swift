import FuzzSupport
import MedLedgerCore

/// Writes the seed corpus when `scripts/fuzz.sh` asks for it.
@_cdecl("LLVMFuzzerInitialize")
public func initialize(
    _ argc: UnsafeMutablePointer<CInt>?,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> CInt {
    Fuzz.writeSeedsIfAsked(Seeds.transactions)
    return 0
}

/// One input: `SignedTransaction(decoding:)` (CBOR, COSE_Sign1, payload, key bytes) must return or
/// throw; a transaction it accepts must survive re-encoding its payload.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Fuzz.bytes(data, size)
    guard let signed = try? SignedTransaction(decoding: bytes) else { return 0 }
    let again = try? Transaction(payload: signed.transaction.payloadBytes())
    precondition(again == signed.transaction, "a decoded transaction's payload does not decode to the same")
    return 0
}

/// The entry point SwiftPM links as `main`: hands over to libFuzzer's driver.
@_cdecl("fuzz_transaction_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    Fuzz.run(argc, argv, testOneInput)
}
