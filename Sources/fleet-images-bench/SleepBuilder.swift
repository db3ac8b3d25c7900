import FleetImagesCore
import Foundation

/// A builder that does no image work: it sleeps, then writes a tiny file (4 KiB naming the
/// variant and its inputs digest) as the image. What is left of a run is the scheduler's own
/// cost: planning, the database, signing and placing each image.
struct SleepBuilder: ImageBuilder {
    var seconds: Double

    /// Reported as `inject` so that runs record what the manifest says (the runner only uses it for provenance and its tool check).
    var kind: BuilderKind { .inject }
    var imageDigest: String? { nil }

    func build(_ job: BuildJob) async throws -> String {
        if seconds > 0 { try await Task.sleep(for: .seconds(seconds)) }
        var text = "fleet-images bench image for \(job.variantID), inputs \(job.planned.inputsDigest)\n"
        while text.utf8.count < 4096 { text += "." }
        guard FileManager.default.createFile(atPath: job.imagePath, contents: Data(text.utf8.prefix(4096)), attributes: [.posixPermissions: 0o600]) else {
            throw BuildFailure("cannot write \(job.imagePath)")
        }
        job.log("slept \(seconds) s, wrote a 4096-byte stand-in image")
        return job.imagePath
    }
}

extension DeviceOS {
    /// The OS the benchmark fleets' placeholder base image stands for (it is not a real disk image,
    /// so there is nothing to read it from).
    static let benchBookworm = DeviceOS(codename: "bookworm", prettyName: "Debian GNU/Linux 12 (bookworm)", initFormat: .userconf,
                                        firstUser: .init(name: "pi", home: "/home/pi", uid: 1000, gid: 1000), hasCloudInit: false)
}
