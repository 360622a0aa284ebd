import Crypto

/// Why a Merkle proof could not be generated or did not verify.
public struct MerkleError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public enum Code: Hashable, Sendable {
        /// A leaf index is negative or not below the tree size (this includes every index into an empty tree).
        case indexOutOfRange
        /// A tree size is negative.
        case invalidSize
        /// A consistency check names an old tree larger than the new one.
        case oldSizeExceedsNewSize
        /// A consistency check starts from the empty tree, which every tree trivially extends.
        case emptyOldTree
        /// A proof holds more or fewer hashes than the sizes and index require.
        case wrongProofLength
        /// An inclusion proof leads to a root other than the expected one.
        case rootMismatch
        /// A consistency proof does not lead to the old tree's root.
        case oldRootMismatch
        /// A consistency proof does not lead to the new tree's root (or equal-size trees have different roots).
        case newRootMismatch
    }

    /// The kind of failure.
    public let code: Code
    /// A human-readable explanation, with the numbers involved.
    public let message: String

    /// Creates an error of the given kind with an explanation.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The explanation.
    public var description: String { message }
}

/// Merkle trees as defined by RFC 9162 (Certificate Transparency version 2.0), section 2.1, over SHA-256.
///
/// Leaves are hashed as `SHA-256(0x00 || entry)` and interior nodes as `SHA-256(0x01 || left || right)`; a
/// tree of `n > 1` leaves splits at the largest power of two smaller than `n`. Proof generation works from
/// the leaf hashes; verification follows the algorithms of RFC 9162 sections 2.1.3.2 and 2.1.4.2 and never
/// traps, whatever the sizes, indices or proofs it is given.
public enum MerkleTree {
    /// The root of the empty tree: the SHA-256 digest of no bytes.
    public static let emptyRoot = Hash256.sha256(EmptyCollection<UInt8>())

    /// The leaf hash of an entry: `SHA-256(0x00 || entry)`.
    public static func leafHash(_ entry: some Sequence<UInt8>) -> Hash256 {
        var hasher = SHA256()
        hasher.absorb(CollectionOfOne(0x00))
        hasher.absorb(entry)
        return Hash256(hasher.finalize())
    }

