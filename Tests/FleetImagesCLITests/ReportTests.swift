import Foundation
import Testing

extension CLITests {
    /// Issue 14.5: the page `build` leaves in the output folder, opened in headless Chromium
    /// (Debian's chromium-headless-shell): its DOM, and a screenshot in which an expiring claim
    /// certificate is drawn red.
    @Suite struct Report {
        static func chromium(_ arguments: [String]) throws -> ProcessOutcome {
            try run("chromium-headless-shell", ["--no-sandbox", "--disable-gpu", "--hide-scrollbars"] + arguments, timeout: 120)
        }

        @Test func theBuildLeavesAPagePeopleCanReadAndNoSecretInIt() throws {
            let fleet = try DemoFleet("report")
            defer { try? FileManager.default.removeItem(atPath: fleet.directory) }
            // gva-plant's claim certificate expires in 10 days: red on the page.
            let certs = fleet.directory + "/certs/gva-plant"
            try tool("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "10",
                                 "-subj", "/O=fleet-images test/CN=gva-plant short-lived claim",
                                 "-keyout", certs + "/claim.private.pem.key", "-out", certs + "/claim.pem.crt"])
            let built = try fleet.cli(["build", "--parallel", "2", "--only", "[gz]*"])
            #expect(built.status == 0, "\(built)")
            let page = fleet.output + "/index.html"
            #expect(FileManager.default.fileExists(atPath: page), "build wrote no \(page)")

            // The DOM as Chromium built it.
            let dom = try Self.chromium(["--dump-dom", "file://" + page])
            #expect(dom.status == 0, "\(dom)")
            let html = dom.stdout
            #expect(html.contains("<h1>demo</h1>"))
            func row(_ variant: String) -> String {
                guard let start = html.range(of: "<tr class=\"variant\" id=\"variant-\(variant)\""),
                      let end = html.range(of: "</tr>", range: start.upperBound..<html.endIndex) else { return "" }
                return String(html[start.lowerBound..<end.upperBound])
            }
            for variant in ["zrh-lab", "gva-plant", "dub-depot", "iad-warehouse", "pdx-field", "syd-office"] {
                #expect(!row(variant).isEmpty, "no row for \(variant)")
            }
            #expect(row("zrh-lab").contains("data-status=\"succeeded\"") && row("gva-plant").contains("data-status=\"succeeded\""))
            #expect(row("dub-depot").contains("data-status=\"never-built\""))
            #expect(row("gva-plant").contains("class=\"expiring\""), "\(row("gva-plant"))")
            #expect(row("zrh-lab").contains("class=\"valid\""), "\(row("zrh-lab"))")
            #expect(row("zrh-lab").contains("ZRH-Lab-IoT") && row("syd-office").contains("SYD Office IoT"))
            let recorded = try fleet.json(["show", "zrh-lab"])
            let sha = ((recorded["build"] as? [String: Any])?["artifact"] as? [String: Any])?["sha256"] as? String ?? "?"
            #expect(row("zrh-lab").contains("title=\"\(sha)\""))
            // Every link is a file in the output folder, relative to the page.
            var links: [String] = []
            var search = html.startIndex..<html.endIndex
            while let found = html.range(of: #"href="[^"]+""#, options: .regularExpression, range: search) {
                links.append(String(html[found].dropFirst(6).dropLast()))
                search = found.upperBound..<html.endIndex
            }
            #expect(links.count == 2 * 5, "\(links)")  // image, .sig, .sha256, .bmap, provenance of each built variant
            for link in links {
                #expect(!link.hasPrefix("/") && !link.contains("://") && FileManager.default.fileExists(atPath: fleet.output + "/" + link), "\(link)")
            }
            #expect(html.contains("<table id=\"runs\">") && html.contains("2 built"))
            // No script, no external asset, no secret.
            #expect(!html.contains("<script") && !html.contains("src=\"http") && !html.contains("<link"))
            for site in ["zrh-lab", "gva-plant"] {
                let psk = try String(contentsOfFile: fleet.directory + "/certs/\(site)/wifi.psk", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(!html.contains(psk))
            }
            #expect(!html.contains("PRIVATE KEY"))

            // The screenshot: the expiring certificate's cell is drawn in the report's red.
            let shot = fleet.directory + "/report.png"
            let screenshot = try Self.chromium(["--screenshot=" + shot, "--window-size=1400,700", "file://" + page])
            #expect(screenshot.status == 0, "\(screenshot)")
            let red = try tool("python3", [CLILocation.repository + "/scripts/png-pixels.py", shot, "c62828"]).split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            #expect(red.count == 3 && red[0] == 1400 && red[1] == 700 && red[2] > 500, "red pixels: \(red)")

            // `report` writes it again, elsewhere, from the records alone.
            let again = try fleet.cli(["report", "--out", "copy.html"])
            #expect(again.status == 0, "\(again)")
            #expect(FileManager.default.fileExists(atPath: fleet.directory + "/copy.html"))
        }
    }
}
