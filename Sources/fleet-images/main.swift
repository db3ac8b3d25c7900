import FleetImagesCore
print(FleetImages.version)
