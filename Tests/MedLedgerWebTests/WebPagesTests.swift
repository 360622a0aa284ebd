import MedLedgerWeb
import Testing

@Suite("The node's web pages as HTML")
struct WebPagesTests {
    static let hostile = "<script>alert('x')</script>&\""

    func overview(device: String = "cuff-1", reason: String = "bad-signature") -> OverviewPage {
        OverviewPage(
            channel: "ward-7", node: "manager-1", role: "manager", height: 42,
            headHash: String(repeating: "ab", count: 32),
            round: 1, step: "prevote", time: 1_700_000_000_000,
            blocks: [
                BlockSummary(
                    height: 42, hash: String(repeating: "cd", count: 32), time: 1_700_000_000_123,
                    proposer: "manager-1",
                    readings: 500, transactions: 1)
            ],
            council: [
                MemberRow(
                    id: "validator-1",
                    last: MessageSeen(
                        height: 43, round: 1, kind: "prevote", block: String(repeating: "ef", count: 32),
                        seen: 1_700_000_000_500)),
                MemberRow(
                    id: "validator-2", last: MessageSeen(height: 43, round: 1, kind: "precommit", block: nil, seen: 0)),
                MemberRow(id: "validator-3", last: nil),
            ],
            managers: [MemberRow(id: "manager-1", last: nil, isSelf: true)],
            devices: [
                DeviceRow(
                    id: device, patient: "patient-7", revoked: false,
                    last: ReadingSummary(seq: 17, time: 1_700_000_000_000, values: "8480-6 = 120 mm[Hg]", height: 42)),
                DeviceRow(id: "cuff-2", patient: nil, revoked: true, last: nil),
            ],
            deviceCount: 3, rejections: [CountRow(reason, 2)], counters: [CountRow("readings received", 1000)])
    }

    @Test func theOverviewShowsHeightBlocksVotesDevicesAndRejections() {
        let html = WebPages.overview(overview())
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(html.contains("<b id=\"height\">42</b>"))
        #expect(html.contains(String(repeating: "cd", count: 32)))
        #expect(html.contains("<a href=\"/blocks/42\">42</a>"))
        #expect(html.contains("2023-11-14 22:13:20.123 UTC"))
        #expect(html.contains("validator-1") && html.contains("prevote") && html.contains("efefefefefefefef…"))
        #expect(html.contains("none seen"), "a member with no vote seen says so")
        #expect(html.contains(">nil<"), "a vote for nil says so")
        #expect(html.contains("cuff-1") && html.contains("8480-6 = 120 mm[Hg]") && html.contains("patient-7"))
        #expect(html.contains("revoked"))
        #expect(html.contains("The first 2 of 3 devices."))
        #expect(html.contains("bad-signature") && html.contains("<td>2</td>"))
        #expect(html.contains("(this node)"))
        #expect(!html.contains("<script"), "no script on the page")
    }

    @Test func everythingFromTheLedgerIsEscaped() {
        let html = WebPages.overview(overview(device: Self.hostile, reason: Self.hostile))
        #expect(!html.contains(Self.hostile))
        #expect(!html.contains("<script"))
        #expect(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"))
        #expect(WebPages.escape("a\u{0}b\u{7F}c\td\ne") == "a&#xFFFD;b&#xFFFD;c\td\ne")
        #expect(WebPages.escape("ünïcödé ✓") == "ünïcödé ✓")
        let block = WebPages.block(
            BlockPage(
                channel: Self.hostile, node: "n", ledgerHeight: 1, height: 1, hash: "h", previousHash: "p", time: 0,
                proposer: Self.hostile, readingsRoot: "r", transactionsRoot: "t", councilHash: "c", certificateRound: 0,
                signers: [Self.hostile],
                readings: [
                    ReadingRow(
                        position: 0, device: Self.hostile, seq: 1, time: 0, values: Self.hostile, leafHash: "l",
                        proof: [])
                ], transactions: [TransactionRow(position: 0, submitter: Self.hostile, seq: 1, summary: Self.hostile)]))
        #expect(!block.contains(Self.hostile))
        #expect(!block.contains("<script"))
    }

    @Test func aBlockPageShowsTheHeaderTheSignersAndEveryReadingsProof() {
        let proof = (0..<3).map { String(repeating: "\($0)", count: 64) }
        let html = WebPages.block(
            BlockPage(
                channel: "ward-7", node: "validator-2", ledgerHeight: 9, height: 5,
                hash: String(repeating: "a1", count: 32), previousHash: String(repeating: "b2", count: 32),
                time: 951_782_400_000, proposer: "manager-2", readingsRoot: String(repeating: "c3", count: 32),
                transactionsRoot: String(repeating: "d4", count: 32), councilHash: String(repeating: "e5", count: 32),
                certificateRound: 2, signers: ["validator-1", "validator-2", "validator-4"],
                readings: [
                    ReadingRow(
                        position: 0, device: "glucometer-3", seq: 8, time: 951_782_400_000,
                        values: "2339-0 = 5.4 mmol/L", leafHash: String(repeating: "f6", count: 32), proof: proof)
                ], transactions: []))
        for hex in ["a1", "b2", "c3", "d4", "e5", "f6"] { #expect(html.contains(String(repeating: hex, count: 32))) }
        for node in proof { #expect(html.contains(node)) }
        #expect(html.contains("2000-02-29 00:00:00.000 UTC"))
        #expect(html.contains("precommits of round 2 from 3 council members"))
        #expect(html.contains("validator-4") && html.contains("glucometer-3") && html.contains("2339-0 = 5.4 mmol/L"))
        #expect(html.contains("href=\"/blocks/4\"") && html.contains("href=\"/blocks/6\""))
        #expect(html.contains("No transactions."))
    }

    @Test func timesAreUTC() {
        #expect(WebPages.formatTime(0) == "1970-01-01 00:00:00.000 UTC")
        #expect(WebPages.formatTime(1_700_000_000_007) == "2023-11-14 22:13:20.007 UTC")
        #expect(WebPages.formatTime(4_107_542_399_999) == "2100-02-28 23:59:59.999 UTC")
        #expect(WebPages.formatTime(4_107_542_400_000) == "2100-03-01 00:00:00.000 UTC")
    }
}
