import Crypto

/// A SHA-256 digest.
///
/// The 32 bytes are stored inline (four 64-bit words holding the bytes in their natural order), so arrays
/// of `Hash256` are flat and creating or copying a digest never allocates. Ordering is bytewise
/// lexicographic.
public struct Hash256: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The number of bytes in a SHA-256 digest.
    public static let byteCount = 32

    /// The digest whose 32 bytes are all zero.
    public static let zero = Hash256(words: (0, 0, 0, 0))

    // The words' memory holds the digest bytes in order (byte 0 is the first byte of `w0` in memory),
    // whatever the platform's endianness.
    private var w0: UInt64
    private var w1: UInt64
    private var w2: UInt64
    private var w3: UInt64

    private init(words: (UInt64, UInt64, UInt64, UInt64)) {
        (w0, w1, w2, w3) = words
    }

    /// Reads a digest from the first 32 bytes of `raw`, which must hold at least that many.
    init(unsafeRaw raw: UnsafeRawBufferPointer) {
        precondition(raw.count >= Hash256.byteCount, "Hash256 needs 32 bytes")
        self.init(
            words: (
                raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
            )
        )
    }

    /// Converts a swift-crypto digest.
    init(_ digest: SHA256Digest) {
        self = digest.withUnsafeBytes { Hash256(unsafeRaw: $0) }
    }

    /// Creates a digest from exactly 32 bytes; returns `nil` for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == Hash256.byteCount else { return nil }
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        Swift.withUnsafeMutableBytes(of: &words) { raw in
            for (offset, byte) in zip(0..<Hash256.byteCount, bytes) {
                raw[offset] = byte
            }
        }
        self.init(words: words)
    }

    /// Parses 64 hexadecimal digits (either case); returns `nil` for anything else.
    public init?(hex: String) {
        let utf8 = hex.utf8
        guard utf8.count == 2 * Hash256.byteCount else { return nil }
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        let parsed = Swift.withUnsafeMutableBytes(of: &words) { raw -> Bool in
            var offset = 0
            var high: UInt8? = nil
            for character in utf8 {
                guard let nibble = Hash256.nibble(character) else { return false }
                if let pending = high {
                    raw[offset] = pending << 4 | nibble
                    offset += 1
                    high = nil
                } else {
                    high = nibble
                }
            }
            return true
        }
        guard parsed else { return nil }
        self.init(words: words)
    }

    /// The 32 bytes of the digest, in order.
    public var bytes: [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    /// The digest as 64 lowercase hexadecimal digits.
    public var hex: String {
        let digits: StaticString = "0123456789abcdef"
        return withUnsafeBytes { raw in
            String(unsafeUninitializedCapacity: 2 * Hash256.byteCount) { out in
                digits.withUTF8Buffer { table in
                    for (index, byte) in raw.enumerated() {
                        out[2 * index] = table[Int(byte >> 4)]
                        out[2 * index + 1] = table[Int(byte & 0x0f)]
                    }
                }
                return 2 * Hash256.byteCount
            }
        }
    }

    /// The lowercase hexadecimal form of the digest.
    public var description: String { hex }

    /// Calls `body` with the 32 bytes of the digest, in order. The pointer is valid only during the call.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: (w0, w1, w2, w3), body)
    }

    /// Returns the SHA-256 digest of `data`.
    ///
    /// Contiguous inputs (`[UInt8]`, `ArraySlice<UInt8>`, buffers) are hashed in place without copying;
    /// other sequences are streamed through a small stack buffer.
    public static func sha256(_ data: some Sequence<UInt8>) -> Hash256 {
        var hasher = SHA256()
        hasher.absorb(data)
        return Hash256(hasher.finalize())
    }

    /// Orders digests bytewise lexicographically.
    public static func < (lhs: Hash256, rhs: Hash256) -> Bool {
        // Reading each word big-endian makes numeric order equal byte order.
        let left = (
            UInt64(bigEndian: lhs.w0), UInt64(bigEndian: lhs.w1), UInt64(bigEndian: lhs.w2), UInt64(bigEndian: lhs.w3)
        )
        let right = (
            UInt64(bigEndian: rhs.w0), UInt64(bigEndian: rhs.w1), UInt64(bigEndian: rhs.w2), UInt64(bigEndian: rhs.w3)
        )
        return left < right
    }

    private static func nibble(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return character &- UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return character &- UInt8(ascii: "a") &+ 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return character &- UInt8(ascii: "A") &+ 10
        default: return nil
        }
    }
}

extension SHA256 {
    /// Feeds `data` to the hasher: in place when it is contiguous, otherwise in chunks through a stack buffer.
    mutating func absorb(_ data: some Sequence<UInt8>) {
        let done: Void? = data.withContiguousStorageIfAvailable { update(bufferPointer: UnsafeRawBufferPointer($0)) }
        guard done == nil else { return }
        let chunkSize = 256
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: chunkSize) { chunk in
            var filled = 0
            for byte in data {
                chunk[filled] = byte
                filled += 1
                if filled == chunkSize {
                    update(bufferPointer: UnsafeRawBufferPointer(chunk))
                    filled = 0
                }
            }
            if filled > 0 {
                update(bufferPointer: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: chunk[..<filled])))
            }
        }
    }

    /// Feeds the 32 bytes of `hash` to the hasher.
    mutating func absorb(_ hash: Hash256) {
        hash.withUnsafeBytes { update(bufferPointer: $0) }
    }
}
