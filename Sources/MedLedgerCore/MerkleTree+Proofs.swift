extension MerkleTree {
    /// The inclusion proofs (RFC 9162 `PATH`) of every leaf of a tree, in leaf order: the same
    /// paths as ``inclusionProof(leafIndex:leafHashes:)`` gives one at a time, made in
    /// O(n log n) hashes instead of O(n²) (a block page shows every reading's proof).
    /// - Parameter leafHashes: the tree's leaf hashes.
    /// - Returns: one path per leaf, each from the leaf up to the root (empty for a single leaf).
    public static func inclusionProofs(leafHashes: [Hash256]) -> [[Hash256]] {
        guard !leafHashes.isEmpty else { return [] }
        var proofs = [[Hash256]](repeating: [], count: leafHashes.count)
        // PATH(m, D[low:high]) = PATH(m, D[low:split]) : MTH(D[split:high]) for m < split, and
        // PATH(m - split, D[split:high]) : MTH(D[low:split]) otherwise; the recursion returns
        // the subtree's root and appends each sibling root after the deeper ones.
        func build(_ low: Int, _ high: Int) -> Hash256 {
            if high - low == 1 { return leafHashes[low] }
            var split = 1
            while split << 1 < high - low { split <<= 1 }
            split += low
            let left = build(low, split)
            let right = build(split, high)
            for index in low..<split { proofs[index].append(right) }
            for index in split..<high { proofs[index].append(left) }
            return nodeHash(left, right)
        }
        _ = build(0, leafHashes.count)
        return proofs
    }
}
