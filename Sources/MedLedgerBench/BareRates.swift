internal import Dispatch
public import MedLedgerCore
internal import Synchronization

/// The bare rates of the limits a pipeline runs into, measured on this machine: signature
/// verifications on one core and on every core, SHA-256, and QoS 1 messages through the broker.
public struct BareRates: Codable, Hashable, Sendable {
    /// The cores the all-core rates used.
    public var cores: Int
    /// Ed25519 verifications per second on one core.
    public var ed25519OneCore: Double
    /// Ed25519 verifications per second on every core.
    public var ed25519AllCores: Double
    /// ES256 (P-256) verifications per second on one core.
    public var es256OneCore: Double
    /// ES256 verifications per second on every core.
    public var es256AllCores: Double
    /// SHA-256 over 1 KiB messages on one core, MB per second.
    public var sha256MBPerSecond: Double
    /// QoS 1 messages of 200 bytes per second through the broker, published and received by
    /// plain libmosquitto (nil when not measured).
    public var brokerQoS1PerSecond: Double?
    /// Signed receipts per second on one core: a manager signs one for every reading it answers
    /// `committed` or `rejected` (nil in reports made before receipts were signed).
    public var receiptSignOneCore: Double?

    /// Rates as given.
    public init(
        cores: Int, ed25519OneCore: Double, ed25519AllCores: Double, es256OneCore: Double, es256AllCores: Double,
        sha256MBPerSecond: Double, brokerQoS1PerSecond: Double?
    ) {
        self.cores = cores
        self.ed25519OneCore = ed25519OneCore
        self.ed25519AllCores = ed25519AllCores
        self.es256OneCore = es256OneCore
        self.es256AllCores = es256AllCores
        self.sha256MBPerSecond = sha256MBPerSecond
        self.brokerQoS1PerSecond = brokerQoS1PerSecond
    }

    /// Measures the compute rates (the broker's rate is measured by `PlainMosquittoRate`).
    /// - Parameters:
    ///   - seconds: how long each figure is measured.
    ///   - cores: the parallelism of the all-core figures.
    public static func measureCompute(seconds: Double, cores: Int) -> BareRates {
        let one = max(0.05, seconds)
        var rates = BareRates(
            cores: cores,
            ed25519OneCore: VerifyRate.measure(.ed25519, threads: 1, seconds: one),
            ed25519AllCores: VerifyRate.measure(.ed25519, threads: cores, seconds: one),
            es256OneCore: VerifyRate.measure(.es256, threads: 1, seconds: one),
            es256AllCores: VerifyRate.measure(.es256, threads: cores, seconds: one),
            sha256MBPerSecond: HashRate.measure(seconds: one), brokerQoS1PerSecond: nil)
        rates.receiptSignOneCore = ReceiptSignRate.measure(seconds: one)
        return rates
    }
}

/// Signature verifications per second: every thread verifies the same signed 120-byte message
/// (a reading's size) in a loop until the time is up.
public enum VerifyRate {
    /// Measures it.
    /// - Parameters:
    ///   - algorithm: the signature algorithm.
    ///   - threads: how many threads verify at once.
    ///   - seconds: for how long.
    /// - Returns: verifications per second, all threads together.
    public static func measure(_ algorithm: SignatureAlgorithm, threads: Int, seconds: Double) -> Double {
        let key = PrivateKey(generating: algorithm)
        let message = (0..<120).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        guard let signature = try? key.signature(for: message) else { return 0 }
        let publicKey = key.publicKey
        let total = Atomic<Int>(0)
        let failed = Atomic<Bool>(false)
        let start = MonotonicClock.seconds()
        DispatchQueue.concurrentPerform(iterations: max(1, threads)) { _ in
            var count = 0
            while MonotonicClock.seconds() - start < seconds {
                for _ in 0..<16 where !publicKey.isValidSignature(signature, for: message) {
                    failed.store(true, ordering: .relaxed)
                }
                count += 16
            }
            total.add(count, ordering: .relaxed)
        }
        let elapsed = MonotonicClock.seconds() - start
        guard !failed.load(ordering: .relaxed), elapsed > 0 else { return 0 }
        return Double(total.load(ordering: .relaxed)) / elapsed
    }
}

/// Final receipts a manager signs per second on one core (its own Ed25519 key; PROTOCOL.md,
/// "Signed receipts"): the receipt map, COSE_Sign1 over it with the receipts topic as external
/// AAD, encoded, exactly as the manager publishes it.
public enum ReceiptSignRate {
    /// Measures it.
    /// - Parameter seconds: for how long.
    /// - Returns: receipts per second.
    public static func measure(seconds: Double) -> Double {
        let key = PrivateKey(generating: .ed25519)
        let receipt = Receipt(seq: 1_234_567, status: .committed(height: 98_765, blockHash: Hash256.sha256([1])))
        let topic = "medledger/v1/ward-7/receipts/cuff-000123"
        var count = 0
        var bytes = 0
        let start = MonotonicClock.seconds()
        while MonotonicClock.seconds() - start < seconds {
            for _ in 0..<16 {
                bytes += (try? receipt.published(topic: topic, manager: "manager-1", key: key))?.count ?? 0
            }
            count += 16
        }
        let elapsed = MonotonicClock.seconds() - start
        return elapsed > 0 && bytes > 0 ? Double(count) / elapsed : 0
    }
}

/// SHA-256 throughput on one core over 1 KiB messages.
public enum HashRate {
    /// Measures it.
    /// - Parameter seconds: for how long.
    /// - Returns: MB (10^6 bytes) per second.
    public static func measure(seconds: Double) -> Double {
        var block = [UInt8](repeating: 0xA5, count: 1024)
        var bytes = 0
        let start = MonotonicClock.seconds()
        while MonotonicClock.seconds() - start < seconds {
            for _ in 0..<64 {
                let digest = Hash256.sha256(block)
                block[0] = digest.withUnsafeBytes { $0[0] }
                bytes += block.count
            }
        }
        let elapsed = MonotonicClock.seconds() - start
        return elapsed > 0 ? Double(bytes) / elapsed / 1e6 : 0
    }
}

/// Seconds on the monotonic clock.
enum MonotonicClock {
    static func seconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}
