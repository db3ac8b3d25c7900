/// Why the packer-docker builder cannot run at all (before any variant is built). The runner
/// maps these to exit 69 (a required tool or service is unavailable), except
/// ``template(_:path:)``, which is a problem in the repository (exit 2).
public enum PackerDockerError: Error, CustomStringConvertible, Sendable {
    /// No `docker` executable on `PATH`.
    case dockerMissing
    /// `docker version` could not reach the daemon; `detail` is the client's own message.
    case daemonUnreachable(detail: String)
    /// The builder image is neither present nor pullable.
    case imageUnavailable(image: String, detail: String)
    /// The image was pinned by digest but the local image does not carry that digest.
    case digestMismatch(image: String, found: [String])
    /// The Packer template cannot be used; `path` is the template file.
    case template(String, path: String)
    /// The host cannot run the image's programs for the container (``HostBinfmt``); the message says how to fix it.
    case hostEmulation(String)
    /// The Docker client talks to a daemon on another machine, which cannot see the build context.
    case remoteDaemon(endpoint: String)

    public var description: String {
        switch self {
        case .dockerMissing:
            return "the packer-docker builder needs the Docker CLI, and no `docker` is on PATH; install Docker (Debian: apt-get install docker.io) or use \"type\": \"inject\""
        case .daemonUnreachable(let detail):
            let hint: String
            if detail.localizedCaseInsensitiveContains("permission denied") {
                hint = "add this user to the docker group (usermod -aG docker $USER, then log in again) or run fleet-images as root"
            } else {
                hint = "start the Docker daemon (systemctl start docker, or dockerd in the background) and check DOCKER_HOST"
            }
            return "the Docker daemon does not answer (`docker version`: \(Self.firstLine(detail))); \(hint)"
        case .imageUnavailable(let image, let detail):
            return "the builder image \(image) is not on this machine and could not be pulled (\(Self.firstLine(detail))); pull or load it (docker pull / docker load) and run again"
        case .digestMismatch(let image, let found):
            return "the builder image \(image) is pinned by digest, but the local image has \(found.isEmpty ? "no repository digest" : found.joined(separator: ", ")); remove it and pull it again by digest"
        case .template(let message, let path):
            return "\(path): \(message)"
        case .hostEmulation(let message):
            return message
        case .remoteDaemon(let endpoint):
            return "the Docker daemon is on another machine (\(endpoint), from DOCKER_HOST or the current docker context): packer-docker bind-mounts each variant's build context (template, claim key, files) from this machine's disk, and a remote daemon would mount a folder of its own machine instead; run fleet-images on the Docker host, or unset DOCKER_HOST (docker context use default)"
        }
    }

    /// True when the problem is in the repository rather than on the machine.
    public var isInputProblem: Bool {
        if case .template = self { return true }
        return false
    }

    static func firstLine(_ text: String) -> String {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.split(separator: "\n").first.map(String.init) ?? "no output"
    }
}
