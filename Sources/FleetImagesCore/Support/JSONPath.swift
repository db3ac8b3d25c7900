/// A location inside a JSON document, printed the way people write it: `sites[2].wifi.psk_env`.
public struct JSONPath: Sendable, Hashable, CustomStringConvertible, Comparable {
    private var components: [Component]

    private enum Component: Sendable, Hashable {
        case key(String)
        case index(Int)
    }

    /// The document's root.
    public static let root = JSONPath(components: [])

    public func key(_ name: String) -> JSONPath {
        JSONPath(components: components + [.key(name)])
    }

    public func index(_ position: Int) -> JSONPath {
        JSONPath(components: components + [.index(position)])
    }

    public var description: String {
        var text = ""
        for component in components {
            switch component {
            case .key(let name):
                if !text.isEmpty { text += "." }
                text += name
            case .index(let position):
                text += "[\(position)]"
            }
        }
        return text.isEmpty ? "(manifest)" : text
    }

    public static func < (lhs: JSONPath, rhs: JSONPath) -> Bool {
        lhs.description < rhs.description
    }
}
