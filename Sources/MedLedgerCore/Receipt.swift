/// A manager's answer to a device about one reading (PROTOCOL.md, "A receipt"): a CBOR map
/// `{1: seq, 2: status, 3: height, 4: block hash, 5: reason}` on `receipts/{device}`.
public typealias Receipt = LedgerReceipt<RejectionReason>

/// A manager's answer to a transaction's submitter, on `medledger/v1/{channel}/tx-receipts/{submitter}`:
/// the same map as a reading's receipt, with a transaction's reasons (docs/FORMATS.md).
public typealias TransactionReceipt = LedgerReceipt<TransactionRejection.Reason>

/// A receipt: `{1: seq, 2: status, 3: height, 4: block hash, 5: reason}`, where a rejection's
/// reason is one of `Reason`'s names.
public struct LedgerReceipt<Reason: RawRepresentable & Hashable & Sendable>: Hashable, Sendable
where Reason.RawValue == String {
    /// What happened to the reading.
    public enum Status: Hashable, Sendable {
        /// Queued for a block.
        case accepted
        /// In a committed block at this height with this header hash.
        case committed(height: UInt64, blockHash: Hash256)
        /// Refused, with the reason.
        case rejected(Reason)
        /// Not taken now because the manager's pool is full (an extension of PROTOCOL.md: status
        /// `"busy"`, 5: `"mempool-full"`). The device keeps the reading and sends it again later,
        /// exactly as it does for a reading with no receipt.
        case busy
    }

    /// The reason a `busy` receipt gives.
    public static var busyReason: String { "mempool-full" }
    /// The reading's sequence number (0 when the reading did not decode far enough to tell).
    public var seq: UInt64
    /// What happened to it.
    public var status: Status

    /// Makes a receipt.
    public init(seq: UInt64, status: Status) {
        self.seq = seq
        self.status = status
    }

    /// The receipt in deterministic CBOR.
    public func encoded() -> [UInt8] {
        var entries = [CBORMapEntry(.unsigned(1), .unsigned(seq))]
        switch status {
        case .accepted:
            entries.append(CBORMapEntry(.unsigned(2), .text("accepted")))
        case .committed(let height, let blockHash):
            entries.append(CBORMapEntry(.unsigned(2), .text("committed")))
            entries.append(CBORMapEntry(.unsigned(3), .unsigned(height)))
            entries.append(CBORMapEntry(.unsigned(4), .bytes(blockHash.bytes)))
        case .rejected(let reason):
            entries.append(CBORMapEntry(.unsigned(2), .text("rejected")))
            entries.append(CBORMapEntry(.unsigned(5), .text(reason.rawValue)))
        case .busy:
            entries.append(CBORMapEntry(.unsigned(2), .text("busy")))
            entries.append(CBORMapEntry(.unsigned(5), .text(Self.busyReason)))
        }
        return CBOR.map(entries).encoded()
    }

    /// Decodes a receipt (any valid encoding), as a device or a test does.
    /// - Parameter bytes: the receipt's bytes.
    /// - Throws: `LedgerFormatError` naming what is wrong.
    public init(decoding bytes: [UInt8]) throws(LedgerFormatError) {
        let map: CBOR
        do {
            map = try CBOR.decode(bytes, limits: .reading)
        } catch {
            throw LedgerFormatError("receipt: \(error)")
        }
        guard let seq = map[intKey: 1]?.wireUInt, let status = map[intKey: 2]?.textValue else {
            throw LedgerFormatError("a receipt needs 1 (seq) and 2 (status)")
        }
        switch status {
        case "accepted":
            self.init(seq: seq, status: .accepted)
        case "committed":
            guard let height = map[intKey: 3]?.wireUInt, let raw = map[intKey: 4]?.bytesValue,
                let hash = Hash256(bytes: raw)
            else { throw LedgerFormatError("a committed receipt needs 3 (height) and 4 (a 32-byte block hash)") }
            self.init(seq: seq, status: .committed(height: height, blockHash: hash))
        case "rejected":
            guard let text = map[intKey: 5]?.textValue, let reason = Reason(rawValue: text) else {
                throw LedgerFormatError("a rejected receipt needs 5 (one of the protocol's reasons)")
            }
            self.init(seq: seq, status: .rejected(reason))
        case "busy":
            self.init(seq: seq, status: .busy)
        default:
            throw LedgerFormatError("unknown receipt status '\(status)'")
        }
    }
}
