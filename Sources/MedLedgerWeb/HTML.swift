/// The node's read-only pages as server-side rendered HTML: no scripts, a little inline CSS, and
/// every string that comes from the ledger or the network escaped.
public enum WebPages {
    /// The stylesheet every page carries inline.
    static let style = """
        body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330;background:#fff}\
        h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:24px 0 8px;border-bottom:1px solid #d8dce4}\
        table{border-collapse:collapse;margin:4px 0}th,td{padding:3px 10px 3px 0;text-align:left;vertical-align:top}\
        th{color:#5a6275;font-weight:600}tr:nth-child(even) td{background:#f4f6fa}\
        code{font:12px ui-monospace,monospace;word-break:break-all}.muted{color:#6b7385}\
        .summary span{display:inline-block;margin-right:18px}.num{text-align:right}\
        .bad{color:#a3231b}.ok{color:#1f6f35}a{color:#1b4fa3}
        """

    /// Escapes text for HTML content and attribute values.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text.unicodeScalars {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                // Control characters other than tab and newline never reach the page as such.
                if character.value < 0x20 && character != "\t" && character != "\n" || character.value == 0x7F {
                    out += "&#xFFFD;"
                } else {
                    out.unicodeScalars.append(character)
                }
            }
        }
        return out
    }

    /// A time in ms since the Unix epoch as `YYYY-MM-DD hh:mm:ss.mmm UTC`.
    public static func formatTime(_ ms: UInt64) -> String {
        let seconds = Int64(clamping: ms / 1000)
        let millis = Int(ms % 1000)
        var days = seconds / 86_400
        let rest = Int(seconds % 86_400)
        // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
        days += 719_468
        let era = days / 146_097
        let dayOfEra = days - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let milli = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return "\(year)-\(two(Int(month)))-\(two(Int(day))) \(two(rest / 3600)):\(two(rest / 60 % 60)):"
            + "\(two(rest % 60)).\(milli) UTC"
    }

    static func page(title: String, body: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <style>\(style)</style></head>
        <body>
        \(body)
        <p class="muted"><a href="/">overview</a> · <a href="/metrics">metrics</a> · <a href="/status.json">status.json</a></p>
        </body></html>

        """
    }

    static func table(_ headers: [String], _ rows: [[String]], empty: String) -> String {
        guard !rows.isEmpty else { return "<p class=\"muted\">\(escape(empty))</p>" }
        var html = "<table><thead><tr>" + headers.map { "<th>\(escape($0))</th>" }.joined() + "</tr></thead><tbody>"
        for row in rows { html += "<tr>" + row.map { "<td>\($0)</td>" }.joined() + "</tr>" }
        return html + "</tbody></table>"
    }

    static func code(_ text: String) -> String { "<code>\(escape(text))</code>" }

    static func blockLink(_ height: UInt64) -> String { "<a href=\"/blocks/\(height)\">\(height)</a>" }

    /// The overview page: the chain's height and newest blocks, the council's last votes, the
    /// managers' last proposals, rejection counts and the devices' last readings.
    public static func overview(_ page: OverviewPage) -> String {
        var body = "<h1>MedLedger · channel \(escape(page.channel))</h1>"
        body += "<p class=\"summary\"><span>node <b id=\"node\">\(escape(page.node))</b> (\(escape(page.role)))</span>"
        body += "<span>height <b id=\"height\">\(page.height)</b></span>"
        body += "<span>round \(page.round), \(escape(page.step))</span>"
        body += "<span class=\"muted\">as of \(formatTime(page.time))</span></p>"
        body += "<p>head \(code(page.headHash))</p>"

        body += "<h2>Recent blocks</h2>"
        body += table(
            ["height", "hash", "time", "proposer", "readings", "transactions"],
            page.blocks.map { block in
                [
                    blockLink(block.height), code(block.hash), formatTime(block.time), escape(block.proposer),
                    "\(block.readings)", "\(block.transactions)",
                ]
            }, empty: "No block yet.")

        body += "<h2>Council</h2>"
        body += table(
            ["member", "last vote", "height", "round", "block", "seen"],
            page.council.map(memberCells), empty: "No council.")

        body += "<h2>Managers</h2>"
        body += table(
            ["manager", "last proposal", "height", "round", "block", "seen"],
            page.managers.map(memberCells), empty: "No manager.")

        body += "<h2>Rejected readings</h2>"
        body += table(
            ["reason", "count"], page.rejections.map { [code($0.name), "\($0.count)"] },
            empty: "None rejected by this node.")

        body += "<h2>Devices</h2>"
        if page.deviceCount > page.devices.count {
            body += "<p class=\"muted\">The first \(page.devices.count) of \(page.deviceCount) devices.</p>"
        }
        body += table(
            ["device", "patient", "status", "last seq", "last reading", "values", "block"],
            page.devices.map { device in
                [
                    code(device.id), device.patient.map(escape) ?? "<span class=\"muted\">—</span>",
                    device.revoked ? "<span class=\"bad\">revoked</span>" : "<span class=\"ok\">active</span>",
                    device.last.map { "\($0.seq)" } ?? "—", device.last.map { formatTime($0.time) } ?? "—",
                    device.last.map { escape($0.values) } ?? "—", device.last.map { blockLink($0.height) } ?? "—",
                ]
            }, empty: "No device registered.")

        body += "<h2>Counters</h2>"
        body += table(["counter", "value"], page.counters.map { [escape($0.name), "\($0.count)"] }, empty: "None.")
        return Self.page(title: "MedLedger \(page.channel) · \(page.node)", body: body)
    }

    static func memberCells(_ member: MemberRow) -> [String] {
        let name = code(member.id) + (member.isSelf ? " <span class=\"muted\">(this node)</span>" : "")
        guard let last = member.last else { return [name, "<span class=\"muted\">none seen</span>", "", "", "", ""] }
        return [
            name, escape(last.kind), "\(last.height)", "\(last.round)",
            last.block.map { code(String($0.prefix(16)) + "…") } ?? "<span class=\"muted\">nil</span>",
            formatTime(last.seen),
        ]
    }

    /// A block's page: its header, its certificate's signers, and its readings, each with the
    /// Merkle inclusion proof that ties it to the header's readings root.
    public static func block(_ page: BlockPage) -> String {
        var body = "<h1>Block \(page.height) · channel \(escape(page.channel))</h1>"
        var links: [String] = []
        if page.height > 1 { links.append("<a href=\"/blocks/\(page.height - 1)\">previous</a>") }
        if page.height < page.ledgerHeight { links.append("<a href=\"/blocks/\(page.height + 1)\">next</a>") }
        body +=
            "<p class=\"muted\">served by \(escape(page.node)) at height \(page.ledgerHeight). "
            + links.joined(separator: " · ") + "</p>"
        body += "<h2>Header</h2><table><tbody>"
        let fields: [(String, String)] = [
            ("height", "\(page.height)"), ("hash", code(page.hash)), ("previous hash", code(page.previousHash)),
            ("time", formatTime(page.time)), ("proposer", escape(page.proposer)),
            ("readings root", code(page.readingsRoot)), ("transactions root", code(page.transactionsRoot)),
            ("council hash", code(page.councilHash)), ("readings", "\(page.readings.count)"),
            ("transactions", "\(page.transactions.count)"),
        ]
        for (name, value) in fields { body += "<tr><th>\(escape(name))</th><td>\(value)</td></tr>" }
        body += "</tbody></table>"

        body += "<h2>Certificate</h2>"
        body +=
            "<p>precommits of round \(page.certificateRound) from \(page.signers.count) council members: "
            + page.signers.map(code).joined(separator: ", ") + "</p>"

        body += "<h2>Readings</h2>"
        body +=
            "<p class=\"muted\">Each proof is the RFC 9162 audit path from the reading's leaf hash (SHA-256 of "
            + "0x00 ‖ its signed bytes) up to the readings root.</p>"
        body += table(
            ["#", "device", "seq", "time", "values", "leaf hash", "inclusion proof"],
            page.readings.map { reading in
                [
                    "\(reading.position)", code(reading.device), "\(reading.seq)", formatTime(reading.time),
                    escape(reading.values), code(reading.leafHash),
                    reading.proof.isEmpty
                        ? "<span class=\"muted\">(the only leaf)</span>"
                        : reading.proof.map(code).joined(separator: "<br>"),
                ]
            }, empty: "No readings.")

        body += "<h2>Transactions</h2>"
        body += table(
            ["#", "submitter", "seq", "what"],
            page.transactions.map {
                [
                    "\($0.position)", code($0.submitter), "\($0.seq)", escape($0.summary),
                ]
            }, empty: "No transactions.")
        return Self.page(title: "MedLedger \(page.channel) · block \(page.height)", body: body)
    }

    /// A page saying what was not found.
    public static func notFound(_ what: String) -> String {
        page(title: "Not found", body: "<h1>Not found</h1><p>\(escape(what))</p>")
    }
}
