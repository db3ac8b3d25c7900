import Foundation

/// The embedded default builder: no Docker, no root, no loop devices. Copies the verified base
/// image sparsely, then writes the variant's files straight into its partitions: ext4 through
/// e2fsprogs' `debugfs` (one batched command file per variant), FAT through mtools. This is how
/// balena-cli, mender-convert and Yocto's `wic cp` edit images.
public struct InjectBuilder: ImageBuilder {
    public var kind: BuilderKind { .inject }
    public var imageDigest: String? { nil }
    /// Run `e2fsck -fn` and `fsck.fat -n` on the result (when the tools exist).
    public var checkFileSystems = true

    public init(checkFileSystems: Bool = true) {
        self.checkFileSystems = checkFileSystems
    }

    public func build(_ job: BuildJob) async throws -> String {
        let image = job.imagePath
        let log = job.log
        try ToolAvailability.require([.debugfs, .mcopy])

        let method = try SparseCopy.copy(from: job.baseImagePath, to: image)
        log("copied the base image (\(method.rawValue))")
        try Task.checkCancellation()

        let table = try PartitionTableReader.read(imageAt: image)
        let (boot, root) = try Self.partitions(in: table, spec: job.manifest.baseImage, image: image)
        log("partitions: boot #\(boot.number) at byte \(boot.startOffset), root #\(root.number) at byte \(root.startOffset) (\(table.scheme.rawValue))")
        let rootKind = try FileSystemProbe.kind(imageAt: image, offset: root.startOffset)
        guard rootKind == .ext4 else {
            throw BuildFailure("the root partition (#\(root.number)) of the base image holds \(rootKind), not ext4; the inject builder writes ext4 root file systems only")
        }
        let bootKind = try FileSystemProbe.kind(imageAt: image, offset: boot.startOffset)
        guard bootKind == .fat else {
            throw BuildFailure("the boot partition (#\(boot.number)) of the base image holds \(bootKind), not FAT")
        }

        let ext4 = Ext4Editor(imagePath: image, partitionOffset: root.startOffset)
        let fat = FATEditor(imagePath: image, partitionOffset: boot.startOffset)
        let stage = job.workDirectory + "/stage"
        try FileManager.default.createDirectory(atPath: stage, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])

