import Foundation
import Testing

extension CLITests {
    @Suite struct Build {
        /// 1. The README's main command on the demo fleet, then a no-op second run.
        @Test func mainJobBuildsSignsRecordsAndIsIncremental() throws {
            let shared = try SharedDemoBuild.get()
            let fleet = shared.fleet
            #expect(shared.firstBuild.exited && shared.firstBuild.status == 0, "build --parallel 4: \(shared.firstBuild)")
            let variants = try fleet.variantIDs()
            #expect(variants == ["zrh-lab", "gva-plant", "dub-depot", "iad-warehouse", "pdx-field", "syd-office"])
            let publicKey = fleet.directory + "/keys/demo-signing.pub.pem"

            // What README promises, read with openssl, sha256sum, stat, e2fsck, debugfs and mtools;
            // two variants at a time (each check reads a 320 MiB image).
            let countries = ["zrh-lab": "CH", "gva-plant": "CH", "dub-depot": "IE", "iad-warehouse": "US", "pdx-field": "US", "syd-office": "AU"]
            let problems = concurrently(variants) { variant -> [String] in
                do { return try Self.checkLatest(of: variant, in: fleet, country: countries[variant] ?? "?") } catch { return ["\(variant): \(error)"] }
            }.joined()
            #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
            let audit = try OutputCheck.audit(fleet.output, publicKey: publicKey, verify: false)
            #expect(audit.problems.isEmpty, "\(audit.problems)")
            #expect(audit.folders.keys.sorted() == variants.sorted())
            #expect(audit.folders.values.allSatisfy { $0.count == 1 })

            // `ls` right after the build: every variant succeeded and signed.
            let listed = (try parseJSON(shared.lsAfterFirstBuild)["builds"] as? [[String: Any]]) ?? []
            #expect(listed.compactMap { $0["variant"] as? String }.sorted() == variants.sorted())
            for build in listed {
                let artifact = build["artifact"] as? [String: Any]
                #expect(build["status"] as? String == "succeeded", "ls: \(build)")
                #expect(artifact?["signature"] is String && artifact?["signing_key"] is String, "ls: \(build["variant"] ?? "?") is not signed")
            }

            // A second run builds nothing.
            let second = try fleet.cli(["build", "--json"])
            #expect(second.exited && second.status == 0, "second build: \(second)")
            let summary = try parseJSON(second.stdout)
            #expect(statuses(summary) == Dictionary(uniqueKeysWithValues: variants.map { ($0, "up-to-date") }))
            #expect(!second.stderr.contains(": started"), "second build started a variant:\n\(second.stderr)")

            // plan's inputs digest is the one recorded for the image.
            let plan = try fleet.json(["plan"])
            for entry in plan["variants"] as? [[String: Any]] ?? [] {
                let id = entry["id"] as? String ?? "?"
                let shown = try fleet.json(["show", id])
                let recorded = (shown["build"] as? [String: Any])?["inputs_digest"] as? String
                #expect(entry["inputs_digest"] as? String != nil && entry["inputs_digest"] as? String == recorded, "\(id): plan \(entry["inputs_digest"] ?? "nil"), recorded \(recorded ?? "nil")")
                // The operator's SSH key is recorded as what it is: its OpenSSH fingerprint, as plan shows it.
                let keys = (shown["inputs"] as? [[String: Any]] ?? []).filter { $0["role"] as? String == "ssh-authorized-key" }
                #expect(!keys.isEmpty && keys.allSatisfy { $0["digest_kind"] as? String == "ssh-fingerprint" }, "\(id): \(keys)")
                #expect(keys.compactMap { $0["digest"] as? String } == (entry["ssh_keys"] as? [String] ?? ["?"]))
            }
        }

