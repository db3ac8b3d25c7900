import ArgumentParser
import FleetImagesCore
import Foundation

extension FleetImages {
    struct Plan: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the variants the manifest expands to, what each puts where, and its inputs digest.",
            discussion: """
            Order is deterministic: sites in manifest order, then matrix combinations (axes by name). \
            Passphrases and keys never appear; secret inputs are shown as HMAC digests under the state's local key. \
            The base image is read once (decompressed into the state's cache) to learn its OS and first-boot format. \
            With --json the output is the stable shape documented in the README. \
            Shards: --shard K/N shows only that slice of the fleet (what `build --shard K/N` builds); --shards N \
            shows every variant with its shard; --matrix github --shards N prints the GitHub Actions matrix \
            {"include": [{"shard": "1/N"}, …]} (N at most 256) and nothing else, without reading the base image.
            """)

        @OptionGroup var options: ManifestOptions
        @Option(help: "Only variants whose id matches this shell pattern, e.g. 'zrh-*'.") var only: String?
        @Option(help: "Only shard K of N, e.g. 2/8: the variants `build --shard 2/8` builds.") var shard: String?
        @Option(help: "Cut the fleet into N shards and show each variant's shard (1–256 with --matrix).") var shards: Int?
        @Option(help: "Print a CI matrix of the shards instead of the plan: github.") var matrix: String?
        @Option(help: "State folder (database, HMAC key, lock). Default: .fleet-images beside the manifest.") var state: String?
        @Flag(help: "Print JSON instead of text.") var json = false

        func validate() throws {
            if let shard, case .failure(let problem) = Shard.parse(shard) { throw ValidationError("--shard \(problem)") }
            if let shards, shards < 1 { throw ValidationError("--shards must be at least 1 (got \(shards))") }
            if let shard, let shards, case .success(let parsed) = Shard.parse(shard), parsed.count != shards {
                throw ValidationError("--shard \(shard) and --shards \(shards) disagree on the number of shards")
            }
            if let matrix {
                guard matrix == "github" else { throw ValidationError("--matrix \(matrix): the one matrix format is github") }
                guard let shards else { throw ValidationError("--matrix github needs --shards N (the number of build jobs)") }
                guard shards <= Shard.githubMatrixLimit else {
                    throw ValidationError("--shards \(shards): a GitHub Actions matrix has at most \(Shard.githubMatrixLimit) jobs")
                }
            }
        }

        func run() async throws {
            let environment = ProcessInfo.processInfo.environment
            let selected: Shard? = shard.flatMap { try? Shard.parse($0).get() }
            let outcome = FleetLoader.load(manifestPath: options.manifest, environment: environment, only: only, shard: selected)
            Output.diagnostics(outcome.diagnostics)
            guard let manifest = outcome.manifest, !outcome.hasErrors else { throw Exit.badInput }
            if matrix != nil, let shards {
                print(try PlanReport.githubMatrix(shards: shards))
                return
            }
            var shardOf: [String: String] = [:]
            if let count = shards ?? selected?.count {
                for (id, index) in Shard.assign(outcome.allVariantIDs, count: count) { shardOf[id] = "\(index)/\(count)" }
            }
            let location = StateLocation(manifestDirectory: manifest.directory, override: state)
            let plan: FleetImagesCore.Plan
            do {
                try location.create()
                let key = try StateSecretKey.loadOrCreate(inDirectory: location.directory)
                let os = try await BuildRunner.defaultOSDetection(manifest, state: location, variants: outcome.variants, log: { _ in })
                let problems = DeviceOSResolver.problems(outcome.variants, os: os)
                if !problems.isEmpty {
                    Output.diagnostics(problems)
                    throw Exit.badInput
                }
                plan = try Planner(manifest: manifest, environment: environment, secretKey: key).plan(outcome.variants, os: os)
            } catch let exit as ExitCode {
                throw exit
            } catch {
                Output.error("error: \(error)")
                throw Exit.badInput
            }
            print(json ? try PlanReport.json(plan, shards: shardOf) : PlanReport.text(plan, shards: shardOf))
        }
    }
}