        var rootOperations: [Ext4Operation] = []
        var bootWrites: [(hostFile: String, path: String)] = []
        // Host file that will end up at each destination, so an edit applies on top of a file the manifest replaced.
        var pending: [String: String] = [:]
        var counter = 0
        func stageBytes(_ bytes: [UInt8], name: String) throws -> String {
            counter += 1
            let path = "\(stage)/\(counter)-\(name)"
            guard FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o600]) else {
                throw BuildFailure("cannot write \(path) in the work folder")
            }
            return path
        }

        for item in job.planned.items {
            try Task.checkCancellation()
            let host: String
            switch item.source {
            case .directory:
                // Directories and links live in the root file system only: FAT has neither owners nor links.
                guard item.partition == .root else { throw BuildFailure("\(item.destination): the FAT boot partition cannot hold a directory with an owner") }
                rootOperations.append(.mkdirs(path: item.pathInPartition, mode: item.mode, uid: item.uid, gid: item.gid))
                continue
            case .symlink(let target):
                guard item.partition == .root else { throw BuildFailure("\(item.destination): the FAT boot partition cannot hold a symbolic link") }
                rootOperations.append(.symlink(path: item.pathInPartition, target: target, uid: item.uid, gid: item.gid))
                continue
            case .file(let relative, _):
                host = job.manifest.directory + "/" + relative
            case .generated(let name, let bytes, _):
                host = try stageBytes(bytes, name: name)
            case .hostsEntry(let hostname):
                let current: [UInt8]
                if let replaced = pending[item.destination] {
                    current = try Self.readReplacement(replaced)
                } else {
                    current = try await ext4.readFile(item.pathInPartition) ?? Array("127.0.0.1\tlocalhost\n".utf8)
                }
                let edited = HostsFile.settingHostname(String(decoding: current, as: UTF8.self), hostname: hostname)
                host = try stageBytes(Array(edited.utf8), name: "hosts")
            case .kernelParameter(let key, let value):
                let current: [UInt8]
                if let replaced = pending[item.destination] {
                    current = try Self.readReplacement(replaced)
                } else if let existing = try await fat.readFile(item.pathInPartition) {
                    current = existing
                } else {
                    throw BuildFailure("the boot partition has no \(item.pathInPartition); cannot set \(key) on the kernel command line (is this a Raspberry Pi OS image?)")
                }
                let edited = KernelCommandLine.settingParameter(String(decoding: current, as: UTF8.self), key: key, value: value)
                host = try stageBytes(Array(edited.utf8), name: "cmdline.txt")
            }
            pending[item.destination] = host
            switch item.partition {
            case .root:
                rootOperations.append(.write(hostFile: host, to: item.pathInPartition, mode: item.mode, uid: item.uid, gid: item.gid))
            case .boot:
                bootWrites.append((host, item.pathInPartition))
            }
        }
        // The last write to a destination wins; drop earlier ones so each path is written once.
        rootOperations = Self.lastWriteWins(rootOperations)
        try await ext4.apply(rootOperations)
        log("made \(rootOperations.count) change\(rootOperations.count == 1 ? "" : "s") in the root file system")
        let bootFinal = Self.lastWriteWins(bootWrites)
        if !bootFinal.isEmpty { try await fat.write(bootFinal) }
        log("wrote \(bootFinal.count) file\(bootFinal.count == 1 ? "" : "s") into the boot file system")
        try? FileManager.default.removeItem(atPath: stage)

        if checkFileSystems {
            if ToolAvailability.path(of: .e2fsck) != nil {
                _ = try await FileSystemCheck.ext4(imageAt: image, offset: root.startOffset)
                log("e2fsck -fn: clean")
            }
            if ToolAvailability.path(of: .fsckFAT) != nil {
                _ = try await FileSystemCheck.fat(imageAt: image, partition: boot)
                log("fsck.fat -n: clean")
            }
        }
        return image
    }

    /// A file that replaced one the builder edits in place (a manifest file, or one staged here),
    /// read without ever blocking on something that is not a regular file.
    static func readReplacement(_ path: String) throws -> [UInt8] {
        switch InputFile.read(path, shown: path, what: "file") {
        case .success(let bytes): return bytes
        case .failure(let problem): throw BuildFailure("\(problem)")
        }
    }

    /// The boot (FAT) and root (Linux) partitions: by the manifest's numbers, or by type.
    static func partitions(in table: PartitionTable, spec: BaseImageSpec, image: String) throws -> (boot: Partition, root: Partition) {
        func find(_ number: Int?, role: String, kinds: [Partition.Kind], fileSystem: FileSystemKind) throws -> Partition {
            if let number {
                guard let partition = table.partition(number: number) else {
                    throw BuildFailure("the base image has no partition \(number) (it has \(table.partitions.map { "#\($0.number)" }.joined(separator: ", "))); fix base_image.partitions.\(role)")
                }
                return partition
            }
            var matches = table.partitions.filter { kinds.contains($0.kind) }
            if matches.count > 1 {
                // Several of the right type (a GPT "basic data" partition is common): keep those that
                // actually hold the expected file system.
                matches = matches.filter { (try? FileSystemProbe.kind(imageAt: image, offset: $0.startOffset)) == fileSystem }
            }
            guard matches.count == 1, let only = matches.first else {
                throw BuildFailure(matches.isEmpty
                    ? "the base image has no \(role) partition of the expected type; name it in base_image.partitions.\(role)"
                    : "the base image has \(matches.count) candidate \(role) partitions (\(matches.map { "#\($0.number)" }.joined(separator: ", "))); choose one in base_image.partitions.\(role)")
            }
            return only
        }
        let boot = try find(spec.bootPartition, role: "boot", kinds: [.fat, .efiSystem], fileSystem: .fat)
        let root = try find(spec.rootPartition, role: "root", kinds: [.linux], fileSystem: .ext4)
        return (boot, root)
    }

    static func lastWriteWins(_ operations: [Ext4Operation]) -> [Ext4Operation] {
        var last: [String: Int] = [:]
        for (index, operation) in operations.enumerated() { last[operation.path] = index }
        return operations.enumerated().filter { last[$0.element.path] == $0.offset }.map(\.element)
    }

    static func lastWriteWins(_ writes: [(hostFile: String, path: String)]) -> [(hostFile: String, path: String)] {
        var last: [String: Int] = [:]
        for (index, write) in writes.enumerated() { last[write.path.lowercased()] = index }
        return writes.enumerated().filter { last[$0.element.path.lowercased()] == $0.offset }.map(\.element)
    }
}
