"""Networks and their lifecycle: backbone, attribute model, segmenter, training and evaluation."""
