import Subprocess
import SystemPackage

extension ToolAvailability {
    /// What to hand swift-subprocess for the program `name`: its full path, found once here. Given
    /// a bare name, swift-subprocess 1.0 spawns a child for every `PATH` folder in turn until an
    /// exec succeeds, a fork of this whole process per folder: with a typical `PATH` that was six
    /// wasted forks per debugfs or mcopy call, about 30 ms of each. A name not found is left to
    /// swift-subprocess, which then fails with its own error as before.
    static func executable(named name: String) -> Executable {
        path(named: name).map { .path(FilePath($0)) } ?? .name(name)
    }

    static func executable(_ tool: Tool) -> Executable {
        executable(named: tool.rawValue)
    }
}
