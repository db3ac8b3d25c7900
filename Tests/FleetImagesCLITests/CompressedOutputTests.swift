import Foundation
import Testing

extension CLITests {
    /// Issue 14.1–14.2 through the CLI: `output.compress`, `compress_level` and `keep_raw` in the
    /// manifest; what a site gets is written to a card with `bmaptool copy` and checked.
    @Suite struct CompressedOutput {
        static let variants = ["gva-plant", "zrh-lab"]

        func latestFiles(_ fleet: DemoFleet, _ variant: String) -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: fleet.output + "/\(variant)/latest")) ?? []).sorted()
        }

        func recorded(_ fleet: DemoFleet) throws -> [String: [String: Any]] {
            let builds = try fleet.json(["ls"])["builds"] as? [[String: Any]] ?? []
            return Dictionary(uniqueKeysWithValues: builds.compactMap { build in
                (build["variant"] as? String).flatMap { variant in (build["artifact"] as? [String: Any]).map { (variant, $0) } }
            })
        }

        @Test func compressedOnlyOutputsWriteACardWithBmaptoolAndStayUpToDate() throws {
            let fleet = try DemoFleet("compress") { manifest in
                var output = manifest["output"] as? [String: Any] ?? [:]
                output["compress"] = "zstd"
                output["compress_level"] = 5
                output["keep_raw"] = false
                manifest["output"] = output
            }
            defer { try? FileManager.default.removeItem(atPath: fleet.directory) }
            let only = ["--only", "[gz]*"]
            let first = try fleet.cli(["build", "--parallel", "2"] + only + ["--json"])
            #expect(first.status == 0, "\(first)")
            #expect(ids(statuses(try parseJSON(first.stdout)), "built") == Self.variants)
            let publicKey = fleet.directory + "/keys/demo-signing.pub.pem"
            let artifacts = try recorded(fleet)
            for variant in Self.variants {
                // No raw image: the compressed copy, its digest, the block map, the signature and
                // digest of the raw image, the provenance.
                #expect(latestFiles(fleet, variant) == [".img.bmap", ".img.intoto.json", ".img.sha256", ".img.sig", ".img.zst", ".img.zst.sha256"].map { variant + $0 })
                let latest = fleet.output + "/\(variant)/latest"
                let artifact = try #require(artifacts[variant])
                let compressed = try #require(artifact["compressed"] as? [String: Any])
                #expect(compressed["compression"] as? String == "zstd 5")
                #expect((compressed["path"] as? String)?.hasSuffix("/\(variant).img.zst") == true)
                let onDisk = try FileManager.default.attributesOfItem(atPath: latest + "/\(variant).img.zst")[.size] as? Int
                #expect(compressed["size"] as? Int == onDisk)
                #expect(try run("sha256sum", ["-c", "\(variant).img.zst.sha256"], in: latest).status == 0)
                #expect((artifact["block_map"] as? String)?.hasSuffix("/\(variant).img.bmap") == true)

                // bmaptool finds <variant>.img.bmap beside the compressed image, writes only the data
                // and checks each range; the card then holds the signed image.
                let card = fleet.directory + "/card-\(variant).img"
                let copy = try run("bmaptool", ["copy", latest + "/\(variant).img.zst", card])
                #expect(copy.status == 0, "\(copy)")
                #expect(copy.stderr.contains("\(variant).img.bmap"), "bmaptool did not use the block map: \(copy.stderr)")
                let written = try tool("openssl", ["dgst", "-sha256", "-r", card]).prefix(64)
                #expect(String(written) == artifact["sha256"] as? String)
                let verified = try run("openssl", ["dgst", "-sha256", "-verify", publicKey, "-signature", latest + "/\(variant).img.sig", card])
                #expect(verified.status == 0 && verified.stdout.contains("Verified OK"), "\(verified)")
            }

            // Nothing changed: up to date, without the raw image.
            let second = try fleet.cli(["build"] + only + ["--json"])
            #expect(ids(statuses(try parseJSON(second.stdout)), "up-to-date") == Self.variants, "\(second)")

            // Another level is another compressed file: built again, to the same image.
            var manifest = try fleet.readManifest()
            var output = manifest["output"] as? [String: Any] ?? [:]
            output["compress_level"] = 6
            manifest["output"] = output
            try fleet.writeManifest(manifest)
            let releveled = try fleet.cli(["build"] + only + ["--json"])
            #expect(ids(statuses(try parseJSON(releveled.stdout)), "built") == Self.variants, "\(releveled)")
            let again = try recorded(fleet)
            for variant in Self.variants {
                #expect(again[variant]?["sha256"] as? String == artifacts[variant]?["sha256"] as? String, "\(variant): the image is reproducible")
                #expect((again[variant]?["compressed"] as? [String: Any])?["compression"] as? String == "zstd 6")
            }

            // Back to raw images only: the recorded builds have no raw image, so they are built again.
            output = ["directory": output["directory"] ?? "build/images"]
            manifest["output"] = output
            try fleet.writeManifest(manifest)
            let raw = try fleet.cli(["build"] + only + ["--json"])
            #expect(ids(statuses(try parseJSON(raw.stdout)), "built") == Self.variants, "\(raw)")
            for variant in Self.variants {
                #expect(latestFiles(fleet, variant) == [".img", ".img.bmap", ".img.intoto.json", ".img.sha256", ".img.sig"].map { variant + $0 })
            }

            // prune finds the image folders that hold only a compressed copy, too.
            let folders = { (variant: String) in OutputCheck.entries(fleet.output, variant) }
            #expect(Self.variants.allSatisfy { folders($0).count == 3 }, "\(Self.variants.map(folders))")
            let pruned = try fleet.cli(["prune", "--keep", "1"])
            #expect(pruned.status == 0, "\(pruned)")
            for variant in Self.variants {
                let left = folders(variant)
                #expect(left.count == 1 && FileManager.default.fileExists(atPath: fleet.output + "/\(variant)/\(left.first ?? "?")/\(variant).img"), "\(variant): \(left)")
            }
            let statuses = try fleet.json(["ls", "--all"])["builds"] as? [[String: Any]] ?? []
            // Per variant: the first build, the up-to-date run that pointed at its image, and the
            // rebuild at level 6 lost their images; the last build keeps its own.
            for variant in Self.variants {
                let rows = statuses.filter { $0["variant"] as? String == variant }.compactMap { $0["status"] as? String }
                #expect(rows.filter { $0 == "pruned" }.count == 3 && rows.count == 4, "\(variant): \(rows)")
            }
        }

        /// Issue 14.3: `publish` writes the Raspberry Pi Imager list of what was built: absolute
        /// URLs under --base-url that name the compressed files, the raw image's size and SHA-256
        /// (what Imager checks as it writes), the download's own, a date, an init format Imager keeps.
        @Test func publishWritesAnImagerListOfTheBuiltVariants() throws {
            let fleet = try DemoFleet("publish") { manifest in
                manifest["output"] = ["directory": "build/images", "compress": "xz", "compress_level": 0]
            }
            defer { try? FileManager.default.removeItem(atPath: fleet.directory) }
            let built = try fleet.cli(["build", "--parallel", "2", "--only", "[gz]*"])
            #expect(built.status == 0, "\(built)")

            // A base URL that is not http(s): exit 2, nothing written.
            for bad in ["ftp://images.example.com/", "images.example.com/fleet", "https://images.example.com/?x=1"] {
                let refused = try fleet.cli(["publish", "--base-url", bad])
                #expect(refused.status == 2 && refused.stderr.contains("--base-url"), "\(bad): \(refused)")
                #expect(!FileManager.default.fileExists(atPath: fleet.output + "/os_list.json"))
            }

            let base = "https://images.example.com/demo"
            let published = try fleet.cli(["publish", "--base-url", base])
            #expect(published.status == 0, "\(published)")
            for skipped in ["dub-depot", "iad-warehouse", "pdx-field", "syd-office"] {
                #expect(published.stderr.contains("warning: \(skipped) left out: no successful build recorded"), "\(published.stderr)")
            }
            let data = try Data(contentsOf: URL(fileURLWithPath: fleet.output + "/os_list.json"))
            let list = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            #expect(Set(list.keys) == ["os_list"])
            let entries = try #require(list["os_list"] as? [[String: Any]])
            #expect(entries.compactMap { $0["name"] as? String } == ["demo zrh-lab", "demo gva-plant"])
            let artifacts = try recorded(fleet)
            for entry in entries {
                let variant = String((entry["name"] as? String ?? "").dropFirst("demo ".count))
                // The keys Imager's schema requires, and no others than it knows.
                let required: Set<String> = ["name", "description", "icon", "url", "extract_size", "extract_sha256", "image_download_size", "release_date", "devices"]
                #expect(required.isSubset(of: Set(entry.keys)), "\(entry.keys)")
                #expect(Set(entry.keys).subtracting(required) == ["image_download_sha256", "init_format", "architecture"])
                #expect(entry["init_format"] as? String == "none")
                #expect(entry["architecture"] as? String == "armv8" && entry["devices"] as? [String] == ["pi5", "pi4", "pi3"])
                let date = entry["release_date"] as? String ?? ""
                #expect(date.range(of: #"^\d{4}-\d{2}-\d{2}$"#, options: .regularExpression) != nil, "\(date)")
                #expect(entry["icon"] as? String == base + "/fleet-images-icon.svg")
                #expect(FileManager.default.fileExists(atPath: fleet.output + "/fleet-images-icon.svg"))
                // The URL is the compressed file under the base URL; sizes and digests are the files'.
                let url = try #require(entry["url"] as? String)
                #expect(url.hasPrefix(base + "/\(variant)/") && url.hasSuffix("/\(variant).img.xz"), "\(url)")
                let file = fleet.output + "/" + String(url.dropFirst(base.count + 1))
                #expect(entry["image_download_size"] as? Int == (try FileManager.default.attributesOfItem(atPath: file)[.size] as? Int))
                #expect(entry["image_download_sha256"] as? String == String(try tool("openssl", ["dgst", "-sha256", "-r", file]).prefix(64)))
                let raw = try tool("sh", ["-c", "xz -dc \"$1\" | openssl dgst -sha256 -r", "sh", file]).prefix(64)
                #expect(entry["extract_sha256"] as? String == String(raw))
                #expect(entry["extract_sha256"] as? String == artifacts[variant]?["sha256"] as? String)
                #expect(entry["extract_size"] as? Int64 == artifacts[variant]?["size"] as? Int64)
                let description = entry["description"] as? String ?? ""
                #expect(description.contains("Site \(variant)") && description.contains("Wi-Fi \""), "\(description)")
            }
            // No secret in the list: not a Wi-Fi passphrase, not a claim key.
            let text = String(decoding: data, as: UTF8.self)
            for site in ["zrh-lab", "gva-plant"] {
                let psk = try String(contentsOfFile: fleet.directory + "/certs/\(site)/wifi.psk", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(!psk.isEmpty && !text.contains(psk))
            }
            #expect(!text.contains("PRIVATE KEY"))

            // Imager's own customization, asked for: the format of the base image's OS (the demo
            // base is Bookworm: firstrun.sh, `systemd`); devices as given; another file.
            let customized = try fleet.cli(["publish", "--base-url", base, "--imager-customization", "--device", "pi4", "--out", "custom.json"])
            #expect(customized.status == 0, "\(customized)")
            let custom = try parseJSON(try String(contentsOfFile: fleet.directory + "/custom.json", encoding: .utf8))
            let customEntries = custom["os_list"] as? [[String: Any]] ?? []
            #expect(customEntries.count == 2 && customEntries.allSatisfy { $0["init_format"] as? String == "systemd" && $0["devices"] as? [String] == ["pi4"] })
        }

        /// Bad `output` settings: exit 2, the place named, nothing written.
        @Test(arguments: [
            (["compress": "gzip"], "output.compress", "unknown compression \"gzip\""),
            (["compress": "xz", "compress_level": 10], "output.compress_level", "xz levels are 0 to 9"),
            (["compress": "zstd", "compress_level": 0], "output.compress_level", "zstd levels are 1 to 19"),
            (["compress_level": 3], "output.compress_level", "needs \"compress\""),
            (["keep_raw": false], "output.keep_raw", "needs \"compress\""),
        ] as [([String: any Sendable], String, String)])
        func badOutputSettingsAreRefused(_ settings: [String: any Sendable], _ place: String, _ message: String) throws {
            let fleet = try DemoFleet("compress-bad") { manifest in
                var output = manifest["output"] as? [String: Any] ?? [:]
                for (key, value) in settings { output[key] = value }
                manifest["output"] = output
            }
            defer { try? FileManager.default.removeItem(atPath: fleet.directory) }
            let outcome = try fleet.cli(["build"])
            #expect(outcome.status == 2, "\(outcome)")
            #expect(outcome.stderr.contains(place) && outcome.stderr.contains(message), "\(outcome.stderr)")
            #expect(!FileManager.default.fileExists(atPath: fleet.output))
            #expect(!FileManager.default.fileExists(atPath: fleet.state))
        }
    }
}
