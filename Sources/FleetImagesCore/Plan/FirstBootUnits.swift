/// The root-owned systemd units and scripts fleet-images installs for first boot, as text.
///
/// - `fleet-images-setup.service`: once, early (before the network starts): the per-device hostname
///   from the serial number, the WLAN radio unblocked, a missing locale generated.
/// - `fleet-images-first-boot.service` + `.timer`: the manifest's `first_boot.command`, once, after
///   `network-online.target` and `time-sync.target` (a Pi has no real-time clock: TLS fails with a
///   clock in 1970). Exit 0 ends it for good (a marker in `/var/lib/fleet-images`, the timer
///   disabled); exit 75 (EX_TEMPFAIL: no network yet) is a normal "not yet" that the timer retries
///   without marking the unit failed; any other exit marks it failed, and the timer still retries.
/// - `fleet-images-seed-cleanup.service` (cloud-init images, wanted by `cloud-final.service`): once
///   cloud-init has finished, done or in error, removes what held secrets from the FAT boot
///   partition (`network-config`, the hash in `user-data`).
///
/// Everything here is written root:root and not writable by anyone else; root never runs a file
/// the login user could change.
public enum FirstBootUnits {
    public static let libexec = "/usr/local/lib/fleet-images"
    public static let configDirectory = "/etc/fleet-images"
    public static let stateDirectory = "/var/lib/fleet-images"
    public static let unitDirectory = "/etc/systemd/system"
    public static let setupService = "fleet-images-setup.service"
    public static let firstBootService = "fleet-images-first-boot.service"
    public static let firstBootTimer = "fleet-images-first-boot.timer"
    public static let seedCleanupService = "fleet-images-seed-cleanup.service"
    public static let setupScript = libexec + "/setup"
    public static let firstBootRunner = libexec + "/first-boot-run"
    public static let seedCleanupScript = libexec + "/seed-cleanup"
    public static let hostnamePatternPath = configDirectory + "/hostname-pattern"
    public static let wifiCountryPath = configDirectory + "/wifi-country"
    public static let localePath = configDirectory + "/locale"
    /// EX_TEMPFAIL from sysexits.h: "try again later".
    public static let notYetExitCode = 75

    // MARK: Units

    public static let setupUnit = """
    # Written by fleet-images. First-boot device setup: per-device hostname, WLAN radio, locale.
    [Unit]
    Description=fleet-images first-boot device setup
    DefaultDependencies=no
    After=local-fs.target
    Before=network-pre.target NetworkManager.service systemd-networkd.service avahi-daemon.service sysinit.target
    Wants=network-pre.target
    ConditionPathExists=!\(stateDirectory)/setup.done

    [Service]
    Type=oneshot
    ExecStart=\(setupScript)
    RemainAfterExit=yes
    SyslogIdentifier=fleet-images-setup

    [Install]
    WantedBy=sysinit.target

    """

    public static func firstBootUnit(command: [String]) -> String {
        """
        # Written by fleet-images. Runs the manifest's first_boot command once, as root, when the
        # network is online; exit 75 means "not yet" and \(firstBootTimer) tries again.
        [Unit]
        Description=fleet-images first-boot job (device enrolment)
        Wants=network-online.target time-sync.target
        After=network-online.target time-sync.target \(setupService)
        ConditionPathExists=!\(stateDirectory)/first-boot.done

        [Service]
        Type=oneshot
        ExecStart=\(firstBootRunner) \(command.map(systemdQuote).joined(separator: " "))
        SuccessExitStatus=\(notYetExitCode)
        TimeoutStartSec=1h
        SyslogIdentifier=fleet-images-first-boot

        [Install]
        WantedBy=multi-user.target

        """
    }

    public static func firstBootTimerUnit(retrySeconds: Int) -> String {
        """
        # Written by fleet-images. Retries \(firstBootService) until it succeeds; it disables this timer then.
        [Unit]
        Description=Retry the fleet-images first-boot job
        ConditionPathExists=!\(stateDirectory)/first-boot.done

        [Timer]
        OnUnitInactiveSec=\(retrySeconds)s
        Unit=\(firstBootService)

        [Install]
        WantedBy=timers.target

        """
    }

    public static let seedCleanupUnit = """
    # Written by fleet-images. Once cloud-init has applied the boot partition's seed, removes the
    # parts of it that hold secrets (the Wi-Fi key in network-config, the password hash in user-data).
    [Unit]
    Description=fleet-images: remove applied secrets from the cloud-init seed on the boot partition
    After=cloud-final.service
    ConditionPathExists=!\(stateDirectory)/seed-cleanup.done

    [Service]
    Type=oneshot
    ExecStart=\(seedCleanupScript)
    RemainAfterExit=yes
    SyslogIdentifier=fleet-images-seed-cleanup

    [Install]
    WantedBy=cloud-final.service

    """

    // MARK: Scripts

    public static let firstBootRunnerScript = """
    #!/bin/sh
    # Written by fleet-images: runs the first_boot command for \(firstBootService).
    # 0 = done for good; 75 = not yet (retried, not a failure); anything else = failed (retried).
    set -u
    "$@"
    code=$?
    case $code in
    0)
        mkdir -p \(stateDirectory)
        touch \(stateDirectory)/first-boot.done
        systemctl --no-block disable --now \(firstBootTimer) >/dev/null 2>&1 || true
        echo "fleet-images: the first-boot command succeeded; it will not run again"
        ;;
    \(notYetExitCode))
        echo "fleet-images: the first-boot command is not ready yet (exit \(notYetExitCode), e.g. no network); \(firstBootTimer) retries it"
        ;;
    *)
        echo "fleet-images: the first-boot command failed with exit $code; \(firstBootTimer) retries it" >&2
        ;;
    esac
    exit $code

    """

