public import MedLedgerCore
public import MedLedgerStore

/// Builds a synthetic, valid chain into a store: devices registered in block 1, then blocks of
/// blood-pressure readings from them, each block certified by the council's quorum.
public struct ChainBuilder {
    /// The channel.
    public let channel: TestChannel
    /// The devices' ids and keys.
    public let devices: [(id: String, key: PrivateKey)]
    private var seqs: [Int]

    /// Makes a builder.
    /// - Parameters:
    ///   - channel: the channel.
    ///   - deviceCount: how many devices.
    public init(channel: TestChannel, deviceCount: Int) {
        self.channel = channel
        devices = (0..<deviceCount).map { ("bp-cuff-\($0)", TestChannel.deviceKey($0)) }
        seqs = Array(repeating: 0, count: deviceCount)
    }

    /// Appends block 1: the devices' registrations, assigned to patients `patient-<n mod 7>`.
    public func registerDevices(in store: LedgerStore) throws {
        let transactions = devices.enumerated().map { index, device in
            channel.transaction(
                seq: UInt64(index + 1),
                .registerDevice(device: device.id, key: device.key.publicKey, patient: "patient-\(index % 7)"))
        }
        let block = channel.block(on: store.state, transactions: transactions)
        try store.append(block, certificate: channel.certificate(for: block.header))
    }

    /// Appends a block of readings, taken from the devices in turn.
    /// - Parameters:
    ///   - store: the store.
    ///   - readings: how many readings.
    ///   - random: the source of values.
    public mutating func appendBlock(to store: LedgerStore, readings: Int, random: inout SeededRandom) throws {
        var signed: [SignedReading] = []
        for index in 0..<readings {
            let device = (Int(store.height) * readings + index) % devices.count
            seqs[device] += 1
            signed.append(
                channel.reading(
                    device: devices[device].id, key: devices[device].key, seq: UInt64(seqs[device]),
                    time: store.state.time + UInt64(index), systolic: Int64.random(in: 100...160, using: &random),
                    diastolic: Int64.random(in: 60...100, using: &random)))
        }
        let block = channel.block(on: store.state, readings: signed)
        try store.append(block, certificate: channel.certificate(for: block.header))
    }
}
