// Benchmark of the provenance store at fleet scale (issue 4): 100,000 builds over 2,000 variants
// and 1,000 runs, 5 inputs each. Prints the time of the `ls`, `ls --all --site`, `show` queries
// and of recording one finished build, each as the best of 5, in milliseconds and as a ratio to
// a bare `SELECT count(*) FROM build` on the same file in the same run.
//
//   swift run -c release provenance-bench [--keep] [--reuse PATH]
//
// --keep leaves the filled database in place and prints its path; --reuse PATH times an
// existing database (one a --keep run left) instead of filling a new one.
//
// Not a test: the numbers depend on the machine; the ratios say whether the indexes do their job.
import FleetImagesCore
import Foundation
import GRDB

let runCount = 1_000
let buildsPerRun = 100
let variantCount = 2_000
let inputsPerBuild = 5
let repetitions = 5
let keep = CommandLine.arguments.contains("--keep")

func now() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
}

/// Best of `repetitions` wall-clock times of `body`, in milliseconds.
func best(_ body: () throws -> Void) rethrows -> Double {
    var times: [Double] = []
    for _ in 0..<repetitions {
        let start = now()
        try body()
        times.append((now() - start) * 1000)
    }
    return times.min()!
}

func variantID(_ index: Int) -> String {
    String(format: "s%04d-%@", index / 2, index % 2 == 0 ? "arm64" : "armhf")
}

func site(_ index: Int) -> String { String(format: "s%04d", index / 2) }

func hex(_ seed: Int) -> String {
    var state = UInt64(truncatingIfNeeded: seed) &* 0x9E37_79B9_7F4A_7C15
    var out = ""
    for _ in 0..<4 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        out += String(format: "%016llx", state)
    }
    return out
}

