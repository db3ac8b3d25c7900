/// The vocabulary of packer-builder-arm's `arm` builder, written down so that a rendered
/// template is checked before a container starts: Packer rejects an unknown key only after the
/// image has been pulled and the container is up, and a missing one only after the download.
///
/// Taken from packer-builder-arm's `config/remote_file_config.go`, `config/image_config.go`,
/// `config/qemu_config.go` and the generated `builder/builder.hcl2spec.go` (`FlatConfig`), plus
/// the two keys Packer itself reads from every builder block (`type`, `name`). Keep it in step
/// with the pinned builder image when moving to a newer release.
public enum PackerArmFields {
    /// Keys Packer reads from any builder block.
    public static let packerBuilderKeys: Set<String> = ["type", "name"]

    /// `RemoteFileConfig`: where the base archive comes from and how it is checked and unpacked.
    public static let remoteFileKeys: Set<String> = [
        "file_urls", "file_checksum", "file_checksum_url", "file_checksum_type",
        "file_unarchive_cmd", "file_target_path", "file_target_extension", "file_tmp_dir_location",
    ]

    /// `ImageConfig`: the raw image and its partitions.
    public static let imageKeys: Set<String> = [
        "image_path", "image_size", "image_size_bytes", "image_type", "image_mount_path",
        "image_build_method", "image_partitions", "image_chroot_mounts", "additional_chroot_mounts",
        "image_setup_extra", "image_chroot_env",
    ]

    /// `image_build_method`: `reuse` (the base as is), `resize` (the base grown to `image_size`,
    /// its last partition and file system expanded: what installing packages needs), `new`
    /// (partitions made and filled from a root file system archive).
    public static let buildMethods: [String] = ["reuse", "resize", "new"]

    /// `QemuConfig`.
    public static let qemuKeys: Set<String> = ["qemu_binary_source_path", "qemu_binary_destination_path"]

    public static var builderKeys: Set<String> { packerBuilderKeys.union(remoteFileKeys).union(imageKeys).union(qemuKeys) }

    /// `Partition` (an entry of `image_partitions`).
    public static let partitionKeys: Set<String> = ["name", "type", "size", "start_sector", "filesystem", "filesystem_make_options", "mountpoint"]

    /// `ChrootMount` (an entry of `image_chroot_mounts` or `additional_chroot_mounts`).
    public static let chrootMountKeys: Set<String> = ["mount_type", "source_path", "destination_path"]

    /// Keys the builder's `Prepare` rejects the template without. A checksum is one of
    /// `file_checksum` or `file_checksum_url`; a size is one of `image_size` or `image_size_bytes`
    /// (needed even with `image_build_method: reuse`, which ignores it).
    public static let requiredKeys: [String] = ["file_urls", "image_path", "image_build_method", "image_partitions", "qemu_binary_source_path"]

    /// Every problem with one `arm` builder block, as `key: what is wrong` lines.
    public static func problems(in builder: [String: JSONValue]) -> [String] {
        var problems: [String] = []
        let known = builderKeys
        for key in builder.keys.sorted() where !known.contains(key) {
            let hint = Suggestion.closest(to: key, among: known.sorted()).map { "; did you mean \"\($0)\"?" } ?? ""
            problems.append("\(key): not a packer-builder-arm field\(hint)")
        }
        for key in requiredKeys where builder[key] == nil {
            problems.append("\(key): required by packer-builder-arm")
        }
        if builder["file_checksum"] == nil && builder["file_checksum_url"] == nil && PackerJSON.string(builder["file_checksum_type"]) != "none" {
            problems.append("file_checksum: one of file_checksum or file_checksum_url is required by packer-builder-arm")
        }
        if builder["image_size"] != nil && builder["image_size_bytes"] != nil {
            problems.append("image_size: only one of image_size or image_size_bytes can be given")
        }
        if builder["image_size"] == nil && builder["image_size_bytes"] == nil {
            problems.append("image_size: one of image_size or image_size_bytes is required by packer-builder-arm (even for image_build_method \"reuse\", which ignores it)")
        }
        if let method = PackerJSON.string(builder["image_build_method"]), !buildMethods.contains(method) {
            problems.append("image_build_method: \"\(method)\" is not one of \(buildMethods.map { "\"\($0)\"" }.joined(separator: ", "))")
        }
        if let type = PackerJSON.string(builder["image_type"]), type != "dos" && type != "gpt" {
            problems.append("image_type: \"\(type)\" is neither \"dos\" nor \"gpt\"")
        }
        if case .array(let partitions)? = builder["image_partitions"] {
            if partitions.isEmpty { problems.append("image_partitions: at least one partition is required") }
            for (index, partition) in partitions.enumerated() {
                guard case .object(let fields) = partition else {
                    problems.append("image_partitions[\(index)]: not an object")
                    continue
                }
                for key in fields.keys.sorted() where !partitionKeys.contains(key) {
                    problems.append("image_partitions[\(index)].\(key): not a packer-builder-arm partition field")
                }
            }
        } else if builder["image_partitions"] != nil {
            problems.append("image_partitions: not an array")
        }
        for list in ["image_chroot_mounts", "additional_chroot_mounts"] {
            guard case .array(let mounts)? = builder[list] else {
                if builder[list] != nil { problems.append("\(list): not an array") }
                continue
            }
            for (index, mount) in mounts.enumerated() {
                guard case .object(let fields) = mount else {
                    problems.append("\(list)[\(index)]: not an object")
                    continue
                }
                for key in fields.keys.sorted() where !chrootMountKeys.contains(key) {
                    problems.append("\(list)[\(index)].\(key): not a packer-builder-arm chroot mount field")
                }
            }
        }
        return problems
    }
}
