import ArgumentParser
import MedLedgerCore
import MedLedgerStore

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Re-check a ledger store from genesis: links, roots, certificates, signatures, state and indexes.",
        discussion: "Exits 1 when anything is wrong, naming the height and what.")

    @Option(help: "The SQLite store to check.")
    var db: String

    func run() throws {
        let report: VerifyReport
        do {
            report = try StoreVerifier.verify(path: db)
        } catch {
            throw ToolError("\(db): \(error)")
        }
        for problem in report.problems { print("FAIL \(problem)") }
        let head = report.headHash.map { " head \($0.hex)" } ?? ""
        if report.isIntact {
            print(
                "OK channel \(report.channel): \(report.blocks) blocks, \(report.readings) readings, "
                    + "\(report.transactions) transactions verified\(head)")
        } else {
            print(
                "FAILED channel \(report.channel): \(report.problems.count) problem(s); "
                    + "\(report.blocks) blocks verified before the first broken one\(head)")
            throw ExitCode(1)
        }
    }
}
