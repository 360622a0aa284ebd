internal import CZstd

/// zstd compression of block bodies (libzstd).
public enum Zstd {
    /// Compresses bytes into one zstd frame that records its content size.
    /// - Parameters:
    ///   - input: the bytes.
    ///   - level: the compression level (1 fastest; 3 is zstd's default).
    public static func compress(_ input: [UInt8], level: Int32 = 3) -> [UInt8] {
        let bound = ZSTD_compressBound(input.count)
        var output = [UInt8](repeating: 0, count: bound)
        let written = output.withUnsafeMutableBytes { out in
            input.withUnsafeBytes { inp in
                ZSTD_compress(out.baseAddress, bound, inp.baseAddress, inp.count, level)
            }
        }
        // With a destination of ZSTD_compressBound bytes, compression cannot fail.
        precondition(ZSTD_isError(written) == 0, "zstd: \(String(cString: ZSTD_getErrorName(written)))")
        output.removeLast(bound - written)
        return output
    }

    /// Decompresses one zstd frame, refusing frames that would exceed a size limit.
    /// - Parameters:
    ///   - input: the compressed frame.
    ///   - maxSize: the largest decompressed size accepted.
    /// - Throws: `LedgerFormatError` when the frame is invalid, lacks its content size, or is too large.
    public static func decompress(_ input: [UInt8], maxSize: Int) throws(LedgerFormatError) -> [UInt8] {
        let declared = input.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
        // ZSTD_CONTENTSIZE_UNKNOWN is 0ULL - 1 and ZSTD_CONTENTSIZE_ERROR is 0ULL - 2.
        guard declared < UInt64.max - 1 else {
            throw LedgerFormatError("the compressed body is not a zstd frame with a content size")
        }
        guard declared <= UInt64(maxSize) else {
            throw LedgerFormatError("the compressed body declares \(declared) bytes, over the limit of \(maxSize)")
        }
        let size = Int(declared)
        var output = [UInt8](repeating: 0, count: size)
        let written = output.withUnsafeMutableBytes { out in
            input.withUnsafeBytes { inp in
                ZSTD_decompress(out.baseAddress, size, inp.baseAddress, inp.count)
            }
        }
        guard ZSTD_isError(written) == 0 else {
            throw LedgerFormatError("zstd: \(String(cString: ZSTD_getErrorName(written)))")
        }
        guard written == size else {
            throw LedgerFormatError("the compressed body holds \(written) bytes, not the \(size) it declares")
        }
        return output
    }
}
