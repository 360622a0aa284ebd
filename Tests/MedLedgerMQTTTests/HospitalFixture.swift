import Foundation
import MedLedgerBroker
import MedLedgerMQTT
import MedLedgerTestSupport

/// The repository's root, found from this file's path.
let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// A hospital's broker (TLS, authentication, the channel's ACL) in a temporary directory.
struct HospitalFixture {
    let directory: TemporaryDirectory
    let certificates: String
    let channel: String
    let acl: ChannelACL
    let authentication: BrokerAuthentication
    let passwords: [String: String]

    init(
        channel: String = "ward-7", devices: [String] = ["cuff-1", "cuff-2"], managers: [String] = ["manager-1"],
        validators: [String] = ["validator-1"], registrars: [String] = ["registrar-1"], professionals: [String] = [],
        bridges: [String] = [], extraIdentities: [String] = [], authentication: BrokerAuthentication = .certificate,
        certificates: String? = nil
    ) throws {
        directory = try TemporaryDirectory("mqtt-hospital")
        self.channel = channel
        self.authentication = authentication
        acl = ChannelACL(
            channel: channel, devices: devices, managers: managers, validators: validators, registrars: registrars,
            professionals: professionals, bridges: bridges)
        let identities = devices + managers + validators + registrars + professionals + bridges + extraIdentities
        if let certificates {
            self.certificates = certificates
        } else {
            self.certificates = directory.file("certs")
            try TestCertificates.make(in: self.certificates, servers: ["broker"], identities: identities)
        }
        var passwords: [String: String] = [:]
        if authentication == .password {
            for identity in identities { passwords[identity] = PasswordFile.randomPassword() }
            let lines = identities.map { PasswordFile.entry(user: $0, password: passwords[$0]!) }
            try (lines.joined(separator: "\n") + "\n").write(
                toFile: directory.file("passwd"), atomically: true, encoding: .utf8)
        }
        self.passwords = passwords
        try acl.render().write(toFile: directory.file("acl"), atomically: true, encoding: .utf8)
    }

    func config(bridges: [BridgeOptions] = []) -> MosquittoConfig {
        var text = BrokerConfigs.hospital(
            HospitalBrokerOptions(
                port: 8883, bindAddress: "127.0.0.1", caFile: "\(certificates)/ca.crt",
                certificateFile: "\(certificates)/broker.crt", keyFile: "\(certificates)/broker.key",
                authentication: authentication, passwordFile: directory.file("passwd"), aclFile: directory.file("acl")))
        for bridge in bridges { text += "\n" + BrokerConfigs.bridge(bridge) }
        return MosquittoConfig(text: text)
    }

    func start(bridges: [BridgeOptions] = [], ports: [Int: Int] = [:]) async throws -> MosquittoBroker {
        try await MosquittoBroker.start(
            config: config(bridges: bridges), in: directory.file("broker"), ports: ports, logger: testLogger)
    }

    /// A client configuration for `identity` (its certificate, or its password).
    func configuration(
        _ broker: MosquittoBroker, identity: String, certificateFrom: String? = nil, withCertificate: Bool = true
    ) -> MQTTConfiguration {
        let certs = certificateFrom ?? certificates
        var tls = MQTTTLSOptions(caFile: "\(certificates)/ca.crt")
        if authentication == .certificate && withCertificate {
            tls.certificateFile = "\(certs)/\(identity).crt"
            tls.keyFile = "\(certs)/\(identity).key"
        }
        var configuration = MQTTConfiguration(
            host: broker.host, port: broker.port, clientID: "\(identity)-\(UUID().uuidString.prefix(6))", tls: tls)
        if authentication == .password {
            configuration.username = identity
            configuration.password = passwords[identity] ?? "wrong"
        }
        configuration.reconnect = MQTTReconnectPolicy(minimumDelay: .milliseconds(50), maximumDelay: .milliseconds(500))
        return configuration
    }

    func topic(_ kind: String, _ id: String) -> String { "medledger/v1/\(channel)/\(kind)/\(id)" }
    func topic(_ kind: String) -> String { "medledger/v1/\(channel)/\(kind)" }

    func remove() { directory.remove() }
}
