import Testing
@testable import FleetImagesCore

@Suite("KernelCommandLine and HostsFile")
struct DiskImageTextEditTests {
    private let key = "cfg80211.ieee80211_regdom"

    @Test("cmdline.txt edits", arguments: [
        // (input, expected)
        ("console=tty1 root=PARTUUID=1 rootwait\n", "console=tty1 root=PARTUUID=1 rootwait cfg80211.ieee80211_regdom=CH\n"),
        ("console=tty1 rootwait", "console=tty1 rootwait cfg80211.ieee80211_regdom=CH\n"),
        ("console=tty1 rootwait\n\n\n", "console=tty1 rootwait cfg80211.ieee80211_regdom=CH\n"),
        ("a  cfg80211.ieee80211_regdom=US\tb\n", "a  cfg80211.ieee80211_regdom=CH\tb\n"),
        ("cfg80211.ieee80211_regdom=US a\n", "cfg80211.ieee80211_regdom=CH a\n"),
        ("a cfg80211.ieee80211_regdom=US b cfg80211.ieee80211_regdom=DE\n", "a cfg80211.ieee80211_regdom=CH b\n"),
        ("a cfg80211.ieee80211-regdom=US b\n", "a cfg80211.ieee80211_regdom=CH b\n"),
        ("a cfg80211.ieee80211_regdom b\n", "a cfg80211.ieee80211_regdom=CH b\n"),
        ("a xcfg80211.ieee80211_regdom=US\n", "a xcfg80211.ieee80211_regdom=US cfg80211.ieee80211_regdom=CH\n"),
        ("a rootwait  \n", "a rootwait cfg80211.ieee80211_regdom=CH  \n"),
        ("a rootwait\r\n", "a rootwait cfg80211.ieee80211_regdom=CH\r\n"),
        ("a dyndbg=\"file x.c cfg80211.ieee80211_regdom=US\" b\n",
         "a dyndbg=\"file x.c cfg80211.ieee80211_regdom=US\" b cfg80211.ieee80211_regdom=CH\n"),
        ("", "cfg80211.ieee80211_regdom=CH\n"),
        ("\n", "cfg80211.ieee80211_regdom=CH\n"),
        ("a b\n# second line kept\n", "a b cfg80211.ieee80211_regdom=CH\n# second line kept\n"),
    ])
    func cmdline(input: String, expected: String) {
        let once = KernelCommandLine.settingParameter(input, key: key, value: "CH")
        #expect(once == expected)
        #expect(KernelCommandLine.settingParameter(once, key: key, value: "CH") == once)
    }

    @Test("a second value replaces the first")
    func cmdlineReplace() {
        let ch = KernelCommandLine.settingParameter("console=tty1 rootwait\n", key: key, value: "CH")
        #expect(KernelCommandLine.settingParameter(ch, key: key, value: "DE") == "console=tty1 rootwait cfg80211.ieee80211_regdom=DE\n")
    }

    @Test("/etc/hosts edits", arguments: [
        ("127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n\n127.0.1.1\t\traspberrypi\n",
         "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n\n127.0.1.1\t\tzrh-lab\n"),
        ("127.0.0.1 localhost\n::1 localhost\n", "127.0.0.1 localhost\n127.0.1.1\tzrh-lab\n::1 localhost\n"),
        ("::1 localhost", "::1 localhost\n127.0.1.1\tzrh-lab\n"),
        ("", "127.0.1.1\tzrh-lab\n"),
        ("127.0.1.1 old.example old # set by installer\n", "127.0.1.1 zrh-lab # set by installer\n"),
        ("127.0.1.1 # nothing\n", "127.0.1.1 zrh-lab # nothing\n"),
        ("127.0.1.1 a\n10.0.0.1 b\n127.0.1.1 c\n", "127.0.1.1 zrh-lab\n10.0.0.1 b\n"),
        ("#127.0.1.1 commented\n127.0.0.1 localhost\n", "#127.0.1.1 commented\n127.0.0.1 localhost\n127.0.1.1\tzrh-lab\n"),
        ("127.0.1.10 other\n", "127.0.1.10 other\n127.0.1.1\tzrh-lab\n"),
        ("  127.0.1.1\told\r\n", "  127.0.1.1\tzrh-lab\r\n"),
    ])
    func hosts(input: String, expected: String) {
        let once = HostsFile.settingHostname(input, hostname: "zrh-lab")
        #expect(once == expected)
        #expect(HostsFile.settingHostname(once, hostname: "zrh-lab") == once)
    }
}
