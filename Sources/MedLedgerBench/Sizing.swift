/// What a node needs per reading, from a bench run, and the plan for a fleet that follows.
///
/// Every manager takes every reading and every validator checks every block, so adding nodes
/// adds availability and fault tolerance, not throughput: each node must keep up with the
/// channel's whole rate. A node's cores follow from the CPU time it spends per reading, its disk
/// from the bytes a reading takes in its database, its memory from what it held in the run.
public struct Sizing: Codable, Hashable, Sendable {
    /// CPU time a manager spent per committed reading at the sustained load, ms.
    public var managerCPUMsPerReading: Double?
    /// CPU time a validator spent per committed reading at the sustained load, ms.
    public var validatorCPUMsPerReading: Double?
    /// Database bytes per committed reading (blocks, index, certificates).
    public var diskBytesPerReading: Double?
    /// The most resident memory a manager had, MiB.
    public var managerResidentMiB: Double?
    /// The most resident memory a validator had, MiB.
    public var validatorResidentMiB: Double?
    /// The readings per second one pipeline of the measured shape sustained on this machine.
    public var sustainedPerSecond: Double

    /// Sizing inputs as given.
    public init(
        managerCPUMsPerReading: Double?, validatorCPUMsPerReading: Double?, diskBytesPerReading: Double?,
        managerResidentMiB: Double?, validatorResidentMiB: Double?, sustainedPerSecond: Double
    ) {
        self.managerCPUMsPerReading = managerCPUMsPerReading
        self.validatorCPUMsPerReading = validatorCPUMsPerReading
        self.diskBytesPerReading = diskBytesPerReading
        self.managerResidentMiB = managerResidentMiB
        self.validatorResidentMiB = validatorResidentMiB
        self.sustainedPerSecond = sustainedPerSecond
    }

    /// A deployment's plan.
    public struct Plan: Codable, Hashable, Sendable {
        /// Readings per second of the fleet.
        public var readingsPerSecond: Double
        /// Council members: 3f+1.
        public var validators: Int
        /// Managers: two per hospital site, so one can be down.
        public var managers: Int
        /// Cores each manager needs (at half utilisation).
        public var managerCores: Int
        /// Cores each validator needs (at half utilisation).
        public var validatorCores: Int
        /// Memory each node needs, GiB (twice what the run measured, at least 1).
        public var memoryGiB: Double
        /// Disk each node fills per day, GiB.
        public var diskGiBPerDay: Double
        /// What the plan assumes, or warns of.
        public var notes: [String]
    }

    /// The plan for a fleet.
    /// - Parameters:
    ///   - devices: the fleet's devices.
    ///   - ratePerDevice: readings per second of each.
    ///   - faults: validators that may fail or lie at once (f).
    ///   - sites: hospital sites that run managers.
    public func plan(devices: Int, ratePerDevice: Double, faults: Int = 1, sites: Int = 1) -> Plan {
        let rate = Double(max(0, devices)) * max(0, ratePerDevice)
        func cores(_ msPerReading: Double?) -> Int {
            guard let msPerReading else { return 1 }
            return max(1, Int((rate * msPerReading / 1000 / 0.5).rounded(.up)))
        }
        let resident = max(managerResidentMiB ?? 0, validatorResidentMiB ?? 0)
        var notes = [
            "every manager takes every reading and every validator checks every block: each node must keep up with \(Int(rate.rounded())) readings/s",
            "cores at half utilisation, from the CPU time per reading measured by `medledger bench`",
        ]
        if managerCPUMsPerReading == nil || validatorCPUMsPerReading == nil {
            notes.append("no CPU time per reading was measured: one core is assumed")
        }
        if sustainedPerSecond > 0, rate > sustainedPerSecond {
            notes.append(
                "the rate is above what the measured machine sustained (\(Int(sustainedPerSecond.rounded()))/s): "
                    + "give the nodes the cores above, or split the fleet over channels")
        }
        return Plan(
            readingsPerSecond: rate, validators: 3 * max(0, faults) + 1, managers: 2 * max(1, sites),
            managerCores: cores(managerCPUMsPerReading), validatorCores: cores(validatorCPUMsPerReading),
            memoryGiB: max(1, (2 * resident / 1024 * 10).rounded(.up) / 10),
            diskGiBPerDay: rate * 86_400 * (diskBytesPerReading ?? 0) / 1_073_741_824, notes: notes)
    }
}