    /// The setup script; the `fleet_images_set_hostname` function is the one the packer-docker
    /// builder uses for `/etc/hosts` at build time, so both give the same file.
    public static var setupScriptText: String {
        (["""
        #!/bin/sh
        # Written by fleet-images: first-boot device setup, run once by \(setupService).
        set -u
        conf=\(configDirectory)
        status=0
        """] + PackerChrootScript.setHostnameFunction + ["""

        # The device's own name: {serial} in the manifest's hostname becomes this board's serial number.
        if [ -f "$conf/hostname-pattern" ]; then
            serial=$(sed -n 's/^Serial[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | tr -d '[:space:]')
            if [ -z "$serial" ] && [ -r /sys/firmware/devicetree/base/serial-number ]; then
                serial=$(tr -d '\\000[:space:]' < /sys/firmware/devicetree/base/serial-number)
            fi
            serial=$(printf '%s' "$serial" | tr 'A-Z' 'a-z')
            case "$serial" in
            '' | *[!0-9a-z]*)
                echo "fleet-images: no usable serial number in /proc/cpuinfo or the device tree; the hostname stays $(cat /etc/hostname)" >&2
                status=1
                ;;
            *)
                name=$(sed "s/{serial}/$serial/g" "$conf/hostname-pattern")
                printf '%s\\n' "$name" > /etc/hostname
                fleet_images_set_hostname "$name" /etc/hosts
                printf '%s' "$name" > /proc/sys/kernel/hostname
                rm -f "$conf/hostname-pattern"
                echo "fleet-images: hostname $name (serial $serial)"
                ;;
            esac
        fi

        # Wi-Fi radio on, as raspi-config's do_wifi_country leaves it.
        if [ -f "$conf/wifi-country" ]; then
            country=$(cat "$conf/wifi-country")
            for f in /var/lib/systemd/rfkill/*:wlan; do
                [ -e "$f" ] && echo 0 > "$f"
            done
            if command -v rfkill >/dev/null 2>&1; then rfkill unblock wlan || true; fi
            if command -v iw >/dev/null 2>&1; then iw reg set "$country" || true; fi
            echo "fleet-images: WLAN unblocked, regulatory domain $country"
        fi

        # The locale the manifest asked for, generated when the image lacks it.
        if [ -f "$conf/locale" ]; then
            want=$(cat "$conf/locale")
            norm() { printf '%s' "$1" | tr 'A-Z' 'a-z' | sed 's/utf-8/utf8/'; }
            found=$(locale -a 2>/dev/null | while read -r have; do [ "$(norm "$have")" = "$(norm "$want")" ] && echo yes; done)
            if [ -n "$found" ]; then
                :
            elif [ -f /etc/locale.gen ] && command -v locale-gen >/dev/null 2>&1; then
                sed -i "s/^#[[:space:]]*\\($want[[:space:]]\\)/\\1/" /etc/locale.gen
                grep -q "^$want[[:space:]]" /etc/locale.gen || echo "$want UTF-8" >> /etc/locale.gen
                locale-gen >/dev/null && echo "fleet-images: generated locale $want" || status=1
            else
                echo "fleet-images: locale $want is missing and this image has no locale-gen" >&2
                status=1
            fi
        fi

        if [ "$status" -eq 0 ]; then
            mkdir -p \(stateDirectory)
            touch \(stateDirectory)/setup.done
        fi
        exit "$status"

        """]).joined(separator: "\n")
    }

    public static func seedCleanupScriptText(bootMount: String) -> String {
        """
        #!/bin/sh
        # Written by fleet-images: run once by \(seedCleanupService) after cloud-init's final stage.
        set -u
        boot=\(bootMount)
        # Whatever cloud-init's outcome, it has read the seed for this instance and will not read it
        # again: the secrets go either way, and an error is reported (the journal and
        # `cloud-init status --long` say which module failed).
        cloud-init status --wait >/dev/null 2>&1
        code=$?
        if [ "$code" -ne 0 ]; then
            echo "fleet-images: cloud-init finished with status $code (see cloud-init status --long); removing the seed's secrets anyway" >&2
        fi
        rm -f "$boot/network-config"
        printf '#cloud-config\\n# Applied at first boot. fleet-images removed the settings that held secrets.\\n' > "$boot/user-data"
        sync
        mkdir -p \(stateDirectory)
        touch \(stateDirectory)/seed-cleanup.done
        echo "fleet-images: removed the Wi-Fi key and the password hash from the seed on $boot"

        """
    }

    /// One argument as systemd's `ExecStart=` reads it: double-quoted, `\\` and `"` escaped,
    /// `%` doubled (specifier) and `$` doubled (variable expansion).
    static func systemdQuote(_ argument: String) -> String {
        var out = "\""
        for char in argument {
            switch char {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "%": out += "%%"
            case "$": out += "$$"
            default: out.append(char)
            }
        }
        return out + "\""
    }
}
