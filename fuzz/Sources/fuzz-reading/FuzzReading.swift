import FuzzSupport
import MedLedgerCore

/// Writes the seed corpus when `scripts/fuzz.sh` asks for it.
@_cdecl("LLVMFuzzerInitialize")
public func initialize(
    _ argc: UnsafeMutablePointer<CInt>?,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> CInt {
    Fuzz.writeSeedsIfAsked(Seeds.readings)
    return 0
}

/// One input: `SignedReading(decoding:)` (size limit, CBOR, COSE_Sign1, protected header, payload)
/// must return or throw, never trap. A reading that decodes must survive re-encoding its payload.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Fuzz.bytes(data, size)
    guard let signed = try? SignedReading(decoding: bytes) else { return 0 }
    _ = signed.toBeSigned
    _ = signed.message.algorithm
    let reading = signed.reading
    if !reading.records.contains(where: { $0.value.doubleValue.isNaN }) {
        let again = try? Reading(payload: reading.payloadBytes())
        precondition(again == reading, "a decoded reading's payload does not decode to the same reading")
    }
    return 0
}

/// The entry point SwiftPM links as `main`: hands over to libFuzzer's driver.
@_cdecl("fuzz_reading_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    Fuzz.run(argc, argv, testOneInput)
}
