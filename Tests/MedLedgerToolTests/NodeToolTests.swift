import Foundation
import Logging
import MedLedgerBroker
import MedLedgerNode
import MedLedgerTestSupport
import Testing

/// `medledger node` and `medledger devnet` as processes: JSON logs, the HTTP endpoint, the
/// status file's URL.
@Suite("medledger node and devnet: logs, metrics and the web page", .serialized, .network)
struct NodeToolTests {
    static let logger = Logger(label: "medledger.tool.tests")

    /// Writes a node configuration for `id` in `directory` and returns its path.
    func writeConfiguration(
        _ directory: TemporaryDirectory, id: String, role: String, broker: MosquittoBroker, httpPort: Int
    ) throws -> String {
        let key = role == "observer" ? "" : #""key": "ch/keys/\#(id).key", "#
        let json = """
            {"id": "\(id)", "role": "\(role)", "genesis": "ch/genesis.json", \(key)"database": "\(id).sqlite",
             "broker": {"host": "\(broker.host)", "port": \(broker.port)}, "statusFile": "\(id).status.json",
             "timeouts": {"proposeMs": 100, "proposeDeltaMs": 50, "prevoteMs": 100, "precommitMs": 100},
             "http": {"host": "127.0.0.1", "port": \(httpPort)}}
            """
        let path = directory.file("\(id).json")
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func status(_ directory: TemporaryDirectory, _ id: String) -> NodeStatus? {
        guard let data = FileManager.default.contents(atPath: directory.file("\(id).status.json")) else { return nil }
        return try? JSONDecoder().decode(NodeStatus.self, from: data)
    }

    @Test func aNodeLogsJSONLinesWithHeightAndRoundAndServesItsMetricsAtTheURLItsStatusNames() async throws {
        let directory = try TemporaryDirectory("node-tool")
        defer { directory.remove() }
        let made = try ToolRunner.medledger(
            "channel", "init", "--dir", "ch", "--channel", "ward-9", "--validators", "1", "--managers", "1",
            in: directory.path)
        #expect(made.status == 0, "\(made.stderr)")
        try await withBroker(
            config: MosquittoConfig(text: BrokerConfigs.dev()), in: directory.file("broker"), logger: Self.logger
        ) { broker in
            try await checkNode(directory, broker)
        }
    }

    func checkNode(_ directory: TemporaryDirectory, _ broker: MosquittoBroker) async throws {
        let configuration = try writeConfiguration(
            directory, id: "validator-1", role: "validator", broker: broker, httpPort: 0)
        let node = try ToolRunner.start(
            ToolRunner.medledgerPath,
            ["node", "--config", configuration, "--log-format", "json", "--log-level", "debug"], in: directory.path)
        var result: ToolRunner.Result?
        defer { if result == nil { _ = ToolRunner.finish(node, timeout: 0) } }

        // The status file names the endpoint; /metrics and /status.json answer there.
        try await eventually(.seconds(30), "the node's status file with its URL") {
            status(directory, "validator-1")?.http != nil
        }
        let url = try #require(status(directory, "validator-1")?.http)
        #expect(url.hasPrefix("http://127.0.0.1:") && url.hasSuffix("/"))
        let metrics = try await httpGet(url + "metrics")
        #expect(metrics.status == 200)
        #expect(metrics.body.contains("# TYPE medledger_height gauge"))
        #expect(metrics.body.contains(#"medledger_height{channel="ward-9",node="validator-1"} 0"#))
        #expect(metrics.body.contains(#"medledger_peer_height{channel="ward-9",node="validator-1",peer="manager-1"}"#))
        let served = try JSONDecoder().decode(
            NodeStatus.self, from: Data(try await httpGet(url + "status.json").body.utf8))
        #expect(served.node == "validator-1" && served.http == url)

        // A second node asking for the same port stops at once, naming the address.
        let port = try #require(URL(string: url)?.port)
        let clash = try writeConfiguration(
            directory, id: "observer-1", role: "observer", broker: broker, httpPort: port)
        let refused = try ToolRunner.run(
            ToolRunner.medledgerPath, ["node", "--config", clash], in: directory.path, timeout: 30)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("cannot serve HTTP on 127.0.0.1:\(port)"), "\(refused.stderr)")

        // Without a manager no block is proposed: rounds time out and change, which the log says.
        try await eventually(.seconds(30), "a round change in the log") {
            errorOutputs(directory).contains { $0.contains("\"message\":\"round change\"") }
        }
        node.terminate()
        let finished = ToolRunner.finish(node, timeout: 30)
        result = finished
        #expect(finished.status == 0, "SIGTERM stops the node cleanly: \(finished.stderr.suffix(1000))")

        // Every line of standard error is one JSON object with the fields docs/OPERATIONS.md names.
        let lines = finished.stderr.split(separator: "\n").map(String.init)
        #expect(lines.count >= 4)
        var records: [[String: String]] = []
        for line in lines {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String]
            guard let object else {
                Issue.record("not a JSON object of strings: \(line)")
                continue
            }
            records.append(object)
            for key in ["time", "level", "label", "source", "message"] {
                #expect(object[key] != nil, "\(key) in \(line)")
            }
            #expect(object["time"]?.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil, "\(line)")
            if object["label"] == "medledger.node" {
                #expect(object["channel"] == "ward-9" && object["node"] == "validator-1", "\(line)")
            }
        }
        func first(_ message: String) -> [String: String]? { records.first { $0["message"] == message } }
        let started = try #require(first("node started"))
        #expect(started["level"] == "info" && started["role"] == "validator" && started["height"] == "0")
        #expect(first("serving the web page and metrics")?["url"] == url)
        let round = try #require(first("round change"))
        #expect(round["height"] == "1" && round["round"].flatMap { UInt64($0) }.map { $0 >= 1 } == true)
        let timeout = try #require(first("step timeout"))
        #expect(timeout["level"] == "debug" && timeout["height"] == "1" && timeout["step"] != nil)
        #expect(timeout["round"] != nil)
        #expect(first("node stopped") != nil)
    }

    /// What the processes started in `directory` wrote to standard error so far (ToolRunner
    /// writes it to hidden `.err` files there).
    func errorOutputs(_ directory: TemporaryDirectory) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".err") }.compactMap {
            try? String(contentsOfFile: directory.file($0), encoding: .utf8)
        }
    }

    @Test func aConfigurationWithABadHTTPPortIsRefused() async throws {
        let directory = try TemporaryDirectory("node-tool")
        defer { directory.remove() }
        _ = try ToolRunner.medledger(
            "channel", "init", "--dir", "ch", "--channel", "ward-9", "--validators", "1", "--managers", "1",
            in: directory.path)
        let json = """
            {"id": "validator-1", "role": "validator", "genesis": "ch/genesis.json", "key": "ch/keys/validator-1.key",
             "database": "v.sqlite", "broker": {"host": "127.0.0.1", "port": 1883}, "http": {"host": "127.0.0.1", "port": 70000}}
            """
        try json.write(toFile: directory.file("bad.json"), atomically: true, encoding: .utf8)
        let result = try ToolRunner.medledger("node", "--config", "bad.json", in: directory.path)
        #expect(result.status != 0)
        #expect(result.stderr.contains("http port 70000 is not a TCP port"), "\(result.stderr)")
    }

    @Test func aBrokerThatIsNeitherHostAndPortNorAnMQTTURLIsRefusedByName() throws {
        let directory = try TemporaryDirectory("device-tool")
        defer { directory.remove() }
        _ = try ToolRunner.medledger("keygen", "--alg", "ed25519", "--out", "registrar.key", in: directory.path)
        for (broker, problem) in [
            ("broker.example", "--broker must be HOST:PORT or mqtt[s]://HOST[:PORT], not 'broker.example'"),
            ("mqtt://broker.example:99999", "not 'mqtt://broker.example:99999'"),
            ("http://broker.example:1883", "not 'http://broker.example:1883'"),
            ("mqtts://broker.example", "--broker mqtts://broker.example is TLS: give --tls-ca with the CA file"),
        ] {
            let result = try ToolRunner.medledger(
                "device", "revoke", "--broker", broker, "--channel", "ward-9", "--registrar-key", "registrar.key",
                "--device", "cuff-1", in: directory.path)
            #expect(result.status != 0, "\(broker)")
            #expect(result.stderr.contains(problem), "\(broker): \(result.stderr)")
        }
    }

    @Test func theDevnetPrintsTheFirstManagersPageWhichServesTheNetwork() async throws {
        let directory = try TemporaryDirectory("devnet-web")
        defer { directory.remove() }
        let devnet = try ToolRunner.start(
            ToolRunner.medledgerPath,
            ["devnet", "--dir", directory.file("net"), "--devices", "0", "--duration", "12", "--status-interval", "1"],
            in: directory.path)
        var finished: ToolRunner.Result?
        defer { if finished == nil { _ = ToolRunner.finish(devnet, timeout: 0) } }
        let prefix = "devnet: web page of manager-1: "
        @Sendable func output() -> String {
            let name = (try? FileManager.default.contentsOfDirectory(atPath: directory.path))?.first {
                $0.hasSuffix(".out")
            }
            return name.flatMap { try? String(contentsOfFile: directory.file($0), encoding: .utf8) } ?? ""
        }
        try await eventually(.seconds(60), "the devnet prints the page's URL") { output().contains(prefix) }
        let line = try #require(output().split(separator: "\n").first { $0.hasPrefix(prefix) })
        let url = try #require(line.dropFirst(prefix.count).split(separator: " ").first.map(String.init))
        let status = try JSONDecoder().decode(
            NodeStatus.self, from: Data(try await httpGet(url + "status.json").body.utf8))
        #expect(status.node == "manager-1" && status.http == url)
        let page = try await httpGet(url)
        #expect(page.status == 200 && page.body.contains("MedLedger · channel devnet"))
        for id in ["validator-1", "validator-4", "manager-2"] { #expect(page.body.contains(id)) }
        #expect(
            try await httpGet(url + "metrics").body.contains(#"medledger_height{channel="devnet",node="manager-1"}"#))
        let result = ToolRunner.finish(devnet, timeout: 60)
        finished = result
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("every replica verifies from genesis"))
    }
}
