import Foundation

/// Locale-independent formatting shared by the reports and the provenance documents
/// (UTC always, so output does not depend on the machine's time zone or language).
enum ProvenanceFormat {
    /// RFC 3339 / ISO 8601 in UTC with milliseconds: `2025-06-01T02:03:04.123Z`.
    static func iso8601(_ date: Date) -> String {
        let (fields, milliseconds) = utcFields(date)
        return "\(fields.date)T\(fields.time).\(digits(milliseconds, 3))Z"
    }

    /// `2025-06-01 02:03` (UTC), for tables.
    static func minutes(_ date: Date) -> String {
        let (fields, _) = utcFields(date)
        return "\(fields.date) \(digits(fields.hour, 2)):\(digits(fields.minute, 2))"
    }

    /// `2025-06-01 02:03:04 UTC`, for `show`.
    static func seconds(_ date: Date) -> String {
        let (fields, _) = utcFields(date)
        return "\(fields.date) \(fields.time) UTC"
    }

    /// `850ms`, `42s`, `3m05s`, `2h03m`.
    static func duration(_ seconds: TimeInterval) -> String {
        let seconds = max(0, seconds)
        if seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
        let whole = Int(seconds.rounded())
        if whole < 60 { return "\(whole)s" }
        if whole < 3600 { return "\(whole / 60)m\(digits(whole % 60, 2))s" }
        return "\(whole / 3600)h\(digits((whole % 3600) / 60, 2))m"
    }

    /// Binary units with one decimal: `812 B`, `4.0 KiB`, `2.6 GiB`.
    static func size(_ bytes: Int64) -> String {
        if bytes < 1024 { return "\(bytes) B" }
        let units = ["KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(bytes) / 1024
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }

    /// `2786918400` → `2,786,918,400`.
    static func grouped(_ value: Int64) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (index, character) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return (value < 0 ? "-" : "") + out
    }

    // Plain string building: `String(format:)` is slow on Linux, and `ls` formats thousands of rows.
    private struct Fields {
        var year, month, day, hour, minute, second: Int32

        var date: String { "\(digits(year, 4))-\(digits(month, 2))-\(digits(day, 2))" }
        var time: String { "\(digits(hour, 2)):\(digits(minute, 2)):\(digits(second, 2))" }
    }

    /// `value` in decimal, zero-padded on the left to `width` digits.
    static func digits(_ value: some BinaryInteger, _ width: Int) -> String {
        let text = String(value)
        return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
    }

    private static func utcFields(_ date: Date) -> (Fields, Int32) {
        let totalMilliseconds = (date.timeIntervalSince1970 * 1000).rounded()
        var seconds = time_t((totalMilliseconds / 1000).rounded(.down))
        let milliseconds = Int32(totalMilliseconds - Double(seconds) * 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let fields = Fields(
            year: parts.tm_year + 1900, month: parts.tm_mon + 1, day: parts.tm_mday,
            hour: parts.tm_hour, minute: parts.tm_min, second: parts.tm_sec)
        return (fields, milliseconds)
    }
}
