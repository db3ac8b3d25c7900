#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Edits an ext4 file system inside a disk image file through e2fsprogs' `debugfs`, without root,
/// mounting or loop devices.
///
/// `apply(_:)` runs debugfs twice, whatever the number of operations: once read-only to learn which of the
/// paths involved exist and what they are, then once with `-w` and a command file that makes exactly the
/// needed `mkdir`/`rm`/`write`/`symlink`/`sif` calls. Knowing the state first keeps every command one that
/// should succeed, so any message debugfs prints is a real failure; it is thrown, naming the path.
/// debugfs keeps going after a failed command, so after a throw the file system is in an unspecified
/// (but consistent) state: work on a copy and discard it.
public struct Ext4Editor: Sendable {
    public let imagePath: String
    /// Byte offset of the file system in the image (the partition's `startOffset`).
    public let partitionOffset: UInt64

    public init(imagePath: String, partitionOffset: UInt64) {
        self.imagePath = imagePath
        self.partitionOffset = partitionOffset
    }

    /// How messages name the file system.
    var imageDescription: String { "\(imagePath) (ext4 at byte \(partitionOffset))" }

    // MARK: Writing

    public func apply(_ operations: [Ext4Operation]) async throws {
        guard !operations.isEmpty else { return }
        let plan = try Plan(operations)
        let state = try await query(plan)
        let script = try makeScript(operations, plan: plan, state: state)
        for answer in try await script.run(image: imagePath, offset: partitionOffset, writable: true) {
            let problems = answer.problems
            guard problems.isEmpty else {
                throw DiskImageError.editFailed(image: imageDescription, path: answer.command.subject,
                                                cause: Self.explain(problems))
            }
        }
    }

    /// What the operations touch: every directory they need and every leaf they replace.
    struct Plan {
        var components: [[String]]
        var directories: [[String]] = []
        var leaves: [[String]] = []

        init(_ operations: [Ext4Operation]) throws(DiskImageError) {
            components = []
            var seenDirectories: Set<[String]> = [], seenLeaves: Set<[String]> = []
            for operation in operations {
                let parts = try Ext4Path.components(of: operation.path)
                components.append(parts)
                let needed: [String]
                switch operation {
                case let .mkdirs(_, mode, _, _):
                    try Self.checkMode(mode, operation.path)
                    needed = parts
                case let .write(hostFile, path, mode, _, _):
                    try Self.checkMode(mode, path)
                    try Self.checkHostFile(hostFile)
                    needed = Array(parts.dropLast())
                case let .symlink(path, target, _, _):
                    try Ext4Path.checkCharacters(target)
                    guard !target.isEmpty, target.utf8.count < 4000 else {
                        throw .invalidPath(path: path, reason: "symlink target must be 1 to 3999 bytes")
                    }
                    needed = Array(parts.dropLast())
                }
                if case .mkdirs = operation {} else {
                    guard !parts.isEmpty else { throw .invalidPath(path: operation.path, reason: "is the root directory") }
                    if seenLeaves.insert(parts).inserted { leaves.append(parts) }
                }
                for depth in needed.indices {
                    let prefix = Array(needed[...depth])
                    if seenDirectories.insert(prefix).inserted { directories.append(prefix) }
                }
            }
        }

        static func checkMode(_ mode: UInt32, _ path: String) throws(DiskImageError) {
            guard mode <= 0o7777 else {
                throw .invalidPath(path: path, reason: "mode 0\(String(mode, radix: 8)) has bits beyond 07777")
            }
        }

        static func checkHostFile(_ hostFile: String) throws(DiskImageError) {
            try Ext4Path.checkCharacters(hostFile)
            guard try hostFileType(hostFile) == S_IFREG else {
                throw .invalidPath(path: hostFile, reason: "the file to copy into the image is not a regular file")
            }
        }
    }

    /// What a path is, as far as the plan cares.
    enum Node: Equatable {
        case missing
        /// A directory, possibly reached through a symlink.
        case directory
        /// A non-directory with debugfs's type word (`regular`, `symlink`, …).
        case other(String)
        /// Some parent is not a directory.
        case blocked(String)
    }

    struct State {
        var directories: [[String]: Node] = [:]
        var leaves: [[String]: Node] = [:]
    }

    /// One read-only debugfs run that stats every directory (through symlinks) and every leaf (not following it).
    private func query(_ plan: Plan) async throws -> State {
        var script = DebugfsScript()
        for directory in plan.directories {
            script.append(command: "stat", [Ext4Path.directoryForm(directory)], subject: Ext4Path.join(directory))
        }
        for leaf in plan.leaves {
            script.append(command: "stat", [Ext4Path.leafForm(leaf)], subject: Ext4Path.join(leaf))
        }
        guard !script.commands.isEmpty else { return State() }
        let answers = try await script.run(image: imagePath, offset: partitionOffset, writable: false)
        var state = State()
        for (index, answer) in answers.enumerated() {
            let node = try classify(answer)
            if index < plan.directories.count {
                state.directories[plan.directories[index]] = node
            } else {
                let leaf = plan.leaves[index - plan.directories.count]
                state.leaves[leaf] = node == .other("directory") ? .directory : node
            }
        }
        return state
    }

