/// One change to an ext4 file system, applied by `Ext4Editor.apply(_:)`.
///
/// Paths are absolute paths inside the file system. Modes are permission bits only (`0o644`, `0o4755`),
/// the file type is implied by the case.
public enum Ext4Operation: Sendable, Equatable {
    /// Creates `path` and any missing parents (parents it creates get 0755 root:root), then sets the
    /// mode and owner of `path` itself, whether it was created or already there.
    case mkdirs(path: String, mode: UInt32, uid: UInt32, gid: UInt32)
    /// Copies the host file to `path`, replacing a file or symlink already there; creates missing parents
    /// (0755 root:root).
    case write(hostFile: String, to: String, mode: UInt32, uid: UInt32, gid: UInt32)
    /// Creates a symbolic link at `path` pointing to `target` (stored as given, relative or absolute),
    /// replacing a file or symlink already there; creates missing parents (0755 root:root).
    case symlink(path: String, target: String, uid: UInt32, gid: UInt32)

    /// The path in the image this operation creates or changes.
    public var path: String {
        switch self {
        case .mkdirs(let path, _, _, _), .write(_, let path, _, _, _), .symlink(let path, _, _, _):
            return path
        }
    }
}

/// Mode, owner and size of one inode, as `debugfs stat` reports them.
public struct Ext4FileStatus: Sendable, Equatable {
    /// `regular`, `directory`, `symlink`, `FIFO`, `socket`, `character special`, `block special`: debugfs's words.
    public var type: String
    /// Permission bits (`0o644`), without the file type.
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var size: UInt64

    public init(type: String, mode: UInt32, uid: UInt32, gid: UInt32, size: UInt64) {
        self.type = type
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
    }
}
