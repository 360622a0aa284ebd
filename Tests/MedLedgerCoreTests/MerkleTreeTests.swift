import Crypto
import Foundation
import MedLedgerCore
import Testing

// MARK: - Test vectors

/// The vector folder, found relative to this file so the same path works in any checkout.
private let vectorsDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent()
    .appendingPathComponent("../Vectors/merkle")
    .standardizedFileURL

/// `roots.json`: leaf inputs and the root of every prefix of them.
private struct RootsVector: Decodable {
    let leaves_hex: [String]
    let roots_hex: [String]
}

/// One file of `testdata/inclusion`.
private struct InclusionVector: Decodable {
    let leafIdx: UInt64
    let treeSize: UInt64
    let root: String
    let leafHash: String
    let proof: [String]?
    let desc: String
    let wantErr: Bool
}

/// One file of `testdata/consistency`.
private struct ConsistencyVector: Decodable {
    let size1: UInt64
    let size2: UInt64
    let root1: String
    let root2: String
    let proof: [String]?
    let desc: String
    let wantErr: Bool
}

/// Paths, relative to `testdata/`, of the JSON files under `testdata/<kind>`, sorted.
private func vectorFiles(_ kind: String) -> [String] {
    let testdata = vectorsDirectory.appendingPathComponent("testdata")
    let root = testdata.appendingPathComponent(kind)
    guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil) else { return [] }
    let prefix = testdata.path + "/"
    return walker.compactMap { item in
        guard let url = item as? URL, url.pathExtension == "json" else { return nil }
        return String(url.standardizedFileURL.path.dropFirst(prefix.count))
    }
    .sorted()
}

private func loadVector<T: Decodable>(_ type: T.Type, _ relativePath: String) throws -> T {
    let url = vectorsDirectory.appendingPathComponent("testdata").appendingPathComponent(relativePath)
    return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
}

private func base64Bytes(_ text: String) throws -> [UInt8] {
    let data = try #require(Data(base64Encoded: text), "bad base64 \(text)")
    return [UInt8](data)
}

/// A vector's leaf hash or proof element, or `nil` when it is not 32 bytes long. The vectors include such
/// values on purpose (empty strings, garbage entries); `Hash256` cannot hold them, so decoding rejects
/// them before any verification, which counts as the vector's rejection.
private func vectorHash(_ text: String) throws -> Hash256? {
    Hash256(bytes: try base64Bytes(text))
}

/// A vector's root. Roots that are not 32 bytes long ("don't care" placeholders, truncated or empty
/// values) stand for values no genuine tree has; they map to distinct stand-in digests (equal
/// placeholders to equal stand-ins), which the verifier then has to reject, or accept, on its own.
private func vectorRoot(_ text: String) throws -> Hash256 {
    let bytes = try base64Bytes(text)
    return Hash256(bytes: bytes) ?? Hash256.sha256(Array("not-a-32-byte-root:".utf8) + bytes)
}

private let knownLeaves: RootsVector? = try? JSONDecoder().decode(
    RootsVector.self,
    from: Data(contentsOf: vectorsDirectory.appendingPathComponent("roots.json"))
)

/// The leaf hashes of the first `size` leaves of `roots.json`, if the vector with the given root is built on
/// them (so that a proof can be regenerated from real data rather than invented).
private func knownLeafHashes(size: UInt64, root: Hash256) -> [Hash256]? {
    guard let known = knownLeaves, size < known.roots_hex.count, Hash256(hex: known.roots_hex[Int(size)]) == root
    else { return nil }
    return known.leaves_hex.prefix(Int(size)).map { MerkleTree.leafHash(hexBytes($0)) }
}

private func hexBytes(_ hex: String) -> [UInt8] {
    let digits = Array(hex.utf8)
    return stride(from: 0, to: digits.count, by: 2).map {
        UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16)!
    }
}

// MARK: - Reference implementation