    private func classify(_ answer: DebugfsScript.Answer) throws(DiskImageError) -> Node {
        if let status = Self.parseStatus(answer.lines) {
            return status.type == "directory" ? .directory : .other(status.type)
        }
        let text = answer.problems.joined(separator: " ")
        if text.contains("File not found by ext2_lookup") { return .missing }
        if text.contains("not a directory") { return .blocked(text) }
        throw .toolFailed(tool: "debugfs", image: imageDescription,
                          detail: "cannot stat \(answer.command.subject): \(text)")
    }

    private func makeScript(_ operations: [Ext4Operation], plan: Plan, state initial: State) throws(DiskImageError) -> DebugfsScript {
        var state = initial
        var script = DebugfsScript()

        func ensureDirectories(_ parts: ArraySlice<String>, for path: String) throws(DiskImageError) {
            for depth in parts.indices {
                let prefix = Array(parts[...depth])
                switch state.directories[prefix] ?? .directory {
                case .directory:
                    continue
                case .missing:
                    script.append(command: "mkdir", [Ext4Path.leafForm(prefix)], subject: path)
                    state.directories[prefix] = .directory
                    if state.leaves[prefix] != nil { state.leaves[prefix] = .directory }
                case .other(let type):
                    throw .editFailed(image: imageDescription, path: path,
                                      cause: "\(Ext4Path.join(prefix)) is a \(type), not a directory")
                case .blocked:
                    // Shallower prefixes were all directories, so this one itself is something else.
                    throw .editFailed(image: imageDescription, path: path,
                                      cause: "\(Ext4Path.join(prefix)) exists and is not a directory")
                }
            }
        }

        func clearLeaf(_ parts: [String], for path: String) throws(DiskImageError) {
            switch state.leaves[parts] ?? .missing {
            case .missing:
                break
            case .directory:
                throw .editFailed(image: imageDescription, path: path,
                                  cause: "a directory is in the way; remove it from the image first")
            case .other:
                script.append(command: "rm", [Ext4Path.leafForm(parts)], subject: path)
            case .blocked(let message):
                throw .editFailed(image: imageDescription, path: path, cause: "a parent is not a directory (\(message))")
            }
        }

        func setOwner(_ target: String, uid: UInt32, gid: UInt32, subject: String) {
            script.append(command: "sif", [target, "uid", String(uid)], subject: subject)
            script.append(command: "sif", [target, "gid", String(gid)], subject: subject)
        }

        for (operation, parts) in zip(operations, plan.components) {
            let path = operation.path
            switch operation {
            case let .mkdirs(_, mode, uid, gid):
                try ensureDirectories(parts[...], for: path)
                let target = Ext4Path.directoryForm(parts)
                script.append(command: "sif", [target, "mode", "0" + String(0o040000 | mode, radix: 8)], subject: path)
                setOwner(target, uid: uid, gid: gid, subject: path)
            case let .write(hostFile, _, mode, uid, gid):
                try ensureDirectories(parts.dropLast(), for: path)
                try clearLeaf(parts, for: path)
                let target = Ext4Path.leafForm(parts)
                script.append(command: "write", [hostFile, target], subject: path)
                script.append(command: "sif", [target, "mode", "0" + String(0o100000 | mode, radix: 8)], subject: path)
                setOwner(target, uid: uid, gid: gid, subject: path)
                state.leaves[parts] = .other("regular")
                if state.directories[parts] != nil { state.directories[parts] = .other("regular") }
            case let .symlink(_, linkTarget, uid, gid):
                try ensureDirectories(parts.dropLast(), for: path)
                try clearLeaf(parts, for: path)
                let target = Ext4Path.leafForm(parts)
                script.append(command: "symlink", [target, linkTarget], subject: path)
                setOwner(target, uid: uid, gid: gid, subject: path)
                state.leaves[parts] = .other("symlink")
                // Where the link leads is not known here; let debugfs judge later uses of it.
                if state.directories[parts] != nil { state.directories[parts] = .directory }
            }
        }
        return script
    }

    static func explain(_ problems: [String]) -> String {
        let text = problems.joined(separator: "; ")
        if text.contains("Could not allocate block") {
            return "the file system is full (\(text)); enlarge the root partition of the base image"
        }
        if text.contains("Could not allocate inode") {
            return "the file system has no free inodes (\(text))"
        }
        return text
    }

