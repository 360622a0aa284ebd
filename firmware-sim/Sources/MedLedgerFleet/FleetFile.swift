import Foundation
public import MedLedgerCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Which signature algorithms a fleet's devices use.
public enum AlgorithmMix: String, Hashable, Sendable, CaseIterable, Codable {
    /// Every device Ed25519.
    case ed25519
    /// Every device ES256 (a P-256 secure element).
    case es256
    /// Every other device ES256 (one in four), the rest Ed25519.
    case mixed

    /// The algorithm of the n-th device.
    public func algorithm(forDevice number: Int) -> SignatureAlgorithm {
        switch self {
        case .ed25519: .ed25519
        case .es256: .es256
        case .mixed: number % 4 == 3 ? .es256 : .ed25519
        }
    }
}

/// One device of a fleet file.
public struct FleetDeviceRecord: Codable, Hashable, Sendable {
    /// The device id (its MQTT client id and username).
    public var id: String
    /// Its private key, PKCS#8 PEM.
    public var key: String
    /// What it measures.
    public var kind: DeviceKind
    /// Whose values it reports (the patient's pseudonym is `patient.id`).
    public var patient: PatientProfile
    /// Whether the fleet registers it (false for the `unregistered` share: its readings must all
    /// be refused as `unknown-device`).
    public var register: Bool
    /// Whether its registration is committed.
    public var registered: Bool
    /// Whether its revocation is committed.
    public var revoked: Bool

    /// Makes one.
    public init(
        id: String, key: String, kind: DeviceKind, patient: PatientProfile, register: Bool, registered: Bool = false,
        revoked: Bool = false
    ) {
        self.id = id
        self.key = key
        self.kind = kind
        self.patient = patient
        self.register = register
        self.registered = registered
        self.revoked = revoked
    }
}

/// The fleet file (`STATE/fleet.json`): every simulated device with its key, kind, patient and
/// registration, so that a fleet can be stopped and run again as the same devices.
public struct FleetFile: Codable, Hashable, Sendable {
    /// The format's version (1).
    public var version = 1
    /// The channel the devices report on.
    public var channel: String
    /// The prefix of the device ids (`PREFIX-N`).
    public var prefix: String
    /// The seed the devices were made with.
    public var seed: UInt64
    /// The devices.
    public var devices: [FleetDeviceRecord]

    /// Makes a fleet file with no devices.
    public init(channel: String, prefix: String, seed: UInt64) {
        self.channel = channel
        self.prefix = prefix
        self.seed = seed
        devices = []
    }

    /// Adds devices until there are `count`, drawn from the seed: keys, kinds, patients (two
    /// devices per patient), and which are left unregistered.
    /// - Parameters:
    ///   - count: the number of devices wanted.
    ///   - algorithms: the devices' algorithms.
    ///   - unregisteredShare: the share of new devices never registered, 0...1.
    ///   - abnormalShare: the share of patients with abnormal (plausible) values.
    public mutating func grow(
        to count: Int, algorithms: AlgorithmMix, unregisteredShare: Double, abnormalShare: Double
    ) {
        var number = devices.count
        while number < count {
            var random = SeededRandom(seed: seed &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(number + 1))
            let algorithm = algorithms.algorithm(forDevice: number)
            var key: PrivateKey?
            while key == nil { key = try? PrivateKey(algorithm: algorithm, rawBytes: random.bytes(32)) }
            let patientNumber = number / 2
            var patientRandom = SeededRandom(seed: seed &+ 0xC2B2_AE3D_27D4_EB4F &* UInt64(patientNumber + 1))
            let patient = PatientProfile(
                id: "\(prefix)-patient-\(patientNumber)", abnormalShare: abnormalShare, random: &patientRandom)
            let register = Double.random(in: 0..<1, using: &random) >= unregisteredShare
            devices.append(
                FleetDeviceRecord(
                    id: "\(prefix)-\(number)", key: key!.pemRepresentation, kind: DeviceKind.forDevice(number),
                    patient: patient, register: register))
            number += 1
        }
    }

    /// Reads a fleet file.
    /// - Parameter path: the file.
    /// - Throws: `FleetError` naming what is wrong.
    public static func load(_ path: String) throws(FleetError) -> FleetFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FleetError(.file, "cannot read the fleet file '\(path)'")
        }
        let file: FleetFile
        do {
            file = try JSONDecoder().decode(FleetFile.self, from: data)
        } catch {
            throw FleetError(.file, "\(path) is not a fleet file: \(error)")
        }
        guard file.version == 1 else {
            throw FleetError(.file, "\(path): fleet file version \(file.version) is unknown")
        }
        var seen = Set<String>()
        for device in file.devices {
            guard Identifiers.isValidNodeID(device.id) else {
                throw FleetError(.file, "\(path): '\(device.id)' is not a valid device id")
            }
            guard seen.insert(device.id).inserted else {
                throw FleetError(.file, "\(path): device '\(device.id)' appears twice")
            }
        }
        return file
    }

    /// Writes the file durably (a temporary file, fsync, rename, fsync of the directory).
    /// - Parameter path: the file.
    /// - Throws: `FleetError` when it cannot be written.
    public func write(_ path: String) throws(FleetError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data: Data
        do {
            data = try encoder.encode(self)
        } catch {
            throw FleetError(.file, "cannot encode the fleet file: \(error)")
        }
        try DurableFile.write(Array(data), to: path)
    }

    /// The device records' keys, parsed.
    /// - Throws: `FleetError` naming the device whose key is not valid.
    public func keys() throws(FleetError) -> [PrivateKey] {
        var keys: [PrivateKey] = []
        keys.reserveCapacity(devices.count)
        for device in devices {
            do {
                keys.append(try PrivateKey(pem: device.key))
            } catch {
                throw FleetError(.file, "device '\(device.id)': its key is not valid: \(error)")
            }
        }
        return keys
    }
}

