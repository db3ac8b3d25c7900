@testable import FleetImagesCore

extension DeviceOS {
    /// What a Raspberry Pi OS Bookworm Lite base image reports (the test fleets' base image is a
    /// placeholder file with nothing to inspect).
    static let testBookworm = DeviceOS(codename: "bookworm", prettyName: "Debian GNU/Linux 12 (bookworm)", initFormat: .userconf,
                                       firstUser: .init(name: "pi", home: "/home/pi", uid: 1000, gid: 1000), hasCloudInit: false,
                                       rfkillWlanFiles: ["platform-3f300000.mmcnr:wlan", "platform-fe300000.mmcnr:wlan"])
    /// A Trixie image with cloud-init.
    static let testTrixieCloudInit = DeviceOS(codename: "trixie", prettyName: "Debian GNU/Linux 13 (trixie)", initFormat: .cloudInit,
                                              firstUser: .init(name: "pi", home: "/home/pi", uid: 1000, gid: 1000), hasCloudInit: true)
}