        /// Problems with `<output>/<variant>/latest`: missing sidecars, signature, digest, modes, contents.
        static func checkLatest(of variant: String, in fleet: DemoFleet, country: String) throws -> [String] {
            var problems: [String] = []
            let publicKey = fleet.directory + "/keys/demo-signing.pub.pem"
            let latest = fleet.output + "/\(variant)/latest"
            for suffix in OutputCheck.sidecars where !FileManager.default.fileExists(atPath: latest + "/" + variant + suffix) {
                problems.append("\(latest)/\(variant)\(suffix) is missing")
            }
            let image = latest + "/\(variant).img"
            let signature = try run("openssl", ["dgst", "-sha256", "-verify", publicKey, "-signature", image + ".sig", image])
            if !(signature.status == 0 && signature.stdout.contains("Verified OK")) { problems.append("\(image): openssl: \(signature)") }
            let digest = try run("sha256sum", ["-c", "\(variant).img.sha256"], in: latest)
            if !(digest.status == 0 && digest.stdout.contains("\(variant).img: OK")) { problems.append("\(image): sha256sum -c: \(digest)") }
            // Images hold claim keys and passphrases: folders 0750, files 0640.
            let modes = try tool("stat", ["-L", "-c", "%a %n", latest] + OutputCheck.sidecars.map { latest + "/" + variant + $0 })
            for line in modes.split(separator: "\n") {
                let expected = line.hasSuffix("/latest") ? "750" : "640"
                if !line.hasPrefix(expected + " ") { problems.append("mode \(line), expected \(expected)") }
            }
            let offset = try partitionOffset(image, number: 2)
            let fsck = try run("e2fsck", ["-fn", "\(image)?offset=\(offset)"])
            if fsck.status != 0 { problems.append("e2fsck -fn \(image): \(fsck)") }
            let hostname = try debugfs(image, "cat /etc/hostname").trimmingCharacters(in: .whitespacesAndNewlines)
            // The demo names devices by serial: the image holds the placeholder and the pattern the
            // first-boot setup unit resolves.
            if hostname != "demo-\(variant)-unknown" { problems.append("\(variant): /etc/hostname is \(hostname)") }
            let pattern = try debugfs(image, "cat /etc/fleet-images/hostname-pattern")
            if pattern != "demo-\(variant)-{serial}\n" { problems.append("\(variant): hostname-pattern is \(pattern)") }
            let boot = try partitionOffset(image, number: 1)
            let cmdline = try tool("mtype", ["-i", "\(image)@@\(boot)", "::/cmdline.txt"])
            if !cmdline.contains("cfg80211.ieee80211_regdom=\(country)") { problems.append("cmdline.txt of \(variant): \(cmdline)") }
            return problems
        }

        /// 2. One site's certificate → that site only; a common file → all; --force → all.
        @Test func incrementalRebuildsFollowTheInputs() throws {
            let fleet = try DemoFleet("incremental", edit: keepSites(3))
            defer { fleet.remove() }
            let variants = ["zrh-lab", "gva-plant", "dub-depot"]
            let first = try fleet.cli(["build", "--json"])
            #expect(first.status == 0, "\(first)")
            #expect(ids(statuses(try parseJSON(first.stdout)), "built") == variants.sorted())

            // A fresh claim certificate and key for gva-plant, made with openssl into its paths.
            let certs = fleet.directory + "/certs/gva-plant"
            try tool("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                                 "-subj", "/O=fleet-images test/CN=gva-plant regenerated claim",
                                 "-keyout", certs + "/claim.private.pem.key", "-out", certs + "/claim.pem.crt"])
            let afterCertificate = try fleet.cli(["build", "--json"])
            #expect(afterCertificate.status == 0, "\(afterCertificate)")
            let certificateStatuses = statuses(try parseJSON(afterCertificate.stdout))
            #expect(ids(certificateStatuses, "built") == ["gva-plant"])
            #expect(ids(certificateStatuses, "up-to-date") == ["dub-depot", "zrh-lab"])
            let gva = fleet.output + "/gva-plant/latest/gva-plant.img"
            let newCertificate = try String(contentsOfFile: certs + "/claim.pem.crt", encoding: .utf8)
            #expect(try debugfs(gva, "cat /etc/fleet-images/claim.pem.crt") == newCertificate, "the new certificate is not in gva-plant's image")

            // A common file changes every variant.
            let config = fleet.directory + "/variants/common/config.yaml"
            let changed = try String(contentsOfFile: config, encoding: .utf8) + "# changed by the incremental test\n"
            try write(changed, to: config)
            let afterCommon = try fleet.cli(["build", "--json"])
            #expect(afterCommon.status == 0, "\(afterCommon)")
            #expect(ids(statuses(try parseJSON(afterCommon.stdout)), "built") == variants.sorted())
            #expect(try debugfs(fleet.output + "/dub-depot/latest/dub-depot.img", "cat /etc/fleet-images/config.yaml") == changed)

            // Nothing changed: --force rebuilds all the same.
            let forced = try fleet.cli(["build", "--force", "--json"])
            #expect(forced.status == 0, "\(forced)")
            #expect(ids(statuses(try parseJSON(forced.stdout)), "built") == variants.sorted())
            let audit = try OutputCheck.audit(fleet.output, publicKey: fleet.directory + "/keys/demo-signing.pub.pem", verify: false)
            #expect(audit.problems.isEmpty, "\(audit.problems)")
            #expect(audit.folders["gva-plant"]?.count == 4 && audit.folders["zrh-lab"]?.count == 3, "image folders: \(audit.folders.mapValues(\.count))")
        }