/// RFC 9162 section 2.1, written as directly as possible over entries and byte arrays, independent of the
/// code under test (it uses swift-crypto itself, not `Hash256` or `MerkleTree`).
private enum Reference {
    static func hash(_ bytes: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: bytes))
    }

    /// The largest power of two smaller than `n` (`n > 1`).
    static func split(_ n: Int) -> Int {
        var k = 1
        while k * 2 < n {
            k *= 2
        }
        return k
    }

    /// MTH(D[n]).
    static func mth(_ d: ArraySlice<[UInt8]>) -> [UInt8] {
        let n = d.count
        if n == 0 {
            return hash([])
        }
        if n == 1 {
            return hash([0x00] + d[d.startIndex])
        }
        let k = split(n)
        return hash([0x01] + mth(d.prefix(k)) + mth(d.dropFirst(k)))
    }

    /// PATH(m, D[n]).
    static func path(_ m: Int, _ d: ArraySlice<[UInt8]>) -> [[UInt8]] {
        let n = d.count
        if n == 1 {
            return []
        }
        let k = split(n)
        if m < k {
            return path(m, d.prefix(k)) + [mth(d.dropFirst(k))]
        }
        return path(m - k, d.dropFirst(k)) + [mth(d.prefix(k))]
    }

    /// PROOF(m, D[n]).
    static func proof(_ m: Int, _ d: ArraySlice<[UInt8]>) -> [[UInt8]] {
        subproof(m, d, true)
    }

    /// SUBPROOF(m, D[n], b).
    static func subproof(_ m: Int, _ d: ArraySlice<[UInt8]>, _ b: Bool) -> [[UInt8]] {
        let n = d.count
        if m == n {
            return b ? [] : [mth(d)]
        }
        let k = split(n)
        if m <= k {
            return subproof(m, d.prefix(k), b) + [mth(d.dropFirst(k))]
        }
        return subproof(m - k, d.dropFirst(k), false) + [mth(d.prefix(k))]
    }
}

// MARK: - Seeded randomness

/// SplitMix64: a small seeded generator, so that a failing property test can be replayed.
private struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// The seed of a property test: `MERKLE_TEST_SEED` from the environment when set, otherwise a fixed one.
private func propertySeed() -> UInt64 {
    if let text = ProcessInfo.processInfo.environment["MERKLE_TEST_SEED"], let seed = UInt64(text) {
        return seed
    }
    return 0x5EED_3E4C_1E2026
}

private func randomEntries(_ count: Int, using rng: inout SeededGenerator) -> [[UInt8]] {
    (0..<count).map { _ in (0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }
}

/// Tree sizes for a property test: the small and power-of-two edge cases, plus random sizes up to 300.
private func propertySizes(using rng: inout SeededGenerator) -> [Int] {
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 65]
        + (0..<8).map { _ in Int.random(in: 1...300, using: &rng) }
}

private func flippingBit(_ hash: Hash256, using rng: inout SeededGenerator) -> Hash256 {
    var bytes = hash.bytes
    bytes[Int.random(in: 0..<32, using: &rng)] ^= 1 << UInt8.random(in: 0...7, using: &rng)
    return Hash256(bytes: bytes)!
}

private func randomHash(using rng: inout SeededGenerator) -> Hash256 {
    Hash256(bytes: (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) })!
}

/// The error `body` throws, or `nil`.
private func merkleError(_ body: () throws(MerkleError) -> Void) -> MerkleError? {
    do {
        try body()
        return nil
    } catch {
        return error
    }
}

private func inclusionFails(index: Int, size: UInt64, leaf: Hash256, proof: [Hash256], root: Hash256) -> Bool {
    merkleError { () throws(MerkleError) in
        try MerkleTree.verifyInclusion(
            leafIndex: UInt64(index), treeSize: size, leafHash: leaf, proof: proof, root: root)
    } != nil
}

private func consistencyFails(old: Int, new: Int, oldRoot: Hash256, newRoot: Hash256, proof: [Hash256]) -> Bool {
    merkleError { () throws(MerkleError) in
        try MerkleTree.verifyConsistency(
            oldSize: UInt64(old),
            newSize: UInt64(new),
            oldRoot: oldRoot,
            newRoot: newRoot,
            proof: proof
        )
    } != nil
}

// MARK: - Hash256

