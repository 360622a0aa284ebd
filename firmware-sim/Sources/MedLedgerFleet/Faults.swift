public import MedLedgerCore

/// A fault a simulated device injects on purpose, as real devices have them.
public enum Fault: String, Hashable, Sendable, CaseIterable, Codable {
    /// The device's clock runs far ahead: `clock-skew`.
    case clockSkew = "clock-skew"
    /// A new reading reusing the seq of one already committed: `replayed`.
    case replayed
    /// A signed reading whose payload was changed afterwards: `bad-signature`.
    case tampered
    /// A reading signed with a key that is not the device's: `bad-signature`.
    case badSignature = "bad-signature"
    /// A device that was never registered sends: `unknown-device` (chosen per device).
    case unregistered
    /// A reading naming another channel: `wrong-channel`.
    case wrongChannel = "wrong-channel"
    /// A record in a unit other than its code's: `unit-mismatch`.
    case wrongUnit = "wrong-unit"
    /// A value no working sensor reports: `implausible-value`.
    case implausible
    /// Bytes that are not CBOR: `malformed`.
    case malformed
    /// A message over 1024 bytes: `too-large`.
    case oversized
    /// Many honest readings at once (not a rejection: load).
    case burst
    /// The connection drops without a DISCONNECT (not a rejection: the backlog is resent).
    case disconnect

    /// The receipt a manager must give a reading with this fault, or nil when the fault is
    /// honest behaviour (bursts, disconnects).
    public var expectedRejection: RejectionReason? {
        switch self {
        case .clockSkew: .clockSkew
        case .replayed: .replayed
        case .tampered, .badSignature: .badSignature
        case .unregistered: .unknownDevice
        case .wrongChannel: .wrongChannel
        case .wrongUnit: .unitMismatch
        case .implausible: .implausibleValue
        case .malformed: .malformed
        case .oversized: .tooLarge
        case .burst, .disconnect: nil
        }
    }

    /// Whether the manager can read the seq of such a reading (it answers seq 0 otherwise).
    public var seqIsReadable: Bool { self != .malformed && self != .oversized }
}

/// The share of readings (or, for `unregistered`, of devices) that carry each fault.
public struct FaultPlan: Hashable, Sendable, Codable {
    /// Each fault's share, 0...1.
    public var shares: [Fault: Double]

    /// A plan.
    /// - Parameter shares: each fault's share, 0...1.
    public init(_ shares: [Fault: Double] = [:]) { self.shares = shares }

    /// No faults.
    public static let none = FaultPlan()

    /// A share of every fault at once.
    /// - Parameter share: the share of each.
    public static func every(_ share: Double) -> FaultPlan {
        FaultPlan(Dictionary(uniqueKeysWithValues: Fault.allCases.map { ($0, share) }))
    }

    /// Parses `fault=share,fault=share` (for example `clock-skew=0.01,malformed=0.02`), or `all=S`.
    /// - Parameter text: the list.
    /// - Throws: `FleetError` naming the unknown fault or the bad share.
    public init(parsing text: String) throws(FleetError) {
        var shares: [Fault: Double] = [:]
        for item in text.split(separator: ",") where !item.isEmpty {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let share = Double(parts[1]), (0...1).contains(share) else {
                throw FleetError(.badOption, "'\(item)' is not fault=share with a share in 0...1")
            }
            if parts[0] == "all" {
                for fault in Fault.allCases { shares[fault] = share }
            } else if let fault = Fault(rawValue: String(parts[0])) {
                shares[fault] = share
            } else {
                throw FleetError(
                    .badOption,
                    "unknown fault '\(parts[0])'; known: all, \(Fault.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
        }
        self.shares = shares
    }

    /// The share of one fault.
    public subscript(fault: Fault) -> Double { shares[fault] ?? 0 }

    /// Draws the fault, if any, of the next reading (never `unregistered`, which is per device).
    /// - Parameter random: the source of randomness.
    public func draw(using random: inout SeededRandom) -> Fault? {
        for fault in Fault.allCases where fault != .unregistered {
            let share = self[fault]
            if share > 0, Double.random(in: 0..<1, using: &random) < share { return fault }
        }
        return nil
    }
}

/// A simulated fleet's error: bad options, files it cannot use.
public struct FleetError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of problem.
    public enum Code: Hashable, Sendable {
        /// An option or argument is not valid.
        case badOption
        /// A file could not be read or written.
        case file
        /// The network (broker) failed.
        case network
        /// The accounting found a mismatch.
        case mismatch
    }
    /// What kind of problem.
    public var code: Code
    /// What is wrong, for a person.
    public var message: String

    /// Makes an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { message }
}

extension Reading {
    /// This reading with a fault applied to its content (the faults that are about what is
    /// signed: clock skew, wrong channel, wrong unit, implausible value).
    func withContentFault(_ fault: Fault, skewMs: UInt64) -> Reading {
        var reading = self
        switch fault {
        case .clockSkew: reading.time = time &+ skewMs &+ 120_000
        case .wrongChannel: reading.channel = channel == "wrong-channel" ? "other-channel" : "wrong-channel"
        case .wrongUnit:
            reading.records[0].unit = reading.records[0].unit == "mm[Hg]" ? "mmHg" : "mmol/mol"
        case .implausible:
            reading.records[0].value = .integer(Int64(MeasurementKind.implausibleProbe))
        default: break
        }
        return reading
    }
}

extension MeasurementKind {
    /// A value outside every standard kind's plausible range.
    static let implausibleProbe = 50_000
}
