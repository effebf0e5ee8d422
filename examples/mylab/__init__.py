"""A lab's own mixture strategies, outside the moa-bench package (see README, "Architectures")."""