let reusePath = CommandLine.arguments.firstIndex(of: "--reuse").map { CommandLine.arguments[$0 + 1] }
let folder = NSTemporaryDirectory() + "provenance-bench-\(getpid())"
let path = reusePath ?? folder + "/provenance.sqlite"
if reusePath == nil { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
defer { if !keep && reusePath == nil { try? FileManager.default.removeItem(atPath: folder) } }

/// Fills the database: one transaction per run (100 builds and their 500 inputs), through the
/// record types. Returns the number of builds.
func fill(path: String) throws -> Int {
    var buildIndex = 0
    let fillStart = now()
    let filler = try DatabaseQueue(path: path)
    let t0 = Date(timeIntervalSince1970: 1_700_000_000)
    for runNumber in 0..<runCount {
        try filler.write { db in
            let started = t0.addingTimeInterval(Double(runNumber) * 3_600)
            var run = RunRecord(
                startedAt: started, finishedAt: started.addingTimeInterval(3_000), status: .succeeded,
                commandLine: "fleet-images build --parallel 4", manifestPath: "fleet.json", manifestSHA256: hex(runNumber),
                toolVersion: "0.1.0", host: "bench", pid: 1, parallelism: 4,
                counts: RunCounts(planned: buildsPerRun, built: buildsPerRun))
            try run.insert(db)
            for slot in 0..<buildsPerRun {
                let index = buildIndex % variantCount
                let failed = buildIndex % 17 == 0
                let begin = started.addingTimeInterval(Double(slot) * 30)
                var build = BuildRecord(
                    runID: run.id!, variantID: variantID(index), site: site(index), matrix: ["arch": index % 2 == 0 ? "arm64" : "armhf"],
                    builder: "inject", inputsDigest: hex(buildIndex), startedAt: begin, finishedAt: begin.addingTimeInterval(185),
                    status: failed ? .failed : .succeeded, exitCode: failed ? 1 : 0, errorMessage: failed ? "exit status 1" : nil,
                    logPath: "logs/\(run.id!)/\(variantID(index)).log",
                    artifactPath: failed ? nil : "build/images/\(variantID(index)).img", artifactSize: failed ? nil : 2_786_918_400,
                    artifactSHA256: failed ? nil : hex(buildIndex + 1), signaturePath: failed ? nil : "build/images/\(variantID(index)).img.sig",
                    signingKeyFingerprint: failed ? nil : hex(7))
                try build.insert(db)
                let roles: [BuildInputRole] = [.claimCertificate, .claimPrivateKey, .wifiPSK, .baseImage, .template]
                for role in roles.prefix(inputsPerBuild) {
                    var input = BuildInputRecord(
                        buildID: build.id!, role: role, name: "\(role.rawValue)/\(site(index))", digest: hex(buildIndex &+ role.rawValue.count),
                        digestKind: role == .wifiPSK || role == .claimPrivateKey ? .hmacSHA256 : .sha256)
                    try input.insert(db)
                }
                buildIndex += 1
            }
        }
    }
    try filler.close()
    let fillSeconds = now() - fillStart
    let fileSize = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? 0
    print(String(format: "filled %d runs, %d builds, %d inputs in %.1f s; database %.1f MiB",
                 runCount, buildIndex, buildIndex * inputsPerBuild, fillSeconds, Double(fileSize) / 1_048_576))
    return buildIndex
}

var store = try ProvenanceStore.open(at: path)
let buildIndex = reusePath == nil ? try fill(path: path) : runCount * buildsPerRun

// Reopen, as each CLI invocation does.
try store.close()
let openMs = try best {
    let reopened = try ProvenanceStore.open(at: path)
    try reopened.close()
}
store = try ProvenanceStore.open(at: path)

let anchorReader = try DatabasePool(path: path)
let anchor = try best {
    let count = try anchorReader.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM build")! }
    precondition(count >= buildIndex)
}

let manifestIDs = (0..<variantCount).map(variantID)
var results: [(String, Double)] = [("open (schema checks)", openMs)]
results.append(("ls: latestBuilds() all variants", try best {
    let count = try store.latestBuilds().count
    precondition(count == variantCount)
}))
results.append(("ls: latestBuilds(2,000 manifest ids) + table", try best {
    let latest = try store.latestBuilds(variantIDs: manifestIDs)
    precondition(latest.count == variantCount)
    _ = ProvenanceReport.table(builds: latest, manifestVariantIDs: manifestIDs)
}))
results.append(("ls --status failed (latest per variant)", try best {
    _ = try store.builds(filter: BuildFilter(statuses: [.failed]))
}))
var globCount = 0
results.append(("ls --all --site 's012*'", try best {
    globCount = try store.builds(filter: BuildFilter(scope: .allHistory, siteGlob: "s012*")).count
}))
results.append(("ls --all (limit 50)", try best {
    let count = try store.builds(filter: BuildFilter(scope: .allHistory), limit: 50).count
    precondition(count == 50)
}))
let someBuild = Int64(buildIndex / 2)
results.append(("show: build(id:) + inputs + run", try best {
    let build = try store.build(id: someBuild)!
    let inputs = try store.inputs(buildID: someBuild)
    let run = try store.run(id: build.runID)
    _ = ProvenanceReport.showText(build: build, inputs: inputs, run: run)
}))
results.append(("incremental check: latestSuccessfulBuild", try best {
    _ = try store.latestSuccessfulBuild(variantID: variantID(123), inputsDigest: hex(123))
}))
let benchRun = try store.beginRun(RunStart(
    commandLine: "bench", manifestPath: "fleet.json", manifestSHA256: hex(0), toolVersion: "0.1.0",
    host: "bench", parallelism: 1, plannedCount: repetitions))
var recorded = 0
results.append(("record one build: beginBuild(5 inputs) + finishBuild", try best {
    let index = recorded % variantCount
    recorded += 1
    let id = try store.beginBuild(
        runID: benchRun,
        BuildStart(variantID: variantID(index), site: site(index), builder: "inject", inputsDigest: hex(index)),
        inputs: (0..<inputsPerBuild).map { BuildInput(role: .file, name: "f\($0)", digest: hex($0)) })
    try store.finishBuild(id: id, .succeeded(BuildArtifact(path: "x.img", size: 1, sha256: hex(1)), provenancePath: nil))
}))

print("anchor: SELECT count(*) FROM build".padding(toLength: 54, withPad: " ", startingAt: 0) + String(format: " %9.3f ms", anchor))
for (name, ms) in results {
    print(name.padding(toLength: 54, withPad: " ", startingAt: 0) + String(format: " %9.3f ms  %8.1fx anchor", ms, ms / anchor))
}
print("(ls --all --site matched \(globCount) builds; best of \(repetitions) each)")
if keep { print("kept \(path)") }
