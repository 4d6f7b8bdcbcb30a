"""What a garment is and how it is cut out: labels, K-Fashion annotations, regions, images, crops, colors."""