/// Writing a file so that a crash leaves the old contents or the new, never a mix.
public enum DurableFile {
    /// Writes bytes to a temporary file beside `path`, fsyncs it, renames it over `path` and
    /// fsyncs the directory.
    /// - Throws: `FleetError` naming the step that failed.
    public static func write(_ bytes: [UInt8], to path: String) throws(FleetError) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("cannot create \(temporary)") }
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { buffer in
                Glibc.write(fd, buffer.baseAddress! + written, buffer.count - written)
            }
            if result < 0 {
                if errno == EINTR { continue }
                close(fd)
                throw failure("cannot write \(temporary)")
            }
            written += result
        }
        guard fsync(fd) == 0 else {
            close(fd)
            throw failure("cannot fsync \(temporary)")
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw failure("cannot rename \(temporary) to \(path)") }
        let directory = (path as NSString).deletingLastPathComponent
        let dirFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 {
            _ = fsync(dirFD)
            close(dirFD)
        }
    }

    private static func failure(_ what: String) -> FleetError {
        FleetError(.file, "\(what): \(String(cString: strerror(errno)))")
    }
}

/// The fleet's persisted sequence counters (`STATE/seqs`): for each device the highest seq
/// reserved. A device takes seqs only up to its reservation, and a reservation is written
/// durably before any seq in it is used, so a restarted fleet starts after it and never reuses a
/// seq (the unused rest of a reservation is skipped, which the protocol allows). Reservations
/// grow in chunks, all devices that need one in a single write.
///
/// The file has one line per device, `ID RESERVED`. A damaged file is an error, never a guess.
public final class SeqReservations: Sendable {
    /// The file.
    public let path: String
    /// How many seqs a reservation adds.
    public let chunk: UInt64
    private let reserved: Mutex<[String: UInt64]>

    /// Opens the reservations (an empty set when the file does not exist).
    /// - Parameters:
    ///   - path: the file.
    ///   - chunk: seqs per reservation (at least 1).
    /// - Throws: `FleetError` when the file is damaged.
    public init(path: String, chunk: Int) throws(FleetError) {
        self.path = path
        self.chunk = UInt64(max(1, chunk))
        var table: [String: UInt64] = [:]
        if FileManager.default.fileExists(atPath: path) {
            guard let data = FileManager.default.contents(atPath: path),
                let text = String(data: data, encoding: .utf8)
            else { throw FleetError(.file, "cannot read the seq reservations '\(path)'") }
            for (number, line) in text.split(separator: "\n").enumerated() {
                let fields = line.split(separator: " ")
                guard fields.count == 2, let value = UInt64(fields[1]), table[String(fields[0])] == nil else {
                    throw FleetError(
                        .file,
                        "\(path) line \(number + 1) is damaged ('\(line.prefix(80))'); refusing to guess seqs. "
                            + "Remove the fleet's state to start a new fleet.")
                }
                table[String(fields[0])] = value
            }
        }
        reserved = Mutex(table)
    }

    /// The highest seq reserved for a device so far (0: none).
    public func reservation(_ id: String) -> UInt64 { reserved.withLock { $0[id] ?? 0 } }

    /// Extends the reservations of devices by a chunk each (from their current reservation, or
    /// from `from` when that is higher) and writes them durably before returning.
    /// - Parameters:
    ///   - ids: the devices.
    ///   - from: per device, the seq the new chunk must reach beyond (its next seq - 1), if known.
    /// - Returns: each device's new reservation, in order.
    /// - Throws: `FleetError` when the file cannot be written (then nothing is extended).
    public func extend(_ ids: [String], from: [UInt64]? = nil) throws(FleetError) -> [UInt64] {
        try reserved.withLock { table throws(FleetError) -> [UInt64] in
            var next = table
            var out: [UInt64] = []
            out.reserveCapacity(ids.count)
            for (index, id) in ids.enumerated() {
                let base = max(next[id] ?? 0, from?[index] ?? 0)
                next[id] = base + chunk
                out.append(base + chunk)
            }
            var text = ""
            text.reserveCapacity(next.count * 32)
            for (id, value) in next.sorted(by: { $0.key < $1.key }) { text += "\(id) \(value)\n" }
            try DurableFile.write(Array(text.utf8), to: path)
            table = next
            return out
        }
    }
}