    /// The hash of an interior node: `SHA-256(0x01 || left || right)`.
    public static func nodeHash(_ left: Hash256, _ right: Hash256) -> Hash256 {
        withUnsafeTemporaryAllocation(byteCount: 1 + 2 * Hash256.byteCount, alignment: 8) { buffer in
            buffer[0] = 0x01
            left.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buffer[1...]).copyMemory(from: $0) }
            right.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buffer[33...]).copyMemory(from: $0) }
            var hasher = SHA256()
            hasher.update(bufferPointer: UnsafeRawBufferPointer(buffer))
            return Hash256(hasher.finalize())
        }
    }

    /// The Merkle Tree Hash of a tree with the given leaf hashes (for no leaves, ``emptyRoot``).
    ///
    /// Computed bottom-up in a single working copy of the leaf hashes: `n - 1` node hashes, no other work.
    public static func root(leafHashes: [Hash256]) -> Hash256 {
        guard !leafHashes.isEmpty else { return emptyRoot }
        var level = leafHashes
        return level.withUnsafeMutableBufferPointer { reduce($0) }
    }

    /// The Merkle Tree Hash of a tree with the given entries.
    public static func root(entries: [[UInt8]]) -> Hash256 {
        root(leafHashes: entries.map { leafHash($0) })
    }

    /// The inclusion proof (RFC 9162 `PATH`) for leaf `leafIndex` of the tree with the given leaf hashes:
    /// the sibling subtree roots from the leaf up to the root.
    ///
    /// - Throws: ``MerkleError/Code/indexOutOfRange`` unless `0 <= leafIndex < leafHashes.count`.
    public static func inclusionProof(leafIndex: Int, leafHashes: [Hash256]) throws(MerkleError) -> [Hash256] {
        guard leafIndex >= 0, leafIndex < leafHashes.count else {
            throw MerkleError(
                .indexOutOfRange,
                "leaf index \(leafIndex) is outside a tree of \(leafHashes.count) leaves"
            )
        }
        return withSubtreeRoots(leafHashes) { subtreeRoot in
            // Walk down from the root; the sibling of each subtree on the way is a proof node.
            var path: [Hash256] = []
            var low = 0
            var high = leafHashes.count
            while high - low > 1 {
                let split = low + largestPowerOfTwo(below: high - low)
                if leafIndex < split {
                    path.append(subtreeRoot(split..<high))
                    high = split
                } else {
                    path.append(subtreeRoot(low..<split))
                    low = split
                }
            }
            path.reverse()
            return path
        }
    }

    /// The inclusion proofs of several leaves of one tree, building the tree once: each proof costs
    /// its path's length on top of the `n - 1` node hashes, where `inclusionProof` rebuilds for each.
    /// The tree is built level by level, pairing neighbours and carrying a level's last node up
    /// alone when it has no partner, which is RFC 9162's tree.
    ///
    /// - Throws: ``MerkleError/Code/indexOutOfRange`` when an index is outside the tree.
    public static func inclusionProofs(leafIndices: [Int], leafHashes: [Hash256]) throws(MerkleError) -> [[Hash256]] {
        for index in leafIndices where index < 0 || index >= leafHashes.count {
            throw MerkleError(.indexOutOfRange, "leaf index \(index) is outside a tree of \(leafHashes.count) leaves")
        }
        var levels = [leafHashes]
        while let last = levels.last, last.count > 1 {
            var next: [Hash256] = []
            next.reserveCapacity((last.count + 1) / 2)
            var index = 0
            while index + 1 < last.count {
                next.append(nodeHash(last[index], last[index + 1]))
                index += 2
            }
            if index < last.count { next.append(last[index]) }
            levels.append(next)
        }
        return leafIndices.map { leaf in
            var path: [Hash256] = []
            var index = leaf
            for level in levels.dropLast() {
                let sibling = index ^ 1
                if sibling < level.count { path.append(level[sibling]) }
                index /= 2
            }
            return path
        }
    }

    /// The root that an inclusion proof leads to for a leaf hash at `leafIndex` in a tree of `treeSize` leaves
    /// (RFC 9162 section 2.1.3.2, without the final comparison).
    ///
    /// - Throws: ``MerkleError/Code/indexOutOfRange`` unless `leafIndex < treeSize`;
    ///   ``MerkleError/Code/wrongProofLength`` unless the proof has exactly the length that index and size imply.
    public static func rootFromInclusionProof(
        leafIndex: UInt64,
        treeSize: UInt64,
        leafHash: Hash256,
        proof: [Hash256]
    ) throws(MerkleError) -> Hash256 {
        guard leafIndex < treeSize else {
            throw MerkleError(.indexOutOfRange, "leaf index \(leafIndex) is outside a tree of \(treeSize) leaves")
        }
        let expected = inclusionPathLength(leafIndex: leafIndex, treeSize: treeSize)
        guard proof.count == expected else {
            throw MerkleError(
                .wrongProofLength,
                "inclusion proof for leaf \(leafIndex) of \(treeSize) needs \(expected) hashes, got \(proof.count)"
            )
        }
        var cursor = PathCursor(fn: leafIndex, sn: treeSize - 1)
        var result = leafHash
        for node in proof {
            // The length check above guarantees `sn > 0` here; RFC 9162 step 4a is kept as a safeguard.
            guard cursor.sn != 0 else {
                throw MerkleError(.wrongProofLength, "inclusion proof for leaf \(leafIndex) of \(treeSize) is too long")
            }
            if cursor.nodeIsOnLeft {
                result = nodeHash(node, result)
            } else {
                result = nodeHash(result, node)
            }
            cursor.advance()
        }
        guard cursor.sn == 0 else {
            throw MerkleError(.wrongProofLength, "inclusion proof for leaf \(leafIndex) of \(treeSize) is too short")
        }
        return result
    }

    /// Verifies that `leafHash` is the leaf at `leafIndex` of the tree of `treeSize` leaves whose root is `root`.
    ///
    /// - Throws: the errors of ``rootFromInclusionProof(leafIndex:treeSize:leafHash:proof:)``, or
    ///   ``MerkleError/Code/rootMismatch`` when the proof leads to another root.
    public static func verifyInclusion(
        leafIndex: UInt64,
        treeSize: UInt64,
        leafHash: Hash256,
        proof: [Hash256],
        root: Hash256
    ) throws(MerkleError) {
        let computed = try rootFromInclusionProof(
            leafIndex: leafIndex,
            treeSize: treeSize,
            leafHash: leafHash,
            proof: proof
        )
        guard computed == root else {
            throw MerkleError(
                .rootMismatch,
                "inclusion proof for leaf \(leafIndex) of \(treeSize) leads to root \(computed), expected \(root)"
            )
        }
    }

    /// The consistency proof (RFC 9162 `PROOF`) that the tree of the first `oldSize` leaves is a prefix of the
    /// tree with the given leaf hashes. It is empty when `oldSize == leafHashes.count`.
    ///
    /// - Throws: ``MerkleError/Code/invalidSize`` for a negative size, ``MerkleError/Code/emptyOldTree`` for
    ///   zero, ``MerkleError/Code/oldSizeExceedsNewSize`` when `oldSize > leafHashes.count`.
    public static func consistencyProof(oldSize: Int, leafHashes: [Hash256]) throws(MerkleError) -> [Hash256] {
        let newSize = leafHashes.count
        guard oldSize >= 0 else {
            throw MerkleError(.invalidSize, "old tree size \(oldSize) is negative")
        }
        guard oldSize > 0 else {
            throw MerkleError(.emptyOldTree, "no consistency proof exists from the empty tree")
        }
        guard oldSize <= newSize else {
            throw MerkleError(.oldSizeExceedsNewSize, "old tree size \(oldSize) exceeds new tree size \(newSize)")
        }
        return withSubtreeRoots(leafHashes) { subtreeRoot in
            // RFC 9162 SUBPROOF(m, D[low:high], b), unrolled: each step records one node and narrows the
            // range; the nodes come out root-first, so the path is reversed at the end.
            var path: [Hash256] = []
            var low = 0
            var high = newSize
            var startsFromOldRoot = true
            while oldSize != high {
                let split = low + largestPowerOfTwo(below: high - low)
                if oldSize <= split {
                    path.append(subtreeRoot(split..<high))
                    high = split
                } else {
                    path.append(subtreeRoot(low..<split))
                    low = split
                    startsFromOldRoot = false
                }
            }
            if !startsFromOldRoot {
                path.append(subtreeRoot(low..<high))
            }
            path.reverse()
            return path
        }
    }

    /// Verifies that the tree of `oldSize` leaves with root `oldRoot` is a prefix of the tree of `newSize`
    /// leaves with root `newRoot` (RFC 9162 section 2.1.4.2).
    ///
    /// Equal sizes need an empty proof and equal roots. A check from the empty tree is refused, since it
    /// proves nothing.
    ///
    /// - Throws: ``MerkleError/Code/oldSizeExceedsNewSize``, ``MerkleError/Code/emptyOldTree``,
    ///   ``MerkleError/Code/wrongProofLength``, ``MerkleError/Code/oldRootMismatch`` or
    ///   ``MerkleError/Code/newRootMismatch``.
    public static func verifyConsistency(
        oldSize: UInt64,
        newSize: UInt64,
        oldRoot: Hash256,
        newRoot: Hash256,
        proof: [Hash256]
    ) throws(MerkleError) {
        guard oldSize <= newSize else {
            throw MerkleError(.oldSizeExceedsNewSize, "old tree size \(oldSize) exceeds new tree size \(newSize)")
        }
        guard oldSize > 0 else {
            throw MerkleError(.emptyOldTree, "a consistency check from the empty tree proves nothing")
        }
        if oldSize == newSize {
            guard proof.isEmpty else {
                throw MerkleError(
                    .wrongProofLength,
                    "trees of equal size \(oldSize) need an empty consistency proof, got \(proof.count) hashes"
                )
            }
            guard oldRoot == newRoot else {
                throw MerkleError(.newRootMismatch, "trees of equal size \(oldSize) have different roots")
            }
            return
        }
        let expected = consistencyPathLength(oldSize: oldSize, newSize: newSize)
        guard proof.count == expected else {
            throw MerkleError(
                .wrongProofLength,
                "consistency proof from \(oldSize) to \(newSize) needs \(expected) hashes, got \(proof.count)"
            )
        }
        // RFC 9162 section 2.1.4.2. Step 2 prepends the old root when the old size is a power of two.
        let oldIsPowerOfTwo = oldSize & (oldSize - 1) == 0
        let first = oldIsPowerOfTwo ? oldRoot : proof[0]
        let rest = oldIsPowerOfTwo ? proof[...] : proof.dropFirst()
        var cursor = PathCursor(fn: oldSize - 1, sn: newSize - 1)
        while cursor.fn & 1 == 1 {
            cursor.shift()
        }
        var oldResult = first
        var newResult = first
        for node in rest {
            // The length check above guarantees `sn > 0` here; step 6a is kept as a safeguard.
            guard cursor.sn != 0 else {
                throw MerkleError(.wrongProofLength, "consistency proof from \(oldSize) to \(newSize) is too long")
            }
            if cursor.nodeIsOnLeft {
                oldResult = nodeHash(node, oldResult)
                newResult = nodeHash(node, newResult)
            } else {
                newResult = nodeHash(newResult, node)
            }
            cursor.advance()
        }
        guard cursor.sn == 0 else {
            throw MerkleError(.wrongProofLength, "consistency proof from \(oldSize) to \(newSize) is too short")
        }
        guard oldResult == oldRoot else {
            throw MerkleError(
                .oldRootMismatch,
                "consistency proof from \(oldSize) to \(newSize) leads to old root \(oldResult), expected \(oldRoot)"
            )
        }
        guard newResult == newRoot else {
            throw MerkleError(
                .newRootMismatch,
                "consistency proof from \(oldSize) to \(newSize) leads to new root \(newResult), expected \(newRoot)"
            )
        }
    }

    // MARK: - Internals

    /// The position bookkeeping of RFC 9162's verification algorithms: `fn` is the index of the node being
    /// built within its level and `sn` the index of the level's last node.
    private struct PathCursor {
        var fn: UInt64
        var sn: UInt64

        /// Whether the next proof node is the left sibling (RFC 9162: `LSB(fn)` is set, or `fn == sn`).
        var nodeIsOnLeft: Bool { fn & 1 == 1 || fn == sn }

        mutating func shift() {
            fn >>= 1
            sn >>= 1
        }

        /// Moves up past one proof node. When the node is a left sibling and `fn` is even (so `fn == sn`,
        /// the last node of its level), first climbs the levels where that node has no sibling.
        mutating func advance() {
            if nodeIsOnLeft, fn & 1 == 0 {
                while fn & 1 == 0, fn != 0 {
                    shift()
                }
            }
            shift()
        }
    }

    /// How many hashes an inclusion proof holds for `leafIndex < treeSize`: the steps RFC 9162's
    /// verification takes until `sn` reaches zero (at most 64).
    private static func inclusionPathLength(leafIndex: UInt64, treeSize: UInt64) -> Int {
        var cursor = PathCursor(fn: leafIndex, sn: treeSize - 1)
        var count = 0
        while cursor.sn != 0 {
            cursor.advance()
            count += 1
        }
        return count
    }

    /// How many hashes a consistency proof holds for `0 < oldSize < newSize`: the seed value plus the steps
    /// of RFC 9162's verification until `sn` reaches zero, less the old root that the verifier supplies
    /// itself when `oldSize` is a power of two.
    private static func consistencyPathLength(oldSize: UInt64, newSize: UInt64) -> Int {
        var cursor = PathCursor(fn: oldSize - 1, sn: newSize - 1)
        while cursor.fn & 1 == 1 {
            cursor.shift()
        }
        var count = 1
        while cursor.sn != 0 {
            cursor.advance()
            count += 1
        }
        return oldSize & (oldSize - 1) == 0 ? count - 1 : count
    }

    /// The largest power of two strictly smaller than `n`, for `n >= 2`.
    private static func largestPowerOfTwo(below n: Int) -> Int {
        1 << (Int.bitWidth - 1 - (n - 1).leadingZeroBitCount)
    }

    /// Replaces `hashes` (non-empty) by its Merkle Tree Hash, pairing neighbours level by level in place. An
    /// odd node at the end of a level moves up unchanged, which yields exactly RFC 9162's split at the
    /// largest power of two. Returns the root; the buffer's contents are scratch afterwards.
    private static func reduce(_ hashes: UnsafeMutableBufferPointer<Hash256>) -> Hash256 {
        var count = hashes.count
        while count > 1 {
            var next = 0
            var index = 0
            while index + 1 < count {
                hashes[next] = nodeHash(hashes[index], hashes[index + 1])
                next += 1
                index += 2
            }
            if index < count {
                hashes[next] = hashes[index]
                next += 1
            }
            count = next
        }
        return hashes[0]
    }

    /// Calls `body` with a function giving the Merkle Tree Hash of any non-empty range of `leafHashes`.
    /// The function shares one scratch buffer, so a proof's disjoint subtrees cost `n` hashes in total.
    private static func withSubtreeRoots<R>(
        _ leafHashes: [Hash256],
        _ body: ((Range<Int>) -> Hash256) -> R
    ) -> R {
        leafHashes.withUnsafeBufferPointer { leaves in
            withUnsafeTemporaryAllocation(of: Hash256.self, capacity: leaves.count) { scratch in
                body { range in
                    let slice = UnsafeMutableBufferPointer(rebasing: scratch[0..<range.count])
                    _ = slice.initialize(fromContentsOf: UnsafeBufferPointer(rebasing: leaves[range]))
                    return reduce(slice)
                }
            }
        }
    }
}