    // MARK: Reading

    /// The content of a regular file, or nil when nothing exists at `path`.
    /// Throws when `path` is not a regular file or debugfs fails.
    public func readFile(_ path: String) async throws -> [UInt8]? {
        let parts = try Ext4Path.components(of: path)
        guard !parts.isEmpty else { throw DiskImageError.notARegularFile(image: imageDescription, path: path, kind: "directory") }
        let scratch = try DiskImageScratch(near: imagePath)
        defer { scratch.remove() }
        var script = DebugfsScript()
        script.append(command: "stat", [Ext4Path.leafForm(parts)], subject: path)
        script.append(command: "dump", [Ext4Path.leafForm(parts), scratch.file("content")], subject: path)
        let answers = try await script.run(image: imagePath, offset: partitionOffset, writable: false)
        switch try classify(answers[0]) {
        case .missing, .blocked:
            return nil
        case .directory:
            throw DiskImageError.notARegularFile(image: imageDescription, path: path, kind: "directory")
        case .other(let type) where type != "regular":
            throw DiskImageError.notARegularFile(image: imageDescription, path: path, kind: type)
        case .other:
            guard answers[1].problems.isEmpty else {
                throw DiskImageError.toolFailed(tool: "debugfs", image: imageDescription,
                                                detail: "cannot read \(path): " + answers[1].problems.joined(separator: "; "))
            }
            return try scratch.read("content")
        }
    }

    /// The names in the directory at `path` (without `.` and `..`), or nil when nothing is there.
    public func listDirectory(_ path: String) async throws -> [String]? {
        let parts = try Ext4Path.components(of: path)
        var script = DebugfsScript()
        script.append(command: "stat", [parts.isEmpty ? "/" : Ext4Path.directoryForm(parts)], subject: path)
        script.append(command: "ls", ["-p", parts.isEmpty ? "/" : Ext4Path.directoryForm(parts)], subject: path)
        let answers = try await script.run(image: imagePath, offset: partitionOffset, writable: false)
        switch try classify(answers[0]) {
        case .missing, .blocked: return nil
        case .other(let type):
            throw DiskImageError.notARegularFile(image: imageDescription, path: path, kind: type)
        case .directory:
            // `ls -p` prints `/inode/mode/uid/gid/name/size/` per entry.
            return answers[1].lines.compactMap { line in
                let fields = line.split(separator: "/", omittingEmptySubsequences: false)
                guard fields.count >= 7 else { return nil }
                let name = fields[5...(fields.count - 3)].joined(separator: "/")
                return name == "." || name == ".." || name.isEmpty ? nil : name
            }
        }
    }

    /// Type, mode, owner and size of whatever is at `path` (a symlink itself, not its target), or nil when
    /// nothing is there.
    public func status(of path: String) async throws -> Ext4FileStatus? {
        let parts = try Ext4Path.components(of: path)
        var script = DebugfsScript()
        script.append(command: "stat", [parts.isEmpty ? "/" : Ext4Path.leafForm(parts)], subject: path)
        let answers = try await script.run(image: imagePath, offset: partitionOffset, writable: false)
        if let status = Self.parseStatus(answers[0].lines) { return status }
        switch try classify(answers[0]) {
        case .missing, .blocked: return nil
        default:
            throw DiskImageError.toolFailed(tool: "debugfs", image: imageDescription,
                                            detail: "unexpected stat output for \(path): " + answers[0].lines.joined(separator: "\n"))
        }
    }

    /// Reads `Type:`, `Mode:`, `User:`, `Group:` and the first `Size:` from `debugfs stat` output.
    static func parseStatus(_ lines: [String]) -> Ext4FileStatus? {
        guard let first = lines.first(where: { !$0.isEmpty }), first.hasPrefix("Inode: ") else { return nil }
        let words = lines.prefix(4).joined(separator: " ").split(separator: " ").map(String.init)
        func value(after key: String) -> String? {
            guard let index = words.firstIndex(of: key), index + 1 < words.count else { return nil }
            return words[index + 1]
        }
        // The type word can be two words ("character special"): take everything between Type: and Mode:.
        guard let typeIndex = words.firstIndex(of: "Type:"), let modeIndex = words.firstIndex(of: "Mode:"),
              typeIndex < modeIndex,
              let mode = value(after: "Mode:").flatMap({ UInt32($0, radix: 8) }),
              let uid = value(after: "User:").flatMap({ UInt32($0) }),
              let gid = value(after: "Group:").flatMap({ UInt32($0) }),
              let size = value(after: "Size:").flatMap({ UInt64($0) })
        else { return nil }
        let type = words[(typeIndex + 1)..<modeIndex].joined(separator: " ")
        return Ext4FileStatus(type: type, mode: mode, uid: uid, gid: gid, size: size)
    }
}
