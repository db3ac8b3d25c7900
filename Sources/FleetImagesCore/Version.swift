import GRDB
import Subprocess
import Logging
import COpenSSL
public enum FleetImages { public static let version = "0.1.0" }
