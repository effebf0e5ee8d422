"""`task=calibrate`: a substitute judge measured against the paper's, on its published judgments."""