@Suite struct Hash256Tests {
    @Test func sha256KnownAnswers() {
        #expect(Hash256.sha256([UInt8]()).hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(
            Hash256.sha256(Array("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(MerkleTree.emptyRoot == Hash256.sha256([UInt8]()))
    }

    @Test func sha256AgreesAcrossSequenceKinds() {
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let expected = Hash256(bytes: Array(SHA256.hash(data: data)))!
        #expect(Hash256.sha256(data) == expected)
        #expect(Hash256.sha256(data[...]) == expected)
        #expect(Hash256.sha256(ContiguousArray(data)) == expected)
        #expect(Hash256.sha256(data.lazy.map { $0 }) == expected)  // not contiguous: streamed in chunks
        #expect(Hash256.sha256(data[100..<356]) == Hash256(bytes: Array(SHA256.hash(data: Array(data[100..<356])))))
        #expect(Hash256.sha256(AnySequence(data.prefix(256))) == Hash256(bytes: Array(SHA256.hash(data: data[..<256]))))
    }

    @Test func bytesAndHexRoundTrip() throws {
        let bytes = (0..<32).map { UInt8($0 * 8 + 1) }
        let hash = try #require(Hash256(bytes: bytes))
        #expect(hash.bytes == bytes)
        #expect(hash.hex == "0109111921293139414951596169717981899199a1a9b1b9c1c9d1d9e1e9f1f9")
        #expect(hash.description == hash.hex)
        #expect(Hash256(hex: hash.hex) == hash)
        #expect(Hash256(hex: hash.hex.uppercased()) == hash)
        #expect(Hash256(bytes: bytes[...]) == hash)
        hash.withUnsafeBytes { #expect(Array($0) == bytes) }
        #expect(Hash256.zero.bytes == [UInt8](repeating: 0, count: 32))
        #expect(Hash256.zero.hex == String(repeating: "0", count: 64))
        #expect(Hash256.byteCount == 32)
    }

    @Test func rejectsMalformedInput() {
        #expect(Hash256(bytes: [UInt8]()) == nil)
        #expect(Hash256(bytes: [UInt8](repeating: 1, count: 31)) == nil)
        #expect(Hash256(bytes: [UInt8](repeating: 1, count: 33)) == nil)
        #expect(Hash256(hex: "") == nil)
        #expect(Hash256(hex: String(repeating: "a", count: 63)) == nil)
        #expect(Hash256(hex: String(repeating: "a", count: 65)) == nil)
        #expect(Hash256(hex: String(repeating: "g", count: 64)) == nil)
        #expect(Hash256(hex: " " + String(repeating: "a", count: 63)) == nil)
        #expect(Hash256(hex: String(repeating: "é", count: 32)) == nil)
    }

    @Test func storedInlineAndOrderedBytewise() {
        #expect(MemoryLayout<Hash256>.size == 32)
        #expect(MemoryLayout<Hash256>.stride == 32)
        let seed = propertySeed()
        var rng = SeededGenerator(state: seed)
        for _ in 0..<500 {
            var a = randomHash(using: &rng)
            // Often share a prefix, so later words decide too.
            var b = Int.random(in: 0...1, using: &rng) == 0 ? randomHash(using: &rng) : flippingBit(a, using: &rng)
            if Int.random(in: 0...9, using: &rng) == 0 {
                b = a
            }
            if Int.random(in: 0...1, using: &rng) == 0 {
                swap(&a, &b)
            }
            #expect((a < b) == a.bytes.lexicographicallyPrecedes(b.bytes), "seed \(seed): \(a) vs \(b)")
            #expect((a == b) == (a.bytes == b.bytes), "seed \(seed)")
        }
        let low = Hash256(hex: "00000000000000000000000000000000000000000000000000000000000000ff")!
        let high = Hash256(hex: "0100000000000000000000000000000000000000000000000000000000000000")!
        #expect(low < high)
        #expect(Hash256.zero < low)
        #expect([high, low, Hash256.zero].sorted() == [Hash256.zero, low, high])
    }
}

// MARK: - Merkle trees

@Suite struct MerkleTreeTests {
    @Test func leafAndNodeHashesFollowTheDefinition() {
        let entry: [UInt8] = [1, 2, 3]
        #expect(MerkleTree.leafHash(entry).bytes == Reference.hash([0x00, 1, 2, 3]))
        #expect(MerkleTree.leafHash(entry.lazy.map { $0 }) == MerkleTree.leafHash(entry))
        #expect(MerkleTree.leafHash([UInt8]()).bytes == Reference.hash([0x00]))
        let left = Hash256.sha256([UInt8(1)])
        let right = Hash256.sha256([UInt8(2)])
        #expect(MerkleTree.nodeHash(left, right).bytes == Reference.hash([0x01] + left.bytes + right.bytes))
    }

    @Test func rootsOfKnownPrefixes() throws {
        let known = try #require(knownLeaves, "roots.json missing under \(vectorsDirectory.path)")
        #expect(known.leaves_hex.count == 8)
        #expect(known.roots_hex.count == 9)
        let entries = known.leaves_hex.map(hexBytes)
        for size in 0...entries.count {
            let expected = try #require(Hash256(hex: known.roots_hex[size]))
            let prefix = Array(entries.prefix(size))
            #expect(MerkleTree.root(entries: prefix) == expected, "size \(size)")
            #expect(MerkleTree.root(leafHashes: prefix.map { MerkleTree.leafHash($0) }) == expected, "size \(size)")
        }
    }

    @Test func vectorFolderIsComplete() {
        // Guards against the parameterized tests below passing vacuously on a missing folder.
        #expect(vectorFiles("inclusion").count == 98)
        #expect(vectorFiles("consistency").count == 98)
    }

    @Test(arguments: vectorFiles("inclusion"))
    func inclusionVector(_ file: String) throws {
        let vector = try loadVector(InclusionVector.self, file)
        let rawProof = vector.proof ?? []
        let root = try vectorRoot(vector.root)
        guard let leafHash = try vectorHash(vector.leafHash),
            case let proof = try rawProof.compactMap(vectorHash), proof.count == rawProof.count
        else {
            #expect(vector.wantErr, "\(file): \(vector.desc): a leaf hash or proof element is not 32 bytes")
            return
        }
        let error = merkleError { () throws(MerkleError) in
            try MerkleTree.verifyInclusion(
                leafIndex: vector.leafIdx,
                treeSize: vector.treeSize,
                leafHash: leafHash,
                proof: proof,
                root: root
            )
        }
        #expect((error != nil) == vector.wantErr, "\(file): \(vector.desc): \(error?.message ?? "verified")")
        if !vector.wantErr {
            // Regenerate the proof when the vector is built on the known leaves.
            if let leaves = knownLeafHashes(size: vector.treeSize, root: root) {
                #expect(leaves[Int(vector.leafIdx)] == leafHash, "\(file)")
                #expect(try MerkleTree.inclusionProof(leafIndex: Int(vector.leafIdx), leafHashes: leaves) == proof)
            }
        }
    }

    @Test(arguments: vectorFiles("consistency"))
    func consistencyVector(_ file: String) throws {
        let vector = try loadVector(ConsistencyVector.self, file)
        let rawProof = vector.proof ?? []
        let root1 = try vectorRoot(vector.root1)
        let root2 = try vectorRoot(vector.root2)
        let proof = try rawProof.compactMap(vectorHash)
        guard proof.count == rawProof.count else {
            #expect(vector.wantErr, "\(file): \(vector.desc): a proof element is not 32 bytes")
            return
        }
        let error = merkleError { () throws(MerkleError) in
            try MerkleTree.verifyConsistency(
                oldSize: vector.size1,
                newSize: vector.size2,
                oldRoot: root1,
                newRoot: root2,
                proof: proof
            )
        }
        #expect((error != nil) == vector.wantErr, "\(file): \(vector.desc): \(error?.message ?? "verified")")
        if !vector.wantErr {
            if let leaves = knownLeafHashes(size: vector.size2, root: root2) {
                #expect(MerkleTree.root(leafHashes: Array(leaves.prefix(Int(vector.size1)))) == root1, "\(file)")
                #expect(try MerkleTree.consistencyProof(oldSize: Int(vector.size1), leafHashes: leaves) == proof)
            }
        }
    }

    @Test func happyVectorsAreRegeneratedFromKnownLeaves() throws {
        // The regeneration branches above must actually run for the numbered happy paths.
        var regenerated = 0
        for file in vectorFiles("inclusion") where file.hasSuffix("happy-path.json") {
            let vector = try loadVector(InclusionVector.self, file)
            if knownLeafHashes(size: vector.treeSize, root: try vectorRoot(vector.root)) != nil {
                regenerated += 1
            }
        }
        for file in vectorFiles("consistency") where file.hasSuffix("happy-path.json") {
            let vector = try loadVector(ConsistencyVector.self, file)
            if knownLeafHashes(size: vector.size2, root: try vectorRoot(vector.root2)) != nil {
                regenerated += 1
            }
        }
        #expect(regenerated >= 8)
    }

    @Test func rootsAndInclusionProofsMatchReference() throws {
        let seed = propertySeed()
        var rng = SeededGenerator(state: seed)
        for size in propertySizes(using: &rng) {
            let entries = randomEntries(size, using: &rng)
            let leaves = entries.map { MerkleTree.leafHash($0) }
            let root = MerkleTree.root(leafHashes: leaves)
            #expect(root.bytes == Reference.mth(entries[...]), "seed \(seed), size \(size)")
            #expect(MerkleTree.root(entries: entries) == root, "seed \(seed), size \(size)")
            for index in 0..<size {
                let proof = try MerkleTree.inclusionProof(leafIndex: index, leafHashes: leaves)
                #expect(proof.map(\.bytes) == Reference.path(index, entries[...]), "seed \(seed), \(index) of \(size)")
                #expect(
                    throws: Never.self,
                    "seed \(seed), \(index) of \(size)"
                ) {
                    try MerkleTree.verifyInclusion(
                        leafIndex: UInt64(index),
                        treeSize: UInt64(size),
                        leafHash: leaves[index],
                        proof: proof,
                        root: root
                    )
                }
            }
        }
    }

    @Test func consistencyProofsMatchReference() throws {
        let seed = propertySeed()
        var rng = SeededGenerator(state: seed)
        for newSize in propertySizes(using: &rng) {
            let entries = randomEntries(newSize, using: &rng)
            let leaves = entries.map { MerkleTree.leafHash($0) }
            let newRoot = MerkleTree.root(leafHashes: leaves)
            for oldSize in 1...newSize {
                let context = "seed \(seed), \(oldSize) -> \(newSize)"
                let oldRoot = MerkleTree.root(leafHashes: Array(leaves.prefix(oldSize)))
                let proof = try MerkleTree.consistencyProof(oldSize: oldSize, leafHashes: leaves)
                #expect(proof.map(\.bytes) == Reference.proof(oldSize, entries[...]), "\(context)")
                #expect(throws: Never.self, "\(context)") {
                    try MerkleTree.verifyConsistency(
                        oldSize: UInt64(oldSize),
                        newSize: UInt64(newSize),
                        oldRoot: oldRoot,
                        newRoot: newRoot,
                        proof: proof
                    )
                }
            }
        }
    }

    @Test func mutatedInclusionProofsFail() throws {
        let seed = propertySeed()
        var rng = SeededGenerator(state: seed)
        for size in propertySizes(using: &rng) {
            let entries = randomEntries(size, using: &rng)
            let leaves = entries.map { MerkleTree.leafHash($0) }
            let root = MerkleTree.root(leafHashes: leaves)
            let treeSize = UInt64(size)
            for _ in 0..<10 {
                let index = Int.random(in: 0..<size, using: &rng)
                let context = "seed \(seed), leaf \(index) of \(size)"
                let leaf = leaves[index]
                let proof = try MerkleTree.inclusionProof(leafIndex: index, leafHashes: leaves)
                #expect(
                    !inclusionFails(index: index, size: treeSize, leaf: leaf, proof: proof, root: root), "\(context)")
                if !proof.isEmpty {
                    var flipped = proof
                    let position = Int.random(in: 0..<proof.count, using: &rng)
                    flipped[position] = flippingBit(proof[position], using: &rng)
                    #expect(
                        inclusionFails(index: index, size: treeSize, leaf: leaf, proof: flipped, root: root),
                        "\(context)")
                    let shorter = Array(proof.dropLast())
                    #expect(
                        inclusionFails(index: index, size: treeSize, leaf: leaf, proof: shorter, root: root),
                        "\(context)")
                    let tail = Array(proof.dropFirst())
                    #expect(
                        inclusionFails(index: index, size: treeSize, leaf: leaf, proof: tail, root: root), "\(context)")
                }
                let extra = randomHash(using: &rng)
                #expect(inclusionFails(index: index, size: treeSize, leaf: leaf, proof: proof + [extra], root: root))
                #expect(inclusionFails(index: index, size: treeSize, leaf: leaf, proof: [extra] + proof, root: root))
                let wrongLeaf = flippingBit(leaf, using: &rng)
                #expect(inclusionFails(index: index, size: treeSize, leaf: wrongLeaf, proof: proof, root: root))
                let wrongRoot = flippingBit(root, using: &rng)
                #expect(inclusionFails(index: index, size: treeSize, leaf: leaf, proof: proof, root: wrongRoot))
                #expect(inclusionFails(index: size, size: treeSize, leaf: leaf, proof: proof, root: root), "\(context)")
                if size > 1 {
                    var other = Int.random(in: 0..<size - 1, using: &rng)
                    other += other >= index ? 1 : 0
                    // Random entries may repeat (empty ones often do): the same leaf hash at another position is
                    // genuinely included there, and its proof may coincide, so only a different leaf must fail.
                    #expect(
                        leaves[other] == leaf
                            || inclusionFails(index: other, size: treeSize, leaf: leaf, proof: proof, root: root),
                        "\(context): as leaf \(other)"
                    )
                }
                // A proof binds the tree size through the root and its own length: a size whose proofs have
                // another length must fail (one with the same length and shape may legitimately pass).
                let otherSize = Int.random(in: index + 1...2 * size + 1, using: &rng)
                if Reference.path(index, Array(repeating: [], count: otherSize)[...]).count != proof.count {
                    #expect(
                        inclusionFails(index: index, size: UInt64(otherSize), leaf: leaf, proof: proof, root: root),
                        "\(context): as size \(otherSize)"
                    )
                }
            }
        }
    }

    @Test func mutatedConsistencyProofsFail() throws {
        let seed = propertySeed()
        var rng = SeededGenerator(state: seed)
        for newSize in propertySizes(using: &rng) where newSize > 1 {
            let entries = randomEntries(newSize, using: &rng)
            let leaves = entries.map { MerkleTree.leafHash($0) }
            let newRoot = MerkleTree.root(leafHashes: leaves)
            let dummy = Array(repeating: [UInt8](), count: 2 * newSize + 1)[...]
            for _ in 0..<10 {
                let oldSize = Int.random(in: 1..<newSize, using: &rng)
                let context = "seed \(seed), \(oldSize) -> \(newSize)"
                let oldRoot = MerkleTree.root(leafHashes: Array(leaves.prefix(oldSize)))
                let proof = try MerkleTree.consistencyProof(oldSize: oldSize, leafHashes: leaves)
                func fails(_ proof: [Hash256], old: Int, new: Int, roots: (Hash256, Hash256)) -> Bool {
                    consistencyFails(old: old, new: new, oldRoot: roots.0, newRoot: roots.1, proof: proof)
                }
                let roots = (oldRoot, newRoot)
                #expect(!fails(proof, old: oldSize, new: newSize, roots: roots), "\(context)")
                var flipped = proof
                let position = Int.random(in: 0..<proof.count, using: &rng)
                flipped[position] = flippingBit(proof[position], using: &rng)
                #expect(fails(flipped, old: oldSize, new: newSize, roots: roots), "\(context)")
                #expect(fails(Array(proof.dropLast()), old: oldSize, new: newSize, roots: roots), "\(context)")
                #expect(fails(Array(proof.dropFirst()), old: oldSize, new: newSize, roots: roots), "\(context)")
                let extra = randomHash(using: &rng)
                #expect(fails(proof + [extra], old: oldSize, new: newSize, roots: roots), "\(context)")
                #expect(fails([extra] + proof, old: oldSize, new: newSize, roots: roots), "\(context)")
                #expect(fails([], old: oldSize, new: newSize, roots: roots), "\(context)")
                let badOld = (flippingBit(oldRoot, using: &rng), newRoot)
                #expect(fails(proof, old: oldSize, new: newSize, roots: badOld), "\(context)")
                let badNew = (oldRoot, flippingBit(newRoot, using: &rng))
                #expect(fails(proof, old: oldSize, new: newSize, roots: badNew), "\(context)")
                #expect(fails(proof, old: oldSize, new: newSize, roots: (newRoot, oldRoot)), "\(context)")
                #expect(fails(proof, old: newSize, new: oldSize, roots: roots), "\(context)")
                #expect(fails(proof, old: 0, new: newSize, roots: roots), "\(context)")
                // As for inclusion, the sizes are bound through the roots and the proof length.
                let otherOld = Int.random(in: 1...newSize, using: &rng)
                if otherOld != oldSize, Reference.proof(otherOld, dummy.prefix(newSize)).count != proof.count {
                    #expect(fails(proof, old: otherOld, new: newSize, roots: roots), "\(context): old \(otherOld)")
                }
                let otherNew = Int.random(in: oldSize...2 * newSize + 1, using: &rng)
                if otherNew != newSize, Reference.proof(oldSize, dummy.prefix(otherNew)).count != proof.count {
                    #expect(fails(proof, old: oldSize, new: otherNew, roots: roots), "\(context): new \(otherNew)")
                }
            }
        }
    }

    @Test func generationRejectsBadArguments() {
        let leaves = (0..<5).map { MerkleTree.leafHash([UInt8($0)]) }
        #expect(MerkleTree.root(leafHashes: []) == MerkleTree.emptyRoot)
        #expect(MerkleTree.root(entries: []) == MerkleTree.emptyRoot)
        #expect(MerkleTree.root(leafHashes: [leaves[0]]) == leaves[0])
        #expect(throws: MerkleError.self) { try MerkleTree.inclusionProof(leafIndex: 0, leafHashes: []) }
        #expect(throws: MerkleError.self) { try MerkleTree.inclusionProof(leafIndex: -1, leafHashes: leaves) }
        #expect(throws: MerkleError.self) { try MerkleTree.inclusionProof(leafIndex: 5, leafHashes: leaves) }
        #expect(throws: MerkleError.self) { try MerkleTree.consistencyProof(oldSize: 0, leafHashes: leaves) }
        #expect(throws: MerkleError.self) { try MerkleTree.consistencyProof(oldSize: -3, leafHashes: leaves) }
        #expect(throws: MerkleError.self) { try MerkleTree.consistencyProof(oldSize: 6, leafHashes: leaves) }
        #expect(throws: MerkleError.self) { try MerkleTree.consistencyProof(oldSize: 0, leafHashes: []) }
        #expect((try? MerkleTree.consistencyProof(oldSize: 5, leafHashes: leaves)) == [])
        #expect((try? MerkleTree.inclusionProof(leafIndex: 0, leafHashes: [leaves[0]])) == [])
    }

    @Test func verificationReportsClearErrors() {
        let leaves = (0..<6).map { MerkleTree.leafHash([UInt8($0)]) }
        let root = MerkleTree.root(leafHashes: leaves)
        let oldRoot = MerkleTree.root(leafHashes: Array(leaves.prefix(3)))
        let proof = (try? MerkleTree.inclusionProof(leafIndex: 2, leafHashes: leaves)) ?? []
        let consistency = (try? MerkleTree.consistencyProof(oldSize: 3, leafHashes: leaves)) ?? []

        func inclusionCode(_ index: UInt64, _ size: UInt64, _ proof: [Hash256], _ root: Hash256) -> MerkleError.Code? {
            do throws(MerkleError) {
                try MerkleTree.verifyInclusion(
                    leafIndex: index, treeSize: size, leafHash: leaves[2], proof: proof, root: root)
                return nil
            } catch {
                #expect(!error.message.isEmpty)
                #expect(error.description == error.message)
                return error.code
            }
        }
        func consistencyCode(_ old: UInt64, _ new: UInt64, _ proof: [Hash256], _ roots: (Hash256, Hash256))
            -> MerkleError.Code?
        {
            do throws(MerkleError) {
                try MerkleTree.verifyConsistency(
                    oldSize: old, newSize: new, oldRoot: roots.0, newRoot: roots.1, proof: proof)
                return nil
            } catch {
                #expect(!error.message.isEmpty)
                return error.code
            }
        }

        #expect(inclusionCode(2, 6, proof, root) == nil)
        #expect(inclusionCode(6, 6, proof, root) == .indexOutOfRange)
        #expect(inclusionCode(0, 0, [], MerkleTree.emptyRoot) == .indexOutOfRange)
        #expect(inclusionCode(2, 6, proof + [root], root) == .wrongProofLength)
        #expect(inclusionCode(2, 6, Array(proof.dropLast()), root) == .wrongProofLength)
        #expect(inclusionCode(2, 6, proof, oldRoot) == .rootMismatch)

        #expect(consistencyCode(3, 6, consistency, (oldRoot, root)) == nil)
        #expect(consistencyCode(6, 3, consistency, (oldRoot, root)) == .oldSizeExceedsNewSize)
        #expect(consistencyCode(0, 6, consistency, (oldRoot, root)) == .emptyOldTree)
        #expect(consistencyCode(0, 0, [], (MerkleTree.emptyRoot, MerkleTree.emptyRoot)) == .emptyOldTree)
        #expect(consistencyCode(3, 6, [], (oldRoot, root)) == .wrongProofLength)
        #expect(consistencyCode(3, 6, consistency + [root], (oldRoot, root)) == .wrongProofLength)
        #expect(consistencyCode(6, 6, [], (root, root)) == nil)
        #expect(consistencyCode(6, 6, [root], (root, root)) == .wrongProofLength)
        #expect(consistencyCode(6, 6, [], (oldRoot, root)) == .newRootMismatch)
        #expect(consistencyCode(3, 6, consistency, (root, root)) == .oldRootMismatch)
        #expect(consistencyCode(3, 6, consistency, (oldRoot, oldRoot)) == .newRootMismatch)
    }

    @Test func extremeSizesNeverTrap() {
        let max = UInt64.max
        let hash = MerkleTree.leafHash([UInt8(7)])
        let sizes: [UInt64] = [0, 1, 2, 3, max / 2, max / 2 + 1, max - 1, max]
        var rng = SeededGenerator(state: 1)
        for size in sizes {
            for index in [0, 1, size / 2, size &- 2, size &- 1, size, size &+ 1, max] {
                for length in [0, 1, 2, 63, 64, 65, 130] {
                    let proof = (0..<length).map { _ in randomHash(using: &rng) }
                    // Random proofs never verify: every combination but the trivial ones must return an error.
                    let inclusion = merkleError { () throws(MerkleError) in
                        try MerkleTree.verifyInclusion(
                            leafIndex: index,
                            treeSize: size,
                            leafHash: hash,
                            proof: proof,
                            root: hash
                        )
                    }
                    let trivialInclusion = size == 1 && index == 0 && length == 0
                    #expect((inclusion == nil) == trivialInclusion, "leaf \(index) of \(size), \(length) hashes")
                    for other in sizes {
                        let consistency = merkleError { () throws(MerkleError) in
                            try MerkleTree.verifyConsistency(
                                oldSize: size,
                                newSize: other,
                                oldRoot: hash,
                                newRoot: hash,
                                proof: proof
                            )
                        }
                        let trivialConsistency = size == other && size > 0 && length == 0
                        #expect((consistency == nil) == trivialConsistency, "\(size) -> \(other), \(length) hashes")
                    }
                }
            }
        }
        // The longest paths there are: exactly one proof length is accepted, and it is computed without trapping.
        func acceptedLengths(leafIndex: UInt64, treeSize: UInt64) -> [Int] {
            (0...130).filter { length in
                let proof = [Hash256](repeating: hash, count: length)
                return merkleError { () throws(MerkleError) in
                    _ = try MerkleTree.rootFromInclusionProof(
                        leafIndex: leafIndex,
                        treeSize: treeSize,
                        leafHash: hash,
                        proof: proof
                    )
                } == nil
            }
        }
        #expect(acceptedLengths(leafIndex: 0, treeSize: max) == [64])
        #expect(acceptedLengths(leafIndex: max - 1, treeSize: max) == [63])
        #expect(acceptedLengths(leafIndex: max / 2, treeSize: max / 2 + 1) == [63])
        #expect(acceptedLengths(leafIndex: 0, treeSize: 1) == [0])
    }

    @Test func largeTreeMatchesReference() throws {
        let entries = (0..<10_000).map { withUnsafeBytes(of: UInt32($0).bigEndian) { Array($0) } }
        let leaves = entries.map { MerkleTree.leafHash($0) }
        let root = MerkleTree.root(leafHashes: leaves)
        #expect(root.bytes == Reference.mth(entries[...]))
        for index in [0, 1, 4095, 4096, 8191, 8192, 9998, 9999] {
            let proof = try MerkleTree.inclusionProof(leafIndex: index, leafHashes: leaves)
            #expect(proof.map(\.bytes) == Reference.path(index, entries[...]), "leaf \(index)")
            #expect(throws: Never.self) {
                try MerkleTree.verifyInclusion(
                    leafIndex: UInt64(index),
                    treeSize: 10_000,
                    leafHash: leaves[index],
                    proof: proof,
                    root: root
                )
            }
        }
        for oldSize in [1, 2, 3, 1000, 4096, 5000, 8192, 9999, 10_000] {
            let proof = try MerkleTree.consistencyProof(oldSize: oldSize, leafHashes: leaves)
            #expect(proof.map(\.bytes) == Reference.proof(oldSize, entries[...]), "old size \(oldSize)")
            let oldRoot = MerkleTree.root(leafHashes: Array(leaves.prefix(oldSize)))
            #expect(throws: Never.self) {
                try MerkleTree.verifyConsistency(
                    oldSize: UInt64(oldSize),
                    newSize: 10_000,
                    oldRoot: oldRoot,
                    newRoot: root,
                    proof: proof
                )
            }
        }
    }
}
