import MedLedgerCore
import Testing

@Suite("Every leaf's inclusion proof at once")
struct MerkleProofsTests {
    @Test func allProofsAreTheProofsOfEachLeafAndVerify() throws {
        for size in Array(0...70) + [127, 128, 129, 300, 513] {
            let leaves = (0..<size).map { MerkleTree.leafHash([UInt8(truncatingIfNeeded: $0), UInt8($0 >> 8)]) }
            let proofs = MerkleTree.inclusionProofs(leafHashes: leaves)
            #expect(proofs.count == size)
            let root = MerkleTree.root(leafHashes: leaves)
            for index in 0..<size {
                #expect(
                    proofs[index] == (try MerkleTree.inclusionProof(leafIndex: index, leafHashes: leaves)),
                    "\(index) of \(size)")
                try MerkleTree.verifyInclusion(
                    leafIndex: UInt64(index), treeSize: UInt64(size), leafHash: leaves[index], proof: proofs[index],
                    root: root)
            }
        }
    }
}
