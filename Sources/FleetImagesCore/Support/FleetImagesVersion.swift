/// The tool's version; part of every inputs digest, so a new release rebuilds images.
public enum FleetImagesVersion {
    public static let current = "0.1.0"
}
