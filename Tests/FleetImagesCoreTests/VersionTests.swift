import Testing
@testable import FleetImagesCore
@Test func versionIsSet() { #expect(!FleetImages.version.isEmpty) }