        /// 3. No passphrase, password hash or private key bytes anywhere the tool writes or prints,
        /// while the passphrase and the hash are inside the image, which proves the search looks for real bytes.
        @Test func secretsNeverLeak() throws {
            let shared = try SharedDemoBuild.get()
            let fleet = shared.fleet
            let sites = ["zrh-lab", "gva-plant", "dub-depot", "iad-warehouse", "pdx-field", "syd-office"]

            var secrets: [(label: String, bytes: String)] = []
            for site in sites {
                let passphrase = try String(contentsOfFile: fleet.directory + "/certs/\(site)/wifi.psk", encoding: .utf8)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                secrets.append(("Wi-Fi passphrase of \(site)", passphrase))
            }
            for key in sites.map({ "certs/\($0)/claim.private.pem.key" }) + ["keys/demo-signing.key.pem"] {
                let lines = try String(contentsOfFile: fleet.directory + "/" + key, encoding: .utf8).split(separator: "\n")
                // Every base64 body line; lines under 16 characters could match hex digests by chance.
                let body = lines.filter { !$0.hasPrefix("-----") && $0.count >= 16 }
                #expect(!body.isEmpty, "\(key) has no body lines")
                for (index, line) in body.enumerated() { secrets.append(("line \(index + 1) of \(key)", String(line))) }
            }

            // The passphrase is in the image: the NetworkManager keyfile, 0600, root's.
            let keyfile = "/etc/NetworkManager/system-connections/preconfigured.nmconnection"
            for (site, secret) in zip(sites, secrets) {
                let image = fleet.output + "/\(site)/latest/\(site).img"
                #expect(try debugfs(image, "cat \(keyfile)").contains(secret.bytes), "\(site): the passphrase is not in \(keyfile)")
                let owner = try ext4Stat(image, keyfile)
                #expect(owner.mode == "0600" && owner.uid == "0" && owner.gid == "0", "\(site): \(keyfile) is \(owner)")
            }

            // The login's password hash: on the boot partition's userconf.txt (which the OS deletes
            // once applied), never in anything fleet-images prints or records.
            let hash = try String(contentsOfFile: fleet.directory + "/certs/demo-login.hash", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            secrets.append(("the login password hash", hash))
            for site in sites {
                let userconf = try tool("mtype", ["-i", fleet.output + "/\(site)/latest/\(site).img@@\(8192 * 512)", "::/userconf.txt"])
                #expect(userconf == "fleet:\(hash)\n", "\(site): userconf.txt is \(userconf)")
            }

            // Haystacks: the database and its journal files, everything in the state folder but the
            // base-image cache, every provenance file (and its decoded DSSE payload), every output.
            var haystacks: [(label: String, data: Data)] = []
            let fm = FileManager.default
            for suffix in ["", "-wal", "-shm", "-journal"] {
                if let data = fm.contents(atPath: fleet.database + suffix) { haystacks.append((fleet.database + suffix, data)) }
            }
            #expect(haystacks.count >= 1, "no database at \(fleet.database)")
            var logs = 0
            for relative in fm.subpaths(atPath: fleet.state) ?? [] where !relative.hasPrefix("cache") && !relative.hasPrefix("provenance.sqlite") {
                var isFolder: ObjCBool = false
                let path = fleet.state + "/" + relative
                guard fm.fileExists(atPath: path, isDirectory: &isFolder), !isFolder.boolValue, let data = fm.contents(atPath: path) else { continue }
                if relative.hasPrefix("logs/") { logs += 1 }
                haystacks.append((path, data))
            }
            #expect(logs >= sites.count, "expected a log per variant under \(fleet.state)/logs, found \(logs)")
            var provenance = 0
            for relative in fm.subpaths(atPath: fleet.output) ?? [] where relative.hasSuffix(".intoto.json") {
                let path = fleet.output + "/" + relative
                guard let data = fm.contents(atPath: path) else { continue }
                provenance += 1
                haystacks.append((path, data))
                let envelope = try JSONSerialization.jsonObject(with: data) as? [String: Any]
                let payload = (envelope?["payload"] as? String).flatMap { Data(base64Encoded: $0) }
                #expect(payload != nil, "\(path): no base64 DSSE payload")
                if let payload { haystacks.append((path + " (decoded payload)", payload)) }
            }
            #expect(provenance >= sites.count)

            haystacks.append(("stdout of the first build", Data(shared.firstBuild.stdout.utf8)))
            haystacks.append(("stderr of the first build", Data(shared.firstBuild.stderr.utf8)))
            var commands: [[String]] = [["validate"], ["plan"], ["plan", "--json"], ["build"], ["build", "--json"], ["ls"], ["ls", "--json"], ["ls", "--all"], ["runs"], ["runs", "--json"]]
            for site in sites { commands += [["show", site], ["show", site, "--json"]] }
            for command in commands {
                let outcome = try fleet.cli(command)
                #expect(outcome.status == 0, "fleet-images \(command.joined(separator: " ")): \(outcome)")
                haystacks.append(("stdout of fleet-images \(command.joined(separator: " "))", Data(outcome.stdout.utf8)))
                haystacks.append(("stderr of fleet-images \(command.joined(separator: " "))", Data(outcome.stderr.utf8)))
            }

            var leaks: [String] = []
            for secret in secrets {
                let needle = Data(secret.bytes.utf8)
                for haystack in haystacks where haystack.data.range(of: needle) != nil {
                    leaks.append("\(secret.label) found in \(haystack.label)")
                }
            }
            #expect(leaks.isEmpty, "secrets leaked:\n\(leaks.joined(separator: "\n"))")
        }
    }
}
